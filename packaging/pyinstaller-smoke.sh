#!/usr/bin/env bash
# Optional PyInstaller one-folder build (packaging/keystead.spec) and its smoke test: it starts,
# prints its version, passes `keystead selftest`, reports the air gap inside `unshare -n`, and the
# GUI renders its first screen offscreen. Needs the network (PyPI) for the build venv.
#   bash packaging/pyinstaller-smoke.sh [OUT_DIR]     (default dist/pyinstaller)
# PYINSTALLER_VERSION (default below) is the PyInstaller used.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=$(realpath -m "${1:-dist/pyinstaller}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet)
"${pip[@]}" --require-hashes --no-deps -r packaging/requirements.lock >"$work/pip.log" 2>&1
"${pip[@]}" --no-deps "$repo" >>"$work/pip.log" 2>&1
"${pip[@]}" "pyinstaller==${PYINSTALLER_VERSION:-6.22.3}" >>"$work/pip.log" 2>&1
rm -rf "$repo/build"
"$work/venv/bin/pyinstaller" --noconfirm --log-level ERROR --distpath "$out" \
  --workpath "$work/build" packaging/keystead.spec
app="$out/keystead"
echo "Built $app ($(du -sh "$app" | cut -f1))"
"$app/keystead" --version
TMPDIR="$work" "$app/keystead" selftest
if command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  unshare -n "$app/keystead" airgap status
fi
QT_QPA_PLATFORM=offscreen KEYSTEAD_HOME="$work/home" "$app/keystead-gui" --screenshot "$out/first-screen.png" 2>/dev/null
echo "GUI first screen: $out/first-screen.png"
