#!/usr/bin/env bash
# Set up (scripts/setup.sh) and open the Keystead window on the embedded SoftHSM token.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/keystead-gui "$@"
