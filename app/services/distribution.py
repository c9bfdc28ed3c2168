"""Distributing keys: wrapping a secret key for another HSM, importing one made for this
token, and importing a public key (or certificate) as a verify-only key.

Each needs dual control (``ApprovalService.obtain``: ``key.distribute`` for wrap-for,
``key.import`` for imports) and is recorded: ``key.distribute`` / ``key.import`` audit entries,
and a distribution record (who received which key, when, under which recipient fingerprint)
shown with the key. Imported keys start PRE_ACTIVE. See docs/key-transfer.md.

A key may be distributed in PRE_ACTIVE, ACTIVE or DEACTIVATED (the recipient may need it to
process old data); never SUSPENDED, COMPROMISED or destroyed. The unwrapping key must be usable
for a process operation (ACTIVE or DEACTIVATED) and made for key wrapping.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.domain import transfer
from app.domain.algorithms import Family, Purpose, usage_for
from app.domain.fingerprints import pgp_words
from app.domain.key_history import vouched
from app.domain.keys import KeyRecord, KeyState, TokenSync, TrustedWrap
from app.domain.known_keys import RULE_KNOWN_KEY, KnownKeys
from app.domain.public_import import PublicKeyInput, read_public
from app.domain.transfer import TransferFile, WrapMechanism
from app.errors import KeysteadError, PolicyError, TokenError, ValidationError
from app.hsm import transfer_wrap
from app.services.approvals import ApprovalService
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.intents import IntentLog
from app.services.key_use import KeyUseService, check_target
from app.services.keys import KeyService
from app.services.tokens import TokenService
from app.storage.database import Database
from app.storage.distributions import Distribution, DistributionRepository
from app.storage.files import read_regular
from app.storage.repository import utc_text

log = logging.getLogger(__name__)

RULE_DISTRIBUTE_STATE = "KS-DIST-STATE"
RULE_NOT_EXTRACTABLE = "KS-DIST-NOT-EXTRACTABLE"
RULE_UNWRAP_KEY = "KS-DIST-UNWRAP-KEY"
DISTRIBUTABLE = frozenset({KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.DEACTIVATED})
UNWRAP_STATES = frozenset({KeyState.ACTIVE, KeyState.DEACTIVATED})
MAX_RECIPIENT_BYTES = 1 << 20


@dataclass(frozen=True)
class WrapResult:
    key: KeyRecord
    mechanism: WrapMechanism
    recipient: str  # SPKI SHA-256 or KEK KCV
    recipient_name: str
    kcv: str
    output: Path
    file_sha256: str
    note: str
    event_seq: int


@dataclass(frozen=True)
class ImportResult:
    key: KeyRecord
    kcv_or_fingerprint: str
    words: list[str]
    sender_key_id: str | None
    event_seq: int


def distribution_refusal(key: KeyRecord) -> str | None:
    """Why ``key`` may not be wrapped for a recipient, or None."""
    if key.state not in DISTRIBUTABLE:
        return (
            f"A {key.state.value} key is not distributed (only PRE_ACTIVE, ACTIVE or "
            "DEACTIVATED keys are)"
        )
    if not key.token_serial:
        return (
            f"Key '{key.name}' is a verify-only public key (no token holds a private half): "
            "send it with 'keys export-public'"
        )
    if not key.algorithm.symmetric:
        return (
            f"Key '{key.name}' is a {key.algorithm.value} key pair: send its public key "
            "('keys export-public'); private keys are not transferred"
        )
    if not key.extractable:
        return (
            f"Key '{key.name}' is not extractable (made without --backup-able): it can never "
            "leave its token"
        )
    return None


class DistributionService:
    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        keys: KeyService,
        use: KeyUseService,
        approvals: ApprovalService,
        intents: IntentLog,
        operator: str,
        workstation_id: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.keys = keys
        self.use = use
        self.approvals = approvals
        self.intents = intents
        self.operator = operator
        self.workstation_id = workstation_id
        self.clock = clock
        self.repo = DistributionRepository(db)

    def records(self, key_id: str) -> list[Distribution]:
        return self.repo.for_key(key_id)

    # --- wrap for a recipient ----------------------------------------------------------------

    def wrap_for(
        self,
        key_ref: str,
        target: Path,
        *,
        so_pin: str = "",
        user_pin: str = "",
        recipient: Path | None = None,
        kek_ref: str | None = None,
        overwrite: bool = False,
    ) -> WrapResult:
        """Wrap the secret key ``key_ref`` for a recipient into a transfer file at ``target``.

        ``recipient``: the recipient's RSA public key or certificate (RSA-OAEP-SHA1; needs the
        token's SO PIN to make it a trusted wrapping key for this session, and the user PIN to
        log in again). ``kek_ref``: a managed AES key-wrapping key both tokens hold (AES-KWP).
        Refusals (PolicyError with a denied entry, ValidationError) come before the approval;
        the approval before the token; the file, its distribution record and the audit entry
        appear together."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        subject = f"key:{key.id}"
        self.approvals.check_initiator("key.distribute", subject)
        refusal = distribution_refusal(key)
        if refusal is not None:
            rule = RULE_DISTRIBUTE_STATE if key.state not in DISTRIBUTABLE else RULE_NOT_EXTRACTABLE
            self._deny("key.distribute", subject, refusal, rule)
        if (recipient is None) == (kek_ref is None):
            raise ValidationError("Name either the recipient's public key (--recipient) or a KEK.")
        check_target(target, overwrite, (recipient,) if recipient is not None else ())
        kek: KeyRecord | None = None
        if recipient is not None:
            mechanism = WrapMechanism.RSA_OAEP_SHA1
            given = read_recipient(recipient, self.clock())
            recipient_id = given.fingerprint
            recipient_name = given.subject or recipient.name
        else:
            mechanism = WrapMechanism.AES_KWP
            kek = self._unwrapping_record(str(kek_ref), WrapMechanism.AES_KWP, "key.distribute")
            if kek.token_serial != key.token_serial:
                raise ValidationError(
                    f"KEK '{kek.name}' is on token '{kek.token_label}', the key on "
                    f"'{key.token_label}'; the KEK must be on the key's token."
                )
            recipient_id = kek.kcv or ""
            recipient_name = f"KEK {kek.name}"
        who = self.approvals.obtain(
            "key.distribute",
            subject,
            {
                "key": key.name,
                "kcv": key.kcv,
                "mechanism": mechanism.value,
                "recipient": recipient_id,
                "recipient_name": recipient_name,
                "file": target.name,
            },
        )
        session = self.tokens.session(key.token_serial)
        try:
            if recipient is not None:
                modulus, exponent = given.rsa_numbers()
                wrapped = transfer_wrap.wrap_rsa_oaep(
                    session, key.cka_id, modulus, exponent, so_pin, user_pin
                )
            else:
                assert kek is not None  # noqa: S101
                try:
                    wrapped = transfer_wrap.wrap_aes_kwp(session, key.cka_id, kek.cka_id)
                except TokenError as exc:
                    if key.wrap_trusted is not TrustedWrap.OK:
                        raise
                    raise TokenError(
                        f"{exc.message} '{key.name}' carries CKA_WRAP_WITH_TRUSTED: only a KEK "
                        "the security officer marked CKA_TRUSTED may wrap it, and "
                        f"'{kek.name}' is not marked CKA_TRUSTED on this token. Use --recipient "
                        "(RSA-OAEP) instead; nothing was written."
                    ) from exc
            kcv = wrapped.kcv or key.kcv or ""
            if key.kcv and wrapped.kcv and wrapped.kcv != key.kcv.upper():
                raise ValidationError(
                    f"The token states KCV {wrapped.kcv} for '{key.name}', the record says "
                    f"{key.kcv}; nothing was written."
                )
            made = TransferFile(
                key_id=key.id,
                key_name=key.name,
                algorithm=key.algorithm,
                purpose=key.purpose,
                value_len=wrapped.value_len or key.algorithm.spec.bits // 8,
                kcv=kcv.upper(),
                mechanism=mechanism,
                recipient=recipient_id,
                wrapped=wrapped.wrapped,
                workstation=self.workstation_id,
                operators=tuple(who),
                created_at=utc_text(self.clock()),
            )
            data = made.encode()
            details = {
                "mechanism": mechanism.value,
                "recipient": recipient_id,
                "recipient_name": recipient_name,
                "kcv": made.kcv,
                "note": mechanism.note,
            }
            now = self.clock()

            def keep(seq: int) -> None:
                self.repo.insert(
                    Distribution(
                        key.id,
                        "sent",
                        mechanism.value,
                        recipient_id,
                        recipient_name,
                        made.kcv,
                        made.sha256,
                        tuple(who),
                        utc_text(now),
                        seq,
                    )
                )

            seq, file_sha, _count = self.use.write_recorded(
                key,
                "key.distribute",
                details,
                target,
                overwrite,
                lambda out: out.write(data),
                operators=who,
                within_seq=keep,
            )
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=who,
                action="key.distribute",
                subject=subject,
                outcome=failure_outcome(exc),
                details={
                    "mechanism": mechanism.value,
                    "recipient": recipient_id,
                    "error": exc.message,
                },
            )
            raise
        log.info("key %s wrapped for %s (%s)", key.id, recipient_id, mechanism.value)
        return WrapResult(
            key,
            mechanism,
            recipient_id,
            recipient_name,
            made.kcv,
            target,
            file_sha,
            mechanism.note,
            seq,
        )

    # --- import a wrapped key ------------------------------------------------------------------

    def import_wrapped(
        self,
        token_ref: str,
        source: Path,
        name: str,
        *,
        unwrapping_key: str | None = None,
        expect_kcv: str | None = None,
        backup_able: bool = False,
        expect_purpose: Purpose | None = None,
    ) -> ImportResult:
        """Unwrap the key in the transfer file ``source`` onto token ``token_ref`` as a new
        PRE_ACTIVE key ``name``, with its full template, after its KCV matched (and equals
        ``expect_kcv`` when given). ``unwrapping_key``: the managed RSA key-wrapping key (or
        shared AES KEK) the file was made for; found by the file's recipient when omitted.
        NotAuthentic for a damaged, truncated, altered or other-recipient file; nothing is
        left on the token by any refusal.

        ``expect_purpose`` is required: the purpose the sender read out with the KCV. The
        file's purpose decides the imported key's usage flags, and neither its KCV nor its
        SHA-256 (not a signature: anyone can re-seal an edited file) covers it, so it is
        compared like ``expect_kcv`` before anything is asked or written
        (``KS-TRANSFER-PURPOSE``)."""
        assert_core_thread()
        subject = f"key:{name}"
        self.approvals.check_initiator("key.import", subject)
        made = transfer.decode(_read_limited(source, transfer.MAX_FILE_BYTES, "transfer file"))
        final_name = self.keys.free_name(name)
        unwrapping = (
            self._unwrapping_record(unwrapping_key, made.mechanism, "key.import")
            if unwrapping_key
            else self._recipient_key(made)
        )
        self._refuse_known_key(made, subject)
        if expect_kcv is not None and expect_kcv.strip().upper() != made.kcv:
            raise ValidationError(  # (the file's own KCV is not shown: never copy it over)
                f"The file's key does not have the KCV you expected "
                f"({expect_kcv.strip().upper()}); nothing was imported. Do not import it: "
                "confirm the KCV with the sender over another channel."
            )
        check_purpose(made, expect_purpose)
        session = self.tokens.session(token_ref)
        info = session.info
        if unwrapping.token_serial != info.serial:
            raise ValidationError(
                f"Unwrapping key '{unwrapping.name}' is on token '{unwrapping.token_label}', "
                f"not '{info.label}'; import onto the token that holds it."
            )
        identity = self._identity(unwrapping)
        if made.recipient.lower() != identity.lower():
            self._deny(
                "key.import",
                subject,
                f"The file was made for recipient {made.recipient[:16]}…, not for "
                f"'{unwrapping.name}' ({identity[:16]}…); it cannot be imported here",
                RULE_UNWRAP_KEY,
            )
        who = self.approvals.obtain(
            "key.import",
            subject,
            {
                "name": final_name,
                "algorithm": made.algorithm.value,
                "purpose": made.purpose.value,
                "kcv": made.kcv,
                "sender_key": made.key_id,
                "mechanism": made.mechanism.value,
                "unwrapping_key": unwrapping.name,
                "token": info.serial,
            },
        )
        cka_id = secrets.token_bytes(16)
        plan = usage_for(made.algorithm, made.purpose)
        template = transfer_wrap.import_template(final_name, cka_id, plan.secret, backup_able)
        intent = self.intents.begin(
            "key.generate",
            info.serial,
            subject,
            {
                "subject": subject,
                "name": final_name,
                "cka_id": cka_id.hex(),
                "algorithm": made.algorithm.value,
                "replaces": None,
                "import": True,
            },
            recorded_as="key.import",
        )
        try:
            transfer_wrap.unwrap_secret(
                session,
                made.mechanism,
                unwrapping.cka_id,
                made.wrapped,
                made.value_len,
                made.kcv,
                template,
            )
        except KeysteadError as exc:
            self.intents.abandon(intent, subject, exc.message)
            record_alone(
                self.db,
                when=self.clock(),
                operators=who,
                action="key.import",
                subject=subject,
                outcome=failure_outcome(exc),
                details={
                    "file_sha256": _sha256(source),
                    "sender_key": made.key_id,
                    "error": exc.message,
                    "token_object": "none left",
                },
            )
            raise
        key = KeyRecord(
            id=str(uuid.uuid4()),
            name=final_name,
            algorithm=made.algorithm,
            purpose=made.purpose,
            state=KeyState.PRE_ACTIVE,
            token_serial=info.serial,
            token_label=info.label,
            cka_id=cka_id.hex(),
            extractable=backup_able,
            wrap_trusted=TrustedWrap.OK if backup_able else TrustedWrap.NOT_APPLICABLE,
            kcv=made.kcv,
            fingerprint=None,
            created_at=self.clock(),
            created_by=self.operator,
            notes=f"Imported from transfer file {source.name} (sender key {made.key_id}).",
        )
        file_sha = _sha256(source)
        try:
            with self.db.transaction():
                self.intents.finish(intent)
                self.keys.repo.insert(key, None)
                seq = record(
                    self.db,
                    when=key.created_at,
                    operators=who,
                    action="key.import",
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        **vouched(key),
                        "name": key.name,
                        "algorithm": key.algorithm.value,
                        "purpose": key.purpose.value,
                        "token": info.serial,
                        "cka_id": key.cka_id,
                        "kcv": key.kcv,
                        "extractable": backup_able,
                        "mechanism": made.mechanism.value,
                        "unwrapping_key": unwrapping.id,
                        "sender_key": made.key_id,
                        "sender_workstation": made.workstation,
                        "file_sha256": file_sha,
                        "kcv_checked": True,
                    },
                )
                self.repo.insert(
                    Distribution(
                        key.id,
                        "received",
                        made.mechanism.value,
                        made.recipient,
                        f"{unwrapping.name} (from {made.key_name})",
                        made.kcv,
                        file_sha,
                        tuple(who),
                        utc_text(key.created_at),
                        seq,
                    )
                )
        except BaseException as exc:
            transfer_wrap.destroy_unrecorded(session, key.cka_id)
            self.intents.abandon(intent, subject, getattr(exc, "message", "not recorded"))
            raise
        return ImportResult(key, made.kcv, pgp_words(bytes.fromhex(made.kcv)), made.key_id, seq)

    # --- import a public key -------------------------------------------------------------------

    def import_public(self, source: Path, name: str) -> ImportResult:
        """Record the public key (or certificate's key) in ``source`` as a verify-only key
        ``name``, PRE_ACTIVE, kept in the database only (no token object): it verifies
        signatures once activated. Refused: private keys, non-keys, weak or unmanaged
        algorithms, a public key already managed here."""
        assert_core_thread()
        subject = f"key:{name}"
        self.approvals.check_initiator("key.import", subject)
        given = read_public(_read_limited(source, MAX_RECIPIENT_BYTES))
        final_name = self.keys.free_name(name)
        known = self.keys.repo.by_token_object("", given.fingerprint)
        if known is not None or self.db.scalar(
            "SELECT id FROM keys WHERE fingerprint = ? LIMIT 1", (given.fingerprint,)
        ):
            raise ValidationError(
                f"This public key ({given.fingerprint[:16]}…) is already managed here; nothing "
                "was imported."
            )
        who = self.approvals.obtain(
            "key.import",
            subject,
            {
                "name": final_name,
                "algorithm": given.algorithm.value,
                "fingerprint": given.fingerprint,
                "source": given.source,
                "certificate_subject": given.subject,
            },
        )
        key = KeyRecord(
            id=str(uuid.uuid4()),
            name=final_name,
            algorithm=given.algorithm,
            purpose=Purpose.SIGNING,
            state=KeyState.PRE_ACTIVE,
            token_serial="",
            token_label="",
            cka_id=given.fingerprint,
            extractable=False,
            kcv=None,
            fingerprint=given.fingerprint,
            created_at=self.clock(),
            created_by=self.operator,
            token_sync=TokenSync.RECORDED,  # no token object: Keystead alone enforces its state
            notes="Verify-only: public key imported from "
            + (f"certificate {given.subject}" if given.subject else source.name),
        )
        with self.db.transaction():
            self.keys.repo.insert(key, given.spki)
            seq = record(
                self.db,
                when=key.created_at,
                operators=who,
                action="key.import",
                subject=f"key:{key.id}",
                outcome=Outcome.SUCCESS,
                details={
                    **vouched(key),
                    "name": key.name,
                    "algorithm": key.algorithm.value,
                    "verify_only": True,
                    "fingerprint": given.fingerprint,
                    "source": given.source,
                    "certificate_subject": given.subject,
                    "file_sha256": _sha256(source),
                },
            )
        return ImportResult(
            key, given.fingerprint, pgp_words(bytes.fromhex(given.fingerprint)), None, seq
        )

    # --- helpers -------------------------------------------------------------------------------

    def _unwrapping_record(self, ref: str, mechanism: WrapMechanism, action: str) -> KeyRecord:
        key = self.keys.resolve(ref)
        want = Family.RSA if mechanism is WrapMechanism.RSA_OAEP_SHA1 else Family.AES
        problem = None
        if key.algorithm.family is not want or key.purpose is not Purpose.KEY_WRAPPING:
            problem = (
                f"'{key.name}' is a {key.algorithm.value} {key.purpose.value} key; "
                f"{mechanism.value} needs a {want.value} key-wrapping key"
            )
        elif not key.token_serial:
            problem = f"'{key.name}' is a verify-only public key with no token object"
        elif key.state not in UNWRAP_STATES:
            problem = (
                f"'{key.name}' is {key.state.value}; a key-wrapping key is used only while "
                "ACTIVE or DEACTIVATED"
            )
        if problem is not None:
            self._deny(action, f"key:{key.id}", problem, RULE_UNWRAP_KEY)
        return key

    def _recipient_key(self, made: TransferFile) -> KeyRecord:
        """The managed key the file names as its recipient."""
        for key in self.keys.repo.all():
            if (
                key.token_serial
                and self._identity(key).lower() == made.recipient.lower()
                and (key.purpose is Purpose.KEY_WRAPPING)
            ):
                return self._unwrapping_record(key.id, made.mechanism, "key.import")
        raise ValidationError(
            f"No key-wrapping key here matches the file's recipient {made.recipient[:16]}…: "
            "the file was made for another recipient. Nothing was imported."
        )

    def _identity(self, key: KeyRecord) -> str:
        return (key.kcv if key.algorithm.symmetric else key.fingerprint) or ""

    def _refuse_known_key(self, made: TransferFile, subject: str) -> None:
        """Refuse (denied entry) a file whose key this workstation already holds or has
        retired: the same key id, or the same algorithm and KCV (``KnownKeys``, the check
        restore and adopt make too). An import never brings back a compromised or destroyed
        key and never makes a second copy of a live one."""
        found = KnownKeys(self.keys.repo.all()).holding(
            made.algorithm, made.kcv, None, made.key_id
        )
        if found is None:
            return
        known = found.record
        if found.retired:
            why = (
                f"The file holds key '{known.name}' (KCV {made.kcv}), recorded here as "
                f"{known.state.title.lower()}; a retired key is never brought back"
            )
        else:
            why = (
                f"The file holds key '{known.name}' (KCV {made.kcv}), which this "
                f"workstation already holds ({known.state.title.lower()}); a key is "
                "imported once"
            )
        self._deny("key.import", subject, why, RULE_KNOWN_KEY)

    def _deny(self, action: str, subject: str, why: str, rule: str) -> None:
        error = PolicyError(f"{why}. Nothing was done.", rule)
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=action,
            subject=subject,
            outcome=Outcome.DENIED,
            details={"rule": rule, "error": error.message},
        )
        raise error


def read_recipient(path: Path, now: datetime | None = None) -> PublicKeyInput:
    """The recipient's RSA public key (≥ 2048 bits) from a PEM/DER key or certificate."""
    given = read_public(_read_limited(path, MAX_RECIPIENT_BYTES))
    if given.algorithm.family is not Family.RSA:
        raise ValidationError(
            f"The recipient key is {given.algorithm.value}; RSA-OAEP needs an RSA public key "
            "(at least 2048 bits). For other recipients use a shared KEK (--kek)."
        )
    if (
        now is not None
        and given.not_after is not None
        and given.not_before is not None
        and not given.not_before <= now <= given.not_after
    ):
        raise ValidationError(
            f"The recipient's certificate is valid from {given.not_before:%Y-%m-%d} to "
            f"{given.not_after:%Y-%m-%d} (UTC), not now; ask the recipient for a current "
            "one. Nothing was wrapped."
        )
    if given.key_encipherment is False:
        raise ValidationError(
            "The recipient's certificate does not allow key encipherment (its KeyUsage, RFC "
            "5280 §4.2.1.3); a key is wrapped only for a key certified for that."
        )
    return given


def _read_limited(path: Path, limit: int, what: str = "key or certificate file") -> bytes:
    """A regular file of at most ``limit`` bytes (a FIFO or /dev/zero is refused, not read);
    ``what`` names it in errors."""
    return read_regular(path, what, limit)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(_read_limited(path, MAX_RECIPIENT_BYTES)).hexdigest()


RULE_PURPOSE = "KS-TRANSFER-PURPOSE"


def check_purpose(made: TransferFile, expected: Purpose | None) -> None:
    """Refuse an import whose purpose was not confirmed, or differs from the one the sender
    read out (the file's purpose is covered by no check value; see ``import_wrapped``)."""
    if expected is None:
        raise ValidationError(
            f"Confirm the key's purpose: the file says '{made.purpose.value}', and neither its "
            "KCV nor its checksum covers the purpose, so compare it with what the sender read "
            f"out (--expect-purpose). Nothing was imported. [{RULE_PURPOSE}]"
        )
    if expected is not made.purpose:
        raise ValidationError(
            f"The file's key is for '{made.purpose.value}', the sender read out "
            f"'{expected.value}': the file may have been altered. Nothing was imported; ask the "
            f"sender for a new file. [{RULE_PURPOSE}]"
        )
