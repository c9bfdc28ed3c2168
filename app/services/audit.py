"""Recording what happened: one function, called inside the transaction of each change."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import Enum
from typing import Any

from app.domain.approval import Authorisation
from app.errors import KeysteadError, TokenRemoved
from app.storage.database import Database
from app.storage.events import append_event

log = logging.getLogger(__name__)


class Outcome(Enum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"
    ABORTED = "aborted"


def failure_outcome(error: BaseException) -> Outcome:
    """How a change that did not happen is recorded: ABORTED when the token went away in the
    middle of it, FAILED for every other reason."""
    return Outcome.ABORTED if isinstance(error, TokenRemoved) else Outcome.FAILED


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
    """Append an event for ``action`` on ``subject``. Never pass a secret in ``details``.

    When ``operators`` is an ``Authorisation`` that needed approvers, the entry also carries
    the approved request's hash and the approvers' names (``details["approval"]``)."""
    if isinstance(operators, Authorisation) and operators.request_digest:
        details = {**(details or {}), "approval": operators.evidence()}
    return append_event(
        db,
        when=when,
        operators=operators,
        action=action,
        subject=subject,
        outcome=outcome.value,
        details=details or {},
    )


def record_alone(db: Database, **kwargs: Any) -> int | None:
    """Record a refusal or failure in its own transaction (the change itself was rolled back).

    Called while another error is on its way to the person; if this record cannot be written
    either, that is logged and the original error still propagates.
    """
    try:
        with db.transaction():
            return record(db, **kwargs)
    except KeysteadError as exc:
        log.error("could not record %s: %s", kwargs.get("action"), exc.message)
        return None
