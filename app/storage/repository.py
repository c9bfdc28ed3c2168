"""Rows in, records out: the only place that knows the tables' columns."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord, KeyState, TokenSync, TrustedWrap
from app.errors import NotFoundError
from app.storage.database import Database

_KEY_FIELDS = (
    "id",
    "name",
    "algorithm",
    "purpose",
    "state",
    "token_serial",
    "token_label",
    "cka_id",
    "extractable",
    "kcv",
    "fingerprint",
    "created_at",
    "created_by",
    "tags",
    "notes",
    "activation_date",
    "deactivation_date",
    "compromise_date",
    "replaces",
    "replaced_by",
    "token_sync",
    "wrap_trusted",
    "exposure",
)
_KEY_COLUMNS = ", ".join(_KEY_FIELDS)
# What an update may change; identity, algorithm and token binding never change.
_MUTABLE = (
    "name",
    "state",
    "tags",
    "notes",
    "activation_date",
    "deactivation_date",
    "compromise_date",
    "replaces",
    "replaced_by",
    "token_sync",
    "wrap_trusted",
)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _opt_text(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)


# Enum(value) costs a microsecond; at 100,000 rows a dict lookup matters.
_ALGORITHMS = {a.value: a for a in Algorithm}
_PURPOSES = {p.value: p for p in Purpose}
_STATES = {s.value: s for s in KeyState}
_SYNC = {s.value: s for s in TokenSync}
_TRUSTED_WRAP = {s.value: s for s in TrustedWrap}
_NO_TAGS: tuple[str, ...] = ()


def _json_list(decoded: dict[str, tuple[str, ...]], text: str) -> tuple[str, ...]:
    """A tags/exposure JSON list, decoded once per distinct text within one listing: they
    repeat across an inventory (a few distinct texts for 100,000 rows). ``decoded`` lives
    only as long as the listing (no record text stays cached after it)."""
    found = decoded.get(text)
    if found is None:
        found = decoded[text] = tuple(json.loads(text))
    return found


def _key_from_row(
    r: tuple[Any, ...], decoded: dict[str, tuple[str, ...]] | None = None
) -> KeyRecord:
    parse = datetime.fromisoformat
    lists = {} if decoded is None else decoded
    return KeyRecord._make(
        (
            r[0],
            r[1],
            _ALGORITHMS[r[2]],
            _PURPOSES[r[3]],
            _STATES[r[4]],
            r[5],
            r[6],
            r[7],
            bool(r[8]),
            r[9],
            r[10],
            parse(r[11]),
            r[12],
            _NO_TAGS if r[13] == "[]" else _json_list(lists, r[13]),
            r[14],
            r[15] and parse(r[15]),
            r[16] and parse(r[16]),
            r[17] and parse(r[17]),
            r[18],
            r[19],
            _SYNC[r[20]],
            _TRUSTED_WRAP[r[21]],
            _NO_TAGS if r[22] == "[]" else _json_list(lists, r[22]),
        )
    )


def _key_to_row(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "algorithm": key.algorithm.value,
        "purpose": key.purpose.value,
        "state": key.state.value,
        "token_serial": key.token_serial,
        "token_label": key.token_label,
        "cka_id": key.cka_id,
        "extractable": int(key.extractable),
        "kcv": key.kcv,
        "fingerprint": key.fingerprint,
        "created_at": utc_text(key.created_at),
        "created_by": key.created_by,
        "tags": json.dumps(list(key.tags)),
        "notes": key.notes,
        "activation_date": _opt_text(key.activation_date),
        "deactivation_date": _opt_text(key.deactivation_date),
        "compromise_date": _opt_text(key.compromise_date),
        "replaces": key.replaces,
        "replaced_by": key.replaced_by,
        "token_sync": key.token_sync.value,
        "wrap_trusted": key.wrap_trusted.value,
        "exposure": json.dumps(list(key.exposure)),
    }


def key_document(key: KeyRecord) -> dict[str, Any]:
    """The record as the plain dict its row holds (backup metadata)."""
    return _key_to_row(key)


def key_from_document(doc: dict[str, Any]) -> KeyRecord:
    """The inverse of ``key_document``; KeyError/ValueError on a malformed document."""
    return _key_from_row(tuple(doc[f] for f in _KEY_FIELDS))


class KeyRepository:
    """Managed key records."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, key: KeyRecord, spki: bytes | None) -> None:
        row = _key_to_row(key)
        self.db.execute(
            f"INSERT INTO keys ({_KEY_COLUMNS}, spki) VALUES "
            f"({', '.join(':' + f for f in _KEY_FIELDS)}, :spki)",
            {**row, "spki": spki},
        )

    def update(self, key: KeyRecord) -> None:
        """Write the mutable fields of ``key`` (state, dates, links, name, tags, notes)."""
        row = _key_to_row(key)
        changed = self.db.execute(
            f"UPDATE keys SET {', '.join(f'{f} = :{f}' for f in _MUTABLE)} WHERE id = :id",
            {f: row[f] for f in (*_MUTABLE, "id")},
        )
        if changed != 1:
            raise NotFoundError(f"Key {key.id} is not in the database.")

    def all(self) -> list[KeyRecord]:
        """Every record; the inventory's hot path at 100,000 keys.

        Records hold no reference cycles, so the cyclic collector is paused while the list is
        built (it spent a fifth of the time walking the growing list). The rows are streamed
        in batches, so the raw rows are never all held next to the records.
        """
        records: list[KeyRecord] = []
        enabled = gc.isenabled()
        gc.disable()
        try:
            decoded: dict[str, tuple[str, ...]] = {}
            for rows in self.db.batches(f"SELECT {_KEY_COLUMNS} FROM keys"):
                records.extend(map(_key_from_row, rows, repeat(decoded)))  # never all raw
            return records
        finally:
            if enabled:
                gc.enable()

    def first_by_name(self, limit: int) -> list[KeyRecord]:
        """The first ``limit`` records in name order (``app.domain.keys.name_order``: SQLite's
        NOCASE, then the exact name), read through the ``keys_name_order`` index: the first
        screenful of the inventory at unlock (issue 17), without reading every row."""
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY name COLLATE NOCASE, name LIMIT ?",
            (limit,),
        )
        return [_key_from_row(r) for r in rows]

    def by_ids(self, ids: Iterable[str]) -> list[KeyRecord]:
        """The records with these ids (unknown ids are skipped), in no particular order."""
        wanted = list(ids)
        found: list[KeyRecord] = []
        for start in range(0, len(wanted), 500):  # under SQLite's host-parameter limit
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.query(
                f"SELECT {_KEY_COLUMNS} FROM keys WHERE id IN ({marks})",
                tuple(chunk),
            )
            found.extend(_key_from_row(r) for r in rows)
        return found

    def count_by_token_and_state(self) -> list[tuple[str, KeyState, int]]:
        """(token serial, state, number of records) for every pair that has records."""
        rows = self.db.query(
            "SELECT token_serial, state, count(*) FROM keys GROUP BY token_serial, state"
        )
        return [(str(r[0]), KeyState(r[1]), int(r[2])) for r in rows]

    def count_deadline_due(self, before: datetime, at_or_before: datetime | None = None) -> int:
        """How many live keys have a protect-stop date before ``before`` (``due``'s rows);
        with ``at_or_before``, only those whose date is also at or before it (overdue)."""
        also = "AND deactivation_date <= ? " if at_or_before is not None else ""
        bound = (utc_text(at_or_before),) if at_or_before is not None else ()
        return int(
            self.db.scalar(
                "SELECT count(*) FROM keys WHERE deactivation_date IS NOT NULL "
                f"AND deactivation_date < ? {also}"
                "AND state IN ('PRE_ACTIVE', 'ACTIVE', 'SUSPENDED')",
                (utc_text(before), *bound),
            )
        )

    def count_not_backed_up(self) -> int:
        """Backup-able keys that still exist and are in no backup this workstation recorded
        (the inventory's "NOT BACKED UP": ``BackupRepository.status_per_key`` has none)."""
        return int(
            self.db.scalar(
                "SELECT count(*) FROM keys WHERE extractable != 0 "
                "AND state NOT IN ('DESTROYED', 'DESTROYED_COMPROMISED') "
                "AND id NOT IN (SELECT kb.key_id FROM key_backups kb "
                "JOIN backups b ON b.id = kb.backup_id)"
            )
        )

    def due(self, before: datetime) -> list[KeyRecord]:
        """Live keys whose protect-stop date is before ``before``."""
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE deactivation_date IS NOT NULL "
            "AND deactivation_date < ? AND state IN ('PRE_ACTIVE', 'ACTIVE', 'SUSPENDED') "
            "ORDER BY deactivation_date",
            (utc_text(before),),
        )
        return [_key_from_row(r) for r in rows]

    def activation_due(self, now: datetime) -> list[KeyRecord]:
        """Pre-active keys whose activation date has come."""
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE state = 'PRE_ACTIVE' "
            "AND activation_date IS NOT NULL AND activation_date <= ? ORDER BY activation_date",
            (utc_text(now),),
        )
        return [_key_from_row(r) for r in rows]

    def sync_pending(self, serial: str) -> list[KeyRecord]:
        """Keys on this token whose usage flags still wait for it."""
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE token_sync = 'pending' AND token_serial = ?",
            (serial,),
        )
        return [_key_from_row(r) for r in rows]

    def trusted_wrap_pending(self, serial: str) -> list[KeyRecord]:
        """Backup-able keys on this token still waiting for CKA_WRAP_WITH_TRUSTED."""
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE wrap_trusted = 'pending' "
            "AND token_serial = ?",
            (serial,),
        )
        return [_key_from_row(r) for r in rows]

    def rebind(self, key: KeyRecord) -> None:
        """Point a record at another token object (a replacement token's copy of the key)."""
        changed = self.db.execute(
            "UPDATE keys SET token_serial = ?, token_label = ?, cka_id = ? WHERE id = ?",
            (key.token_serial, key.token_label, key.cka_id, key.id),
        )
        if changed != 1:
            raise NotFoundError(f"Key {key.id} is not in the database.")

    def on_token(self, serial: str) -> list[KeyRecord]:
        """Every record bound to this token, tombstones included, by name."""
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE token_serial = ? ORDER BY name", (serial,)
        )
        return [_key_from_row(r) for r in rows]

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self.db.query(f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = ?", (key_id,))
        return _key_from_row(rows[0]) if rows else None

    def by_name(self, name: str) -> KeyRecord | None:
        rows = self.db.query(f"SELECT {_KEY_COLUMNS} FROM keys WHERE name = ?", (name,))
        return _key_from_row(rows[0]) if rows else None

    def names_like(self, name: str) -> list[str]:
        """The names of keys equal to ``name`` but for ASCII case (SQLite NOCASE, through
        the ``keys_name_order`` index)."""
        rows = self.db.query("SELECT name FROM keys WHERE name = ? COLLATE NOCASE", (name,))
        return [str(r[0]) for r in rows]

    def by_token_object(self, serial: str, cka_id: str) -> KeyRecord | None:
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE token_serial = ? AND cka_id = ?",
            (serial, cka_id),
        )
        return _key_from_row(rows[0]) if rows else None

    def spki(self, key_id: str) -> bytes | None:
        value = self.db.scalar("SELECT spki FROM keys WHERE id = ?", (key_id,))
        return bytes(value) if value is not None else None

    def spkis(self) -> dict[str, bytes]:
        """key id -> SubjectPublicKeyInfo (DER) of every key that has one (one query)."""
        rows = self.db.query("SELECT id, spki FROM keys WHERE spki IS NOT NULL")
        return {str(r[0]): bytes(r[1]) for r in rows}

    def count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM keys"))


class TokenRepository:
    """Tokens seen by this workstation, and Keystead's own count of wrong PINs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def known(self, serial: str) -> bool:
        return self.db.scalar("SELECT 1 FROM tokens WHERE serial = ?", (serial,)) is not None

    def seen(self, serial: str, label: str, model: str, now: datetime) -> None:
        stamp = utc_text(now)
        self.db.execute(
            "INSERT INTO tokens (serial, label, model, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(serial) DO UPDATE SET "
            "label = excluded.label, model = excluded.model, last_seen = excluded.last_seen",
            (serial, label, model, stamp, stamp),
        )

    def pin_failures(self, serial: str) -> tuple[int, datetime | None]:
        rows = self.db.query(
            "SELECT failures, last_failure FROM pin_failures WHERE token_serial = ?", (serial,)
        )
        if not rows:
            return 0, None
        return int(rows[0][0]), datetime.fromisoformat(rows[0][1])

    def record_pin_failure(self, serial: str, now: datetime) -> int:
        self.db.execute(
            "INSERT INTO pin_failures (token_serial, failures, last_failure) VALUES (?, 1, ?) "
            "ON CONFLICT(token_serial) DO UPDATE SET failures = failures + 1, "
            "last_failure = excluded.last_failure",
            (serial, utc_text(now)),
        )
        return self.pin_failures(serial)[0]

    def clear_pin_failures(self, serial: str) -> None:
        self.db.execute("DELETE FROM pin_failures WHERE token_serial = ?", (serial,))


class SettingsRepository:
    """Workstation-wide facts: identity, operators, PKCS#11 modules."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        value = self.db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    def put(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def add_operator(self, name: str, role: str, by: str, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO operators (name, role, created_at, created_by) VALUES (?, ?, ?, ?)",
            (name, role, utc_text(now), by),
        )

    def operator_role(self, name: str) -> str | None:
        value = self.db.scalar("SELECT role FROM operators WHERE name = ?", (name,))
        return None if value is None else str(value)

    def modules(self) -> list[tuple[str, bool]]:
        rows = self.db.query("SELECT path, embedded FROM modules ORDER BY added_at, path")
        return [(str(r[0]), bool(r[1])) for r in rows]

    def add_module(self, path: str, embedded: bool, now: datetime) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO modules (path, embedded, added_at) VALUES (?, ?, ?)",
            (path, int(embedded), utc_text(now)),
        )

    def remove_module(self, path: str) -> bool:
        """Forget a configured module; True if it was configured."""
        return bool(self.db.execute("DELETE FROM modules WHERE path = ?", (path,)))
