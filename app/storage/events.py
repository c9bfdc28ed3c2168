"""The audit record: an append-only hash chain written in the transaction of every change.

``append_event`` is the single write path. Each entry is linked to the one before
(``app.domain.audit``) and sealed with the audit token's HMAC when the token is logged in
(``Database.sealer``); an entry that must be sealed and cannot be makes the whole change fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from app.domain.audit import GENESIS, AuditEntry, Checkpoint, entry_hash, needs_seal
from app.errors import AuditTokenNotLoggedIn, KeysteadError
from app.storage.database import Database
from app.storage.repository import utc_text

# Kept for callers that only read; every entry is an AuditEntry.
StoredEvent = AuditEntry

_COLUMNS = "seq, ts, operators, action, subject, outcome, details, prev_hash, entry_hash, mac"


def _entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        bytes(row[7] or GENESIS),
        bytes(row[8] or GENESIS),
        None if row[9] is None else bytes(row[9]),
    )


def unsealed_refusal(db: Database, action: str) -> AuditTokenNotLoggedIn:
    """The refusal of a change ``action`` while no audit token seals entries (the words say
    whether the workstation has an audit token at all). Callers that must refuse *before*
    touching anything (a rotation of the database key) raise it themselves."""
    if db.scalar("SELECT value FROM meta WHERE key = 'audit_token_serial'") is None:
        return AuditTokenNotLoggedIn(
            f"'{action}' must be sealed by the workstation's audit token, and this "
            "workstation has none yet. Add one (keystead tokens create-soft --label LABEL, "
            "or keystead modules add PATH for a hardware token) and log in to it; nothing "
            "was changed."
        )
    return AuditTokenNotLoggedIn(
        f"'{action}' must be sealed by the workstation's audit token, which is not logged "
        "in. Log in to it first; nothing was changed."
    )


def append_event(
    db: Database,
    *,
    when: datetime,
    operators: tuple[str, ...],
    action: str,
    subject: str,
    outcome: str,
    details: dict[str, Any],
) -> int:
    """Append one entry inside the caller's transaction; returns its sequence number."""
    if not db.in_transaction:
        raise RuntimeError("events are written only inside the transaction of their change")
    last = db.query("SELECT seq, ts, entry_hash FROM events ORDER BY seq DESC LIMIT 1")
    seq = (last[0][0] + 1) if last else 1
    prev = bytes(last[0][2]) if last and last[0][2] is not None else GENESIS
    ts = utc_text(when)
    if last and ts < last[0][1]:
        ts = last[0][1]  # the clock stepped back: time in the chain never goes backwards
    entry = AuditEntry.of(
        seq, ts, operators, action, subject, outcome, json.loads(json.dumps(details))
    )  # plain JSON types only
    digest = entry_hash(entry.canonical(), prev)
    mac = None
    if db.sealer is not None:
        try:
            mac = db.sealer(digest)
        except KeysteadError:
            if needs_seal(action, outcome):
                raise
            # The audit token went away mid-session: a refusal or failure is still recorded,
            # unsealed, as it would be with the token logged out (verification lists it).
            mac = None
    elif needs_seal(action, outcome):
        raise unsealed_refusal(db, action)
    db.execute(
        f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            seq,
            ts,
            entry.operators_json,
            action,
            subject,
            outcome,
            entry.details_json,
            prev,
            digest,
            mac,
        ),
    )
    return seq


def list_events(db: Database, subject: str | None = None) -> list[AuditEntry]:
    sql = f"SELECT {_COLUMNS} FROM events"  # noqa: S608
    params: tuple[Any, ...] = ()
    if subject is not None:
        sql += " WHERE subject = ?"
        params = (subject,)
    return [_entry(r) for r in db.query(sql + " ORDER BY seq", params)]


def events_after(db: Database, seq: int) -> list[AuditEntry]:
    """The entries after ``seq``, in order (what happened since an entry was written)."""
    return [
        _entry(r)
        for r in db.query(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq",  # noqa: S608
            (seq,),
        )
    ]


def iter_events(db: Database, batch: int = 20_000) -> Iterator[AuditEntry]:
    """Every entry in order, read in batches."""
    for row in iter_event_rows(db, batch):
        yield _entry(row)


def iter_event_rows(db: Database, batch: int = 20_000) -> Iterator[Sequence[Any]]:
    """Every entry in order as its stored row: ``AuditEntry``'s ten fields in its order, the
    hashes and MAC as stored (bytes, or None where an old row has none), read ``batch`` rows at
    a time. What ``verify_chain`` streams without building an object per entry (a million
    entries)."""
    after = 0
    while True:
        rows = db.query(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
            (after, batch),
        )
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def iter_key_events(db: Database, batch: int = 20_000) -> Iterator[AuditEntry]:
    """The successful entries that create or change key records (subject "key:…", and
    backup restores), in order, read in batches: what ``app.domain.key_history`` replays."""
    after = 0
    while True:
        rows = db.query(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND outcome = 'success' "  # noqa: S608
            "AND (subject LIKE 'key:%' OR action = 'backup.restore') ORDER BY seq LIMIT ?",
            (after, batch),
        )
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1][0]


def query_events(
    db: Database,
    where: str,
    params: Sequence[Any],
    offset: int,
    limit: int,
    newest_first: bool = False,
) -> list[AuditEntry]:
    """A page of entries matching ``where`` (built by the caller from fixed fragments), in
    sequence order (oldest first unless ``newest_first``)."""
    order = "DESC" if newest_first else "ASC"
    rows = db.query(
        f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq {order} LIMIT ? OFFSET ?",  # noqa: S608
        (*params, limit, offset),
    )
    return [_entry(r) for r in rows]


def count_events(db: Database, where: str = "", params: Sequence[Any] = ()) -> int:
    return int(db.scalar(f"SELECT count(*) FROM events {where}", params))  # noqa: S608


def head(db: Database) -> tuple[int, bytes]:
    rows = db.query("SELECT seq, entry_hash FROM events ORDER BY seq DESC LIMIT 1")
    return (rows[0][0], bytes(rows[0][1])) if rows else (0, GENESIS)


def entry_hash_at(db: Database, seq: int) -> bytes | None:
    """The stored hash of entry ``seq``, or None when there is no such entry."""
    value = db.scalar("SELECT entry_hash FROM events WHERE seq = ?", (seq,))
    return None if value is None else bytes(value)


def save_checkpoint(db: Database, checkpoint: Checkpoint) -> None:
    db.execute(
        "INSERT OR REPLACE INTO checkpoints (seq, head, time, workstation, signature) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            checkpoint.seq,
            checkpoint.head,
            checkpoint.time,
            checkpoint.workstation,
            checkpoint.signature,
        ),
    )


def has_checkpoint(db: Database, seq: int) -> bool:
    return db.scalar("SELECT 1 FROM checkpoints WHERE seq = ?", (seq,)) is not None
