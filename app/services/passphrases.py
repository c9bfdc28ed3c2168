"""Checking an operator's passphrase against their keyslot, with back-off per operator name.

One place for every passphrase check (unlock and approvals), so a wrong approver passphrase
counts toward the same back-off as a wrong unlock. The try is written to the side record
before Argon2id runs (see ``app.storage.unlock_failures``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime

from app.domain.backoff import LOCKOUT, LOCKOUT_AFTER, delay_after, locked_out, retry_at
from app.errors import PassphraseBackoff, WrongPassphrase
from app.paths import Home
from app.storage.keyslots import KeySlotFile, no_keyslot
from app.storage.unlock_failures import UnlockFailures


def _seconds(delta: float) -> str:
    if delta >= 120:
        return f"{delta / 60:.0f} minutes"
    return f"{max(delta, 1):.0f} s"


class PassphraseChecker:
    def __init__(self, home: Home, clock: Callable[[], datetime]) -> None:
        self.home = home
        self.clock = clock
        self.failures = UnlockFailures(home.unlock_failures)
        # Whether the side record was absent when this check began (it is written before
        # every check, so after the first unlock it is always there): the unlock records it
        # when the database says the file had existed (``Workstation._note_missing_failures``).
        self.record_was_missing = False

    def throttle(self, operator: str) -> None:
        """Refuse a try that comes too early after wrong ones (nothing is checked or counted)."""
        state = self.failures.state(operator)
        allowed = retry_at(state.consecutive, state.last)
        now = self.clock()
        if allowed is None or now >= allowed:
            return
        # A clock set back never stretches the wait beyond the delay itself.
        wait = min(allowed - now, delay_after(state.consecutive)).total_seconds()
        if wait > 0:
            if locked_out(state.consecutive):
                message = (
                    f"Operator '{operator}' is locked out after {state.consecutive} wrong "
                    f"passphrases in a row; try again in {_seconds(wait)}."
                )
            else:
                message = (
                    f"{state.consecutive} wrong passphrase(s) in a row for '{operator}'; wait "
                    f"{_seconds(wait)} before the next try."
                )
            raise PassphraseBackoff(message, wait, state.consecutive, locked_out(state.consecutive))

    def open_slot(
        self,
        operator: str,
        passphrase: str,
        sealed_on_failure: bool = False,
        expected_key: bytes | None = None,
    ) -> bytes:
        """The database key from ``operator``'s keyslot, or WrongPassphrase / UnknownOperator /
        PassphraseBackoff. ``sealed_on_failure``: the caller records a failure in the open
        database itself. ``expected_key``: the key must be this one (an approver's slot)."""
        self.throttle(operator)
        slots = KeySlotFile.load(self.home.keyslots)
        if operator not in slots.operators():
            raise no_keyslot(operator)
        slots.check_cost(operator)
        self.record_was_missing = self.record_was_missing or not self.failures.path.exists()
        attempt = self.failures.begin(operator, self.clock())
        try:
            key = slots.open(operator, passphrase)
            if expected_key is not None and not hmac.compare_digest(key, expected_key):
                raise WrongPassphrase(
                    f"The keyslot of '{operator}' opens another database key; reset their "
                    "passphrase."
                )
        except WrongPassphrase as exc:
            self.failures.failed(attempt, "wrong passphrase", sealed=sealed_on_failure)
            count = self.failures.state(operator).consecutive
            if count >= LOCKOUT_AFTER:
                then = f"'{operator}' is now locked out for {LOCKOUT.seconds // 60} minutes"
            else:
                delay = delay_after(count).total_seconds()
                wait = f"the next try waits {_seconds(delay)}" if delay else "try again"
                then = f"{wait}; {LOCKOUT_AFTER} in a row lock the name out"
            raise WrongPassphrase(
                f"The passphrase for operator '{operator}' is wrong ({count} in a row; {then}). "
                "Nothing was opened."
            ) from exc
        self.failures.succeeded(operator, attempt)
        return key
