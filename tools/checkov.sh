#!/usr/bin/env bash
# Run checkov (pinned) on one Terraform directory, from its own virtualenv.
#
#   tools/checkov.sh <dir> [extra checkov args...]
#   tools/checkov.sh --install      # only (re)build the venv (used by `make install`)
#
# Invariants:
# - checkov lives in .venv-checkov (override: CHECKOV_VENV), never in the project's .venv:
#   it replaces python-hcl2's `hcl2` module, which other tools there rely on.
# - The venv is (re)built only when missing or holding a different checkov version.
# - Offline apart from that install: --skip-download keeps checkov from fetching policy
#   metadata, and the run itself needs no network.
# - Exit status is checkov's: non-zero when any check fails (or checkov errors).
set -euo pipefail

CHECKOV_VERSION="3.3.30"

install_only=""
if [ "${1:-}" = "--install" ]; then
    install_only=1
elif [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 <terraform dir> [checkov args...] | $0 --install" >&2
    exit 2
fi
dir=${1:-}
shift

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CHECKOV_VENV:-$repo/.venv-checkov}
python=${PYTHON:-python3}

installed=""
if [ -x "$venv/bin/checkov" ]; then
    installed=$("$venv/bin/checkov" --version 2>/dev/null || true)
fi
if [ "$installed" != "$CHECKOV_VERSION" ]; then
    echo "checkov.sh: installing checkov==$CHECKOV_VERSION into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "checkov==$CHECKOV_VERSION" >&2
fi

[ -n "$install_only" ] && exit 0

export BC_SKIP_MAPPING=TRUE CHECKOV_SKIP_DOWNLOAD=TRUE
exec "$venv/bin/checkov" --quiet --compact --skip-download --framework terraform \
    --directory "$dir" "$@"
