#!/bin/bash
# Yo-Yo GPU VM startup script (instance metadata "startup-script", set by Terraform).
#
# Run by the guest environment on every boot, so it is idempotent:
#   1. write /etc/yoyo/agent.json from the "yoyo-agent-config" metadata, adding the
#      instance name (only rewritten when it changed);
#   2. install the image's systemd units into /etc/systemd/system when they differ;
#   3. enable and start the units: weights prefetch -> vLLM, and the agent;
#   4. write /etc/yoyo/worker.json from the "yoyo-worker-config" metadata (when set) and
#      run yoyo-worker, the batch worker.
# The units themselves are baked into the image (vm/image/build-image.sh) under
# /opt/yoyo/share/systemd. On a reboot they already start before this script runs,
# with the previous configuration; this script only restarts what a change affects.
set -euo pipefail

readonly METADATA_URL="http://metadata.google.internal/computeMetadata/v1"
readonly CONFIG_KEY="yoyo-agent-config"
readonly CONFIG_DIR="/etc/yoyo"
readonly CONFIG="${CONFIG_DIR}/agent.json"
readonly GATEWAY_ENV="${CONFIG_DIR}/vllm-gateway.env"
readonly UNIT_SRC="/opt/yoyo/share/systemd"
readonly UNIT_DST="/etc/systemd/system"
readonly UNITS=(yoyo-weights.service vllm.service yoyo-agent.service yoyo-worker.service)
readonly WORKER_CONFIG_KEY="yoyo-worker-config"
readonly WORKER_CONFIG="${CONFIG_DIR}/worker.json"
readonly PYTHON="/opt/yoyo/venv/bin/python"

log() { echo "yoyo-startup: $*"; }

metadata() {
  curl --silent --show-error --fail --retry 10 --retry-connrefused --retry-delay 2 \
    --header "Metadata-Flavor: Google" "${METADATA_URL}/$1"
}

# Prints "changed" when the configuration file was (re)written.
write_config() {
  local raw name ip tmp
  raw="$(metadata "instance/attributes/${CONFIG_KEY}")"
  name="$(metadata instance/name)"
  ip="$(metadata instance/network-interfaces/0/ip)"
  install -d -m 0755 "${CONFIG_DIR}"
  tmp="$(mktemp "${CONFIG_DIR}/.agent.json.XXXXXX")"
  # Validate the JSON and add the instance name; sorted keys keep the file stable.
  printf '%s' "${raw}" | "${PYTHON}" -c '
import json, sys
config = json.load(sys.stdin)
if not isinstance(config, dict):
    sys.exit("yoyo-agent-config is not a JSON object")
config["instance"] = sys.argv[1]
config["address"] = f"{sys.argv[2]}:8000"  # where the gateway reaches vLLM (heartbeats)
json.dump(config, sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
' "${name}" "${ip}" >"${tmp}"
  chmod 0644 "${tmp}"
  replace_if_changed "${tmp}" "${CONFIG}"
}

# Moves $1 over $2 unless their contents are equal; prints "changed" when it moved it.
replace_if_changed() {
  if cmp --silent "$1" "$2"; then
    rm -f "$1"
  else
    mv -f "$1" "$2"
    echo changed
  fi
}

# What vLLM needs for the gateway, in /etc/yoyo/vllm-gateway.env (root:yoyo 0640) for
# vllm.service: its API key (VLLM_API_KEY, read by vLLM from its environment, never on
# its command line) from Secret Manager, and the model name the gateway routes by (--served-model-name). Prints
# "changed" when the file was (re)written.
write_gateway_env() {
  local secret model token tmp
  secret="$("${PYTHON}" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("vllm_api_key_secret", ""))' "${CONFIG}")"
  model="$("${PYTHON}" -c 'import json, sys; c = json.load(open(sys.argv[1])); print(c.get("served_model_name") or c["pool"])' "${CONFIG}")"
  [[ -n "${secret}" ]] || return 0
  token="$(metadata instance/service-accounts/default/token | "${PYTHON}" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
  tmp="$(mktemp "${CONFIG_DIR}/.vllm-gateway.env.XXXXXX")"
  chown root:yoyo "${tmp}"
  chmod 0640 "${tmp}"
  # No key, no vLLM (it never serves unauthenticated): the agent still starts, reports the
  # VM not ready, and the control plane stops it; the reason is in the serial console log.
  if ! curl --silent --show-error --fail --retry 10 --retry-delay 2 \
    --header "Authorization: Bearer ${token}" \
    "https://secretmanager.googleapis.com/v1/${secret}/versions/latest:access" |
    "${PYTHON}" -c '
import base64, json, sys
key = base64.b64decode(json.load(sys.stdin)["payload"]["data"]).decode().strip()
if not key:
    sys.exit("the vLLM API key secret is empty")
sys.stdout.write(f"VLLM_API_KEY={key}\nVLLM_SERVED_MODEL_NAME={sys.argv[1]}\n")
' "${model}" >"${tmp}"; then
    log "vLLM API key not readable from ${secret} (docs/deploy.md, 'The gateway'): vLLM will not start" >&2
    rm -f "${tmp}"
    return 0
  fi
  replace_if_changed "${tmp}" "${GATEWAY_ENV}"
}

# Prints "changed" when any unit file was installed or replaced.
install_units() {
  local unit changed=""
  for unit in "${UNITS[@]}"; do
    if ! cmp --silent "${UNIT_SRC}/${unit}" "${UNIT_DST}/${unit}"; then
      install -m 0644 "${UNIT_SRC}/${unit}" "${UNIT_DST}/${unit}"
      changed="changed"
    fi
  done
  if [[ -n "${changed}" ]]; then
    systemctl daemon-reload
    echo changed
  fi
}

# yoyo-worker's configuration, as Terraform wrote it (no metadata key: no worker).
write_worker_config() {
  local raw
  raw="$(curl --silent --fail --header "Metadata-Flavor: Google" \
    "${METADATA_URL}/instance/attributes/${WORKER_CONFIG_KEY}")" || return 0
  printf '%s' "${raw}" | "${PYTHON}" -c 'import json, sys; json.load(sys.stdin)' || return 0
  printf '%s\n' "${raw}" >"${WORKER_CONFIG}.tmp"
  chmod 0644 "${WORKER_CONFIG}.tmp"
  mv -f "${WORKER_CONFIG}.tmp" "${WORKER_CONFIG}"
}

main() {
  local config_changed units_changed unit
  config_changed="$(write_config)"
  config_changed+="$(write_gateway_env)"
  write_worker_config
  units_changed="$(install_units)"
  log "config ${config_changed:-unchanged}, units ${units_changed:-unchanged}"

  for unit in "${UNITS[@]}"; do
    systemctl is-enabled --quiet "${unit}" || systemctl enable "${unit}"
  done

  # --no-block: the weights download can take a while; the agent must not wait for it.
  if [[ -n "${config_changed}${units_changed}" ]]; then
    # Restarting the weights unit restarts vLLM (Requires=); the weights are fetched
    # again only if their URI changed.
    systemctl restart --no-block yoyo-agent.service yoyo-weights.service
  fi
  systemctl start --no-block yoyo-agent.service vllm.service
  systemctl restart --no-block yoyo-worker.service
  log "units started"
}

main "$@"
