"""F10: a home on a full disk. Opening the workstation writes (the wrong-passphrase record, the
session's audit entries), so it cannot open; the one error line says so in the officer's terms
— the disk holding the home is full, free space, nothing was changed — not which internal file
failed. The right and the wrong passphrase get the same words, and no file changes."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import WRONG_PASSPHRASE, Cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Write until the disk refuses another byte (large writes, then small ones)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def home_files(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.parametrize("passphrase", ["right", "wrong"])
def test_unlock_on_a_full_disk_says_the_disk_is_full_and_changes_nothing(
    small_disk: Path, passphrase: str
) -> None:
    cli = Cli(small_disk / "home")
    cli.run("init", "--operator", "officer", "--soft-token", "Vault")
    fill(small_disk)
    before = home_files(cli.home)
    env = {} if passphrase == "right" else {"KEYSTEAD_PASSPHRASE": WRONG_PASSPHRASE}
    line = cli.error("keys", "list", **env)
    assert line.startswith("keystead: error: The disk holding ") and "\n" not in line
    assert "is full" in line and "cannot open the workstation" in line, line
    assert "Free some space" in line and "nothing was changed" in line
    assert "unlock-failures" not in line and "not saved" not in line
    assert home_files(cli.home) == before
    (small_disk / "filler").unlink()  # space again: it opens, and nothing was lost
    cli.run("keys", "list")
    assert cli.run("audit", "verify").returncode == 0
