"""Distribution records: which key went to (or came from) which recipient, when, approved by
whom (table ``distributions``, schema 12)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.storage.database import Database

_COLUMNS = (
    "key_id, direction, mechanism, recipient, recipient_name, kcv, file_sha256, operators, "
    "created_at, event_seq"
)


@dataclass(frozen=True)
class Distribution:
    key_id: str
    direction: str  # "sent" | "received"
    mechanism: str
    recipient: str  # SHA-256 of the recipient's SPKI (hex) or the shared KEK's KCV
    recipient_name: str
    kcv: str
    file_sha256: str
    operators: tuple[str, ...]  # initiator, then approvers
    created_at: str  # UTC text
    event_seq: int | None


def _row(row: Any) -> Distribution:
    values = list(row)
    values[7] = tuple(json.loads(values[7]))
    return Distribution(*values)


class DistributionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, item: Distribution) -> None:
        self.db.execute(
            f"INSERT INTO distributions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                item.key_id,
                item.direction,
                item.mechanism,
                item.recipient,
                item.recipient_name,
                item.kcv,
                item.file_sha256,
                json.dumps(list(item.operators)),
                item.created_at,
                item.event_seq,
            ),
        )

    def for_key(self, key_id: str) -> list[Distribution]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM distributions WHERE key_id = ? ORDER BY id",  # noqa: S608
            (key_id,),
        )
        return [_row(r) for r in rows]
