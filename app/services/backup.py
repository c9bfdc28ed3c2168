"""Encrypted offline backups: create (written, read back and verified before anything is
recorded), verify without restoring, and the restore drill.

The format is app/backup/format.py (docs/backup-format.md). The KEK is 32 bytes from the
token's RNG, fresh per backup; keys are wrapped inside the token under it while it is a
CKA_TRUSTED session object (app/hsm/backup_wrap.py); it leaves Keystead only as SLIP-39 shares
shown to custodians and/or wrapped under a recovery passphrase (Argon2id). Nothing is marked
backed up until every file was read back from the medium and matched the signed manifest.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from app.backup import format as fmt
from app.backup import media, shares
from app.domain.algorithms import Family
from app.domain.audit import AuditEntry, Checkpoint, verify_chain
from app.domain.backup_rules import unwrappable_reason
from app.domain.kdf import kdf_cost_problem
from app.domain.key_history import vouched
from app.domain.keys import KeyRecord, KeyState, TokenSync, TrustedWrap
from app.domain.known_keys import KnownKeys, material_of
from app.domain.lifecycle import usage_in_state
from app.domain.names import validate_key_name
from app.errors import (
    BackupIntegrityError,
    DiskFull,
    KeysteadError,
    PolicyError,
    StorageError,
    TokenError,
    ValidationError,
)
from app.hsm.backup_wrap import (
    WrappedKey,
    token_random,
    trusted_kek,
    user_kek,
)
from app.services.airgap import AirGapGuard
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.audit_log import AuditLog
from app.services.executor import assert_core_thread
from app.services.tokens import TokenService
from app.storage.backups import BackupRecord, BackupRepository, stamp
from app.storage.database import Database
from app.storage.files import read_regular
from app.storage.repository import KeyRepository, key_document, key_from_document

log = logging.getLogger(__name__)

# Recovery passphrase: Argon2id, RFC 9106's second recommendation (as the keyslots).
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_ITERATIONS = 3
ARGON2_LANES = 4
MIN_PASSPHRASE = 16
_GONE = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)
# Room left for the file system's own bookkeeping when checking free space.
SPACE_MARGIN = 1024 * 1024

Approver = Callable[[str, str, Mapping[str, object]], tuple[str, ...]]
# Progress of a backup being written: (stage, done, total). Stages, in order: "wrap" (keys
# wrapped by the token), "seal" (metadata, audit history and the passphrase's Argon2id),
# "write" (files synced to the medium), "verify" (files read back).
# The callback may raise OperationCancelled to stop: the new directory is then removed.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Refusal:
    """A key that will not be in the backup (or not restored), and why (shown before anything
    is written). ``needs_action``: a restore left the key out for a reason someone must act on
    (a name taken here, its token not logged in...), not because it is already here or retired;
    the restore is then incomplete (the CLI exits 1)."""

    key_id: str
    name: str
    reason: str
    needs_action: bool = False


@dataclass(frozen=True)
class BackupPlan:
    keys: tuple[KeyRecord, ...]
    refused: tuple[Refusal, ...]


@dataclass(frozen=True)
class ShareCard:
    """What each custodian's card shows with their share (nothing is written yet)."""

    backup_id: str
    generation: int
    kek_check_value: str
    signer_fingerprint: str
    share_set: shares.ShareSet


@dataclass(frozen=True)
class CreatedBackup:
    directory: Path
    manifest: fmt.Manifest
    share_set: shares.ShareSet | None  # shown to custodians, never written by Keystead
    refused: tuple[Refusal, ...]


@dataclass
class VerifyReport:
    directory: Path
    manifest: fmt.Manifest
    signer_known: bool | None  # True: this workstation's key; None: another workstation
    kek_checked: bool = False
    drilled: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreReport:
    """``restored``: keys brought onto the token, new records and ``rebound`` ones (a record
    here whose token object was gone, now pointing at the restored object); ``renamed``:
    backup name -> name here."""

    manifest: fmt.Manifest
    restored: tuple[KeyRecord, ...]
    skipped: tuple[Refusal, ...]
    audit_entries: int
    rebound: tuple[KeyRecord, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()

    @property
    def incomplete(self) -> bool:
        """A key of the backup was left out for a reason someone must act on."""
        return any(s.needs_action for s in self.skipped)


@dataclass(frozen=True)
class KekSecret:
    """How the KEK is given back: shares (with their optional passphrase) or a passphrase."""

    mnemonics: tuple[str, ...] = field(default=(), repr=False)
    share_passphrase: bytes = field(default=b"", repr=False)
    recovery_passphrase: str | None = field(default=None, repr=False)


def plan_keys(keys: Sequence[KeyRecord], serial: str, chosen: set[str] | None) -> BackupPlan:
    """Which keys go into a backup of token ``serial`` and which cannot, with reasons."""
    taken: list[KeyRecord] = []
    refused: list[Refusal] = []
    for key in keys:
        if chosen is not None and key.id not in chosen and key.name not in chosen:
            continue
        if key.state in _GONE:
            if chosen is not None:
                refused.append(Refusal(key.id, key.name, "destroyed"))
            continue
        if key.state is KeyState.COMPROMISED:
            # A restore never brings a compromised key back (NIST SP 800-57 Part 1 §5.3.4):
            # copying its material onto a new medium only spreads it.
            refused.append(
                Refusal(key.id, key.name, "compromised: a restore never brings it back")
            )
            continue
        if not key.extractable:
            refused.append(
                Refusal(key.id, key.name, "not extractable (generated to stay on its token)")
            )
        elif key.token_serial != serial:
            refused.append(Refusal(key.id, key.name, f"on another token ({key.token_label})"))
        elif (never := unwrappable_reason(key.algorithm)) is not None:
            refused.append(Refusal(key.id, key.name, never))
        else:
            taken.append(key)
    if chosen is not None:
        known = {k.id for k in keys} | {k.name for k in keys}
        for missing in sorted(chosen - known):
            raise ValidationError(f"No key '{missing}' to back up; nothing was written.")
    return BackupPlan(tuple(taken), tuple(refused))


def _passphrase_slot(kek: bytes, passphrase: str) -> dict[str, Any]:
    salt = os.urandom(16)
    derived = Argon2id(
        salt=salt,
        length=32,
        iterations=ARGON2_ITERATIONS,
        lanes=ARGON2_LANES,
        memory_cost=ARGON2_MEMORY_KIB,
    ).derive(passphrase.encode("utf-8"))
    return {
        "kdf": "argon2id",
        "salt": base64.b64encode(salt).decode("ascii"),
        "memory_kib": ARGON2_MEMORY_KIB,
        "iterations": ARGON2_ITERATIONS,
        "lanes": ARGON2_LANES,
        "wrapped_kek": base64.b64encode(aes_key_wrap_with_padding(derived, kek)).decode("ascii"),
    }


def kek_from_passphrase(slot: Mapping[str, Any], passphrase: str) -> bytes:
    problem = kdf_cost_problem(slot.get("memory_kib"), slot.get("iterations"), slot.get("lanes"))
    if problem is not None:  # refused before Argon2id runs: a hostile cost cannot hang it
        raise BackupIntegrityError(
            f"The manifest's passphrase entry is refused: {problem}. Nothing was touched."
        )
    try:
        derived = Argon2id(
            salt=base64.b64decode(slot["salt"]),
            length=32,
            iterations=int(slot["iterations"]),
            lanes=int(slot["lanes"]),
            memory_cost=int(slot["memory_kib"]),
        ).derive(passphrase.encode("utf-8"))
        return aes_key_unwrap_with_padding(derived, base64.b64decode(slot["wrapped_kek"]))
    except InvalidUnwrap:
        raise BackupIntegrityError(
            "The recovery passphrase is wrong (the KEK does not unwrap); nothing was touched."
        ) from None
    except (KeyError, ValueError, TypeError):
        raise BackupIntegrityError("The manifest's passphrase entry is malformed.") from None


def check_passphrase_strength(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE or len(set(passphrase)) < 8:
        raise ValidationError(
            f"A recovery passphrase needs at least {MIN_PASSPHRASE} characters and 8 different "
            "ones (several unrelated words work well); nothing was written."
        )


def recover_kek(manifest: fmt.Manifest, secret: KekSecret) -> bytes:
    """The KEK from shares or the passphrase, checked against the manifest's check value."""
    if secret.mnemonics:
        if manifest.shares is None:
            raise BackupIntegrityError("This backup has no custodian shares; use its passphrase.")
        kek = shares.combine(
            secret.mnemonics, int(manifest.shares["identifier"]), secret.share_passphrase
        )
    elif secret.recovery_passphrase is not None:
        if manifest.passphrase is None:
            raise BackupIntegrityError("This backup has no recovery passphrase; use the shares.")
        kek = kek_from_passphrase(manifest.passphrase, secret.recovery_passphrase)
    else:
        raise ValidationError("Give the custodians' shares or the recovery passphrase.")
    if len(kek) != fmt.KEK_BYTES or fmt.kek_check_value(kek) != manifest.kek_check_value.upper():
        raise BackupIntegrityError(
            "The shares or passphrase give a KEK whose check value differs from the manifest's "
            "(a wrong share passphrase, or shares of another backup); nothing was touched."
        )
    return kek


MAX_SIGNATURE_FILE = 4096  # an ECDSA signature is under 150 bytes


def _read_backup_file(path: Path, limit: int) -> bytes:
    return read_regular(path, "backup file", limit, error=BackupIntegrityError)


def verify_directory(
    directory: Path,
    known_signer: bytes | None = None,
    read: Callable[[Path, int], bytes] | None = None,
) -> tuple[fmt.Manifest, dict[str, bytes]]:
    """Structure, signature, sizes and SHA-256 of a backup directory (no KEK needed).

    Returns the manifest and each data file's bytes. ``known_signer``: the SPKI this
    workstation signs with; a manifest signed by another key is then refused. ``read(path,
    limit)`` reads one file (default: ``read_regular``; the read-back of a new backup passes
    ``media.read_uncached``): every file must be a regular file no larger than its format
    allows (a data file: the size the manifest names, plus 1 MiB), so a device or FIFO in its
    place is refused, never read without end.
    """
    read = read or _read_backup_file
    if not directory.is_dir():
        raise BackupIntegrityError(f"{directory} is not a backup directory.")
    present = sorted(p.name for p in directory.iterdir())
    if fmt.MANIFEST not in present:
        refuse_a_medium(directory)
    missing = [n for n in fmt.ALL_FILES if n not in present]
    extra = [n for n in present if n not in fmt.ALL_FILES]
    if fmt.MANIFEST in missing:
        raise BackupIntegrityError(
            f"{directory.name} has no manifest.json: the backup is incomplete (interrupted?) "
            "and cannot be used."
        )
    if missing:
        raise BackupIntegrityError(f"{directory.name} lacks {', '.join(missing)}.")
    if extra:
        raise BackupIntegrityError(
            f"{directory.name} holds files that are not part of the backup: {', '.join(extra)}."
        )
    manifest_bytes = read(directory / fmt.MANIFEST, fmt.MAX_MANIFEST)
    manifest = fmt.Manifest.parse(manifest_bytes)
    signature = read(directory / fmt.SIGNATURE, MAX_SIGNATURE_FILE)
    try:
        spki = base64.b64decode(manifest.signer_spki)
        public = serialization.load_der_public_key(spki)
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise BackupIntegrityError("The manifest's signing key is not an EC key.")
        public.verify(signature, manifest_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BackupIntegrityError(
            "manifest.json's signature does not verify: the manifest was changed or the "
            "signature belongs to another backup."
        ) from None
    except ValueError:
        raise BackupIntegrityError("The manifest's signing key cannot be read.") from None
    if known_signer is not None and spki != known_signer:
        raise BackupIntegrityError(
            "manifest.json is signed by a key that is not this workstation's "
            f"(fingerprint {fmt.sha256_hex(spki)[:16]}…)."
        )
    data: dict[str, bytes] = {}
    for name in fmt.DATA_FILES:
        facts = manifest.files[name]
        content = read(directory / name, int(facts["size"]) + (1 << 20))
        if len(content) != facts["size"]:
            raise BackupIntegrityError(
                f"{name} has {len(content)} bytes; the manifest says {facts['size']} "
                "(truncated or from another backup)."
            )
        if fmt.sha256_hex(content) != str(facts["sha256"]).lower():
            raise BackupIntegrityError(
                f"{name} does not match the manifest's SHA-256 (damaged or from another backup)."
            )
        data[name] = content
    end = 0
    for entry in sorted(manifest.keys, key=lambda e: e.offset):
        fmt.unwrap_length(entry)  # its kind agrees with its algorithm
        if entry.offset != end:
            raise BackupIntegrityError(f"keys.bin: key {entry.name!r} is not where it should be.")
        end = entry.offset + entry.wrapped_len
    if end != len(data[fmt.KEYS]):
        raise BackupIntegrityError("keys.bin holds bytes the manifest does not account for.")
    return manifest, data


def refuse_a_medium(directory: Path) -> None:
    """A directory without a manifest that holds backup directories is the medium (or the
    folder) backups were written to, not a backup: name the ones it holds, newest first."""
    held = sorted(
        (p.name for p in directory.iterdir() if p.is_dir() and fmt.is_directory_name(p.name)),
        reverse=True,
    )
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise BackupIntegrityError(
            f"{directory} holds backups, it is not one: give one of its backup directories "
            f"({shown}), e.g. {directory / held[0]}."
        )


class BackupService:
    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        audit: AuditLog,
        airgap: AirGapGuard,
        operator: str,
        workstation_id: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.audit = audit
        self.airgap = airgap
        self.operator = operator
        self.workstation_id = workstation_id
        self.clock = clock
        self.keys = KeyRepository(db)
        self.repo = BackupRepository(db)
        # The dual-control hook: who stands behind a backup action (the one approval service).
        self.approve: Approver = lambda _action, _subject, _parameters: (operator,)

    # --- planning ----------------------------------------------------------------------------

    def plan(self, token_ref: str, chosen: set[str] | None = None) -> BackupPlan:
        assert_core_thread()
        session = self.tokens.session(token_ref)
        return plan_keys(self.keys.all(), session.info.serial, chosen)

    def backups(self) -> list[BackupRecord]:
        assert_core_thread()
        return self.repo.all()

    def coverage(self) -> tuple[int, int]:
        """(keys at risk, backup-able keys): live extractable keys, and how many of them are in
        no verified backup (a lost token loses those)."""
        assert_core_thread()
        newest = self.repo.newest_per_key()
        live = [
            k
            for k in self.keys.all()
            if k.extractable and k.state not in (*_GONE, KeyState.COMPROMISED)
        ]
        return sum(1 for k in live if k.id not in newest), len(live)

    # --- create ------------------------------------------------------------------------------

    def create(
        self,
        target: Path,
        token_ref: str,
        so_pin: str,
        user_pin: str,
        threshold: int = 0,
        custodians: Sequence[str] = (),
        recovery_passphrase: str | None = None,
        chosen: set[str] | None = None,
        share_passphrase: bytes = b"",
        volume: media.Volume | None = None,
        deliver: Callable[[ShareCard], None] | None = None,
        progress: Progress | None = None,
    ) -> CreatedBackup:
        """Write a new backup directory under ``target``, read it back, verify it, and only
        then record it and mark its keys backed up. Raises before writing for anything that
        can be checked first; on a failure while writing, the new directory is removed.

        The KEK and its shares are made first and handed to ``deliver`` (the custodians' share
        cards, shown one at a time) before anything is written: if delivery fails or is
        cancelled, nothing is written, and a backup never exists whose shares were not handed
        out. Shares are required to have a ``deliver``. ``progress`` (stage, done, total) is
        called as keys are wrapped and files written and read back; if it raises
        OperationCancelled, the new directory is removed and nothing is recorded."""
        assert_core_thread()
        custodians = shares.custodian_plan(custodians, threshold)
        session = self.tokens.session(token_ref)
        info = session.info
        subject = f"token:{info.serial}"
        if not custodians and recovery_passphrase is None:
            raise ValidationError("Protect the backup KEK with custodians' shares or a passphrase.")
        if recovery_passphrase is not None:
            check_passphrase_strength(recovery_passphrase)
        if not target.is_dir():
            raise ValidationError(f"{target} is not a directory; nothing was written.")
        if not os.access(target, os.W_OK):
            raise StorageError(f"{target} is read-only or not writable; nothing was written.")
        audit_serial = self.audit.token_serial
        if audit_serial is None or audit_serial not in {
            s.info.serial for s in self.tokens.logged_in()
        }:
            raise PolicyError(
                "Log in to the audit token first: it signs the backup's manifest.",
                rule="KS-BACKUP-SIGNER",
            )
        plan = self.plan(token_ref, chosen)
        if not plan.keys:
            raise ValidationError(
                "No key on this token can be backed up"
                + (
                    ": " + "; ".join(f"{r.name}: {r.reason}" for r in plan.refused)
                    if plan.refused
                    else "."
                )
            )
        self.airgap.require_air_gap("backup.create", subject)
        # Also above any backup already on this medium: one written but never recorded (a kill
        # between writing and recording) keeps its number; a re-run never reuses it.
        generation = max(self.repo.newest_generation(), _newest_on(target)) + 1
        operators = self.approve(
            "backup.create",
            subject,
            {
                "keys": sorted(k.id for k in plan.keys),
                # What the approvers read: names and KCVs / fingerprints, not only ids.
                "key_names": sorted(
                    f"{k.name} ({k.kcv or (k.fingerprint or '')[:16]})" for k in plan.keys
                ),
                "generation": generation,
                "custodians": list(custodians),
                "threshold": threshold,
                "passphrase": recovery_passphrase is not None,
                "target": str(target),
            },
        )
        if custodians and deliver is None:
            raise ValidationError("Shares need a way to reach their custodians; nothing written.")
        backup_id = str(uuid.uuid4())
        before = self.audit.checkpoint("backup")
        try:
            module = session.module
            kek = token_random(module, info, fmt.KEK_BYTES)
            share_set = (
                shares.split(kek, threshold, custodians, share_passphrase) if custodians else None
            )
            signer = self.tokens.session(audit_serial).checkpoint_public_key()
            if share_set is not None and deliver is not None:
                deliver(
                    ShareCard(
                        backup_id,
                        generation,
                        fmt.kek_check_value(kek),
                        fmt.sha256_hex(signer),
                        share_set,
                    )
                )
            created = self._write(
                target,
                backup_id,
                generation,
                plan,
                info,
                kek,
                share_set,
                signer,
                so_pin,
                user_pin,
                recovery_passphrase,
                before.to_json(),
                progress or _no_progress,
            )
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=operators,
                action="backup.create",
                subject=subject,
                outcome=failure_outcome(exc),
                details={"backup_id": backup_id, "generation": generation, "error": exc.message},
            )
            raise
        manifest = created.manifest
        now = self.clock()
        with self.db.transaction():
            self.repo.add(
                BackupRecord(
                    id=backup_id,
                    generation=generation,
                    created_at=manifest.created_at,
                    directory=str(created.directory),
                    volume_label=volume.label if volume else "",
                    volume_uuid=volume.uuid if volume else "",
                    custodians=tuple(custodians),
                    threshold=threshold,
                    passphrase=recovery_passphrase is not None,
                    kek_check_value=manifest.kek_check_value,
                    signer=manifest.signer_fingerprint,
                    keys=len(manifest.keys),
                    verified_at=stamp(now),
                ),
                [k.id for k in plan.keys],
            )
            record(
                self.db,
                when=now,
                operators=operators,
                action="backup.create",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={
                    "backup_id": backup_id,
                    "generation": generation,
                    "directory": created.directory.name,
                    "keys": len(manifest.keys),
                    "refused": [{"key": r.key_id, "reason": r.reason} for r in plan.refused],
                    "custodians": list(custodians),
                    "threshold": threshold,
                    "passphrase": recovery_passphrase is not None,
                    "kek_check_value": manifest.kek_check_value,
                    "volume": {"label": volume.label, "uuid": volume.uuid} if volume else None,
                    "verified": True,
                },
            )
        self.audit.checkpoint("backup done")
        return created

    def _write(
        self,
        target: Path,
        backup_id: str,
        generation: int,
        plan: BackupPlan,
        info: Any,
        kek: bytes,
        share_set: shares.ShareSet | None,
        signer: bytes,
        so_pin: str,
        user_pin: str,
        recovery_passphrase: str | None,
        checkpoint: dict[str, Any],
        progress: Progress,
    ) -> CreatedBackup:
        module = self.tokens.session(info.serial).module
        wrapped: list[WrappedKey] = []
        try:
            with trusted_kek(module, info, kek, so_pin, user_pin) as kek_session:
                count = len(plan.keys)
                progress("wrap", 0, count)
                wrapped = kek_session.wrap_all(
                    [key.cka_id for key in plan.keys],
                    lambda done: progress("wrap", done, count),
                    frozenset(k.cka_id for k in plan.keys if k.algorithm.family is not Family.AES),
                    {key.cka_id: key.name for key in plan.keys},
                )
        finally:
            self.tokens.session(info.serial).login_changed()
        progress("seal", 0, 1)
        entries = []
        blob = bytearray()
        for key, wrap in zip(plan.keys, wrapped, strict=True):
            if key.kcv and wrap.kcv and key.kcv.upper() != wrap.kcv:
                raise BackupIntegrityError(
                    f"Key '{key.name}' on the token has KCV {wrap.kcv}, the record says "
                    f"{key.kcv}; nothing was written."
                )
            value_len = _value_len(key, wrap)
            entries.append(
                fmt.KeyEntry(
                    id=key.id,
                    name=key.name,
                    algorithm=key.algorithm.value,
                    purpose=key.purpose.value,
                    state=key.state.value,
                    kcv=key.kcv,
                    fingerprint=key.fingerprint,
                    value_len=value_len,
                    offset=len(blob),
                    wrapped_len=len(wrap.wrapped),
                )
            )
            blob += wrap.wrapped
        spkis = self.keys.spkis()  # one query, not one per key
        for key in plan.keys:
            if key.algorithm.family is not Family.AES and key.id not in spkis:
                raise BackupIntegrityError(
                    f"Key '{key.name}' has no recorded public key to check a restore against; "
                    "nothing was written."
                )
        metadata = {
            "format": "keystead-backup-metadata",
            "workstation": self.workstation_id,
            "keys": [{**key_document(k), "spki": _b64(spkis.get(k.id))} for k in plan.keys],
        }
        audit_doc = self.audit.document()
        files = {
            fmt.KEYS: bytes(blob),
            fmt.METADATA: fmt.seal(kek, backup_id, fmt.METADATA, _json(metadata)),
            fmt.AUDIT: fmt.seal(kek, backup_id, fmt.AUDIT, _json(audit_doc)),
        }
        manifest = fmt.Manifest(
            backup_id=backup_id,
            generation=generation,
            created_at=stamp(self.clock()),
            workstation=self.workstation_id,
            audit_checkpoint=checkpoint,
            kek_check_value=fmt.kek_check_value(kek),
            shares=(
                {
                    "scheme": "slip39",
                    "identifier": share_set.identifier,
                    "threshold": share_set.threshold,
                    "count": len(share_set.custodians),
                    "custodians": list(share_set.custodians),
                }
                if share_set
                else None
            ),
            passphrase=(
                _passphrase_slot(kek, recovery_passphrase) if recovery_passphrase else None
            ),
            signer_spki=base64.b64encode(signer).decode("ascii"),
            keys=tuple(entries),
            files={
                name: {"size": len(data), "sha256": fmt.sha256_hex(data)}
                for name, data in files.items()
            },
        )
        manifest_bytes = manifest.encode()
        signature = self.tokens.session(self.audit.token_serial or "").sign_checkpoint(
            manifest_bytes
        )
        total = sum(len(d) for d in files.values()) + len(manifest_bytes) + len(signature)
        if media.free_bytes(target) < total + SPACE_MARGIN:
            raise DiskFull(
                f"{target} has {media.free_bytes(target)} bytes free; the backup needs "
                f"{total + SPACE_MARGIN}. Nothing was written."
            )
        directory = target / fmt.directory_name(generation, backup_id)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise StorageError(f"{directory} already exists; nothing was written.") from None
        except OSError as exc:
            raise media.media_error(exc, directory) from exc
        try:
            in_order = [*files.items(), (fmt.SIGNATURE, signature), (fmt.MANIFEST, manifest_bytes)]
            for done, (name, data) in enumerate(in_order):  # the manifest last: marks it complete
                progress("write", done, len(in_order))
                media.write_new(directory / name, data)
            progress("verify", 0, 1)
            try:
                read_back, data_back = verify_directory(
                    directory, known_signer=signer, read=media.read_uncached
                )
            except OSError as exc:
                raise media.media_error(exc, directory / fmt.MANIFEST) from exc
            if read_back.encode() != manifest_bytes or data_back != files:
                raise BackupIntegrityError("The files read back differ from those written.")
            for entry in read_back.keys:  # never "verified" for an entry restore would refuse
                fmt.unwrap_length(entry, strict=True)
            for name in (fmt.METADATA, fmt.AUDIT):
                fmt.unseal(kek, backup_id, name, data_back[name])
            progress("verify", 1, 1)
        except BaseException:
            _remove(directory)
            raise
        return CreatedBackup(directory, manifest, share_set, plan.refused)

    # --- verify ------------------------------------------------------------------------------

    def verify(
        self,
        directory: Path,
        secret: KekSecret | None = None,
        drill_token: str | None = None,
    ) -> VerifyReport:
        """Signature, manifest, hashes and structure; with the KEK also the sealed files; with
        ``drill_token`` every key is unwrapped into session objects there, its KCV compared,
        and destroyed. Recorded in the audit history."""
        assert_core_thread()
        subject = f"backup:{directory.name}"
        try:
            known = None
            manifest, data = verify_directory(directory)
            if manifest.workstation == self.workstation_id:
                known = self._own_signer()
                if known is not None and base64.b64decode(manifest.signer_spki) != known:
                    raise BackupIntegrityError(
                        "manifest.json names this workstation but is signed by another key."
                    )
            report = VerifyReport(directory, manifest, None if known is None else True)
            if secret is not None:
                kek = recover_kek(manifest, secret)
                metadata = json.loads(
                    fmt.unseal(kek, manifest.backup_id, fmt.METADATA, data[fmt.METADATA])
                )
                fmt.unseal(kek, manifest.backup_id, fmt.AUDIT, data[fmt.AUDIT])
                ids = [k["id"] for k in metadata["keys"]]
                if ids != [e.id for e in manifest.keys]:
                    raise BackupIntegrityError("metadata.enc and the manifest list different keys.")
                report.kek_checked = True
                if drill_token is not None:
                    report.drilled = self._drill(
                        drill_token, kek, manifest, data[fmt.KEYS], metadata
                    )
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="backup.verify",
                subject=subject,
                outcome=Outcome.FAILED,
                details={"error": exc.message, "drill": drill_token is not None},
            )
            raise
        with self.db.transaction():
            if report.kek_checked and manifest.workstation == self.workstation_id:
                self.repo.mark_verified(manifest.backup_id, stamp(self.clock()))
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="backup.verify",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={
                    "backup_id": manifest.backup_id,
                    "generation": manifest.generation,
                    "keys": len(manifest.keys),
                    "kek_checked": report.kek_checked,
                    "drilled": report.drilled,
                },
            )
        return report

    # --- restore -----------------------------------------------------------------------------

    def restore(
        self,
        directory: Path,
        secret: KekSecret,
        token_ref: str,
        override_generation: bool = False,
        renames: Mapping[str, str] | None = None,
    ) -> RestoreReport:
        """Bring the backup's keys onto the token and their records into this workstation.

        Everything is verified first (signature, hashes, KEK check value, sealed files, the
        audit history's chain and the backup's checkpoint); only then is the token touched.
        Keys this workstation already has, or records as destroyed or compromised, are not
        brought back. A generation older than the newest this workstation knows is refused
        unless ``override_generation`` (a separately approved disaster-recovery override).
        Each restored key is unwrapped first as a session copy whose KCV must match; a
        mismatch stops the restore and removes the keys this restore created on the token.

        A key is "already here" by its record id or by its material (``KnownKeys``: algorithm
        and KCV, or public-key fingerprint), so a key imported here by transfer or recorded as
        compromised / destroyed under another id is not brought back either. A record here
        whose token object is gone (its token logged in, no key object under its CKA_ID) is
        restored onto the token and the record rebound to it. ``renames`` (backup name -> new
        name) restores a key whose name is taken here under a new one; recorded. Keys left out
        for a reason someone must act on are ``Refusal.needs_action`` (the report is
        ``incomplete``). The token objects are covered by a write-ahead intent
        (``key.restore``): a restore killed half way is settled at the next login.
        """
        assert_core_thread()
        session = self.tokens.session(token_ref)
        info = session.info
        subject = f"backup:{directory.name}"
        manifest, data = verify_directory(directory)
        if manifest.workstation == self.workstation_id:
            known = self._own_signer()
            if known is not None and base64.b64decode(manifest.signer_spki) != known:
                raise BackupIntegrityError(
                    "manifest.json names this workstation but is signed by another key."
                )
        kek = recover_kek(manifest, secret)
        metadata = _parse_json(
            fmt.unseal(kek, manifest.backup_id, fmt.METADATA, data[fmt.METADATA]), fmt.METADATA
        )
        audit_bytes = fmt.unseal(kek, manifest.backup_id, fmt.AUDIT, data[fmt.AUDIT])
        audit_entries, audit_head = _verified_audit(_parse_json(audit_bytes, fmt.AUDIT), manifest)
        spkis = _metadata_spkis(metadata)
        records = _records(metadata, spkis, manifest)
        newest = self.repo.newest_generation()
        if manifest.generation < newest and not override_generation:
            raise PolicyError(
                f"This backup is generation {manifest.generation}; this workstation knows "
                f"generation {newest}. Restoring an older generation needs an approved "
                "disaster-recovery override; nothing was touched.",
                rule="KS-BACKUP-GENERATION",
            )
        renamed = _checked_renames(renames or {}, [r for r, _ in records])
        skipped: list[Refusal] = []
        wanted: list[tuple[KeyRecord, fmt.KeyEntry]] = []
        rebinding: list[tuple[KeyRecord, fmt.KeyEntry]] = []
        # What this workstation holds, read once (a query per key and name was 22,000 queries
        # for 11,000 keys).
        here = self.keys.all()
        held = KnownKeys(here)
        names_here = {k.name for k in here}
        present = _KeyPresence(self.tokens)
        for record_, entry in records:
            found = held.holding(record_.algorithm, record_.kcv, record_.fingerprint, record_.id)
            if found is not None and found.record.id == record_.id and not found.retired:
                current = found.record
                where = present.of(current)
                if where == _PRESENT:
                    skipped.append(Refusal(record_.id, record_.name, "already on this workstation"))
                elif where == _MISSING and material_of(
                    current.algorithm, current.kcv, current.fingerprint
                ) != material_of(record_.algorithm, record_.kcv, record_.fingerprint):
                    skipped.append(
                        Refusal(
                            record_.id,
                            record_.name,
                            f"missing on token '{current.token_label}', but the record here "
                            f"names another key ({current.identifier}) than the backup "
                            f"({record_.identifier}); not restored",
                            needs_action=True,
                        )
                    )
                elif where == _MISSING:
                    rebinding.append((current, entry))
                else:
                    skipped.append(
                        Refusal(
                            record_.id,
                            record_.name,
                            f"recorded here on token '{current.token_label}', which is not "
                            "logged in, so whether its object is still there cannot be checked: "
                            "log in to that token, or restore onto it with --token",
                            needs_action=True,
                        )
                    )
            elif found is not None:
                reason = (
                    f"recorded here as {found.record.state.title.lower()}"
                    if found.record.id == record_.id
                    else found.describe()
                )
                skipped.append(Refusal(record_.id, record_.name, reason))
            elif record_.state in (*_GONE, KeyState.COMPROMISED):
                skipped.append(Refusal(record_.id, record_.name, "compromised: never restored"))
            else:
                name = renamed.get(record_.name, record_.name)
                if name in names_here:
                    skipped.append(
                        Refusal(
                            record_.id,
                            record_.name,
                            f"another key here has the name '{name}': restore it under a new "
                            f"name with --rename {record_.name}=NEW",
                            needs_action=True,
                        )
                    )
                    continue
                names_here.add(name)
                wanted.append((record_._replace(name=name), entry))
        if override_generation:
            self.approve(
                "backup.restore-override",
                subject,
                {
                    "backup_id": manifest.backup_id,
                    "generation": manifest.generation,
                    "newest": newest,
                },
            )
        operators = self.approve(
            "backup.restore",
            subject,
            {
                "backup_id": manifest.backup_id,
                "generation": manifest.generation,
                "token": info.serial,
                "keys": [r.id for r, _ in wanted],
                "rebind": [r.id for r, _ in rebinding],
                "renamed": dict(sorted(renamed.items())),
            },
        )
        restoring = [*wanted, *rebinding]
        created: list[str] = []
        blob = data[fmt.KEYS]
        intent: int | None = None
        intents = self.tokens.intents
        try:
            with user_kek(session.module, info, kek) as kek_session:
                taken = kek_session.ids_on_token() if restoring else set()
                clashes = [r.name for r, _ in restoring if r.cka_id in taken]
                if clashes:
                    raise TokenError(
                        f"Token '{info.label}' already holds objects with the CKA_IDs of "
                        f"{', '.join(clashes)}; nothing was restored. Adopt or rebind them, or "
                        "restore onto another token."
                    )
                if restoring:
                    # Written ahead of the token objects: a kill leaves them to the next login.
                    intent = intents.begin(
                        "key.restore",
                        info.serial,
                        subject,
                        {
                            "subject": subject,
                            "backup_id": manifest.backup_id,
                            "cka_ids": [r.cka_id for r, _ in restoring],
                        },
                        recorded_as="backup.restore",
                    )
                try:
                    for record_, entry in restoring:
                        private, public = usage_in_state(
                            record_.algorithm, record_.purpose, record_.state
                        )
                        length = fmt.unwrap_length(entry)
                        if length == fmt.PRIVATE_VALUE_LEN:
                            kek_session.restore_private(
                                blob[entry.offset : entry.offset + entry.wrapped_len],
                                _entry_spki(spkis, entry),
                                record_.name,
                                record_.cka_id,
                                private,
                                public,
                                taken,
                            )
                            created.append(record_.cka_id)
                            taken.add(record_.cka_id)
                            continue
                        kek_session.restore_secret(
                            blob[entry.offset : entry.offset + entry.wrapped_len],
                            length,
                            record_.name,
                            record_.cka_id,
                            private | public,
                            entry.kcv or "",
                            taken,
                        )
                        created.append(record_.cka_id)
                        taken.add(record_.cka_id)
                    now = self.clock()
                    rebound = [
                        r._replace(token_serial=info.serial, token_label=info.label)
                        for r, _ in rebinding
                    ]
                    with self.db.transaction():
                        if intent is not None:
                            intents.finish(intent)
                        for record_, _entry in wanted:
                            self.keys.insert(
                                record_._replace(
                                    token_serial=info.serial,
                                    token_label=info.label,
                                    wrap_trusted=TrustedWrap.OK,
                                    token_sync=TokenSync.OK,
                                ),
                                spkis.get(record_.id),
                            )
                        for record_ in rebound:
                            self.keys.rebind(record_)
                        self.repo.keep_audit(
                            manifest.backup_id,
                            manifest.workstation,
                            audit_entries,
                            audit_head,
                            audit_bytes,
                            stamp(now),
                        )
                        record(
                            self.db,
                            when=now,
                            operators=operators,
                            action="backup.restore",
                            subject=subject,
                            outcome=Outcome.SUCCESS,
                            details={
                                "backup_id": manifest.backup_id,
                                "generation": manifest.generation,
                                "token": info.serial,
                                "restored": [r.id for r, _ in wanted],
                                "restored_keys": [
                                    {"key": r.id, **vouched(r)} for r, _ in wanted
                                ],
                                "rebound": [
                                    {"key": r.id, "token_before": b.token_serial}
                                    for r, (b, _) in zip(rebound, rebinding, strict=True)
                                ],
                                "renamed": [
                                    {"key": r.id, "from": old, "to": r.name}
                                    for r, _ in wanted
                                    for old, new in renamed.items()
                                    if new == r.name
                                ],
                                "skipped": [
                                    {"key": s.key_id, "reason": s.reason, "action": s.needs_action}
                                    for s in skipped
                                ],
                                "audit_entries": audit_entries,
                                "audit_head": audit_head,
                                "override_generation": override_generation,
                            },
                        )
                except BaseException as exc:
                    left = False
                    for cka_id in created:
                        try:
                            kek_session.destroy_by_id(cka_id)
                        except KeysteadError as failed:
                            left = True
                            log.error(
                                "could not remove restored key %s: %s", cka_id, failed.message
                            )
                    if intent is not None and not left:  # else the next login settles it
                        intents.abandon(intent, subject, getattr(exc, "message", "not recorded"))
                    raise
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=operators,
                action="backup.restore",
                subject=subject,
                outcome=failure_outcome(exc),
                details={"backup_id": manifest.backup_id, "error": exc.message},
            )
            raise
        return RestoreReport(
            manifest,
            tuple(r for r, _ in restoring),
            tuple(skipped),
            audit_entries,
            tuple(rebound),
            tuple(sorted(renamed.items())),
        )

    def _drill(
        self, token_ref: str, kek: bytes, manifest: fmt.Manifest, blob: bytes, metadata: Any
    ) -> int:
        """Every key unwrapped into a session object and compared: AES keys by KCV, private
        keys by a signature that must verify under the recorded public key."""
        session = self.tokens.session(token_ref)
        spkis = _metadata_spkis(metadata)
        done = 0
        with user_kek(session.module, session.info, kek) as kek_session:
            for entry in manifest.keys:
                wrapped = blob[entry.offset : entry.offset + entry.wrapped_len]
                length = fmt.unwrap_length(entry)
                if length == fmt.PRIVATE_VALUE_LEN:
                    kek_session.check_private(wrapped, _entry_spki(spkis, entry), entry.name)
                    done += 1
                    continue
                kcv = kek_session.drill(wrapped, length)
                if not entry.kcv or not kcv:
                    raise BackupIntegrityError(
                        f"Key '{entry.name}' has no KCV to compare; the drill cannot prove it."
                    )
                if kcv != entry.kcv.upper():
                    raise BackupIntegrityError(
                        f"Key '{entry.name}' unwraps to KCV {kcv}; the manifest says {entry.kcv}."
                    )
                done += 1
        return done

    def _own_signer(self) -> bytes | None:
        public = self.audit.public_key()
        if public is None:
            return None
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _value_len(key: KeyRecord, wrap: WrappedKey) -> int:
    """The manifest's value_len of ``key``: an AES key's length from its algorithm, never the
    token's CKA_VALUE_LEN alone (SoftHSM leaves it 0 on unwrapped keys: restored and imported
    ones, and 0 marks a private key); ``fmt.PRIVATE_VALUE_LEN`` for RSA / EC. A token that
    states another length for an AES key than its algorithm's is refused."""
    if key.algorithm.family is not Family.AES:
        return fmt.PRIVATE_VALUE_LEN
    length = key.algorithm.spec.bits // 8
    if wrap.value_len not in (0, length):
        raise BackupIntegrityError(
            f"Key '{key.name}' is recorded as {key.algorithm.value} but its token object has "
            f"{wrap.value_len} bytes; nothing was written."
        )
    return length


def _newest_on(target: Path) -> int:
    """The newest generation among the backup directories directly under ``target`` (0 if
    none, or if it cannot be listed: writing there will then say why)."""
    try:
        names = [p.name for p in target.iterdir()]
    except OSError:
        return 0
    return max((g for g in map(fmt.generation_of, names) if g is not None), default=0)


_PRESENT, _MISSING, _UNCHECKED = "present", "missing", "unchecked"


class _KeyPresence:
    """Whether a record's key object is on its token: each logged-in token's objects listed
    once, on first need (a search per key scans the whole token)."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens
        self._keys: dict[str, set[str]] = {}

    def of(self, key: KeyRecord) -> str:
        """_PRESENT (a key object under its CKA_ID on its token, or no token object to
        have), _MISSING (its token is logged in and holds none), _UNCHECKED (its token is
        not logged in)."""
        if not key.token_serial:
            return _PRESENT  # verify-only: nothing on a token
        if key.token_serial not in self._keys:
            session = next(
                (s for s in self._tokens.logged_in() if s.info.serial == key.token_serial), None
            )
            if session is None:
                return _UNCHECKED
            self._keys[key.token_serial] = {
                o.cka_id for o in session.key_objects() if o.kind.is_key
            }
        return _PRESENT if key.cka_id in self._keys[key.token_serial] else _MISSING


def _checked_renames(renames: Mapping[str, str], records: Sequence[KeyRecord]) -> dict[str, str]:
    """``--rename OLD=NEW`` pairs checked before anything is touched: OLD is a key of the
    backup, NEW a valid name given once. ValidationError otherwise."""
    names = {r.name for r in records}
    result: dict[str, str] = {}
    for old, new in renames.items():
        if old not in names:
            raise ValidationError(
                f"The backup holds no key named '{old}' to rename; nothing was touched."
            )
        result[old] = validate_key_name(new)
    doubled = sorted({n for n in result.values() if list(result.values()).count(n) > 1})
    if doubled:
        raise ValidationError(
            f"Two keys cannot both be renamed to '{doubled[0]}'; nothing was touched."
        )
    return result


def _parse_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise BackupIntegrityError(f"{name} decrypts but is not JSON.") from None


def _records(
    metadata: Any, spkis: Mapping[str, bytes], manifest: fmt.Manifest
) -> list[tuple[KeyRecord, fmt.KeyEntry]]:
    """Key records from the metadata, paired with their manifest entries (same order, ids and
    KCVs), or BackupIntegrityError."""
    try:
        docs = metadata["keys"]
        records = [key_from_document(doc) for doc in docs]
    except (KeyError, ValueError, TypeError, AttributeError):
        raise BackupIntegrityError("metadata.enc does not hold Keystead key records.") from None
    if [r.id for r in records] != [e.id for e in manifest.keys]:
        raise BackupIntegrityError("metadata.enc and the manifest list different keys.")
    for record_, entry in zip(records, manifest.keys, strict=True):
        if fmt.unwrap_length(entry) == fmt.PRIVATE_VALUE_LEN:
            _entry_spki(spkis, entry)  # the pair check needs the recorded public key
            continue
        if (record_.kcv or "").upper() != (entry.kcv or "").upper() or not entry.kcv:
            raise BackupIntegrityError(f"Key '{entry.name}': metadata and manifest KCVs differ.")
    return list(zip(records, manifest.keys, strict=True))


def _entry_spki(spkis: Mapping[str, bytes], entry: fmt.KeyEntry) -> bytes:
    """A private key's SubjectPublicKeyInfo from the sealed metadata (``_metadata_spkis``); its
    SHA-256 must be the manifest's fingerprint."""
    spki = spkis.get(entry.id)
    if spki is None or fmt.sha256_hex(spki) != (entry.fingerprint or "").lower():
        raise BackupIntegrityError(
            f"Key '{entry.name}': the recorded public key does not match the manifest's "
            "fingerprint."
        )
    return spki


def _metadata_spkis(metadata: Any) -> dict[str, bytes]:
    """key id -> the SubjectPublicKeyInfo (DER) the sealed metadata records for it, read in one
    pass (a search of the metadata per key was quadratic: 11,000 keys, 121 million steps).
    BackupIntegrityError when the metadata or a public key in it is malformed."""
    try:
        return {
            str(doc["id"]): base64.b64decode(doc["spki"], validate=True)
            for doc in metadata["keys"]
            if doc.get("spki")
        }
    except (KeyError, ValueError, TypeError, AttributeError):
        raise BackupIntegrityError("metadata.enc holds a malformed key record.") from None


def _verified_audit(doc: Any, manifest: fmt.Manifest) -> tuple[int, str]:
    """Check the backed-up audit history: its chain recomputes, and the manifest's audit
    checkpoint is signed by the manifest's signer and matches the chain at its entry.
    Returns (entries, head hash hex)."""
    try:
        entries = [
            AuditEntry.of(
                int(e["seq"]),
                str(e["ts"]),
                e["operators"],
                str(e["action"]),
                str(e["subject"]),
                str(e["outcome"]),
                e["details"],
                bytes.fromhex(e["prev_hash"]),
                bytes.fromhex(e["entry_hash"]),
                bytes.fromhex(e["mac"]) if e.get("mac") else None,
            )
            for e in doc["entries"]
        ]
        checkpoint = Checkpoint.from_json(manifest.audit_checkpoint)
    except (KeyError, ValueError, TypeError):
        raise BackupIntegrityError("audit.enc does not hold a Keystead audit history.") from None
    public = serialization.load_der_public_key(base64.b64decode(manifest.signer_spki))
    try:
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        public.verify(checkpoint.signature, checkpoint.message(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BackupIntegrityError(
            "The backup's audit checkpoint is not signed by the manifest's signer."
        ) from None
    report = verify_chain(entries, None, [checkpoint])
    if not report.ok:
        raise BackupIntegrityError(f"The backed-up audit history: {report.summary()}")
    head = entries[-1].entry_hash.hex() if entries else ""
    return len(entries), head


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


def _remove(directory: Path) -> None:
    try:
        shutil.rmtree(directory)
    except OSError as exc:
        log.error("could not remove the incomplete backup %s: %s", directory, exc.strerror)


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
