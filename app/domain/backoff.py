"""Wrong-passphrase back-off per operator name (pure).

After the n-th wrong passphrase in a row the next try waits ``delay_after(n)``: nothing after
the first (a typo), then 2, 4, 8 s, and from the fifth failure on a lockout of ``LOCKOUT``
(15 minutes) after each further failure.
A success clears the count. Times are whatever clock the caller injects.
"""

from __future__ import annotations

from datetime import datetime, timedelta

LOCKOUT_AFTER = 5
LOCKOUT = timedelta(minutes=15)


def delay_after(failures: int) -> timedelta:
    """How long the next try waits after ``failures`` consecutive failures."""
    if failures <= 1:
        return timedelta(0)
    if failures >= LOCKOUT_AFTER:
        return LOCKOUT
    return timedelta(seconds=2 ** (failures - 1))


def retry_at(failures: int, last: datetime | None) -> datetime | None:
    """When the next try is allowed, or None for at once."""
    if failures <= 0 or last is None:
        return None
    return last + delay_after(failures)


def locked_out(failures: int) -> bool:
    return failures >= LOCKOUT_AFTER
