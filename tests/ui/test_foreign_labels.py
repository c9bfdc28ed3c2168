"""A foreign object with a label that is not UTF-8 (issue 9, item 3): the GUI's screenshot mode
renders the unlocked inventory and exits, instead of logging "unexpected error" and never
finishing; the label is shown escaped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.paths import Home
from tests.hsm.kit import pkcs11_tool

pytestmark = pytest.mark.ui

KEYSTEAD = Path(sys.executable).with_name("keystead")
ENV = {
    "KEYSTEAD_OPERATOR": "officer",
    "KEYSTEAD_PASSPHRASE": "foreign-label passphrase",
    "KEYSTEAD_PIN": "4711-4711",
    "KEYSTEAD_SO_PIN": "0815-0815",
}


def run(args: list[str], home: Path, **extra: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTEAD_")}
    env.update(ENV, KEYSTEAD_HOME=str(home), QT_QPA_PLATFORM="offscreen", **extra)
    return subprocess.run(
        args, env=env, capture_output=True, timeout=180, stdin=subprocess.DEVNULL, check=False
    )


def test_screenshot_with_a_non_utf8_label_finishes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = run([str(KEYSTEAD), "init", "--soft-token", "Vault"], home)
    assert made.returncode == 0, made.stderr.decode()
    pkcs11_tool(
        Home(home),
        "--token-label",
        "Vault",
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        b"bad\xff\xfelabel",
        "--id",
        "32",
        pin=ENV["KEYSTEAD_PIN"],
    )
    listed = run([str(KEYSTEAD), "--json", "keys", "list"], home)
    assert listed.returncode == 0, listed.stderr.decode()
    assert b'"name": "bad\\\\xff\\\\xfelabel"' in listed.stdout
    shot = tmp_path / "inventory.png"
    result = run([sys.executable, "-m", "ui.main", "--screenshot", str(shot)], home)
    assert result.returncode == 0, result.stderr.decode()
    assert b"unexpected error" not in result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
