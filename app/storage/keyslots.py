"""Per-operator keyslots that hold the database key.

The database key is 32 random bytes. Each operator's keyslot wraps it (RFC 5649) under a key
derived from their passphrase with Argon2id (RFC 9106's second recommended setting: 64 MiB,
3 passes, 4 lanes), the operator's name bound in as Argon2's associated data. The unwrap's
integrity check tells a wrong passphrase apart from anything else without touching the database.
The file holds no secret in clear; operator names are visible (as LUKS keyslot labels are).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from app.errors import StorageError, UnknownOperator, WorkstationMissing, WrongPassphrase
from app.storage.files import write_atomic

FORMAT = "keystead-keyslots"
VERSION = 1
DATABASE_KEY_BYTES = 32


@dataclass(frozen=True)
class KdfCost:
    """Argon2id cost; stored in each keyslot so it can be raised later."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4


@dataclass(frozen=True)
class KeySlot:
    operator: str
    salt: str  # base64
    memory_kib: int
    iterations: int
    lanes: int
    wrapped_key: str  # base64, RFC 5649


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _derive(passphrase: str, operator: str, salt: bytes, cost: KdfCost) -> bytes:
    return Argon2id(
        salt=salt,
        length=32,
        iterations=cost.iterations,
        lanes=cost.lanes,
        memory_cost=cost.memory_kib,
        ad=operator.encode("utf-8"),
    ).derive(passphrase.encode("utf-8"))


def new_database_key() -> bytes:
    return secrets.token_bytes(DATABASE_KEY_BYTES)


def make_slot(operator: str, passphrase: str, database_key: bytes, cost: KdfCost) -> KeySlot:
    """Wrap ``database_key`` for ``operator``."""
    salt = secrets.token_bytes(16)
    kek = _derive(passphrase, operator, salt, cost)
    return KeySlot(
        operator=operator,
        salt=_b64(salt),
        memory_kib=cost.memory_kib,
        iterations=cost.iterations,
        lanes=cost.lanes,
        wrapped_key=_b64(aes_key_wrap_with_padding(kek, database_key)),
    )


@dataclass
class KeySlotFile:
    """The keyslot file of a workstation."""

    path: Path
    workstation_id: str
    slots: list[KeySlot]

    @classmethod
    def create(cls, path: Path) -> KeySlotFile:
        return cls(path=path, workstation_id=_b64(os.urandom(12)), slots=[])

    @classmethod
    def load(cls, path: Path) -> KeySlotFile:
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise WorkstationMissing(
                f"No workstation here ({path.parent}). Initialise one first."
            ) from exc
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT or doc.get("version") != VERSION:
                raise ValueError("format")
            slots = [KeySlot(**slot) for slot in doc["slots"]]
            return cls(path=path, workstation_id=str(doc["workstation_id"]), slots=slots)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(
                f"The keyslot file {path} is damaged or of an unknown version; "
                "restore it from a backup. Nothing was changed."
            ) from exc

    def save(self) -> None:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "workstation_id": self.workstation_id,
            "slots": [asdict(slot) for slot in self.slots],
        }
        write_atomic(self.path, json.dumps(doc, indent=2).encode("utf-8"))

    def operators(self) -> list[str]:
        return [slot.operator for slot in self.slots]

    def find(self, operator: str) -> KeySlot:
        for slot in self.slots:
            if slot.operator == operator:
                return slot
        raise UnknownOperator(f"There is no operator named '{operator}' on this workstation.")

    def add(self, operator: str, passphrase: str, database_key: bytes, cost: KdfCost) -> None:
        if operator in self.operators():
            raise StorageError(f"Operator '{operator}' already has a keyslot.")
        self.slots.append(make_slot(operator, passphrase, database_key, cost))

    def replace(self, operator: str, passphrase: str, database_key: bytes, cost: KdfCost) -> None:
        """A new keyslot for an existing (or re-enabled) operator; the old one is gone."""
        self.slots = [s for s in self.slots if s.operator != operator]
        self.slots.append(make_slot(operator, passphrase, database_key, cost))

    def remove(self, operator: str) -> bool:
        """Drop the operator's keyslot; True if there was one."""
        before = len(self.slots)
        self.slots = [s for s in self.slots if s.operator != operator]
        return len(self.slots) != before

    def open(self, operator: str, passphrase: str) -> bytes:
        """Return the database key, or raise UnknownOperator / WrongPassphrase."""
        slot = self.find(operator)
        cost = KdfCost(slot.memory_kib, slot.iterations, slot.lanes)
        try:
            wrapped = _unb64(slot.wrapped_key)
            if len(wrapped) != DATABASE_KEY_BYTES + 8:  # RFC 5649 output for a 32-byte key
                raise ValueError("wrapped key of the wrong length")
            kek = _derive(passphrase, operator, _unb64(slot.salt), cost)
            return aes_key_unwrap_with_padding(kek, wrapped)
        except InvalidUnwrap as exc:
            raise WrongPassphrase(
                f"The passphrase for operator '{operator}' is wrong. Nothing was opened."
            ) from exc
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:  # damaged fields
            raise StorageError(
                f"The keyslot of operator '{operator}' is damaged; another operator can open "
                "the workstation and re-enrol them."
            ) from exc
