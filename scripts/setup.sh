#!/usr/bin/env bash
# Install what Keystead needs on a Debian 12 machine: the Debian packages listed in
# packaging/debian-packages.txt (run time) and packaging/debian-packages-test.txt (tests only),
# then a virtual environment in .venv with exactly the pins of packaging/requirements-dev.lock
# (hash-checked) and Keystead itself (editable).
#
# Needs the network only when something is missing. A later run checks the Debian packages with
# dpkg (offline) and compares a stamp of the dependency set (pyproject.toml, the lock file, the
# interpreter) with .venv/keystead-setup.stamp: when nothing changed it does nothing and prints
# nothing. When the set changed, .venv is made again from scratch, so two set-ups are identical.
# pip's output goes to .venv/setup.log; on failure its end is shown.
# PYTHON (default python3) is the interpreter the virtual environment is made with.
set -euo pipefail
cd "$(dirname "$0")/.."

lock=packaging/requirements-dev.lock
stamp_file=.venv/keystead-setup.stamp
python=${PYTHON:-python3}

# --- Debian packages --------------------------------------------------------------------------
package_list() { sed -e 's/#.*//' "$@" | tr -s ' \t' '\n' | sed '/^$/d'; }
mapfile -t packages < <(package_list packaging/debian-packages.txt packaging/debian-packages-test.txt)
missing=()
if [ ${#packages[@]} -gt 0 ]; then
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
  for pkg in "${packages[@]}"; do
    grep -qx "$pkg installed" <<<"$installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# --- Python environment -----------------------------------------------------------------------
# The stamp names what the environment was made from; the interpreter is part of it because a
# venv is bound to the one that made it.
interpreter=$(command -v "$python")
stamp=$( { echo "keystead-setup 1"; echo "$interpreter"; cat pyproject.toml "$lock"; } \
  | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  exit 0
fi

echo "Setting up the Python environment in .venv (pinned by $lock; log: .venv/setup.log)"
rm -rf .venv
"$python" -m venv .venv
log=.venv/setup.log
if ! {
  .venv/bin/python -m pip install --require-hashes --no-deps -r "$lock" &&
  .venv/bin/python -m pip install --no-deps --no-build-isolation -e .
} >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "setup.sh: error: installing the Python packages failed (full log: $(pwd)/$log)" >&2
  exit 1
fi
echo "$stamp" >"$stamp_file"
echo "Keystead is installed: $(pwd)/.venv/bin/keystead and .venv/bin/keystead-gui"
