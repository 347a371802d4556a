#!/bin/bash
# Build the Yo-Yo GPU VM image (one time, and again for a new vLLM/driver/agent).
#
#   vm/image/build-image.sh --project PROJECT --staging gs://BUCKET/image-build \
#       --service-account yoyo-vm-agent@PROJECT.iam.gserviceaccount.com
#
# It builds the yoyo-control wheel, uploads it with the units and scripts to the staging
# prefix, creates a temporary builder VM (no GPU needed) whose startup script is
# vm/image/provision.sh, waits for "YOYO-IMAGE-BUILD: OK" on its serial console, creates
# an image in the image family from its disk and deletes the builder. The builder needs
# Internet access (apt, PyPI): by default it gets an ephemeral external IP on the
# project's "default" network. See vm/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: vm/image/build-image.sh --project PROJECT --staging gs://BUCKET/PREFIX --service-account EMAIL [options]

  --project ID             project to build the image in (required)
  --staging URI            gs:// prefix to stage the wheel and units (the builder's account must read it)
  --service-account EMAIL  account of the builder VM (e.g. the deployment's yoyo-vm-agent account)
  --zone ZONE              builder zone (default us-central1-a)
  --family NAME            image family (default yoyo-gpu)
  --vllm-version VERSION   vLLM release to install (default 0.33.0)
  --nvidia-driver BRANCH   NVIDIA driver branch, Ubuntu's signed -server modules (default 580)
  --cuda-toolkit           also install the CUDA toolkit (vLLM's wheels do not need it)
  --machine-type TYPE      builder machine type (default e2-standard-8)
  --subnet SUBNET          builder subnetwork (default: the default network); needs Internet access
  --no-address             give the builder no external IP (the subnet must have Cloud NAT)
  --keep-builder           do not delete the builder VM (for debugging)
  --timeout-min N          give up after N minutes (default 90)
EOF
}

PROJECT=""
STAGING=""
SERVICE_ACCOUNT=""
ZONE="us-central1-a"
FAMILY="yoyo-gpu"
VLLM_VERSION="0.33.0"
NVIDIA_DRIVER="580"
CUDA_TOOLKIT="false"
MACHINE_TYPE="e2-standard-8"
SUBNET=""
NO_ADDRESS="false"
KEEP_BUILDER="false"
TIMEOUT_MIN=90

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) PROJECT="$2"; shift 2 ;;
    --staging) STAGING="${2%/}"; shift 2 ;;
    --service-account) SERVICE_ACCOUNT="$2"; shift 2 ;;
    --zone) ZONE="$2"; shift 2 ;;
    --family) FAMILY="$2"; shift 2 ;;
    --vllm-version) VLLM_VERSION="$2"; shift 2 ;;
    --nvidia-driver) NVIDIA_DRIVER="$2"; shift 2 ;;
    --cuda-toolkit) CUDA_TOOLKIT="true"; shift ;;
    --machine-type) MACHINE_TYPE="$2"; shift 2 ;;
    --subnet) SUBNET="$2"; shift 2 ;;
    --no-address) NO_ADDRESS="true"; shift ;;
    --keep-builder) KEEP_BUILDER="true"; shift ;;
    --timeout-min) TIMEOUT_MIN="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [[ -z "${PROJECT}" || -z "${STAGING}" || -z "${SERVICE_ACCOUNT}" ]]; then
  usage >&2
  exit 2
fi
if [[ "${STAGING}" != gs://* || "${STAGING#gs://}" != */?* ]]; then
  # A folder inside a bucket: the staging prefix is emptied before each build.
  echo "--staging must be a folder inside a bucket, e.g. gs://BUCKET/image-build" >&2
  exit 2
fi

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
BUILDER="${FAMILY}-builder-$(date -u +%Y%m%d%H%M%S)"
IMAGE="${FAMILY}-$(date -u +%Y%m%d%H%M%S)"
WORK="$(mktemp -d)"

log() { echo "build-image: $*" >&2; }

cleanup() {
  rm -rf "${WORK}"
  if [[ "${KEEP_BUILDER}" != "true" ]] &&
    gcloud compute instances describe "${BUILDER}" --project "${PROJECT}" --zone "${ZONE}" >/dev/null 2>&1; then
    log "deleting builder ${BUILDER}"
    gcloud compute instances delete "${BUILDER}" --project "${PROJECT}" --zone "${ZONE}" --quiet || true
  fi
}
trap cleanup EXIT

stage() {
  log "building the yoyo-control wheel"
  mkdir -p "${WORK}/stage/wheels" "${WORK}/stage/systemd" "${WORK}/stage/bin"
  "${PYTHON}" -m pip wheel --quiet --no-deps --wheel-dir "${WORK}/stage/wheels" "${REPO_ROOT}"
  cp "${REPO_ROOT}"/vm/*.service "${WORK}/stage/systemd/"
  cp "${REPO_ROOT}/vm/bin/yoyo-fetch-weights" "${WORK}/stage/bin/"
  cp "${REPO_ROOT}/vm/README.md" "${WORK}/stage/README.md"
  log "uploading to ${STAGING}"
  gcloud storage rm --recursive --quiet "${STAGING}/**" >/dev/null 2>&1 || true
  gcloud storage cp --recursive "${WORK}/stage/*" "${STAGING}/"
}

create_builder() {
  local network_args=()
  if [[ -n "${SUBNET}" ]]; then
    network_args+=(--subnet "${SUBNET}")
  fi
  if [[ "${NO_ADDRESS}" == "true" ]]; then
    network_args+=(--no-address)
  fi
  log "creating builder ${BUILDER} in ${ZONE}"
  gcloud compute instances create "${BUILDER}" \
    --project "${PROJECT}" --zone "${ZONE}" \
    --machine-type "${MACHINE_TYPE}" \
    --image-family ubuntu-2404-lts-amd64 --image-project ubuntu-os-cloud \
    --boot-disk-size 100GB --boot-disk-type pd-balanced \
    --shielded-secure-boot --shielded-vtpm --shielded-integrity-monitoring \
    --service-account "${SERVICE_ACCOUNT}" --scopes cloud-platform \
    --metadata-from-file "startup-script=${REPO_ROOT}/vm/image/provision.sh" \
    --metadata "yoyo-image-staging=${STAGING},yoyo-vllm-version=${VLLM_VERSION},yoyo-nvidia-driver=${NVIDIA_DRIVER},yoyo-cuda-toolkit=${CUDA_TOOLKIT}" \
    "${network_args[@]}"
}

wait_for_build() {
  local deadline=$((SECONDS + TIMEOUT_MIN * 60)) output status
  log "waiting for the provisioning script (up to ${TIMEOUT_MIN} min)"
  while ((SECONDS < deadline)); do
    sleep 30
    output="$(gcloud compute instances get-serial-port-output "${BUILDER}" \
      --project "${PROJECT}" --zone "${ZONE}" --port 1 2>/dev/null || true)"
    if grep -q "YOYO-IMAGE-BUILD: FAILED" <<<"${output}"; then
      grep "YOYO-IMAGE-BUILD" <<<"${output}" >&2
      log "provisioning failed; rerun with --keep-builder to inspect the VM"
      return 1
    fi
    if grep -q "YOYO-IMAGE-BUILD: OK" <<<"${output}"; then
      break
    fi
  done
  while ((SECONDS < deadline)); do
    status="$(gcloud compute instances describe "${BUILDER}" --project "${PROJECT}" \
      --zone "${ZONE}" --format 'value(status)')"
    if [[ "${status}" == "TERMINATED" ]]; then
      return 0
    fi
    sleep 10
  done
  log "timed out after ${TIMEOUT_MIN} min"
  return 1
}

create_image() {
  log "creating image ${IMAGE} (family ${FAMILY})"
  gcloud compute images create "${IMAGE}" \
    --project "${PROJECT}" \
    --source-disk "${BUILDER}" --source-disk-zone "${ZONE}" \
    --family "${FAMILY}" \
    --description "Yo-Yo GPU image: vLLM ${VLLM_VERSION}, NVIDIA ${NVIDIA_DRIVER}, yoyo agent"
}

main() {
  stage
  create_builder
  wait_for_build
  create_image
  log "done. Terraform pools[*].image = \"projects/${PROJECT}/global/images/family/${FAMILY}\""
}

main
