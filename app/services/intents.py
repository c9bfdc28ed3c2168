"""Write-ahead intents: one mechanism for every write to a token.

A token and the database cannot change in one transaction, so every operation that changes a
token first commits an **intent** (a row in ``intents`` and a chained ``intent.begin`` audit
entry, in one transaction), then asks the token, then commits its own change together with
the intent's resolution. A process killed in between leaves the intent pending. At the next
login to that token (or, for token-level intents, at the next unlock) each pending intent is
**reconciled**: its handler compares the token with the database and either completes the
operation or rolls the token back, and that is recorded as ``intent.resolve`` (with the
operation's own entry when the database changes), in one transaction.

Handlers are registered by the services that own the operation (key generation, lifecycle
transitions, embedded token creation, token administration). Intent entries have the subject
``intent:<the operation's subject>``, so a key's own history stays the operation's entries.
An intent whose writer is still running (another live process; ``owner`` is its pid and start
time) is never reconciled.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.errors import KeysteadError
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.storage.database import Database
from app.storage.intents import IntentRepository, IntentRow

log = logging.getLogger(__name__)

COMPLETED = "completed"
ROLLED_BACK = "rolled-back"
UNKNOWN = "outcome unknown"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


OWNER = f"{os.getpid()}:{_start_time(os.getpid())}"


def running_elsewhere(owner: str) -> bool:
    """True if the process that wrote the intent is another process still running."""
    if owner == OWNER:
        return False
    pid_text, _, start = owner.partition(":")
    with contextlib.suppress(ValueError):
        return bool(start) and _start_time(int(pid_text)) == start
    return False


@dataclass
class Resolution:
    """What a handler found: how the intent ends, what to record, and the database change (run
    inside the resolution's transaction; it writes its own audit entries)."""

    resolution: str
    details: dict[str, Any] = field(default_factory=dict)
    apply: Callable[[], None] | None = None


Handler = Callable[[IntentRow], Resolution | None]  # None: cannot tell yet, stays pending


class IntentLog:
    """The intents of one open workstation; core thread only."""

    def __init__(self, db: Database, operator: str, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.operator = operator
        self.clock = clock
        self.repo = IntentRepository(db)
        self.handlers: dict[str, Handler] = {}

    def begin(
        self,
        action: str,
        token_serial: str,
        subject: str,
        details: dict[str, Any],
        recorded_as: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> int:
        """Commit the intent and its ``intent.begin`` entry before the token is asked. If it
        cannot be committed the operation does not start, and its try is recorded as failed
        under ``recorded_as`` (the operation's own audit action; default ``action``).
        ``evidence`` (e.g. the token's object files before the call) is kept in the intent
        row for its reconciliation, not copied into the audit entry."""
        now = self.clock()
        try:
            return self._begin(action, token_serial, subject, details, now, evidence or {})
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action=recorded_as or action,
                subject=subject,
                outcome=failure_outcome(exc),
                details={"error": exc.message, "stage": "intent"},
            )
            raise

    def _begin(
        self,
        action: str,
        token_serial: str,
        subject: str,
        details: dict[str, Any],
        now: datetime,
        evidence: dict[str, Any],
    ) -> int:
        with self.db.transaction():
            intent_id = self.repo.insert(
                now, self.operator, action, token_serial, {**details, **evidence}, OWNER
            )
            record(
                self.db,
                when=now,
                operators=(self.operator,),
                action="intent.begin",
                subject=f"intent:{subject}",
                outcome=Outcome.SUCCESS,
                details={"intent": intent_id, "action": action, "token": token_serial, **details},
            )
        return intent_id

    def finish(self, intent_id: int) -> None:
        """Resolve as completed inside the caller's transaction (the one that records the
        operation itself, so the resolution and the change commit together)."""
        self.repo.resolve(intent_id, COMPLETED, self.clock())

    def abandon(self, intent_id: int, subject: str, why: str) -> None:
        """The operation failed in this process and left the token as it was (or put it
        back): resolve as rolled back, recorded. Never raises (an error is on its way)."""
        try:
            with self.db.transaction():
                self.repo.resolve(intent_id, ROLLED_BACK, self.clock())
                record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="intent.resolve",
                    subject=f"intent:{subject}",
                    outcome=Outcome.SUCCESS,
                    details={"intent": intent_id, "resolution": ROLLED_BACK, "by": "itself",
                             "reason": why},
                )
        except KeysteadError as exc:
            log.error("intent %s stays pending: %s", intent_id, exc.message)

    def pending(self, token_serial: str | None = None) -> list[IntentRow]:
        return self.repo.pending(token_serial)

    def writer_running(self, token_serial: str) -> bool:
        """True if another process that is still running has a pending intent on this token
        (it may be inside a token call right now)."""
        return any(running_elsewhere(i.owner) for i in self.repo.pending(token_serial))

    def reconcile(self, actions: frozenset[str], token_serial: str | None = None) -> int:
        """Reconcile pending intents of these kinds (on this token, if given). Returns how
        many were resolved; one that cannot be resolved now stays pending."""
        resolved = 0
        for intent in self.repo.pending(token_serial):
            if intent.action not in actions or running_elsewhere(intent.owner):
                continue
            handler = self.handlers.get(intent.action)
            if handler is None:
                continue
            try:
                found = handler(intent)
                if found is None:
                    continue
                with self.db.transaction():
                    if found.apply is not None:
                        found.apply()
                    self.repo.resolve(intent.id, found.resolution, self.clock())
                    record(
                        self.db,
                        when=self.clock(),
                        operators=(self.operator,),
                        action="intent.resolve",
                        subject=f"intent:{intent.details.get('subject', intent.token_serial)}",
                        outcome=Outcome.SUCCESS,
                        details={
                            "intent": intent.id,
                            "action": intent.action,
                            "resolution": found.resolution,
                            "by": "reconciliation",
                            "begun": intent.created_at,
                            "begun_by": intent.operator,
                            **found.details,
                        },
                    )
            except KeysteadError as exc:
                log.warning("intent %s not reconciled yet: %s", intent.id, exc.message)
                continue
            resolved += 1
            log.warning(
                "intent %s (%s) %s at reconciliation", intent.id, intent.action, found.resolution
            )
        return resolved
