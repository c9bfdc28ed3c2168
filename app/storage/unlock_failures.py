"""The side record of wrong passphrases, kept beside the keyslots (``unlock-failures.json``).

A wrong passphrase cannot be written into the database: without the right passphrase there is
no key to open it. So each try is counted here, outside it, and sealed into the audit chain at
the next successful unlock (``workstation.unlock``, outcome ``failed``).

Crash safety: a try is written down (fsync'd, atomic rename) *before* the passphrase is checked,
as a failure; only a success takes it back. Killing the process during the check therefore
counts as a failure and never resets the count. The file holds names and times only, no secret
(operator names are visible in ``keyslots.json`` too). Someone who can delete it can reset the
count; they could equally copy the database and attack it offline, which Argon2id's cost is
there for. Keystead never deletes the file (it holds an empty record when nothing is counted),
so the next unlock notices a deleted one and records it
(``workstation.unlock-failures-missing``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.errors import StorageError
from app.storage.files import write_atomic

FORMAT = "keystead-unlock-failures"
VERSION = 1
MAX_NAMES = 256  # names are typed by anyone at the unlock dialog: the file stays bounded
MAX_UNSEALED = 1000


@dataclass(frozen=True)
class Failure:
    """One wrong (or interrupted) try, waiting to be sealed into the audit chain."""

    id: str
    operator: str
    time: str  # ISO 8601 UTC
    reason: str  # "wrong passphrase", "unknown operator", "interrupted", "approval …"


@dataclass(frozen=True)
class NameState:
    consecutive: int
    last: datetime | None


class UnlockFailures:
    """Read-modify-write of the side record; every change is durable before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # --- reading ---------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": FORMAT, "version": VERSION, "names": {}, "unsealed": [], "lost": 0}
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT or doc.get("version") != VERSION:
                raise ValueError("format")
            if not isinstance(doc["names"], dict) or not isinstance(doc["unsealed"], list):
                raise ValueError("shape")
            doc.setdefault("lost", 0)
            return dict(doc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Fail closed: a damaged counter must not silently become "no failures".
            raise StorageError(
                f"The wrong-passphrase record {self.path} is damaged. Move it aside to unlock "
                "(its failures are then no longer counted) and tell your security officer."
            ) from exc

    def state(self, operator: str) -> NameState:
        entry = self._load()["names"].get(operator)
        if not entry:
            return NameState(0, None)
        return NameState(int(entry["consecutive"]), datetime.fromisoformat(entry["last"]))

    def states(self) -> dict[str, NameState]:
        return {
            name: NameState(int(e["consecutive"]), datetime.fromisoformat(e["last"]))
            for name, e in self._load()["names"].items()
        }

    def unsealed(self) -> list[Failure]:
        return [Failure(**f) for f in self._load()["unsealed"]]

    def lost(self) -> int:
        """Failures dropped because more than ``MAX_UNSEALED`` waited (still counted here)."""
        return int(self._load()["lost"])

    # --- changing --------------------------------------------------------------------------

    def _save(self, doc: dict[str, Any]) -> None:
        # Written even when nothing is counted: the file is never removed by Keystead, so a
        # missing one after an unlock has seen it means someone deleted it (and with it any
        # failures and lock-outs), which the next unlock records.
        write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))

    def begin(self, operator: str, now: datetime, reason: str = "interrupted") -> str:
        """Count a try as failed *before* it is checked; returns its id for ``succeeded``."""
        doc = self._load()
        names: dict[str, Any] = doc["names"]
        entry = names.get(operator) or {"consecutive": 0, "last": now.isoformat()}
        entry = {"consecutive": int(entry["consecutive"]) + 1, "last": now.isoformat()}
        names[operator] = entry
        if len(names) > MAX_NAMES:  # forget the oldest other names first
            for name in sorted(names, key=lambda n: str(names[n]["last"]))[
                : len(names) - MAX_NAMES
            ]:
                if name != operator:
                    del names[name]
        attempt = secrets.token_hex(8)
        doc["unsealed"].append(
            {"id": attempt, "operator": operator, "time": now.isoformat(), "reason": reason}
        )
        if len(doc["unsealed"]) > MAX_UNSEALED:
            doc["lost"] = int(doc["lost"]) + len(doc["unsealed"]) - MAX_UNSEALED
            doc["unsealed"] = doc["unsealed"][-MAX_UNSEALED:]
        self._save(doc)
        return attempt

    def failed(self, attempt: str, reason: str, sealed: bool = False) -> None:
        """The try was wrong: keep it counted, with its reason (dropped from the list to
        seal when the caller has already recorded it in the open database)."""
        doc = self._load()
        kept = []
        for failure in doc["unsealed"]:
            if failure["id"] == attempt:
                if sealed:
                    continue
                failure = {**failure, "reason": reason}
            kept.append(failure)
        doc["unsealed"] = kept
        self._save(doc)

    def succeeded(self, operator: str, attempt: str) -> None:
        """The passphrase was right: clear this name's count and take the try back."""
        doc = self._load()
        doc["names"].pop(operator, None)
        doc["unsealed"] = [f for f in doc["unsealed"] if f["id"] != attempt]
        self._save(doc)

    def sealed(self, ids: set[str]) -> None:
        """These failures are now in the audit chain."""
        doc = self._load()
        doc["unsealed"] = [f for f in doc["unsealed"] if f["id"] not in ids]
        doc["lost"] = 0
        self._save(doc)
