"""Dates and times typed by people (ISO 8601), read the same way everywhere.

A time without a zone is UTC, like every time Keystead stores and shows. A date alone names a
whole UTC day: as the start of a range it means 00:00:00 of that day, as the end of a range the
last microsecond of it, so ``--since D --until D`` is the whole of day D.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from app.errors import ValidationError

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_moment(text: str, end_of_day: bool = False) -> datetime:
    """``text`` as an aware UTC datetime; a date alone is its day's start (or, with
    ``end_of_day``, its last microsecond). Raises ValidationError for anything else."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            f"'{text}' is not an ISO 8601 date (e.g. 2026-11-23 or 2026-11-23T10:00Z)"
        ) from exc
    if _DATE_ONLY.fullmatch(text):
        start = datetime.combine(moment.date(), time(0), tzinfo=UTC)
        return start + timedelta(days=1, microseconds=-1) if end_of_day else start
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
