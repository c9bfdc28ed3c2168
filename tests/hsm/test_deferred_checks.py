"""Paint first, integrity checks after (DESIGN.md "Storage", issue 17): an unlock that defers the
two whole-file checks serves reads at once, accepts no write until both have passed, records the
unlock as before, and on a damaged file writes nothing at all.

Real SQLCipher files and a real SoftHSM token; the damage is a flipped byte in a page the
inventory does not read (the root page of an index the inventory query does not use).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlcipher3

from app.domain.algorithms import Algorithm
from app.errors import DatabaseDamaged
from app.services.workstation import Workstation
from app.storage.database import Checks
from app.storage.events import list_events
from app.storage.repository import SettingsRepository
from tests.hsm.kit import OPERATOR, PASSPHRASE, PIN, TOKEN, Station

pytestmark = pytest.mark.hsm

PAGE = 4096
# Indexes no query of unlock + inventory uses (the inventory reads the keys table itself).
UNREAD_INDEXES = ("keys_deactivation", "sqlite_autoindex_keys_2")


def fill(station: Station, count: int) -> None:
    for i in range(count):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, f"key-{i:03d}")


def root_page(station: Station, name: str) -> int:
    rows = station(
        station.ws.db.query, "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
    )
    assert rows, f"no schema object {name}"
    return int(rows[0][0])


def flip_in_page(path: Path, page: int) -> bytes:
    """Flip one byte in the middle of ``page`` (1-based); the damaged bytes."""
    data = bytearray(path.read_bytes())
    data[(page - 1) * PAGE + PAGE // 2] ^= 0x20
    path.write_bytes(bytes(data))
    return bytes(data)


def deferred_unlock(station: Station) -> Workstation:
    return station(
        Workstation.unlock, station.home, OPERATOR, PASSPHRASE, clock=station.clock,
        defer_checks=True,
    )


def actions(station: Station, ws: Workstation) -> list[str]:
    return [e.action for e in station(list_events, ws.db)]


def test_deferred_unlock_reads_first_then_records_as_before(station: Station) -> None:
    fill(station, 3)
    station.unlock(login=False)  # the CLI's path: checks and records inside unlock
    cli_tail = actions(station, station.ws)[-1]
    assert cli_tail == "workstation.unlock"
    station.lock()

    ws = deferred_unlock(station)
    try:
        assert ws.integrity_pending and ws.db.checks is Checks.PENDING
        before = actions(station, ws)
        assert before[-1] == "workstation.lock"  # nothing recorded yet: reads only
        items = station(ws.keys.inventory)
        assert sorted(i.record.name for i in items if i.record) == [
            "key-000", "key-001", "key-002"
        ]
        station(ws.finish_unlock)
        assert not ws.integrity_pending and ws.db.checks is Checks.PASSED
        after = actions(station, ws)
        assert after[: len(before)] == before
        assert after[len(before):] == ["workstation.unlock"]  # as the CLI's unlock records it
        station(ws.finish_unlock)  # once only
        assert actions(station, ws) == after
    finally:
        station(ws.lock)
    station.unlock(login=False)
    assert actions(station, station.ws)[-3:] == [
        "workstation.unlock", "workstation.lock", "workstation.unlock"
    ]


def test_a_write_before_the_checks_runs_them_and_the_unlock_records_first(
    station: Station,
) -> None:
    fill(station, 1)
    station.lock()
    ws = deferred_unlock(station)
    try:
        assert ws.db.checks is Checks.PENDING
        station(ws.tokens.login, TOKEN, PIN)  # writes: login entries
        assert ws.db.checks is Checks.PASSED
        station(ws.keys.generate, TOKEN, Algorithm.AES_256, "written-after-checks")
        recorded = actions(station, ws)
        unlock_at = len(recorded) - 1 - recorded[::-1].index("workstation.unlock")
        assert recorded[unlock_at - 1] == "workstation.lock"  # the previous session's end
        assert "key.generate" in recorded[unlock_at + 1:]
    finally:
        station(ws.lock)


def test_a_raw_write_is_refused_by_sqlite_while_the_checks_are_pending(
    station: Station,
) -> None:
    """The authorizer backstop: a statement that reaches the connection without going
    through ``transaction``/``execute`` cannot change the file either."""
    station.lock()
    ws = deferred_unlock(station)
    try:
        conn = ws.db._conn
        for sql in (
            "INSERT INTO meta (key, value) VALUES ('x', 'y')",
            "UPDATE meta SET value = 'y'",
            "DELETE FROM meta",
            "CREATE TABLE sneaky (x)",
        ):
            with pytest.raises(sqlcipher3.DatabaseError, match="not authorized"):
                station(conn.execute, sql)
        assert ws.db.checks is Checks.PENDING
        station(ws.finish_unlock)
    finally:
        station(ws.lock)


@pytest.mark.parametrize("index", UNREAD_INDEXES)
def test_damage_outside_the_inventory_paints_then_refuses_every_write(
    station: Station, index: str
) -> None:
    fill(station, 3)
    page = root_page(station, index)
    station.lock()
    damaged = flip_in_page(station.home.database, page)

    ws = deferred_unlock(station)
    try:
        items = station(ws.keys.inventory)  # paint first: the inventory still reads
        assert len([i for i in items if i.record]) == 3
        with pytest.raises(DatabaseDamaged, match="damaged") as caught:
            station(ws.finish_unlock)
        assert "keystead backup restore" in caught.value.message
        assert ws.db.checks is Checks.FAILED
        # Every later write gets the same refusal, before anything reaches the file.
        def write_setting() -> None:
            with ws.db.transaction():
                SettingsRepository(ws.db).put("never", "written")

        with pytest.raises(DatabaseDamaged):
            station(write_setting)
        with pytest.raises(DatabaseDamaged):
            station(SettingsRepository(ws.db).put, "never", "written")
        with pytest.raises(DatabaseDamaged):
            station(ws.tokens.login, TOKEN, PIN)
        with pytest.raises(DatabaseDamaged):
            station(ws.finish_unlock)
    finally:
        station(ws.lock)  # locks without writing (no lock entry, no checkpoint)
    assert station.home.database.read_bytes() == damaged
    # The CLI's unlock of the same file: the same decision, up front.
    with pytest.raises(DatabaseDamaged, match="damaged"):
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE, clock=station.clock)
    assert station.home.database.read_bytes() == damaged
