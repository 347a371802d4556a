#!/bin/bash
# Provision a Yo-Yo GPU image. Runs as root on a temporary builder VM, as its startup
# script (vm/image/build-image.sh creates that VM, waits for this script and turns the
# VM's disk into an image). Base: Ubuntu 24.04 LTS (Python 3.12, signed NVIDIA modules).
#
# Installs: the NVIDIA driver (Ubuntu's signed kernel modules, so Secure Boot works),
# optionally the CUDA toolkit (vLLM's wheels bring their own CUDA runtime), the Google
# Cloud CLI, vLLM in /opt/yoyo/vllm, the yoyo agent in /opt/yoyo/venv, and the systemd
# units. Reports "YOYO-IMAGE-BUILD: OK" or "YOYO-IMAGE-BUILD: FAILED" on the serial
# console, then powers off.
#
# Inputs (instance metadata): yoyo-image-staging (gs:// prefix holding the agent wheel,
# units and scripts), yoyo-vllm-version, yoyo-nvidia-driver (branch, e.g. 550),
# yoyo-cuda-toolkit ("true" to install it).
set -Eeuo pipefail

readonly METADATA_URL="http://metadata.google.internal/computeMetadata/v1/instance/attributes"
readonly DONE_MARKER="/var/lib/yoyo-image-build.done"
readonly STAGE="/tmp/yoyo-staging"
export DEBIAN_FRONTEND=noninteractive

report() {
  echo "YOYO-IMAGE-BUILD: $*"
  echo "YOYO-IMAGE-BUILD: $*" >/dev/ttyS0 || true
}

on_error() {
  report "FAILED (line $1)"
  exit 1
}
trap 'on_error ${LINENO}' ERR

attribute() {
  curl --silent --fail --retry 5 --header "Metadata-Flavor: Google" "${METADATA_URL}/$1" || printf '%s' "${2:-}"
}

install_base() {
  apt-get update
  apt-get install -y --no-install-recommends \
    apt-transport-https ca-certificates curl gnupg python3-venv python3-pip ubuntu-drivers-common
  # Google Cloud CLI from Google's apt repository (gcloud storage for the weights).
  install -d -m 0755 /usr/share/keyrings
  curl --silent --fail https://packages.cloud.google.com/apt/doc/apt-key.gpg |
    gpg --dearmor --yes -o /usr/share/keyrings/cloud.google.gpg
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
    >/etc/apt/sources.list.d/google-cloud-sdk.list
  apt-get update
  apt-get install -y --no-install-recommends google-cloud-cli
}

install_nvidia() {
  local driver="$1" toolkit="$2"
  # Ubuntu's precompiled, signed modules for the running kernel flavour (gcp).
  ubuntu-drivers install --gpgpu "nvidia:${driver}-server"
  apt-get install -y --no-install-recommends "nvidia-utils-${driver}-server"
  if [[ "${toolkit}" == "true" ]]; then
    apt-get install -y --no-install-recommends nvidia-cuda-toolkit
  fi
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
  # A GPU VM must boot straight into its work: no package updates at boot.
  systemctl disable apt-daily.timer apt-daily-upgrade.timer || true
  apt-get clean
  rm -rf "${STAGE}" /var/lib/apt/lists/* /root/.cache
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
  install_base
  install_nvidia "${driver}" "${toolkit}"
  install_yoyo "${staging}" "${vllm_version}"
  finish_image
  touch "${DONE_MARKER}"
  report "OK"
  sync
  poweroff
}

main "$@"
