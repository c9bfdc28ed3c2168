"""Rotating the workstation (database) key, crash-safe across two files.

The database and the keyslot file must always match: at every instant exactly one key opens
the database with its keyslots. The database is exported under the new key into a new file
(``sqlcipher_export``), the keyslots re-sealed to the new key into another, both fsync'd; then
one atomic write of ``rotation.json`` is the commit point. ``recover`` (run before every
unlock) finishes a committed rotation (renames the two new files into place) or throws away an
uncommitted one, and is safe to run again after a crash of its own:

    step            old pair (db, keyslots)      new files            after recover
    export          intact, K1                   partial db.next       K1 (new files deleted)
    slots-written   intact, K1                   db.next, slots.next   K1
    committed       intact, K1                   both + rotation.json  K2 (rolled forward)
    db-renamed      db = K2, keyslots = K1        slots.next, intent    K2
    slots-renamed   K2, K2                       intent               K2
    done            K2, K2                       —                    K2
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from app.paths import Home
from app.storage.database import Database
from app.storage.files import fsync_directory, write_atomic
from app.storage.keyslots import KeySlotFile

Step = Callable[[str], None]  # called after each step (tests kill the process there)


def next_database(home: Home) -> Path:
    return home.database.with_name(home.database.name + ".next")


def next_keyslots(home: Home) -> Path:
    return home.keyslots.with_name(home.keyslots.name + ".next")


def intent_file(home: Home) -> Path:
    return home.root / "rotation.json"


def _leftovers(home: Home) -> list[Path]:
    db_next = next_database(home)
    return [
        p
        for p in (db_next, db_next.with_name(db_next.name + "-journal"), next_keyslots(home))
        if p.exists()
    ]


def recover(home: Home) -> str | None:
    """Finish or undo an interrupted rotation: "completed", "rolled back" or None."""
    intent = intent_file(home)
    if intent.exists():
        if next_database(home).exists():
            os.replace(next_database(home), home.database)
            fsync_directory(home.root)
        if next_keyslots(home).exists():
            os.replace(next_keyslots(home), home.keyslots)
            fsync_directory(home.root)
        for leftover in _leftovers(home):
            leftover.unlink()
        intent.unlink()
        fsync_directory(home.root)
        return "completed"
    leftovers = _leftovers(home)
    for leftover in leftovers:
        leftover.unlink()
    if leftovers:
        fsync_directory(home.root)
        return "rolled back"
    return None


def rotate_files(
    home: Home,
    db: Database,
    resealed: KeySlotFile,
    new_key: bytes,
    details: dict[str, object],
    step: Step = lambda _name: None,
) -> None:
    """Move the open database ``db`` and the keyslots to ``new_key`` (see the table above).

    ``db`` must not be written while this runs (the core thread runs nothing else). On
    return the files on disk are the new pair; ``db`` still reads the old file's inode and
    must be reopened with ``new_key``. Any error before the commit leaves the old pair and
    removes the new files; after the commit, ``recover`` completes it.
    """
    recover(home)  # nothing half-done from before
    try:
        step("start")
        db.export_to(next_database(home), new_key)
        step("exported")
        write_atomic(next_keyslots(home), resealed.to_bytes())
        step("slots-written")
    except BaseException:
        recover(home)
        raise
    write_atomic(intent_file(home), json.dumps(details, sort_keys=True).encode("utf-8"))
    step("committed")
    os.replace(next_database(home), home.database)
    fsync_directory(home.root)
    step("db-renamed")
    os.replace(next_keyslots(home), home.keyslots)
    fsync_directory(home.root)
    step("slots-renamed")
    intent_file(home).unlink()
    fsync_directory(home.root)
    step("done")
