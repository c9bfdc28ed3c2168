"""The inventory's first screenful (``KeyService.inventory_head``, issue 17): the first rows of
the full inventory in the same order and reconciled the same way, and totals equal to the
full list's, on a real SQLCipher file and a real SoftHSM token holding managed keys, keys
another client made (unmanaged), a record whose object was deleted (missing), a destroyed,
a compromised and a due key, a backed-up key and keys in no backup."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from app.domain.algorithms import Algorithm
from app.domain.keys import InventoryItem, KeyState, name_order
from tests.hsm.kit import TOKEN, Station, pkcs11_tool

pytestmark = pytest.mark.hsm

LIVE = (KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.SUSPENDED)
GONE = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)


def on_token(station: Station, command: str) -> None:
    pkcs11_tool(station.home, "--token-label", TOKEN, *command.split())


def build(station: Station) -> None:
    keys = station.ws.keys
    made = {}
    # Mixed case: the order is SQLite's NOCASE (A-Z folded), then the exact name.
    for name, backup_able in (
        ("delta", True),
        ("Alpha", False),
        ("alpha2", True),
        ("Echo", True),
        ("foxtrot", False),
        ("golf", True),
        ("Hotel", False),
        ("india", True),
    ):
        made[name] = station(keys.generate, TOKEN, Algorithm.AES_128, name, backup_able=backup_able)
    # Objects another client made: unmanaged, sorted among the records by their labels.
    on_token(station, "--keygen --key-type AES:16 --id 0a01 --label bravo")
    on_token(station, "--keygen --key-type AES:16 --id 0a02 --label Alpha")  # a record's name
    on_token(station, "--keygen --key-type AES:16 --id 0a03 --label zulu")
    # A record whose object is gone: missing.
    on_token(station, f"--delete-object --type secrkey --id {made['golf'].cka_id}")
    now = station.clock()
    repo = keys.repo
    update = repo.update
    station(update, made["Echo"]._replace(state=KeyState.COMPROMISED))
    station(update, made["foxtrot"]._replace(state=KeyState.DESTROYED))
    station(update, made["india"]._replace(state=KeyState.ACTIVE, deactivation_date=now))
    station(update, made["Hotel"]._replace(deactivation_date=now + timedelta(days=400)))
    station(
        station.ws.db.execute,
        "INSERT INTO backups (id, generation, created_at, directory, kek_check_value, signer, "
        "keys, verified_at) VALUES ('b1', 1, '2026-01-01', '/media/b', 'ABCDEF', 's', 1, "
        "'2026-01-02')",
    )
    station(
        station.ws.db.execute,
        "INSERT INTO key_backups (key_id, backup_id, generation) VALUES (?, 'b1', 1)",
        (made["delta"].id,),
    )


def full_list(station: Station) -> list[InventoryItem]:
    items = station(station.ws.keys.inventory)
    return sorted(items, key=lambda item: name_order(item.name))  # the page's default order


def test_the_first_rows_and_the_totals_are_the_full_lists(station: Station) -> None:
    build(station)
    now = station.clock()
    due_before = now + timedelta(days=30)
    full = full_list(station)
    assert [i.name for i in full][:4] == ["Alpha", "Alpha", "alpha2", "bravo"]
    assert full[0].record is not None and full[1].record is None  # the record first
    for limit in (1, 2, 3, 4, 7, 200):
        head = station(station.ws.keys.inventory_head, limit, due_before, now)
        assert head.items == full[:limit], limit
        assert head.total == len(full) == 11
        assert head.presence_totals == dict(Counter(i.presence for i in full))
        due = [
            i
            for i in full
            if i.record
            and i.record.state in LIVE
            and (
                i.usage_due
                or (i.record.deactivation_date and i.record.deactivation_date < due_before)
            )
        ]
        assert head.due_count == len(due) == 1  # india; Hotel is due in 400 days
        assert head.overdue_count == 1
        assert head.compromised_count == 1
        not_backed_up = [
            i
            for i in full
            if i.record and i.record.extractable and i.record.state not in GONE and not i.backup
        ]
        assert head.not_backed_up_count == len(not_backed_up) == 4  # alpha2, Echo, golf, india
