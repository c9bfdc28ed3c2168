"""The key transfer file: one secret key wrapped for a recipient HSM (docs/key-transfer.md).

Pure: no I/O. The file is UTF-8 JSON (sorted keys, no spaces, one trailing newline) holding the
wrapped key and everything the recipient checks before and after unwrapping it:

- ``key``: the sender's key id, name, algorithm, purpose, value length and KCV (AES-ECB of a
  zero block, first 3 bytes, hex upper case — the token's CKA_CHECK_VALUE);
- ``wrapping``: the mechanism and the recipient it was made for — for ``RSA-OAEP-SHA1`` the
  SHA-256 of the recipient public key's DER SubjectPublicKeyInfo, for ``AES-KWP`` the KCV of the
  shared KEK — and a note saying what the mechanism is and is not;
- ``wrapped``: the token's output, base64;
- ``sender``: workstation id, operator(s), time (UTC, ISO 8601);
- ``sha256``: SHA-256 of the canonical encoding of everything above (the document without
  ``sha256``). It catches truncation and accidental damage; it is not a signature. Whether the
  key is the sender's is proven by the KCV, which the recipient compares with the sender's aloud
  (``--expect-kcv`` makes Keystead compare it), and the unwrap itself: only the recipient's
  private key (or the shared KEK) opens the wrapped bytes.

Every way a file can be bad raises ``NotAuthentic`` (one error kind, no oracle about which
field), with a sentence naming what to do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from app.domain.algorithms import Algorithm, Family, Purpose
from app.errors import NotAuthentic

FORMAT = "keystead-key-transfer"
VERSION = 1
MAX_FILE_BYTES = 64 * 1024  # a wrapped AES key under RSA-4096 is 512 bytes; JSON around it


class WrapMechanism(Enum):
    """How the key was wrapped; the value is the file's and the CLI's name."""

    # CKM_RSA_PKCS_OAEP, hash SHA-1, MGF1-SHA-1, no label (RFC 8017 §7.1). SoftHSM 2.6.1 wraps
    # secret keys with OAEP only so; it is still sound for key transport (OAEP's security does
    # not rest on SHA-1's collision resistance), but a recipient HSM must accept SHA-1 OAEP.
    RSA_OAEP_SHA1 = "RSA-OAEP-SHA1"
    # CKM_AES_KEY_WRAP_PAD (RFC 5649) under a KEK both tokens hold; the sides compare its KCV.
    AES_KWP = "AES-KWP"

    @property
    def note(self) -> str:
        return _NOTES[self]


_NOTES = {
    WrapMechanism.RSA_OAEP_SHA1: (
        "RSA-OAEP with SHA-1 and MGF1-SHA-1 (RFC 8017), done inside the sending token. SoftHSM "
        "2.6 wraps secret keys with OAEP only with SHA-1; OAEP with SHA-1 remains acceptable for "
        "key transport (SP 800-131A Rev. 2 allows SHA-1 in non-signature uses), but the "
        "receiving HSM must support it. Alternative: AES key wrap (RFC 5649) under a shared KEK "
        "whose check value both sides compare."
    ),
    WrapMechanism.AES_KWP: (
        "AES key wrap with padding (RFC 5649) under a KEK both tokens hold; compare the KEK "
        "check value in 'recipient' with the receiving token's KEK before importing."
    ),
}


def parse_mechanism(text: str) -> WrapMechanism:
    for mechanism in WrapMechanism:
        if mechanism.value == text:
            return mechanism
    raise NotAuthentic(
        f"The transfer file names an unknown wrapping mechanism '{text[:40]}'; nothing was "
        "imported."
    )


@dataclass(frozen=True)
class TransferFile:
    """One wrapped key as the file holds it."""

    key_id: str
    key_name: str
    algorithm: Algorithm
    purpose: Purpose
    value_len: int  # bytes of the key value (16, 24, 32 for AES)
    kcv: str  # hex, upper case
    mechanism: WrapMechanism
    recipient: str  # SPKI SHA-256 (RSA-OAEP) or KEK KCV (AES-KWP), hex lower/upper as made
    wrapped: bytes
    workstation: str
    operators: tuple[str, ...]
    created_at: str  # UTC, ISO 8601

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "key": {
                "id": self.key_id,
                "name": self.key_name,
                "algorithm": self.algorithm.value,
                "purpose": self.purpose.value,
                "value_len": self.value_len,
                "kcv": self.kcv,
            },
            "wrapping": {
                "mechanism": self.mechanism.value,
                "recipient": self.recipient,
                "note": self.mechanism.note,
            },
            "wrapped": base64.b64encode(self.wrapped).decode("ascii"),
            "sender": {
                "workstation": self.workstation,
                "operators": list(self.operators),
                "created_at": self.created_at,
            },
        }

    def encode(self) -> bytes:
        body = self.body()
        return _canonical({**body, "sha256": _digest(body)}) + b"\n"

    @property
    def sha256(self) -> str:
        """SHA-256 of the whole file as written (what the distribution record keeps)."""
        return hashlib.sha256(self.encode()).hexdigest()


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(body)).hexdigest()


def decode(data: bytes) -> TransferFile:
    """Parse and check a transfer file; NotAuthentic for anything truncated, altered,
    of another format or version, or naming what Keystead cannot import."""
    bad = "It is damaged, truncated or altered; nothing was imported. Ask the sender again."
    if len(data) > MAX_FILE_BYTES:
        raise NotAuthentic(f"The transfer file is larger than {MAX_FILE_BYTES} bytes. {bad}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise NotAuthentic(f"The file is not a Keystead key transfer file. {bad}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NotAuthentic("The file is not a Keystead key transfer file; nothing was imported.")
    if type(doc.get("version")) is not int or doc.get("version") != VERSION:  # true == 1
        raise NotAuthentic(
            f"Transfer file version {doc.get('version')!r} is not supported (this Keystead "
            f"reads version {VERSION}); nothing was imported."
        )
    claimed = doc.pop("sha256", None)
    if not isinstance(claimed, str) or claimed != _digest(doc):
        raise NotAuthentic(f"The transfer file's SHA-256 does not match its contents. {bad}")
    try:
        key, wrapping, sender = doc["key"], doc["wrapping"], doc["sender"]
        algorithm = Algorithm(key["algorithm"])
        made = TransferFile(
            key_id=str(key["id"]),
            key_name=str(key["name"]),
            algorithm=algorithm,
            purpose=Purpose(key["purpose"]),
            value_len=int(key["value_len"]),
            kcv=str(key["kcv"]).upper(),
            mechanism=parse_mechanism(str(wrapping["mechanism"])),
            recipient=str(wrapping["recipient"]),
            wrapped=base64.b64decode(str(doc["wrapped"]), validate=True),
            workstation=str(sender["workstation"]),
            operators=tuple(str(o) for o in sender["operators"]),
            created_at=str(sender["created_at"]),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise NotAuthentic(f"The transfer file lacks or garbles a field. {bad}") from exc
    if made.body() != doc:
        # Every field exactly as this version writes it: nothing unknown, nothing re-typed.
        raise NotAuthentic(
            "The transfer file holds fields or values that Keystead does not write (an unknown "
            f"field, a changed note, a number written as text). {bad}"
        )
    if algorithm.family is not Family.AES or made.value_len != algorithm.spec.bits // 8:
        raise NotAuthentic(
            f"The transfer file holds a {algorithm.value} key of {made.value_len} bytes; only "
            "AES keys are transferred wrapped. Nothing was imported."
        )
    if len(made.kcv) != 6 or any(c not in "0123456789ABCDEF" for c in made.kcv):
        raise NotAuthentic(f"The transfer file's KCV is not 3 bytes of hex. {bad}")
    return made
