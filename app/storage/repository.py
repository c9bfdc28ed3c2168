"""Rows in, records out: the only place that knows the tables' columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord, KeyState
from app.storage.database import Database

_KEY_COLUMNS = (
    "id, name, algorithm, purpose, state, token_serial, token_label, cka_id, extractable, "
    "kcv, fingerprint, created_at, created_by, tags, notes"
)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# Enum(value) costs a microsecond; at 100,000 rows a dict lookup matters.
_ALGORITHMS = {a.value: a for a in Algorithm}
_PURPOSES = {p.value: p for p in Purpose}
_STATES = {s.value: s for s in KeyState}
_NO_TAGS: tuple[str, ...] = ()


def _key_from_row(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(
        row[0],
        row[1],
        _ALGORITHMS[row[2]],
        _PURPOSES[row[3]],
        _STATES[row[4]],
        row[5],
        row[6],
        row[7],
        bool(row[8]),
        row[9],
        row[10],
        datetime.fromisoformat(row[11]),
        row[12],
        _NO_TAGS if row[13] == "[]" else tuple(json.loads(row[13])),
        row[14],
    )


class KeyRepository:
    """Managed key records."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, key: KeyRecord, spki: bytes | None) -> None:
        self.db.execute(
            f"INSERT INTO keys ({_KEY_COLUMNS}, spki) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.id,
                key.name,
                key.algorithm.value,
                key.purpose.value,
                key.state.value,
                key.token_serial,
                key.token_label,
                key.cka_id,
                int(key.extractable),
                key.kcv,
                key.fingerprint,
                utc_text(key.created_at),
                key.created_by,
                json.dumps(list(key.tags)),
                key.notes,
                spki,
            ),
        )

    def all(self) -> list[KeyRecord]:
        """Every record; the inventory's hot path at 100,000 keys, so kept to one pass."""
        make, algorithms, purposes, states = KeyRecord._make, _ALGORITHMS, _PURPOSES, _STATES
        parse, no_tags = datetime.fromisoformat, _NO_TAGS
        return [
            make(
                (
                    r[0],
                    r[1],
                    algorithms[r[2]],
                    purposes[r[3]],
                    states[r[4]],
                    r[5],
                    r[6],
                    r[7],
                    bool(r[8]),
                    r[9],
                    r[10],
                    parse(r[11]),
                    r[12],
                    no_tags if r[13] == "[]" else tuple(json.loads(r[13])),
                    r[14],
                )
            )
            for r in self.db.query(f"SELECT {_KEY_COLUMNS} FROM keys")
        ]

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self.db.query(f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = ?", (key_id,))
        return _key_from_row(rows[0]) if rows else None

    def by_name(self, name: str) -> KeyRecord | None:
        rows = self.db.query(f"SELECT {_KEY_COLUMNS} FROM keys WHERE name = ?", (name,))
        return _key_from_row(rows[0]) if rows else None

    def by_token_object(self, serial: str, cka_id: str) -> KeyRecord | None:
        rows = self.db.query(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE token_serial = ? AND cka_id = ?",
            (serial, cka_id),
        )
        return _key_from_row(rows[0]) if rows else None

    def spki(self, key_id: str) -> bytes | None:
        value = self.db.scalar("SELECT spki FROM keys WHERE id = ?", (key_id,))
        return bytes(value) if value is not None else None

    def count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM keys"))


class TokenRepository:
    """Tokens seen by this workstation, and Keystead's own count of wrong PINs."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
