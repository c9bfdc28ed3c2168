"""Per-operator keyslots that hold the database key.

The database key is 32 random bytes. Each operator's keyslot wraps it (RFC 5649) under a key
derived from their passphrase with Argon2id (RFC 9106's second recommended setting: 64 MiB,
3 passes, 4 lanes), the operator's name bound in as Argon2's associated data. The unwrap's
integrity check tells a wrong passphrase apart from anything else without touching the database.
The file holds no secret in clear; operator names are visible (as LUKS keyslot labels are).

Rotation without everyone's passphrase: each keyslot also holds an X25519 key pair, the private
half wrapped (RFC 5649) under the same Argon2id key, the public half in clear. Rotating the
workstation key seals the new database key to every operator's public key (ephemeral X25519,
HKDF-SHA256, AES-256-GCM with the operator's name as associated data: ECIES) and drops the old
``wrapped_key``; whoever knew the old database key learns nothing about the new one. A slot
made before key pairs existed gets one at its operator's next unlock.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import unicodedata
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from app.domain.kdf import kdf_cost_problem
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
    wrapped_key: str = ""  # base64, RFC 5649 of the database key ("" once sealed instead)
    public: str = ""  # base64, raw X25519 public key ("" for slots made before key pairs)
    wrapped_private: str = ""  # base64, RFC 5649 of the raw X25519 private key
    sealed_key: str = ""  # base64, ephemeral public (32) ‖ nonce (12) ‖ AES-GCM of the key
    # "NFC": the passphrase is Unicode-normalised (NFC) before Argon2id, so the same
    # passphrase typed in composed or decomposed form opens the slot. "" (keyslots written
    # before): the passphrase as typed then; opening also tries its NFC and NFD forms.
    normalization: str = ""


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


SEAL_INFO = b"keystead-keyslot-seal-v1\x00"


def _seal_key(shared: bytes, ephemeral: bytes, recipient: bytes, operator: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=SEAL_INFO + ephemeral + recipient + operator.encode("utf-8"),
    ).derive(shared)


def seal(database_key: bytes, public: bytes, operator: str) -> bytes:
    """ECIES: the database key for the holder of ``public``'s private key only."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    nonce = secrets.token_bytes(12)
    body = AESGCM(_seal_key(shared, ephemeral_public, public, operator)).encrypt(
        nonce, database_key, operator.encode("utf-8")
    )
    return ephemeral_public + nonce + body


def unseal(sealed: bytes, private: X25519PrivateKey, operator: str) -> bytes:
    """Raises ``InvalidTag`` (damaged or not for this key) or ``ValueError`` (wrong shape)."""
    if len(sealed) != 32 + 12 + DATABASE_KEY_BYTES + 16:
        raise ValueError("sealed key of the wrong length")
    ephemeral, nonce, body = sealed[:32], sealed[32:44], sealed[44:]
    shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    recipient = private.public_key().public_bytes_raw()
    return AESGCM(_seal_key(shared, ephemeral, recipient, operator)).decrypt(
        nonce, body, operator.encode("utf-8")
    )


def _key_pair(kek: bytes) -> tuple[str, str]:
    """A new X25519 pair: (public, private wrapped under ``kek``), base64."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes_raw()
    return (
        _b64(private.public_key().public_bytes_raw()),
        _b64(aes_key_wrap_with_padding(kek, raw)),
    )


def make_slot(operator: str, passphrase: str, database_key: bytes, cost: KdfCost) -> KeySlot:
    """Wrap ``database_key`` for ``operator`` (with the key pair rotation seals to)."""
    salt = secrets.token_bytes(16)
    kek = _derive(unicodedata.normalize("NFC", passphrase), operator, salt, cost)
    public, wrapped_private = _key_pair(kek)
    return KeySlot(
        operator=operator,
        salt=_b64(salt),
        memory_kib=cost.memory_kib,
        iterations=cost.iterations,
        lanes=cost.lanes,
        wrapped_key=_b64(aes_key_wrap_with_padding(kek, database_key)),
        public=public,
        wrapped_private=wrapped_private,
        normalization="NFC",
    )


def _forms(passphrase: str, normalization: str) -> list[str]:
    """The passphrase forms a slot may have been made from, most likely first."""
    if normalization == "NFC":
        return [unicodedata.normalize("NFC", passphrase)]
    forms = [passphrase]
    for form in ("NFC", "NFD"):
        variant = unicodedata.normalize(form, passphrase)
        if variant not in forms:
            forms.append(variant)
    return forms


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
        write_atomic(self.path, self.to_bytes())

    def operators(self) -> list[str]:
        return [slot.operator for slot in self.slots]

    def find(self, operator: str) -> KeySlot:
        for slot in self.slots:
            if slot.operator == operator:
                return slot
        raise no_keyslot(operator)

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

    def check_cost(self, operator: str) -> None:
        """Refuse ``operator``'s slot when its stored Argon2id cost is outside Keystead's
        bounds (``app.domain.kdf``), before any passphrase is tried: an edited cost must
        neither hang the machine nor count as a wrong passphrase. Raises StorageError."""
        slot = self.find(operator)
        problem = kdf_cost_problem(slot.memory_kib, slot.iterations, slot.lanes)
        if problem is not None:
            raise StorageError(
                f"The keyslot of operator '{operator}' is damaged: {problem}. Another "
                "operator can open the workstation and re-enrol them; nothing was counted."
            )

    def _kek(self, slot: KeySlot, passphrase: str) -> bytes:
        """The key-encryption key this passphrase gives the slot, derived from the form the
        slot was made from: NFC, or for older slots (no ``normalization``) the passphrase as
        typed or its NFC or NFD form, whichever unwraps. Raises WrongPassphrase; ValueError
        and the like for damaged fields."""
        if slot.normalization not in ("", "NFC"):
            raise ValueError("unknown normalization")
        problem = kdf_cost_problem(slot.memory_kib, slot.iterations, slot.lanes)
        if problem is not None:  # refused before Argon2id runs: an edited cost cannot hang it
            raise ValueError(problem)
        cost = KdfCost(slot.memory_kib, slot.iterations, slot.lanes)
        salt = _unb64(slot.salt)
        forms = _forms(passphrase, slot.normalization)
        if slot.normalization == "NFC":
            return _derive(forms[0], slot.operator, salt, cost)
        wrapped = _unb64(slot.wrapped_key or slot.wrapped_private)
        for form in forms:
            kek = _derive(form, slot.operator, salt, cost)
            try:
                aes_key_unwrap_with_padding(kek, wrapped)
            except InvalidUnwrap:
                continue
            return kek
        raise WrongPassphrase(
            f"The passphrase for operator '{slot.operator}' is wrong. Nothing was opened."
        )

    def open(self, operator: str, passphrase: str) -> bytes:
        """Return the database key, or raise UnknownOperator / WrongPassphrase."""
        slot = self.find(operator)
        try:
            if slot.wrapped_key or not slot.sealed_key:
                wrapped = _unb64(slot.wrapped_key)
                if len(wrapped) != DATABASE_KEY_BYTES + 8:  # RFC 5649 output for 32 bytes
                    raise ValueError("wrapped key of the wrong length")
                return aes_key_unwrap_with_padding(self._kek(slot, passphrase), wrapped)
            wrapped_private = _unb64(slot.wrapped_private)
            if len(wrapped_private) != 32 + 8:
                raise ValueError("wrapped private key of the wrong length")
            private = X25519PrivateKey.from_private_bytes(
                aes_key_unwrap_with_padding(self._kek(slot, passphrase), wrapped_private)
            )
            return unseal(_unb64(slot.sealed_key), private, operator)
        except InvalidUnwrap as exc:
            raise WrongPassphrase(
                f"The passphrase for operator '{operator}' is wrong. Nothing was opened."
            ) from exc
        except (ValueError, TypeError, AttributeError, OverflowError, InvalidTag) as exc:
            raise StorageError(
                f"The keyslot of operator '{operator}' is damaged; another operator can open "
                "the workstation and re-enrol them."
            ) from exc

    def ensure_key_pair(self, operator: str, passphrase: str) -> bool:
        """Give a slot made before key pairs existed its pair (the passphrase was just
        checked); True if the file must be saved."""
        slot = self.find(operator)
        if slot.public:
            return False
        public, wrapped_private = _key_pair(self._kek(slot, passphrase))
        self.slots = [
            replace(s, public=public, wrapped_private=wrapped_private)
            if s.operator == operator
            else s
            for s in self.slots
        ]
        return True

    def without_key_pair(self) -> list[str]:
        """Operators whose slot cannot be re-sealed yet (they must unlock once)."""
        return [s.operator for s in self.slots if not s.public]

    def resealed(self, database_key: bytes) -> KeySlotFile:
        """Every slot sealed to a new database key (the old ``wrapped_key`` dropped)."""
        missing = self.without_key_pair()
        if missing:
            raise StorageError(
                "These operators' keyslots predate rotation support: "
                f"{', '.join(missing)}. Each must unlock once first (or be re-enrolled)."
            )
        return KeySlotFile(
            path=self.path,
            workstation_id=self.workstation_id,
            slots=[
                replace(
                    s,
                    wrapped_key="",
                    sealed_key=_b64(seal(database_key, _unb64(s.public), s.operator)),
                )
                for s in self.slots
            ],
        )

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "workstation_id": self.workstation_id,
            "slots": [asdict(slot) for slot in self.slots],
        }
        return json.dumps(doc, indent=2).encode("utf-8")


def no_keyslot(operator: str) -> UnknownOperator:
    """The refusal of an unlock by a name without a keyslot. The database (locked) would
    know whether the name was never added or was disabled or removed, so the words cover
    both (a disabled operator's keyslot is taken away) instead of denying they exist."""
    return UnknownOperator(
        f"There is no operator named '{operator}' who can unlock this workstation: never "
        "added, or disabled or removed since (their keyslot was taken away). Ask a security "
        "officer; nothing was tried."
    )
