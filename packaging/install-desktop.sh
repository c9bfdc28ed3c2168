#!/usr/bin/env bash
# Add Keystead to the desktop's application menu on a machine set up from the source tree
# (scripts/setup.sh): the desktop entry, AppStream metainfo and hicolor icons, with Exec= pointing
# at this checkout's .venv/bin/keystead-gui.
# PREFIX defaults to ~/.local for a normal user and /usr/local for root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" -eq 0 ]; then default=/usr/local; else default="$HOME/.local"; fi
.venv/bin/python packaging/install_desktop.py --assets . --prefix "${PREFIX:-$default}" \
  --exec "$(pwd)/.venv/bin/keystead-gui" >/dev/null
echo "Keystead added to the application menu under ${PREFIX:-$default}/share"
