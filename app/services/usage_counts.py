"""Usage counters from the audit chain and the usage limits that make a key due.

Kept apart from ``key_use`` (which brings cryptography's serialisation and the token
operations) so that the inventory and ``keys list`` can show the counters without loading it.
Derived from the audit entries in one grouped query: a counter cannot drift from the record.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.keys import KeyRecord, KeyState
from app.domain.usage import Direction, Operation, UsageTally, usage_warning
from app.services.policy import UsageLimits
from app.storage.database import Database

_LIVE = (KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.SUSPENDED)
# Protect uses besides key.sign / key.encrypt: requests, certificates and CRLs signed.
_PKI_ACTIONS = ("cert.csr", "cert.issue", "cert.crl")


def tallies(db: Database, key_id: str | None = None) -> dict[str, UsageTally]:
    """Key id → its counters (uses; AES-GCM invocations; files encrypted), for every key with
    a successful protect entry (or only ``key_id``). A batch counts each message."""
    actions = [f"key.{op.value}" for op in Operation if op.direction is Direction.PROTECT]
    actions += list(_PKI_ACTIONS)
    marks = ", ".join("?" for _ in actions)
    where = "AND subject = ? " if key_id is not None else ""
    rows = db.query(
        "SELECT subject, "  # noqa: S608 (placeholders only)
        "coalesce(sum(coalesce(json_extract(details, '$.batch'), 1)), 0), "
        "coalesce(sum(json_extract(details, '$.invocations')), 0), "
        "sum(CASE WHEN action = 'key.encrypt' THEN 1 ELSE 0 END) "
        "FROM events WHERE outcome = 'success' "
        f"AND action IN ({marks}) {where}GROUP BY subject",
        (*actions, *((f"key:{key_id}",) if key_id is not None else ())),
    )
    return {
        str(row[0])[4:]: UsageTally(int(row[1]), int(row[2]), int(row[3]))
        for row in rows
        if str(row[0]).startswith("key:")
    }


def usage_due(
    db: Database,
    keys: Sequence[KeyRecord],
    limits: UsageLimits,
    counted: dict[str, UsageTally] | None = None,
) -> dict[str, str]:
    """Live keys at or near a usage limit of their purpose: key id → why. ``counted``: the
    ``tallies`` already read (the inventory reads them once for both)."""
    if counted is None:
        counted = tallies(db)
    found: dict[str, str] = {}
    for key in keys:
        if key.state not in _LIVE or key.id not in counted:
            continue
        why = usage_warning(key.purpose, counted[key.id], limits.limits, limits.warn_fraction)
        if why is not None:
            found[key.id] = why
    return found
