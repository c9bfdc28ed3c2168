#!/usr/bin/env bash
# Regenerate the hashed lock files from pyproject.toml (needs the network; run on a connected
# machine, then commit both files):
#   packaging/requirements.lock      what Keystead needs at run time (the offline bundle installs it)
#   packaging/requirements-dev.lock  the same pins plus the dev tools and the build backend
#                                    (scripts/setup.sh installs it)
# Both are "uv pip compile --universal --generate-hashes" output: every distribution pinned with
# the SHA-256 of each of its files, so pip installs them with --require-hashes and two installs are
# identical. The dev lock is constrained by the run-time lock, so shared packages have one version.
# UV_VERSION (default below) is the uv used; it is installed into a throw-away virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
uv_version=${UV_VERSION:-0.13.9}
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "uv==$uv_version"
uv="$work/venv/bin/uv"

# The build backend ([build-system].requires) is locked too: set-up installs Keystead with
# --no-build-isolation so that nothing is fetched behind the lock's back.
"$python" - "$work/build.in" <<'PY'
import sys, tomllib
with open("pyproject.toml", "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
open(sys.argv[1], "w").write("\n".join(requires) + "\n")
PY

compile=("$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes
         --no-strip-markers --custom-compile-command "bash packaging/lock.sh")
"${compile[@]}" pyproject.toml -o packaging/requirements.lock
"${compile[@]}" pyproject.toml "$work/build.in" --extra dev -c packaging/requirements.lock \
  -o packaging/requirements-dev.lock
sed -i "s|$work/build.in|build-system requires (pyproject.toml)|" packaging/requirements-dev.lock
echo "Wrote packaging/requirements.lock and packaging/requirements-dev.lock"
