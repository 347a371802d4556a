#!/bin/bash
# Provision a Yo-Yo GPU image. Runs as root on a temporary builder VM, as its startup
# script (vm/image/build-image.sh creates that VM, waits for this script and turns the
# VM's disk into an image). Base: Ubuntu 24.04 LTS (Python 3.12, signed NVIDIA modules).
#
# Installs: the NVIDIA driver (Ubuntu's precompiled, Canonical-signed kernel modules for
# the kernel the image boots, so Secure Boot works; the build fails unless `modinfo`
# finds a signed nvidia module for that kernel: the builder has no GPU, so nothing may
# depend on detecting one), optionally the CUDA toolkit (vLLM's wheels bring their own
# CUDA runtime), a C compiler and the Python headers (Triton compiles at first use),
# the Google Cloud CLI, the Ops Agent (journald -> Cloud Logging), vLLM in
# /opt/yoyo/vllm (warmed up: byte-compiled, imported offline), the yoyo agent in
# /opt/yoyo/venv, and the systemd units. Reports "YOYO-IMAGE-BUILD: OK" or
# "YOYO-IMAGE-BUILD: FAILED" on the serial console, then powers off.
#
# apt never races the image's own unattended-upgrades: its timers are stopped first and
# every apt/dpkg call (the Ops Agent installer's too) waits up to APT_LOCK_TIMEOUT_S for
# the dpkg lock (APT_CONFIG).
#
# Inputs (instance metadata): yoyo-image-staging (gs:// prefix holding the agent wheel,
# units and scripts), yoyo-vllm-version, yoyo-nvidia-driver (branch, e.g. 580),
# yoyo-cuda-toolkit ("true" to install it).
#
# Sourcing the script (tests/infra/test_provision.py) defines the functions only.
set -Eeuo pipefail

readonly METADATA_URL="http://metadata.google.internal/computeMetadata/v1/instance/attributes"
readonly DONE_MARKER="/var/lib/yoyo-image-build.done"
readonly STAGE="/tmp/yoyo-staging"
readonly BOOT_DIR="${YOYO_BOOT_DIR:-/boot}"
readonly CONSOLE="${YOYO_CONSOLE:-/dev/ttyS0}"
readonly APT_LOCK_TIMEOUT_S=600
readonly OPS_AGENT_REPO_SCRIPT="https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh"
readonly OPS_AGENT_CONFIG="/etc/google-cloud-ops-agent/config.yaml"
export DEBIAN_FRONTEND=noninteractive

report() {
  echo "YOYO-IMAGE-BUILD: $*"
  if [[ -c "${CONSOLE}" ]]; then
    echo "YOYO-IMAGE-BUILD: $*" >"${CONSOLE}" || true
  fi
}

on_error() {
  report "FAILED (line $1)"
  exit 1
}
trap 'on_error ${LINENO}' ERR

attribute() {
  curl --silent --fail --retry 5 --header "Metadata-Flavor: Google" "${METADATA_URL}/$1" || printf '%s' "${2:-}"
}

# Stop the image's own apt runs and make every later apt/dpkg call wait for the lock.
quiet_apt() {
  local conf
  systemctl stop apt-daily.timer apt-daily-upgrade.timer || true
  systemctl disable apt-daily.timer apt-daily-upgrade.timer || true
  conf="$(mktemp)"
  printf 'DPkg::Lock::Timeout "%s";\n' "${APT_LOCK_TIMEOUT_S}" >"${conf}"
  export APT_CONFIG="${conf}"
}

install_base() {
  apt-get update
  # build-essential and python3-dev: Triton compiles a small C module at vLLM's first
  # start ("Failed to find C compiler", vllm-project/vllm#2997) and needs Python.h.
  apt-get install -y --no-install-recommends \
    apt-transport-https ca-certificates curl gnupg python3-venv python3-pip \
    build-essential python3-dev
  # Google Cloud CLI from Google's apt repository (gcloud storage for the weights).
  install -d -m 0755 /usr/share/keyrings
  curl --silent --fail https://packages.cloud.google.com/apt/doc/apt-key.gpg |
    gpg --dearmor --yes -o /usr/share/keyrings/cloud.google.gpg
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
    >/etc/apt/sources.list.d/google-cloud-sdk.list
  apt-get update
  apt-get install -y --no-install-recommends google-cloud-cli
}

# The kernel the image boots: the newest one installed (e.g. 6.8.0-1015-gcp).
boot_kernel() {
  local kernels=("${BOOT_DIR}"/vmlinuz-*)
  [[ -e "${kernels[0]}" ]] || return 1
  printf '%s\n' "${kernels[@]#"${BOOT_DIR}"/vmlinuz-}" | sort -V | tail -n 1
}

# Ubuntu's precompiled, Canonical-signed modules: chosen by name for the boot kernel,
# never by detecting a GPU (the builder has none). The -<flavour> package follows later
# kernels of the same flavour; the -<kernel> one is the module for this kernel.
install_nvidia() {
  local driver="$1" toolkit="$2" kernel flavour signer
  if ! kernel="$(boot_kernel)"; then
    report "FAILED (no kernel in ${BOOT_DIR})"
    return 1
  fi
  flavour="${kernel##*-}"
  apt-get install -y --no-install-recommends \
    "linux-modules-nvidia-${driver}-server-${flavour}" \
    "linux-modules-nvidia-${driver}-server-${kernel}" \
    "nvidia-headless-no-dkms-${driver}-server" \
    "nvidia-utils-${driver}-server"
  if [[ "${toolkit}" == "true" ]]; then
    apt-get install -y --no-install-recommends nvidia-cuda-toolkit
  fi
  depmod "${kernel}"
  if ! modinfo -k "${kernel}" nvidia >/dev/null; then
    report "FAILED (no nvidia kernel module for ${kernel})"
    return 1
  fi
  signer="$(modinfo -k "${kernel}" -F signer nvidia)"
  if [[ -z "${signer}" ]]; then
    report "FAILED (the nvidia module for ${kernel} is not signed: Secure Boot would refuse it)"
    return 1
  fi
  report "nvidia ${driver} module for ${kernel}, signed by ${signer}"
}

# The Ops Agent ships the journal (agent, vLLM, weights, startup script) to Cloud Logging.
install_ops_agent() {
  local script
  script="$(mktemp)"
  curl --silent --show-error --fail --retry 5 -o "${script}" "${OPS_AGENT_REPO_SCRIPT}"
  bash "${script}" --also-install
  rm -f "${script}"
  install -d -m 0755 "$(dirname "${OPS_AGENT_CONFIG}")"
  cat >"${OPS_AGENT_CONFIG}" <<'YAML'
# Yo-Yo: every unit's journal goes to Cloud Logging (the default pipeline, replaced).
logging:
  receivers:
    journald:
      type: systemd_journald
  service:
    pipelines:
      default_pipeline:
        receivers: [journald]
YAML
  systemctl enable google-cloud-ops-agent.service
}

# vLLM's first start must not compile what can be compiled now, nor fetch anything:
# the VMs have no route to the Internet.
warm_up_vllm() {
  local include
  /opt/yoyo/vllm/bin/python -m compileall -q -j 0 /opt/yoyo/vllm/lib >/dev/null || true
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /opt/yoyo/vllm/bin/python -c 'import torch, triton, vllm'
  include="$(/opt/yoyo/vllm/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  printf '#include <Python.h>\nint main(void) { return 0; }\n' |
    cc -fsyntax-only -I"${include}" -x c -
}

install_yoyo() {
  local staging="$1" vllm_version="$2"
  rm -rf "${STAGE}"
  mkdir -p "${STAGE}"
  gcloud storage cp --recursive "${staging%/}/*" "${STAGE}/"

  id -u yoyo >/dev/null 2>&1 ||
    useradd --system --home-dir /var/lib/yoyo --no-create-home --shell /usr/sbin/nologin yoyo
  install -d -m 0755 /opt/yoyo /opt/yoyo/bin /opt/yoyo/share/systemd /opt/yoyo/share/doc /etc/yoyo

  python3 -m venv /opt/yoyo/vllm
  /opt/yoyo/vllm/bin/pip install --no-cache-dir --upgrade pip
  /opt/yoyo/vllm/bin/pip install --no-cache-dir "vllm==${vllm_version}"
  warm_up_vllm

  python3 -m venv /opt/yoyo/venv
  /opt/yoyo/venv/bin/pip install --no-cache-dir --upgrade pip
  /opt/yoyo/venv/bin/pip install --no-cache-dir "${STAGE}"/wheels/*.whl

  install -m 0755 "${STAGE}/bin/yoyo-fetch-weights" /opt/yoyo/bin/yoyo-fetch-weights
  install -m 0644 "${STAGE}"/systemd/*.service /opt/yoyo/share/systemd/
  install -m 0644 "${STAGE}/README.md" /opt/yoyo/share/doc/README.md
  install -m 0644 "${STAGE}"/systemd/*.service /etc/systemd/system/
  systemctl daemon-reload
  # They start on the first boot once vm/startup.sh has written /etc/yoyo/agent.json.
  systemctl enable yoyo-weights.service vllm.service yoyo-agent.service
}

finish_image() {
  # A GPU VM must boot straight into its work: no package updates at boot (quiet_apt
  # disabled apt's timers).
  apt-get clean
  rm -rf "${STAGE}" "${APT_CONFIG:-}" /var/lib/apt/lists/* /root/.cache
  if command -v cloud-init >/dev/null; then
    cloud-init clean --logs
  fi
}

main() {
  if [[ -e "${DONE_MARKER}" ]]; then
    report "OK (already provisioned)"
    poweroff
    exit 0
  fi
  local staging vllm_version driver toolkit
  staging="$(attribute yoyo-image-staging)"
  vllm_version="$(attribute yoyo-vllm-version)"
  driver="$(attribute yoyo-nvidia-driver 580)"
  toolkit="$(attribute yoyo-cuda-toolkit false)"
  if [[ -z "${staging}" || -z "${vllm_version}" ]]; then
    report "FAILED (metadata yoyo-image-staging and yoyo-vllm-version are required)"
    exit 1
  fi

  report "started (vllm ${vllm_version}, nvidia ${driver})"
  quiet_apt
  install_base
  install_nvidia "${driver}" "${toolkit}"
  install_ops_agent
  install_yoyo "${staging}" "${vllm_version}"
  finish_image
  touch "${DONE_MARKER}"
  report "OK"
  sync
  poweroff
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
