"""The intents table: write-ahead records of token writes (``app.services.intents``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.storage.database import Database
from app.storage.repository import utc_text


@dataclass(frozen=True)
class IntentRow:
    """One intent. ``owner`` is ``pid:start-time`` of the process that wrote it."""

    id: int
    created_at: str
    operator: str
    action: str
    token_serial: str
    details: dict[str, Any]
    owner: str
    state: str
    resolution: str | None


_COLUMNS = (
    "id, created_at, operator, action, token_serial, details, owner, state, resolution"
)


def _row(values: Any) -> IntentRow:
    return IntentRow(
        int(values[0]),
        str(values[1]),
        str(values[2]),
        str(values[3]),
        str(values[4]),
        dict(json.loads(values[5])),
        str(values[6]),
        str(values[7]),
        None if values[8] is None else str(values[8]),
    )


class IntentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(
        self,
        when: datetime,
        operator: str,
        action: str,
        token_serial: str,
        details: dict[str, Any],
        owner: str,
    ) -> int:
        self.db.execute(
            "INSERT INTO intents (created_at, operator, action, token_serial, details, owner) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (utc_text(when), operator, action, token_serial, json.dumps(details), owner),
        )
        return int(self.db.scalar("SELECT last_insert_rowid()"))

    def resolve(self, intent_id: int, resolution: str, when: datetime) -> None:
        self.db.execute(
            "UPDATE intents SET state = 'resolved', resolution = ?, resolved_at = ? "
            "WHERE id = ? AND state = 'pending'",
            (resolution, utc_text(when), intent_id),
        )

    def pending(self, token_serial: str | None = None) -> list[IntentRow]:
        if token_serial is None:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM intents WHERE state = 'pending' ORDER BY id"  # noqa: S608
            )
        else:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM intents WHERE state = 'pending' "  # noqa: S608
                "AND token_serial = ? ORDER BY id",
                (token_serial,),
            )
        return [_row(r) for r in rows]

    def get(self, intent_id: int) -> IntentRow | None:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM intents WHERE id = ?", (intent_id,)  # noqa: S608
        )
        return _row(rows[0]) if rows else None
