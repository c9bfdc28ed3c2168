"""The offline bundle installs in a fresh Debian 12 root with the network cut, and its self-test
passes there (packaging/test-fresh-root.sh: debootstrap, then ``unshare --net chroot``).

Building a bundle needs the network, which this suite forbids, so the test takes a bundle already
built by ``packaging/build-bundle.sh``: set ``KEYSTEAD_BUNDLE=DIR`` (and optionally
``KEYSTEAD_ROOT_TEMPLATE=DIR``, a pristine ``debootstrap --variant=minbase bookworm`` tree, to
save the debootstrap). Skipped without them, without debootstrap/unshare, or when not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_bundle_installs_offline_in_a_fresh_root() -> None:
    bundle = os.environ.get("KEYSTEAD_BUNDLE")
    if not bundle:
        pytest.skip("set KEYSTEAD_BUNDLE to a bundle made by packaging/build-bundle.sh")
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("debootstrap", "unshare", "chroot")):
        pytest.skip("needs root, debootstrap and unshare")
    template = os.environ.get("KEYSTEAD_ROOT_TEMPLATE", "")
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "test-fresh-root.sh"), bundle, template],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Self-test passed." in result.stdout
    prefix = "interfaces in the namespace:"
    seen = [
        line[len(prefix) :].split()
        for line in result.stdout.splitlines()
        if line.startswith(prefix)
    ]
    assert seen == [["lo"]]  # only loopback: no way out
