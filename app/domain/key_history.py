"""What the audit chain vouches for about each key, and where the inventory differs from it.

The key inventory (the ``keys`` table) and the audit chain are written in one transaction by
every change, so replaying the chain's successful key entries gives, per key, the values the
last recorded change left. ``replay`` does that; ``differences`` compares the result with the
inventory and names each record an edit outside Keystead changed (docs/architecture.md,
"What the audit chain vouches for").

Vouched for (when the chain recorded it): that the key exists, its lifecycle state, its
token binding (token serial and CKA_ID), whether it may be backed up (CKA_EXTRACTABLE at
creation) and its activation, deactivation and compromise dates. Not vouched for: names, tags
and notes of keys whose history predates their being recorded, and ``token_sync`` (a cache of
what the token was last seen doing, re-derived at each login). A value the chain never recorded
(a restored key's state before this version recorded it) is left unchecked, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.audit import AuditEntry
from app.domain.keys import KeyRecord, KeyState

# Actions whose successful entry on subject "key:<id>" records a new key and its first values.
CREATING = frozenset({"key.generate", "key.adopt", "key.import"})
# Every creation in code starts pre-active; entries written before "state" was recorded
# in them get this.
FIRST_STATE = KeyState.PRE_ACTIVE
DATES = ("activation_date", "deactivation_date", "compromise_date")

# What the chain can vouch for, as (KeyRecord field, words in a difference).
FIELDS = (
    ("state", "state"),
    ("token_serial", "token"),
    ("cka_id", "CKA_ID"),
    ("extractable", "backup-able"),
    ("activation_date", "activation date"),
    ("deactivation_date", "deactivation date"),
    ("compromise_date", "compromise date"),
)


@dataclass
class KeyHistory:
    """One key as the chain last left it: ``values`` maps a KeyRecord field to (value, seq of
    the entry that set it); a field the chain never recorded is absent (unchecked)."""

    key_id: str
    name: str
    created_seq: int
    values: dict[str, tuple[Any, int]] = field(default_factory=dict)

    def set(self, name: str, value: Any, seq: int) -> None:
        self.values[name] = (value, seq)

    def forget(self, name: str) -> None:
        self.values.pop(name, None)


@dataclass(frozen=True)
class Difference:
    """One way the inventory differs from the chain; ``seq`` is the entry that says otherwise
    (the creation entry for a vanished record, None for a record without history)."""

    key_id: str
    text: str
    seq: int | None


def replay(entries: Iterable[AuditEntry]) -> dict[str, KeyHistory]:
    """Key id -> its history, from the chain's entries in sequence order. Only successful
    entries count (a refused or failed change changed nothing)."""
    keys: dict[str, KeyHistory] = {}
    for entry in entries:
        if entry.outcome != "success":
            continue
        if entry.action == "backup.restore":
            _restore(keys, entry)
            continue
        if not entry.subject.startswith("key:"):
            continue
        key_id = entry.subject[4:]
        details = entry.details
        if entry.action in CREATING:
            keys[key_id] = _created(key_id, entry.seq, details)
            continue
        history = keys.get(key_id)
        if history is None:
            continue  # an entry about a key with no creation entry: reported by ``differences``
        if "name" in details and entry.action == "key.edit":
            history.name = str(details["name"])
        if entry.action == "key.rebind":
            target = details.get("to")
            if isinstance(target, dict):
                history.set("token_serial", str(target.get("token", "")), entry.seq)
                history.set("cka_id", str(target.get("cka_id", "")), entry.seq)
        elif isinstance(details.get("to"), str) and "from" in details:
            history.set("state", KeyState(details["to"]), entry.seq)
        for date in DATES:
            if date in details:
                history.set(date, _date(details[date]), entry.seq)
    return keys


def _created(key_id: str, seq: int, details: dict[str, Any]) -> KeyHistory:
    history = KeyHistory(key_id, str(details.get("name", key_id)), seq)
    history.set("state", KeyState(details.get("state", FIRST_STATE.value)), seq)
    if details.get("verify_only"):
        history.set("token_serial", "", seq)
    elif "token" in details:
        history.set("token_serial", str(details["token"]), seq)
    if "cka_id" in details:
        history.set("cka_id", str(details["cka_id"]), seq)
    if "extractable" in details:
        history.set("extractable", bool(details["extractable"]), seq)
    elif details.get("verify_only"):
        history.set("extractable", False, seq)
    for date in DATES:
        if date in details:
            history.set(date, _date(details[date]), seq)
    return history


def _restore(keys: dict[str, KeyHistory], entry: AuditEntry) -> None:
    """A backup restore creates the keys it restored (with the backup's values, recorded in
    ``restored_keys`` since this version) and re-binds the ones it rebound."""
    details = entry.details
    token = str(details.get("token", ""))
    described = {
        str(k.get("key")): k for k in details.get("restored_keys", []) if isinstance(k, dict)
    }
    for key_id in details.get("restored", []):
        about = described.get(str(key_id), {})
        history = _created(str(key_id), entry.seq, {"token": token, **about})
        if "state" not in about:
            history.forget("state")  # an older entry: the backup's state was not recorded
        keys[str(key_id)] = history
    for rebound in details.get("rebound", []):
        moved = keys.get(str(rebound.get("key"))) if isinstance(rebound, dict) else None
        if moved is not None:
            moved.set("token_serial", token, entry.seq)


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def differences(records: Iterable[KeyRecord], history: dict[str, KeyHistory]) -> list[Difference]:
    """Every way ``records`` (the inventory) differs from ``history`` (``replay``), in the
    order: changed records, records without history, vanished records."""
    found: list[Difference] = []
    seen: set[str] = set()
    for key in records:
        seen.add(key.id)
        past = history.get(key.id)
        if past is None:
            found.append(
                Difference(
                    key.id,
                    f"'{key.name}' ({key.id}) is in the inventory but the audit chain never "
                    "recorded its creation",
                    None,
                )
            )
            continue
        for name, words in FIELDS:
            if name not in past.values:
                continue
            expected, seq = past.values[name]
            actual = getattr(key, name)
            if not _same(actual, expected):
                found.append(
                    Difference(
                        key.id,
                        f"'{key.name}' has {words} {_shown(actual)} in the inventory but the "
                        f"audit chain's last {words} is {_shown(expected)} (entry #{seq})",
                        seq,
                    )
                )
    for key_id, past in history.items():
        if key_id not in seen:
            found.append(
                Difference(
                    key_id,
                    f"'{past.name}' ({key_id}) is missing from the inventory but the audit "
                    f"chain records it (created in entry #{past.created_seq})",
                    past.created_seq,
                )
            )
    return found


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()  # CKA_IDs are hex in either case
    return bool(actual == expected)


def _shown(value: Any) -> str:
    if isinstance(value, KeyState):
        return value.value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return "none"
    return str(value) if value != "" else "none"


def vouched(key: KeyRecord) -> dict[str, Any]:
    """The values a creation entry records so the chain can vouch for them later (merged into
    the entry's details by every service that creates a key record)."""
    return {
        "state": key.state.value,
        "cka_id": key.cka_id,
        "extractable": key.extractable,
        **{date: _text(getattr(key, date)) for date in DATES},
    }


def _text(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
