"""The event record written in the same transaction as every change.

``append_event`` is the single write path: the tamper-evident chain (audit issue) replaces its
body without touching callers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.storage.database import Database
from app.storage.repository import utc_text


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    ts: str
    operators: tuple[str, ...]
    action: str
    subject: str
    outcome: str
    details: dict[str, Any]


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
    """Append one event; must run inside the caller's transaction. Returns its sequence number."""
    if not db.in_transaction:
        raise RuntimeError("events are written only inside the transaction of their change")
    db.execute(
        "INSERT INTO events (ts, operators, action, subject, outcome, details) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            utc_text(when),
            json.dumps(list(operators)),
            action,
            subject,
            outcome,
            json.dumps(details, sort_keys=True, separators=(",", ":")),
        ),
    )
    return int(db.scalar("SELECT last_insert_rowid()"))


def list_events(db: Database, subject: str | None = None) -> list[StoredEvent]:
    sql = "SELECT seq, ts, operators, action, subject, outcome, details FROM events"
    params: tuple[Any, ...] = ()
    if subject is not None:
        sql += " WHERE subject = ?"
        params = (subject,)
    rows = db.query(sql + " ORDER BY seq", params)
    return [
        StoredEvent(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5], json.loads(r[6]))
        for r in rows
    ]
