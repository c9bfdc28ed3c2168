"""Using keys: the one place that decides whether a key may be used now, and records each use.

Every operation goes through ``KeyUseService.authorize`` first: the key's lifecycle state
(``app.domain.usage``: protect operations only ACTIVE, process operations also DEACTIVATED) and
its purpose. A refusal raises ``PolicyError`` and writes a ``denied`` entry. A use that happens
writes one entry (``key.sign``, ``key.verify``, ``key.encrypt``, ``key.decrypt``) with the
SHA-256 and size of its input and output, in the same transaction that makes the output file
visible: no audit entry, no output. The per-key usage counter is the number of successful
protect entries in the audit chain (one source of truth; it cannot drift from the record).

Files are streamed in chunks (``CHUNK_BYTES``); ``progress(done, total)`` is called after each
and ``cancel`` (anything with ``is_set()``, e.g. ``threading.Event``) stops the operation before
its output appears. Outputs are written to a temporary file beside the target, fsynced, and
linked into place (never over an existing file unless ``overwrite``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from app.domain.algorithms import Family
from app.domain.file_format import (
    CHUNK_BYTES,
    EncryptedHeader,
    chunk_aad,
    chunk_count,
    chunk_nonce,
    parse_header,
)
from app.domain.fingerprints import pgp_words
from app.domain.keys import KeyRecord, KeyState
from app.domain.public_formats import PublicFormat, encode_public
from app.domain.usage import (
    RULE_PURPOSE,
    RULE_STATE,
    Operation,
    SignatureMechanism,
    UsageTally,
    default_signature,
    parse_signature,
    state_refusal,
)
from app.errors import (
    DiskFull,
    KeysteadError,
    NotAuthentic,
    NotFoundError,
    OperationCancelled,
    PolicyError,
    StorageError,
    ValidationError,
)
from app.hsm.operations import GCM_TAG_BYTES, AuthenticationFailed, KeyInUse
from app.services import usage_counts
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.guard import Guard, unguarded
from app.services.keys import KeyService, identity_of
from app.services.policy import UsageLimits, load_usage_limits
from app.services.tokens import TokenService
from app.storage.database import Database
from app.storage.files import read_regular

log = logging.getLogger(__name__)

_LIVE = (KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.SUSPENDED)

# Ed25519 is PureEdDSA: the token needs the whole message at once.
ED25519_MAX_BYTES = 64 * 1024 * 1024

Progress = Callable[[int, int], None]


class Cancel(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class UseResult:
    """What one use produced, as recorded in its audit entry."""

    key_id: str
    key_name: str
    operation: Operation
    mechanism: str
    input_sha256: str
    input_bytes: int
    output_sha256: str | None  # None for verify (no output)
    output_bytes: int
    output: Path | None
    event_seq: int


@dataclass(frozen=True)
class PublicExport:
    """A public key as exported: its bytes, fingerprint and words to read aloud."""

    key_id: str
    key_name: str
    format: PublicFormat
    data: bytes
    fingerprint: str  # hex SHA-256 of the DER SubjectPublicKeyInfo
    words: list[str]  # PGP words of the fingerprint
    output: Path | None
    event_seq: int


class KeyUseService:
    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        keys: KeyService,
        operator: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.keys = keys
        self.operator = operator
        self.clock = clock
        self.guard: Guard = unguarded  # the role check (wired by the workstation)
        # The per-purpose usage limits (the workstation's, once wired; read at each use).
        self.limits_source: Callable[[], UsageLimits] = load_usage_limits

    # --- the one check ---------------------------------------------------------------------

    def authorize(self, key: KeyRecord, operation: Operation) -> None:
        """Refuse (PolicyError, with a ``denied`` entry) a use the key's state or purpose
        forbids, or one the operator's roles do not allow (an auditor verifies, never signs,
        encrypts or decrypts). Called before anything is read, computed or written."""
        self.guard(f"key.{operation.value}", f"key:{key.id}")
        refusal = state_refusal(key.state, operation)
        rule = RULE_STATE
        if refusal is None and key.purpose is not operation.purpose:
            refusal = (
                f"Key '{key.name}' was made for {key.purpose.value}, not "
                f"{operation.purpose.value}; it cannot {operation.value}"
            )
            rule = RULE_PURPOSE
        if refusal is None:
            return
        error = PolicyError(f"{refusal}. Nothing was done.", rule)
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=f"key.{operation.value}",
            subject=f"key:{key.id}",
            outcome=Outcome.DENIED,
            details={"rule": rule, "state": key.state.value, "error": error.message},
        )
        raise error

    def usage_count(self, key_id: str) -> int:
        """Successful protect operations recorded for this key: files signed or encrypted,
        messages signed (a batch counts each), requests, certificates and CRLs signed."""
        return self.tallies(key_id).get(key_id, UsageTally()).uses

    def tallies(self, key_id: str | None = None) -> dict[str, UsageTally]:
        """Usage counters of every key (or one) from the audit chain (``usage_counts``)."""
        return usage_counts.tallies(self.db, key_id)

    def usage_due(self, keys: Sequence[KeyRecord]) -> dict[str, str]:
        """Live keys at or near a usage limit of their purpose (resources/usage-limits.toml):
        key id → why (e.g. "usage limit near: AES-GCM invocations …")."""
        return usage_counts.usage_due(self.db, keys, self.limits_source())

    # --- signatures ------------------------------------------------------------------------

    def sign_file(
        self,
        key_ref: str,
        source: Path,
        target: Path,
        mechanism: str | None = None,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> UseResult:
        """A detached raw signature of ``source`` written to ``target``, made on the token."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        self.authorize(key, Operation.SIGN)
        chosen = _mechanism(key, mechanism)
        check_target(target, overwrite, (source,))
        size = _input_size(source)
        session = self.tokens.session(key.token_serial)
        action = Operation.SIGN
        try:
            signer = KeyInUse(session, identity_of(key), key.name)
            if chosen.hash_name is None and size > ED25519_MAX_BYTES:
                raise ValidationError(
                    f"Ed25519 signs the whole file inside the token; files above "
                    f"{ED25519_MAX_BYTES // (1024 * 1024)} MiB are refused. Sign a digest "
                    "manifest of it instead."
                )
            read = _read_input(source, size, progress, cancel, chosen.hash_name)
            if chosen.hash_name is None:
                signature = signer.sign_message(read.payload)
            else:
                signature = signer.sign_digest(chosen, read.payload)
            input_sha256 = read.sha256
        except KeysteadError as exc:
            self._failed(key, action, chosen.value, exc)
            raise
        return self._publish(
            key,
            action,
            chosen.value,
            input_sha256,
            size,
            target,
            overwrite,
            lambda out: out.write(signature),
        )

    def sign_file_cms(
        self,
        key_ref: str,
        source: Path,
        target: Path,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> UseResult:
        """A CMS (RFC 5652) detached SignedData of ``source``, DER, with the key's newest
        unrevoked certificate made here (``app.pki.cms``); signed on the token. Recorded as
        ``key.sign`` with mechanism ``CMS/<digest>``."""
        from app.pki import cms
        from app.pki.build import signature_for
        from app.storage.certificates import CertificateRepository

        assert_core_thread()
        key = self.keys.resolve(key_ref)
        self.authorize(key, Operation.SIGN)
        if key.algorithm.family is Family.EDDSA:
            # Debian's OpenSSL 3.0 refuses Ed25519 SignerInfos with signed attributes
            # ("eddsa_digest_signverify_init: invalid digest"): recipients could not check it.
            raise ValidationError(
                "CMS signatures with Ed25519 keys are not offered (OpenSSL 3.0 cannot verify "
                "them); use a raw Ed25519 signature, or an RSA or ECDSA key for CMS."
            )
        certificate = CertificateRepository(self.db).newest_for_key(key.id)
        if certificate is None:
            raise ValidationError(
                f"A CMS signature carries the signer's certificate, and key '{key.name}' has "
                "none made here; issue one (certs self-sign or certs sign-csr) first."
            )
        check_target(target, overwrite, (source,))
        size = _input_size(source)
        digest_name = cms.digest_name(key.algorithm)
        mechanism = f"CMS/{digest_name.upper()}"
        chosen = signature_for(key.algorithm).mechanism
        session = self.tokens.session(key.token_serial)
        try:
            signer = KeyInUse(session, identity_of(key), key.name)
            read = _read_input(source, size, progress, cancel, digest_name)

            def sign(data: bytes) -> bytes:
                if chosen.hash_name is None:
                    return signer.sign_message(data)
                return signer.sign_digest(chosen, hashlib.new(chosen.hash_name, data).digest())

            if key.algorithm.family is Family.EC and chosen.hash_name != digest_name:
                raise ValidationError("CMS digest and ECDSA hash disagree.")  # never: one table
            der = cms.detached_signed_data(
                key.algorithm, certificate.der, read.payload, self.clock(), sign
            )
        except KeysteadError as exc:
            self._failed(key, Operation.SIGN, mechanism, exc)
            raise
        return self._publish(
            key,
            Operation.SIGN,
            mechanism,
            read.sha256,
            size,
            target,
            overwrite,
            lambda out: out.write(der),
        )

    def sign_messages(
        self,
        key_ref: str,
        messages: Sequence[bytes],
        mechanism: str | None = None,
        *,
        cancel: Cancel | None = None,
    ) -> list[bytes]:
        """Detached signatures of many small messages, made on the token in one authorised
        batch (one state check, one key lookup) and recorded as one ``key.sign`` entry with
        ``batch`` = the count. Its ``input_sha256`` is the SHA-256 of the concatenated SHA-256
        of every message in order, ``output_sha256`` the same over the signatures, so each
        message and signature can be matched to the entry afterwards."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        self.authorize(key, Operation.SIGN)
        chosen = _mechanism(key, mechanism)
        if not messages:
            raise ValidationError("Nothing to sign.")
        session = self.tokens.session(key.token_serial)
        inputs = hashlib.sha256()
        outputs = hashlib.sha256()
        signatures: list[bytes] = []
        hash_name = chosen.hash_name
        try:
            signer = KeyInUse(session, identity_of(key), key.name)
            for message in messages:
                if cancel is not None and cancel.is_set():
                    raise OperationCancelled("Cancelled; no signature was handed out.")
                inputs.update(hashlib.sha256(message).digest())
                if hash_name is None:
                    signature = signer.sign_message(message)
                else:
                    signature = signer.sign_digest(chosen, hashlib.new(hash_name, message).digest())
                outputs.update(hashlib.sha256(signature).digest())
                signatures.append(signature)
            with self.db.transaction():
                record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="key.sign",
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        "mechanism": chosen.value,
                        "batch": len(messages),
                        "input_sha256": inputs.hexdigest(),
                        "input_bytes": sum(len(m) for m in messages),
                        "output_sha256": outputs.hexdigest(),
                    },
                )
        except KeysteadError as exc:
            self._failed(key, Operation.SIGN, chosen.value, exc)
            raise
        return signatures

    def verify_file(
        self,
        key_ref: str,
        source: Path,
        signature_file: Path,
        mechanism: str | None = None,
        *,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> UseResult:
        """Check a detached raw signature with the key's public key (kept in the database as
        its SubjectPublicKeyInfo; no token needed). Raises NotAuthentic, recorded as a
        ``failed`` verification, when it does not match."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        self.authorize(key, Operation.VERIFY)
        chosen = _mechanism(key, mechanism)
        spki = self.keys.repo.spki(key.id)
        if spki is None:
            raise ValidationError(f"Key '{key.name}' has no public key recorded.")
        public = serialization.load_der_public_key(spki)
        signature = _read_small(signature_file, "signature")
        size = _input_size(source)
        if chosen.hash_name is None and size > ED25519_MAX_BYTES:
            raise ValidationError("Ed25519 files above 64 MiB are not verified here.")
        read = _read_input(source, size, progress, cancel, chosen.hash_name)
        valid = _verify(public, chosen, signature, read.payload, chosen.hash_name)
        details = {
            "mechanism": chosen.value,
            "input_sha256": read.sha256,
            "input_bytes": size,
            "signature_sha256": hashlib.sha256(signature).hexdigest(),
            "valid": valid,
        }
        if not valid:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.verify",
                subject=f"key:{key.id}",
                outcome=Outcome.FAILED,
                details=details,
            )
            raise NotAuthentic(
                f"The signature does not match '{source.name}' under key '{key.name}' "
                f"({chosen.value}): the file or the signature was changed, or another key "
                "signed it."
            )
        with self.db.transaction():
            seq = record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.verify",
                subject=f"key:{key.id}",
                outcome=Outcome.SUCCESS,
                details=details,
            )
        return UseResult(
            key.id,
            key.name,
            Operation.VERIFY,
            chosen.value,
            read.sha256,
            size,
            None,
            0,
            None,
            seq,
        )

    # --- AES-GCM file encryption -----------------------------------------------------------

    def encrypt_file(
        self,
        key_ref: str,
        source: Path,
        target: Path,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> UseResult:
        """Encrypt ``source`` with AES-GCM inside the token into ``target`` in Keystead's file
        format (docs/file-encryption.md)."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        self.authorize(key, Operation.ENCRYPT)
        if key.algorithm.family is not Family.AES:
            raise ValidationError(f"Key '{key.name}' is not an AES key; files need AES-GCM.")
        check_target(target, overwrite, (source,))
        size = _input_size(source)
        _check_space(target, EncryptedHeader.sealed_size(size))
        header = EncryptedHeader.new(uuid.UUID(key.id), size)
        session = self.tokens.session(key.token_serial)
        audit_hash = hashlib.sha256()

        def write(out: IO[bytes]) -> None:
            head = header.encode()
            out.write(head)
            cipher = KeyInUse(session, identity_of(key), key.name)
            chunks = _chunks(source, size, progress, cancel, at_least_one=True)
            for index, block in enumerate(chunks):
                audit_hash.update(block)
                out.write(
                    cipher.gcm_encrypt(
                        chunk_nonce(header.nonce_prefix, index), chunk_aad(head, index), block
                    )
                )

        try:
            return self._publish(
                key,
                Operation.ENCRYPT,
                "AES-GCM",
                None,
                size,
                target,
                overwrite,
                write,
                input_hash=audit_hash,
                extra={"invocations": chunk_count(size)},  # GCM invocations (usage limit)
            )
        except KeysteadError as exc:
            self._failed(key, Operation.ENCRYPT, "AES-GCM", exc)
            raise

    def _decryption_key(self, key_ref: str | None, header_key: str, source: Path) -> KeyRecord:
        """The header's key; or ``key_ref`` when the header's key is not on this workstation
        (a copy imported under its own id from another workstation: the header is in every
        chunk's AAD, so a wrong key fails authentication and writes nothing)."""
        try:
            recorded: KeyRecord | None = self.keys.resolve(header_key)
        except NotFoundError:
            recorded = None
        if key_ref is None:
            if recorded is None:
                raise NotFoundError(
                    f"'{source.name}' was encrypted under key {header_key}, which this "
                    "workstation does not hold; name the key to decrypt with (for example a "
                    "copy imported with keys import-wrapped)."
                )
            return recorded
        named = self.keys.resolve(key_ref)
        if recorded is not None and recorded.id != named.id:
            raise ValidationError(
                f"'{source.name}' was encrypted under key '{recorded.name}', not '{key_ref}'."
            )
        return named

    def decrypt_file(
        self,
        key_ref: str | None,
        source: Path,
        target: Path,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> UseResult:
        """Decrypt a Keystead-encrypted file. The key is the one named in the header (``key_ref``
        must agree when given). Every chunk is authenticated before the output appears; a
        tampered, truncated or extended file leaves no output."""
        assert_core_thread()
        size = _input_size(source)
        with source.open("rb") as handle:
            header, head = parse_header(handle.read(EncryptedHeader.SIZE))
        key = self._decryption_key(key_ref, str(header.key_id), source)
        self.authorize(key, Operation.DECRYPT)
        expected = EncryptedHeader.sealed_size(header.plaintext_bytes)
        if size != expected:
            raise _not_authentic(source, "its length does not match its header")
        check_target(target, overwrite, (source,))
        _check_space(target, header.plaintext_bytes)
        session = self.tokens.session(key.token_serial)
        input_hash = hashlib.sha256(head)
        count = chunk_count(header.plaintext_bytes)

        def write(out: IO[bytes]) -> None:
            cipher = KeyInUse(session, identity_of(key), key.name)
            done = 0
            with source.open("rb") as handle:
                handle.seek(EncryptedHeader.SIZE)
                for index in range(count):
                    if cancel is not None and cancel.is_set():
                        raise OperationCancelled("Decryption cancelled; no output was written.")
                    length = min(CHUNK_BYTES, header.plaintext_bytes - index * CHUNK_BYTES)
                    sealed = handle.read(length + GCM_TAG_BYTES)
                    input_hash.update(sealed)
                    try:
                        block = cipher.gcm_decrypt(
                            chunk_nonce(header.nonce_prefix, index), chunk_aad(head, index), sealed
                        )
                    except AuthenticationFailed as exc:
                        raise _not_authentic(source, f"chunk {index} fails its check") from exc
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, header.plaintext_bytes)

        try:
            return self._publish(
                key,
                Operation.DECRYPT,
                "AES-GCM",
                None,
                size,
                target,
                overwrite,
                write,
                input_hash=input_hash,
            )
        except KeysteadError as exc:
            self._failed(key, Operation.DECRYPT, "AES-GCM", exc)
            raise

    # --- shared ----------------------------------------------------------------------------

    def _publish(
        self,
        key: KeyRecord,
        operation: Operation,
        mechanism: str,
        input_sha256: str | None,
        input_bytes: int,
        target: Path,
        overwrite: bool,
        write: Callable[[IO[bytes]], Any],
        input_hash: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> UseResult:
        """Write the output and record the use (``write_recorded``); ``input_sha256`` may be
        left None when ``write`` feeds ``input_hash`` as it reads."""
        details: dict[str, Any] = {
            "mechanism": mechanism,
            "input_bytes": input_bytes,
            **(extra or {}),
        }

        def finish(details: dict[str, Any]) -> None:
            details["input_sha256"] = input_sha256 or input_hash.hexdigest()

        seq, output_sha256, output_bytes = self.write_recorded(
            key, f"key.{operation.value}", details, target, overwrite, write, finish
        )
        log.info(
            "key %s: %s of %d bytes recorded as #%d", key.id, operation.value, input_bytes, seq
        )
        return UseResult(
            key.id,
            key.name,
            operation,
            mechanism,
            details["input_sha256"],
            input_bytes,
            output_sha256,
            output_bytes,
            target,
            seq,
        )

    def write_recorded(
        self,
        key: KeyRecord,
        action: str,
        details: dict[str, Any],
        target: Path,
        overwrite: bool,
        write: Callable[[IO[bytes]], Any],
        finish: Callable[[dict[str, Any]], None] | None = None,
        within: Callable[[], None] | None = None,
        *,
        operators: tuple[str, ...] | None = None,
        within_seq: Callable[[int], None] | None = None,
    ) -> tuple[int, str, int]:
        """Write the output to a temporary file beside ``target`` and make it visible in the
        transaction of its audit entry: if the entry cannot be written the output goes too.
        ``details`` gets the output's SHA-256, size and name. Returns (entry seq, output
        SHA-256, output size). ``within`` runs inside the same transaction (e.g. storing the
        artefact's record); ``within_seq`` too, given the entry's seq. ``operators``: who
        stands behind it (an ``Authorisation``), default the operator alone."""
        directory = target.parent
        fd, temp_name = tempfile.mkstemp(prefix=".keystead-", suffix=".part", dir=directory)
        temp = Path(temp_name)
        placed = False
        try:
            output_hash = hashlib.sha256()
            with os.fdopen(fd, "wb") as raw:
                out = _HashingWriter(raw, output_hash)
                write(out)  # type: ignore[arg-type]
                raw.flush()
                os.fsync(raw.fileno())
            if finish is not None:
                finish(details)
            details.update(
                output_sha256=output_hash.hexdigest(),
                output_bytes=out.count,
                output_name=target.name,
            )
            with self.db.transaction():
                seq = record(
                    self.db,
                    when=self.clock(),
                    operators=operators if operators is not None else (self.operator,),
                    action=action,
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details=details,
                )
                if within is not None:
                    within()
                if within_seq is not None:
                    within_seq(seq)
                _place(temp, target, overwrite)
                placed = True
            _fsync_dir(directory)
        except OSError as exc:
            if placed:
                with contextlib.suppress(OSError):
                    target.unlink()
            raise _os_error(exc, target) from exc
        except BaseException:
            if placed:
                with contextlib.suppress(OSError):
                    target.unlink()
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return seq, output_hash.hexdigest(), out.count

    # --- distribution: public keys ---------------------------------------------------------

    def export_public(
        self,
        key_ref: str,
        fmt: PublicFormat,
        target: Path | None = None,
        *,
        overwrite: bool = False,
    ) -> PublicExport:
        """The key's public key in ``fmt``, with its SHA-256 fingerprint (of the SPKI) and PGP
        words for reading aloud; written to ``target`` when given. Public keys are public: any
        state may export (a deactivated or compromised key's public key still verifies old
        signatures). Recorded as ``key.export-public`` with the output's SHA-256."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        if key.algorithm.symmetric:
            raise ValidationError(f"Key '{key.name}' is a secret key; it has no public key.")
        spki = self.keys.repo.spki(key.id)
        if spki is None:
            raise ValidationError(f"Key '{key.name}' has no public key recorded.")
        data = encode_public(spki, fmt, comment=key.name)
        fingerprint = hashlib.sha256(spki).hexdigest()
        details: dict[str, Any] = {"format": fmt.value, "fingerprint": fingerprint}
        if target is not None:
            check_target(target, overwrite)
            seq, _sha, _count = self.write_recorded(
                key, "key.export-public", details, target, overwrite, lambda out: out.write(data)
            )
        else:
            details.update(output_sha256=hashlib.sha256(data).hexdigest(), output_bytes=len(data))
            with self.db.transaction():
                seq = record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="key.export-public",
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details=details,
                )
        words = pgp_words(bytes.fromhex(fingerprint))
        return PublicExport(key.id, key.name, fmt, data, fingerprint, words, target, seq)

    def _failed(
        self, key: KeyRecord, operation: Operation, mechanism: str, exc: KeysteadError
    ) -> None:
        outcome = Outcome.ABORTED if isinstance(exc, OperationCancelled) else failure_outcome(exc)
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=f"key.{operation.value}",
            subject=f"key:{key.id}",
            outcome=outcome,
            details={"mechanism": mechanism, "error": exc.message},
        )


class _HashingWriter:
    """A binary writer that hashes and counts what passes through."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self.raw = raw
        self.digest = digest
        self.count = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.raw.write(data)


def _mechanism(key: KeyRecord, name: str | None) -> SignatureMechanism:
    if name:
        return parse_signature(name, key.algorithm)
    return default_signature(key.algorithm)


def _verify(
    public: Any, mechanism: SignatureMechanism, signature: bytes, data: bytes, hash_name: str | None
) -> bool:
    """Check a signature over a digest (``hash_name``) or a whole message (Ed25519)."""
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
            return True
        algorithm = {
            "sha256": hashes.SHA256(),
            "sha384": hashes.SHA384(),
            "sha512": hashes.SHA512(),
        }[hash_name or ""]
        prehashed = _prehashed(algorithm)
        if isinstance(public, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
                if mechanism.pss
                else padding.PKCS1v15()
            )
            public.verify(signature, data, pad, prehashed)
            return True
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(prehashed))
            return True
    except InvalidSignature:
        return False
    raise ValidationError("The key's public key type cannot verify this signature.")


def _prehashed(algorithm: hashes.HashAlgorithm) -> Any:
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    return Prehashed(algorithm)


def _input_size(source: Path) -> int:
    try:
        info = source.stat()
    except FileNotFoundError as exc:
        raise ValidationError(f"'{source}' does not exist.") from exc
    except OSError as exc:
        raise ValidationError(f"'{source}' cannot be read: {exc.strerror}.") from exc
    if not source.is_file():
        raise ValidationError(f"'{source}' is not a regular file.")
    return info.st_size


def _read_small(path: Path, what: str, limit: int = 1 << 16) -> bytes:
    return read_regular(path, what, limit)


@dataclass(frozen=True)
class _Read:
    payload: bytes  # the message digest, or the whole file when no hash was named (Ed25519)
    sha256: str  # hex SHA-256 of the file (the audit entry's input hash)


def _read_input(
    source: Path,
    size: int,
    progress: Progress | None,
    cancel: Cancel | None,
    hash_name: str | None,
) -> _Read:
    """Stream ``source`` once (``_chunks``: progress, cancel, change detection), feeding the
    audit SHA-256 and either the message hash ``hash_name`` (hashlib name) or, with None, a
    buffer of the whole file (PureEdDSA signs the message itself)."""
    audit_hash = hashlib.sha256()
    message_hash = hashlib.new(hash_name) if hash_name is not None else None
    whole = bytearray()
    for block in _chunks(source, size, progress, cancel):
        audit_hash.update(block)
        if message_hash is not None:
            message_hash.update(block)
        else:
            whole += block
    payload = message_hash.digest() if message_hash is not None else bytes(whole)
    return _Read(payload, audit_hash.hexdigest())


def _chunks(
    source: Path,
    size: int,
    progress: Progress | None,
    cancel: Cancel | None,
    at_least_one: bool = False,
) -> Iterator[bytes]:
    """The file in CHUNK_BYTES blocks; checks ``cancel`` before each, reports after each.
    With ``at_least_one`` an empty file yields one empty block."""
    done = 0
    with source.open("rb") as handle:
        while True:
            if cancel is not None and cancel.is_set():
                raise OperationCancelled("Cancelled; no output was written.")
            block = handle.read(CHUNK_BYTES)
            if not block and not (at_least_one and done == 0):
                break
            at_least_one = False
            done += len(block)
            yield block
            if progress is not None:
                progress(done, size)
            if len(block) < CHUNK_BYTES:
                break
    if done != size:
        raise ValidationError(f"'{source.name}' changed while it was read; nothing was written.")


def check_target(target: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output that exists (unless ``overwrite``), is not a regular file, has no
    folder, or is one of the ``inputs`` under any name (same device and inode: the same path,
    a symlink or a hard link), which ``--overwrite`` would replace with the output."""
    for source in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(source, target):
                raise ValidationError(
                    f"'{target}' is the input file '{source}' itself; write the output to "
                    "another file."
                )
    if target.exists() and not overwrite:
        raise ValidationError(
            f"'{target}' already exists; choose another name or pass --overwrite."
        )
    if target.exists() and not target.is_file():
        raise ValidationError(f"'{target}' is not a regular file.")
    if not target.parent.is_dir():
        raise ValidationError(f"The folder '{target.parent}' does not exist.")


def _check_space(target: Path, needed: int) -> None:
    free = shutil.disk_usage(target.parent).free
    if needed > free:
        raise DiskFull(
            f"'{target.parent}' has {free} bytes free and the output needs {needed}; "
            "free space or choose other media. Nothing was written."
        )


def _place(temp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished file into place; without ``overwrite`` never replace a file that
    appeared meanwhile (link fails with EEXIST)."""
    if overwrite:
        os.replace(temp, target)
    else:
        os.link(temp, target)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError, target: Path) -> KeysteadError:
    import errno

    if exc.errno == errno.ENOSPC:
        return DiskFull(f"The disk holding '{target}' is full; nothing was written.")
    if exc.errno == errno.EEXIST:
        return ValidationError(f"'{target}' appeared meanwhile; nothing was overwritten.")
    return StorageError(f"Could not write '{target}': {exc.strerror}. Nothing was written.")


def _not_authentic(source: Path, why: str) -> KeysteadError:
    return NotAuthentic(
        f"'{source.name}' is not an authentic Keystead-encrypted file ({why}): it was changed, "
        "truncated or extended. No output was written."
    )
