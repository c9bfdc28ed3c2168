"""Recording what happened: one function, called inside the transaction of each change."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from app.storage.database import Database
from app.storage.events import append_event


class Outcome(Enum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"
    ABORTED = "aborted"


def record(
    db: Database,
    *,
    when: datetime,
    operators: tuple[str, ...],
    action: str,
    subject: str,
    outcome: Outcome,
    details: dict[str, Any] | None = None,
) -> int:
    """Append an event for ``action`` on ``subject``. Never pass a secret in ``details``."""
    return append_event(
        db,
        when=when,
        operators=operators,
        action=action,
        subject=subject,
        outcome=outcome.value,
        details=details or {},
    )


def record_alone(db: Database, **kwargs: Any) -> int:
    """Record an event in its own transaction (for failures whose change was rolled back)."""
    with db.transaction():
        return record(db, **kwargs)
