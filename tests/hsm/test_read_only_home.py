"""A home on a read-only mount (an auditor's copy): reading works, clearly without tokens and
without writing a byte; anything that would write is refused in one line. The mount itself is
made with ``mount --bind -o ro`` where the test may (root); otherwise the read-only flag of the
file system is what is stood in for, and SQLCipher still opens the file with ``mode=ro``."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main as cli_main
from app.domain.algorithms import Algorithm
from app.domain.lifecycle import Action
from app.errors import ReadOnlyHome
from app.paths import Home
from app.services.workstation import Workstation
from tests.hsm.kit import OPERATOR, PASSPHRASE, TOKEN, Station

pytestmark = pytest.mark.hsm


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def read_only(station: Station, tmp_path: Path) -> Iterator[Home]:
    """The station's home, locked, seen through a read-only bind mount (or flagged so)."""
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "audited")
    station.lock()
    target = tmp_path / "ro"
    target.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "--bind", "-o", "ro", str(station.home.root), str(target)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if mounted:
        yield Home(target)
        subprocess.run(["umount", str(target)], check=False)
    else:
        patch = pytest.MonkeyPatch()
        patch.setattr(Home, "read_only", lambda self: True)
        yield station.home
        patch.undo()


def test_reading_a_read_only_home_writes_nothing(
    read_only: Home,
    station: Station,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _digest(read_only.root)
    monkeypatch.setenv("KEYSTEAD_OPERATOR", OPERATOR)
    monkeypatch.setenv("KEYSTEAD_PASSPHRASE", PASSPHRASE)
    for argv in (["keys", "list"], ["audit", "verify"], ["keys", "history", "audited"]):
        assert cli_main.main(["--home", str(read_only.root), *argv]) == 0, argv
        err = capsys.readouterr().err
        assert err.startswith("keystead: note: ") and "read-only" in err
    assert _digest(read_only.root) == before
    code = cli_main.main(
        ["--home", str(read_only.root), "keys", "suspend", "audited", "--reason", "x"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "read-only" in err[0]
    assert _digest(read_only.root) == before


def test_a_write_on_a_read_only_database_is_refused_not_attempted(
    read_only: Home, station: Station
) -> None:
    ws = station(Workstation.unlock, read_only, OPERATOR, PASSPHRASE)
    try:
        assert ws.read_only and ws.tokens.modules == {}
        with pytest.raises(ReadOnlyHome):  # a restricting change needs no token: the database
            station(ws.lifecycle.transition, "audited", Action.COMPROMISE, "x")
    finally:
        station(ws.lock)
