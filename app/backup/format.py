"""The backup format, version 1: names, the manifest, sealing and the KEK check value.

Pure functions over bytes; every way a file can be bad raises ``BackupIntegrityError`` with
one line saying which file and what (cryptography's Fernet collapses its failures the same
way). docs/backup-format.md is the specification; change both together.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import BackupIntegrityError

FORMAT = "keystead-backup"
VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
KEYS = "keys.bin"
METADATA = "metadata.enc"
AUDIT = "audit.enc"
DATA_FILES = (KEYS, METADATA, AUDIT)
ALL_FILES = (*DATA_FILES, MANIFEST, SIGNATURE)
KEK_BYTES = 32
NONCE_BYTES = 12
# HKDF-SHA256 info strings: one key per sealed file, never the KEK itself.
INFO = {METADATA: b"keystead-backup-v1 metadata", AUDIT: b"keystead-backup-v1 audit"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_MANIFEST = 64 * 1024 * 1024


def directory_name(generation: int, backup_id: str) -> str:
    """FAT-safe, sortable, unique: ``keystead-backup-g000042-<first 8 of the id>``."""
    return f"keystead-backup-g{generation:06d}-{backup_id[:8]}"


_DIRECTORY_NAME = re.compile(r"keystead-backup-g([0-9]{6,})-[0-9a-f]{8}")


def is_directory_name(name: str) -> bool:
    """Whether ``name`` has the form ``directory_name`` gives."""
    return _DIRECTORY_NAME.fullmatch(name) is not None


def generation_of(name: str) -> int | None:
    """The generation a backup directory's name carries (``directory_name``), or None."""
    found = _DIRECTORY_NAME.fullmatch(name)
    return int(found.group(1)) if found else None


def kek_check_value(kek: bytes) -> str:
    """The KEK check value: the first 3 bytes of AES-ECB(KEK, 16 zero bytes), upper-case hex
    (the conventional KCV of an AES key)."""
    encryptor = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()  # noqa: S305 (KCV)
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:3].hex().upper()


def file_key(kek: bytes, backup_id: str, name: str) -> bytes:
    """HKDF-SHA256(IKM = KEK, salt = the backup id's 16 bytes, info = INFO[name]), 32 bytes."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=_id_bytes(backup_id), info=INFO[name]
    ).derive(kek)


def seal(kek: bytes, backup_id: str, name: str, plaintext: bytes) -> bytes:
    """``nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)``; AAD = info ‖ backup id bytes."""
    nonce = os.urandom(NONCE_BYTES)
    aad = INFO[name] + _id_bytes(backup_id)
    return nonce + AESGCM(file_key(kek, backup_id, name)).encrypt(nonce, plaintext, aad)


def unseal(kek: bytes, backup_id: str, name: str, sealed: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise BackupIntegrityError(f"{name} is truncated.")
    aad = INFO[name] + _id_bytes(backup_id)
    try:
        return AESGCM(file_key(kek, backup_id, name)).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad
        )
    except InvalidTag:
        raise BackupIntegrityError(
            f"{name} does not decrypt under this KEK (damaged, or from another backup)."
        ) from None


def _id_bytes(backup_id: str) -> bytes:
    try:
        raw = bytes.fromhex(backup_id.replace("-", ""))
    except ValueError:
        raise BackupIntegrityError("The backup id is not a UUID.") from None
    if len(raw) != 16:
        raise BackupIntegrityError("The backup id is not a UUID.")
    return raw


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    """One wrapped key in ``keys.bin``: bytes ``[offset, offset + wrapped_len)`` are its
    RFC 5649 wrapping; unwrapped, the first ``value_len`` bytes are the key's value (SoftHSM
    zero-pads before wrapping)."""

    id: str
    name: str
    algorithm: str
    purpose: str
    state: str
    kcv: str | None
    fingerprint: str | None
    value_len: int
    offset: int
    wrapped_len: int


@dataclass(frozen=True)
class Manifest:
    """The signed description of one backup (canonical JSON: sorted keys, no spaces)."""

    backup_id: str
    generation: int
    created_at: str
    workstation: str
    audit_checkpoint: dict[str, Any]
    kek_check_value: str
    shares: dict[str, Any] | None  # {"identifier", "threshold", "count", "custodians"}
    passphrase: dict[str, Any] | None  # Argon2id parameters and the KEK wrapped under it
    signer_spki: str  # base64 DER SubjectPublicKeyInfo of the signing key
    keys: tuple[KeyEntry, ...]
    files: dict[str, dict[str, Any]]  # name -> {"size", "sha256"}

    def encode(self) -> bytes:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "backup_id": self.backup_id,
            "generation": self.generation,
            "created_at": self.created_at,
            "workstation": self.workstation,
            "audit_checkpoint": self.audit_checkpoint,
            "kek_check_value": self.kek_check_value,
            "shares": self.shares,
            "passphrase": self.passphrase,
            "signer_spki": self.signer_spki,
            "keys": [entry.__dict__ for entry in self.keys],
            "files": self.files,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @property
    def signer_fingerprint(self) -> str:
        return sha256_hex(base64.b64decode(self.signer_spki))

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Parse and check the shape of a manifest; BackupIntegrityError on anything else."""
        if len(data) > MAX_MANIFEST:
            raise BackupIntegrityError("manifest.json is too large to be a Keystead manifest.")
        try:
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise BackupIntegrityError("manifest.json is not a Keystead backup manifest.")
            if doc.get("version") != VERSION:
                raise BackupIntegrityError(
                    f"manifest.json has format version {doc.get('version')!r}; this Keystead "
                    f"reads version {VERSION}."
                )
            keys = tuple(_key_entry(k) for k in _list(doc["keys"]))
            files = _dict(doc["files"])
            for name, facts in files.items():
                if name not in DATA_FILES:
                    raise BackupIntegrityError(f"manifest.json lists an unknown file {name!r}.")
                facts = _dict(facts)
                _int(facts["size"])
                _hex(facts["sha256"], 64)
            if set(files) != set(DATA_FILES):
                raise BackupIntegrityError("manifest.json does not list every backup file.")
            manifest = cls(
                backup_id=_str(doc["backup_id"]),
                generation=_int(doc["generation"]),
                created_at=_str(doc["created_at"]),
                workstation=_str(doc["workstation"]),
                audit_checkpoint=_dict(doc["audit_checkpoint"]),
                kek_check_value=_hex(doc["kek_check_value"], 6),
                shares=None if doc["shares"] is None else _dict(doc["shares"]),
                passphrase=None if doc["passphrase"] is None else _dict(doc["passphrase"]),
                signer_spki=_str(doc["signer_spki"]),
                keys=keys,
                files=files,
            )
            _id_bytes(manifest.backup_id)
            base64.b64decode(manifest.signer_spki, validate=True)
        except BackupIntegrityError:
            raise
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            raise BackupIntegrityError(
                f"manifest.json is malformed ({type(exc).__name__})."
            ) from None
        if manifest.shares is None and manifest.passphrase is None:
            raise BackupIntegrityError("manifest.json names no way to recover the KEK.")
        return manifest


# A secret (AES) key's value length, by the manifest's algorithm name. Every other algorithm is
# a private key: value_len PRIVATE_VALUE_LEN, a PKCS#8 PrivateKeyInfo cut at its DER length.
AES_VALUE_LEN = {"AES-128": 16, "AES-192": 24, "AES-256": 32}
PRIVATE_VALUE_LEN = 0


def unwrap_length(entry: KeyEntry, strict: bool = False) -> int:
    """How many bytes of ``entry``'s unwrapped value are the key: an AES key's length from its
    algorithm (16, 24, 32), or ``PRIVATE_VALUE_LEN`` (0) for an RSA / EC private key.

    The entry's kind must agree with its algorithm, and an AES key's ``wrapped_len`` must be
    the RFC 5649 length of its value (value rounded up to 8, plus 8). Keystead before
    2026-11-30 wrote value_len 0 for AES keys that had been restored or imported (SoftHSM
    leaves CKA_VALUE_LEN at 0 on unwrapped keys): such an entry is read by its algorithm (the
    manifest is signed; the algorithm is as trusted as the length), unless ``strict`` (the
    read-back of a backup being written, which must be exact). BackupIntegrityError naming
    the key and the fault otherwise."""
    secret = AES_VALUE_LEN.get(entry.algorithm)
    if secret is None:
        if entry.value_len != PRIVATE_VALUE_LEN:
            raise BackupIntegrityError(
                f"manifest.json: key {entry.name!r} is an {entry.algorithm} private key but "
                f"its entry gives a secret value of {entry.value_len} bytes."
            )
        return PRIVATE_VALUE_LEN
    if entry.value_len != secret and (strict or entry.value_len != PRIVATE_VALUE_LEN):
        kind = (
            "a private key"
            if entry.value_len == PRIVATE_VALUE_LEN
            else f"a {entry.value_len}-byte value"
        )
        raise BackupIntegrityError(
            f"manifest.json: key {entry.name!r} is an {entry.algorithm} key ({secret} bytes) "
            f"but its entry marks it as {kind}."
        )
    if entry.wrapped_len != (secret + 7) // 8 * 8 + 8:
        raise BackupIntegrityError(
            f"manifest.json: key {entry.name!r} is an {entry.algorithm} key but its wrapping "
            f"has {entry.wrapped_len} bytes (RFC 5649 gives {(secret + 7) // 8 * 8 + 8})."
        )
    return secret


def _key_entry(raw: Any) -> KeyEntry:
    doc = _dict(raw)
    entry = KeyEntry(
        id=_str(doc["id"]),
        name=_str(doc["name"]),
        algorithm=_str(doc["algorithm"]),
        purpose=_str(doc["purpose"]),
        state=_str(doc["state"]),
        kcv=None if doc["kcv"] is None else _str(doc["kcv"]),
        fingerprint=None if doc["fingerprint"] is None else _str(doc["fingerprint"]),
        value_len=_int(doc["value_len"]),
        offset=_int(doc["offset"]),
        wrapped_len=_int(doc["wrapped_len"]),
    )
    if entry.wrapped_len < 16 or entry.wrapped_len % 8 or entry.value_len > entry.wrapped_len:
        raise BackupIntegrityError(f"manifest.json: key {entry.name!r} has impossible lengths.")
    return entry


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected text")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError("expected a non-negative integer")
    return value


def _hex(value: Any, length: int) -> str:
    text = _str(value)
    if len(text) != length or not re.fullmatch(r"[0-9A-Fa-f]*", text):
        raise ValueError("expected hex")
    return text


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value
