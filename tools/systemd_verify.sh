#!/bin/sh
# Verify systemd unit files in a throw-away root; any systemd-analyze output fails.
#   tools/systemd_verify.sh vm/*.service
# See tools/systemd_verify.py for the invariants. Needs only python3 and systemd.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/systemd_verify.py" "$@"
