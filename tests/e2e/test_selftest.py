"""``keystead selftest`` as a subprocess: every step passes on this installation, its throw-away
workstation is deleted, no secret is printed, and its own network refusal works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import KEYSTEAD

pytestmark = pytest.mark.e2e

STEPS = [
    "PKCS#11 module loads",
    "SoftHSM token created, SQLCipher database opened",
    "key generated on the token and read back",
    "audit chain signed on the token and verified",
    "nothing touched the network",
]


def run(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env["TMPDIR"] = str(tmp)
    return subprocess.run(
        [str(KEYSTEAD), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_selftest_passes_and_leaves_nothing(tmp_path: Path) -> None:
    result = run("--json", "selftest", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert [step["step"] for step in json.loads(result.stdout)["passed"]] == STEPS
    assert list(tmp_path.iterdir()) == []  # the temporary workstation is gone

    text = run("selftest", tmp=tmp_path)
    lines = text.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"ok  {step}" for step in STEPS]
    assert lines[-1] == "Self-test passed."


def test_network_use_during_the_selftest_is_refused() -> None:
    """Even a loopback name lookup fails the self-test (the suite's own guard allows that one)."""
    code = (
        "import socket\n"
        "from app.services.selftest import SelftestFailed, _no_network\n"
        "try:\n"
        "    with _no_network():\n"
        "        socket.getaddrinfo('127.0.0.1', 80)\n"
        "except SelftestFailed as e:\n"
        "    print(e.message)\n"
        "socket.getaddrinfo('127.0.0.1', 80)\n"  # outside the self-test: not watched
        "print('after')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "the self-test tried to reach the network (socket.getaddrinfo '127.0.0.1')",
        "after",
    ]


def test_version_is_printed(tmp_path: Path) -> None:
    import importlib.metadata

    result = run("--version", tmp=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"keystead {importlib.metadata.version('keystead')}\n"
