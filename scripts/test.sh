#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every check headless: ruff, mypy, and the whole test suite
# against real SoftHSM tokens, a real SQLCipher database, pkcs11-tool and Qt offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check app ui tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
