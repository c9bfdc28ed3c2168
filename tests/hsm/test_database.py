"""The SQLCipher database on disk: a wrong passphrase, a flipped byte and a truncated file are
each a clear error and leave the file exactly as it was; no journal is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.errors import (
    DatabaseDamaged,
    StorageError,
    UnknownOperator,
    WorkstationMissing,
    WrongPassphrase,
)
from app.services.workstation import Workstation
from app.storage.database import Database
from tests.hsm.kit import OPERATOR, PASSPHRASE, TOKEN, Station

pytestmark = pytest.mark.hsm

PAGE = 4096


def leftovers(station: Station) -> list[str]:
    """Journal, WAL or shared-memory files SQLite would leave next to the database."""
    return sorted(
        p.name
        for p in station.home.root.iterdir()
        if p.name.startswith(station.home.database.name) and p != station.home.database
    )


def fill(station: Station, count: int) -> None:
    for i in range(count):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, f"key-{i:03d}")


def test_locked_database_is_encrypted_and_alone(station: Station) -> None:
    fill(station, 2)
    station.lock()
    data = station.home.database.read_bytes()
    assert not data.startswith(b"SQLite format 3")
    assert len(data) % PAGE == 0
    assert leftovers(station) == []
    # Readable by the owner only: the home directory (the database file itself takes the
    # process umask, which only the CLI and GUI entry points tighten).
    assert station.home.root.stat().st_mode & 0o777 == 0o700
    assert station.home.keyslots.stat().st_mode & 0o077 == 0


def test_wrong_passphrase_and_unknown_operator_change_nothing(station: Station) -> None:
    fill(station, 1)
    station.lock()
    # The side record of wrong passphrases (unlock-failures.json) is meant to change.
    counted = station.home.unlock_failures.name
    before = {
        p.name: p.read_bytes()
        for p in station.home.root.iterdir()
        if p.is_file() and p.name != counted
    }
    for wrong in (PASSPHRASE + "x", PASSPHRASE.upper(), "", PASSPHRASE[:-1]):
        station.clock.advance(minutes=1)  # past each back-off delay
        with pytest.raises(WrongPassphrase, match=f"operator '{OPERATOR}' is wrong"):
            station(Workstation.unlock, station.home, OPERATOR, wrong, clock=station.clock)
    with pytest.raises(UnknownOperator, match="nobody"):
        station(Workstation.unlock, station.home, "nobody", PASSPHRASE)
    after = {
        p.name: p.read_bytes()
        for p in station.home.root.iterdir()
        if p.is_file() and p.name != counted
    }
    assert after == before
    station.clock.advance(minutes=1)
    assert leftovers(station) == []
    station.unlock()  # the right passphrase still opens it, with its key
    assert station(station.ws.keys.resolve, "key-000").name == "key-000"


def test_the_database_key_is_not_the_passphrase(station: Station) -> None:
    """The file opens only with the random key from the keyslot, never with the passphrase."""
    station.lock()
    raw = PASSPHRASE.encode().ljust(32, b"\0")[:32]
    with pytest.raises(DatabaseDamaged):
        station(Database.open, station.home.database, raw)
    assert leftovers(station) == []


@pytest.mark.parametrize("where", ["first page", "middle", "last page", "last byte"])
def test_a_flipped_byte_is_damage_and_the_file_is_left_untouched(
    station: Station, where: str
) -> None:
    fill(station, 3)
    station.lock()
    data = bytearray(station.home.database.read_bytes())
    offset = {
        "first page": 100,
        "middle": len(data) // 2,
        "last page": len(data) - PAGE + 17,
        "last byte": len(data) - 1,
    }[where]
    data[offset] ^= 0x40
    station.home.database.write_bytes(bytes(data))
    with pytest.raises(DatabaseDamaged, match="damaged") as caught:
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE)
    assert "untouched" in caught.value.message and "backup" in caught.value.message
    assert station.home.database.read_bytes() == bytes(data)
    assert leftovers(station) == []
    data[offset] ^= 0x40  # the same file repaired opens again
    station.home.database.write_bytes(bytes(data))
    station.unlock()
    assert station.key_count() == 3


@pytest.mark.parametrize("pages", [1, 2])
def test_truncation_by_whole_pages_is_damage(station: Station, pages: int) -> None:
    fill(station, 30)
    station.lock()
    data = station.home.database.read_bytes()
    assert len(data) >= 8 * PAGE
    cut = data[: -pages * PAGE]
    station.home.database.write_bytes(cut)
    with pytest.raises(DatabaseDamaged):
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE)
    assert station.home.database.read_bytes() == cut
    assert leftovers(station) == []
    station.home.database.write_bytes(data)
    station.unlock()
    assert station.key_count() == 30


def test_a_file_that_is_not_a_database_is_damage(station: Station) -> None:
    station.lock()
    junk = b"SQLite format 3\x00" + bytes(PAGE * 2 - 16)
    station.home.database.write_bytes(junk)
    with pytest.raises(DatabaseDamaged):
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE)
    assert station.home.database.read_bytes() == junk


def test_missing_files(station: Station, tmp_path: Path) -> None:
    station.lock()
    station.home.database.unlink()
    with pytest.raises(DatabaseDamaged, match="missing"):
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE)
    assert not station.home.database.exists()  # damage, not a new start: not re-created
    station.home.database.write_bytes(b"")
    with pytest.raises(DatabaseDamaged, match="empty"):
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE)
    assert station.home.database.read_bytes() == b""
    empty = type(station.home)(tmp_path / "empty")
    with pytest.raises(WorkstationMissing):
        station(Workstation.unlock, empty, OPERATOR, PASSPHRASE)
    assert isinstance(WorkstationMissing("x"), StorageError)
