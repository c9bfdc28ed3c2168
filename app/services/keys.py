"""Managed keys: generate, adopt, list with reconciliation, show."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.domain.algorithms import (
    Algorithm,
    Purpose,
    Usage,
    UsagePlan,
    default_purpose,
    usage_for,
)
from app.domain.fingerprints import pgp_words
from app.domain.keys import (
    InventoryItem,
    KeyRecord,
    KeyState,
    Presence,
    TokenObject,
    TrustedWrap,
)
from app.domain.names import validate_key_name
from app.errors import (
    KeysteadError,
    NotFoundError,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    TokenRemoved,
    UnsupportedAlgorithm,
    ValidationError,
)
from app.hsm.session import TokenSession
from app.hsm.templates import KeySpec
from app.hsm.trials import TrialResult, extra_usages, widened
from app.services.airgap import AirGapGuard
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.guard import Guard, unguarded
from app.services.intents import COMPLETED, ROLLED_BACK, IntentLog, Resolution
from app.services.token_inspect import backup_refusal, known_trial, remember_trial
from app.services.tokens import TokenService
from app.storage.database import Database
from app.storage.intents import IntentRow
from app.storage.repository import KeyRepository, SettingsRepository

log = logging.getLogger(__name__)

# Settings key of versions before write-ahead intents: failed generations that may have left a
# key on a token that stopped answering (JSON list of {"serial", "cka_id", "name"}). Still
# settled when found; new ones are pending intents.
LEFTOVERS = "generation_leftovers"


@dataclass(frozen=True)
class KeyDetails:
    """A key as the detail panel shows it: record, live token attributes, words to read aloud."""

    record: KeyRecord
    presence: Presence
    token_attributes: dict[str, dict[str, Any]]  # empty when the token is not logged in
    identifier_words: list[str]


class KeyService:
    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        operator: str,
        clock: Callable[[], datetime],
        airgap: AirGapGuard | None = None,
        intents: IntentLog | None = None,
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.operator = operator
        self.clock = clock
        self.guard: Guard = unguarded  # the role check (wired by the workstation)
        self.repo = KeyRepository(db)
        self.intents = intents or tokens.intents
        self.intents.handlers["key.generate"] = self._reconcile_generation
        self.settings = SettingsRepository(db)
        # The air-gap policy is always consulted (it lives in the database, off by default).
        self.airgap = airgap or AirGapGuard(db, operator, clock)

    # --- lookup ----------------------------------------------------------------------------

    def resolve(self, ref: str) -> KeyRecord:
        """A key by uuid or unique name."""
        record_ = self.repo.get(ref) or self.repo.by_name(ref)
        if record_ is None:
            raise NotFoundError(f"No key with id or name '{ref}'.")
        return record_

    def free_name(self, name: str) -> str:
        """``name`` validated and not used by another key."""
        cleaned = validate_key_name(name)
        if self.repo.by_name(cleaned) is not None:
            raise ValidationError(f"A key named '{cleaned}' already exists; names are unique.")
        return cleaned

    # --- generation ------------------------------------------------------------------------

    def generate(
        self,
        token_ref: str,
        algorithm: Algorithm,
        name: str,
        purpose: Purpose | None = None,
        backup_able: bool = False,
        replaces: KeyRecord | None = None,
        allow_wider: bool = False,
    ) -> KeyRecord:
        """Generate a key on the token and record it as PRE_ACTIVE, with its audit event.

        With ``replaces`` (rotation) the new key and its predecessor are linked both ways in
        the same transaction.

        Tokens that refuse the purpose's exact template (tpm2-pkcs11 makes key pairs only with
        sign and decrypt both granted): when a trial (``app.hsm.trials``) already found so, the
        generation is refused before the token is asked, with what the token would add; when
        the exact template fails, a trial finds out why and the refusal says so. Only with
        ``allow_wider`` (the officer's explicit decision) is the wider template used, and the
        entry records the extra usage flags and the decision. Usage is never widened silently.
        """
        assert_core_thread()
        self.guard("key.generate", f"token:{token_ref}")
        purpose = purpose or default_purpose(algorithm)
        name = self.free_name(name)
        self.airgap.require_air_gap("key.generate", f"key:{name}")
        plan = usage_for(algorithm, purpose)
        session = self.tokens.session(token_ref)
        info = session.info
        if backup_able:
            refusal = backup_refusal(self.db, info.serial, info.label, algorithm)
            if refusal is not None:
                raise UnsupportedAlgorithm(refusal)
        self.settle(session)
        subject = f"key:{name}"
        trial = known_trial(self.db, info.serial, algorithm, purpose)
        if trial is not None and (
            trial.outcome == "refused" or (trial.outcome == "wider" and not allow_wider)
        ):
            self._refuse_in_advance(subject, algorithm, info.serial, trial, purpose)
        widen = trial is not None and trial.outcome == "wider" and allow_wider
        granted = widened(plan, algorithm.family) if widen else plan
        spec = KeySpec(
            algorithm=algorithm,
            label=name,
            cka_id=secrets.token_bytes(16),
            usage=granted or plan,
            extractable=backup_able,
        )
        cka_id = spec.cka_id.hex()
        # Write-ahead: committed before the token is asked; resolved with the record, or
        # rolled back; a kill leaves it pending for ``settle`` at the next login.
        intent = self.intents.begin(
            "key.generate",
            info.serial,
            subject,
            {
                "subject": subject,
                "name": name,
                "cka_id": cka_id,
                "algorithm": algorithm.value,
                "replaces": replaces.id if replaces else None,
            },
        )
        try:
            try:
                generated = session.generate(spec)
            except TokenError as exc:
                # A trial only for what the token itself answered (a refusal made before the
                # token was asked, such as a mechanism it does not list, has no PKCS#11 cause).
                answered = isinstance(exc.__cause__, Exception)
                if trial is not None or isinstance(exc, _NOT_ABOUT_TEMPLATES) or not answered:
                    raise
                trial = self._trial_after_refusal(session, algorithm, purpose)
                if trial.outcome == "exact":
                    raise  # the template was not the reason
                if trial.outcome == "refused" or not allow_wider:
                    raise UnsupportedAlgorithm(
                        _trial_refusal(trial, info.label, purpose, exc.message)
                    ) from exc
                spec = replace(
                    spec,
                    usage=widened(plan, algorithm.family) or plan,
                    cka_id=secrets.token_bytes(16),
                )
                cka_id = spec.cka_id.hex()
                generated = session.generate(spec)
        except KeysteadError as exc:
            # The session destroyed whatever the token made under this CKA_ID, unless the
            # token stopped answering: then the intent stays pending (``settle``).
            left = cka_id in session.unsettled
            self._record_failure(
                subject,
                algorithm,
                info.serial,
                cka_id,
                exc.message,
                left=left,
                name=name,
                gone="none left",
                outcome=failure_outcome(exc),
            )
            session.unsettled.discard(cka_id)
            if not left:
                self.intents.abandon(intent, subject, exc.message)
            raise
        key = KeyRecord(
            id=str(uuid.uuid4()),
            name=name,
            algorithm=algorithm,
            purpose=purpose,
            state=KeyState.PRE_ACTIVE,
            token_serial=info.serial,
            token_label=info.label,
            cka_id=generated.cka_id,
            extractable=backup_able,
            wrap_trusted=TrustedWrap.OK if backup_able else TrustedWrap.NOT_APPLICABLE,
            kcv=generated.kcv,
            fingerprint=generated.fingerprint,
            created_at=self.clock(),
            created_by=self.operator,
            replaces=replaces.id if replaces else None,
        )
        try:
            with self.db.transaction():
                self.intents.finish(intent)
                self.repo.insert(key, generated.spki)
                record(
                    self.db,
                    when=key.created_at,
                    operators=(self.operator,),
                    action="key.generate",
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        **_key_details(key),
                        "replaces": key.replaces,
                        **_usage_details(plan, spec.usage, generated.attributes),
                    },
                )
                if replaces is not None:
                    current = self.resolve(replaces.id)
                    if current.replaced_by:
                        raise ValidationError(f"'{current.name}' already has a successor.")
                    self.repo.update(current._replace(replaced_by=key.id))
                    record(
                        self.db,
                        when=key.created_at,
                        operators=(self.operator,),
                        action="key.rotate",
                        subject=f"key:{current.id}",
                        outcome=Outcome.SUCCESS,
                        details={"successor": key.id, "successor_name": key.name},
                    )
        except BaseException as exc:
            # No record, no key: take the new object off the token again, and say so. If the
            # token does not answer now, the CKA_ID is kept and the object destroyed later.
            try:
                session.destroy_key(generated.cka_id)
                left = False
            except KeysteadError as cleanup:
                log.error("could not destroy unrecorded key %s: %s", cka_id, cleanup.message)
                left = True
            self._record_failure(
                subject,
                algorithm,
                info.serial,
                cka_id,
                getattr(exc, "message", type(exc).__name__),
                left=left,
                name=name,
                outcome=failure_outcome(exc),
            )
            if not left:
                self.intents.abandon(intent, subject, getattr(exc, "message", "not recorded"))
            raise
        log.info("generated key %s (%s) on token %s", key.id, algorithm.value, info.serial)
        return key

    def _refuse_in_advance(
        self, subject: str, algorithm: Algorithm, serial: str, trial: TrialResult, purpose: Purpose
    ) -> None:
        """A generation the token's trial says it would not make as asked: denied, recorded,
        nothing sent to the token."""
        label = self.tokens.find(serial).label
        message = _trial_refusal(trial, label, purpose, None)
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action="key.generate",
            subject=subject,
            outcome=Outcome.DENIED,
            details={
                "algorithm": algorithm.value,
                "purpose": purpose.value,
                "token": serial,
                "reason": message,
                "trial": trial.to_json(),
            },
        )
        raise UnsupportedAlgorithm(message)

    def _trial_after_refusal(
        self, session: TokenSession, algorithm: Algorithm, purpose: Purpose
    ) -> TrialResult:
        """Find out why the exact template was refused, and keep the answer."""
        trial = session.generation_trial(algorithm, purpose)
        with self.db.transaction():
            remember_trial(self.db, session.info.serial, trial)
        log.warning("generation trial on %s: %s", session.info.serial, trial.to_json())
        return trial

    def _record_failure(
        self,
        subject: str,
        algorithm: Algorithm,
        serial: str,
        cka_id: str,
        error: str,
        *,
        left: bool,
        name: str,
        gone: str = "destroyed",
        outcome: Outcome = Outcome.FAILED,
    ) -> None:
        """The failed entry of a generation; with ``left``, the CKA_ID to clean up later, in
        the same transaction. Written while the original error is on its way: if it cannot
        be written that is logged and the original error still propagates."""
        try:
            with self.db.transaction():
                record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="key.generate",
                    subject=subject,
                    outcome=outcome,
                    details={
                        "algorithm": algorithm.value,
                        "token": serial,
                        "cka_id": cka_id,
                        "error": error,
                        # unknown: the token stopped answering; destroyed when it answers again
                        "token_object": "unknown" if left else gone,
                    },
                )
        except KeysteadError as exc:
            log.error("could not record a failed generation: %s", exc.message)

    def _leftovers(self) -> list[dict[str, str]]:
        raw = self.settings.get(LEFTOVERS)
        return list(json.loads(raw)) if raw else []

    def _reconcile_generation(self, intent: IntentRow) -> Resolution | None:
        """A generation that never resolved: the key is recorded (completed), or whatever
        the token holds under the try's random CKA_ID is destroyed (rolled back)."""
        serial, cka_id = intent.token_serial, str(intent.details["cka_id"])
        name = str(intent.details.get("name", ""))
        if self.repo.by_token_object(serial, cka_id) is not None:
            return Resolution(COMPLETED, {"cka_id": cka_id})
        session = next((s for s in self.tokens.logged_in() if s.info.serial == serial), None)
        if session is None:
            return None
        count = session.destroy_key(cka_id)

        def apply() -> None:
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.generate",
                subject=f"key:{name}",
                outcome=Outcome.ABORTED,
                details={
                    "token": serial,
                    "cka_id": cka_id,
                    "token_object": "destroyed" if count else "absent",
                },
            )

        return Resolution(ROLLED_BACK, {"cka_id": cka_id, "objects_destroyed": count}, apply)

    def settle(self, session: TokenSession) -> int:
        """Reconcile this token's pending generations, now that it answers: a key made but
        never recorded (a kill, or a token that stopped answering) is destroyed by the CKA_ID
        Keystead chose for that one try (never a managed key's), recorded as the aborted
        generation's end. Also settles leftovers listed by versions before intents."""
        serial = session.info.serial
        self.intents.reconcile(frozenset({"key.generate"}), serial)
        destroyed = 0
        for item in [p for p in self._leftovers() if p["serial"] == serial]:
            count = 0
            if self.repo.by_token_object(serial, item["cka_id"]) is None:
                try:
                    count = session.destroy_key(item["cka_id"])
                except KeysteadError as exc:
                    log.warning("leftover %s not settled yet: %s", item["cka_id"], exc.message)
                    continue
            with self.db.transaction():
                remaining = [p for p in self._leftovers() if p != item]
                self.settings.put(LEFTOVERS, json.dumps(remaining))
                record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="key.generate",
                    subject=f"key:{item['name']}",
                    outcome=Outcome.ABORTED,
                    details={
                        "token": serial,
                        "cka_id": item["cka_id"],
                        "token_object": "destroyed" if count else "absent",
                    },
                )
            destroyed += count
        return destroyed

    # --- inventory -------------------------------------------------------------------------

    def inventory(self) -> list[InventoryItem]:
        """Every managed record and every unmanaged token object, reconciled per token."""
        assert_core_thread()
        records = self.repo.all()
        seen: dict[str, dict[str, TokenObject]] = {}
        for session in self.tokens.logged_in():
            self.settle(session)  # a failed generation's key is not an unmanaged key
            seen[session.info.serial] = {o.cka_id: o for o in session.key_objects()}
        present = {info.serial for info in self.tokens.present()}
        items: list[InventoryItem] = []
        for key in records:
            objects = seen.get(key.token_serial)
            if objects is None:
                items.append(InventoryItem(_unreconciled(key, present), key))
            elif key.cka_id in objects and _key_class(key) in objects[key.cka_id].classes:
                items.append(InventoryItem(Presence.PRESENT, key, objects.pop(key.cka_id)))
            else:
                objects.pop(key.cka_id, None)  # a public half left behind is not the key
                gone = Presence.DESTROYED if key.state in DESTROYED_STATES else Presence.MISSING
                items.append(InventoryItem(gone, key))
        for objects in seen.values():
            items.extend(InventoryItem(Presence.UNMANAGED, None, o) for o in objects.values())
        return items

    def details(self, key_id: str) -> KeyDetails:
        key = self.resolve(key_id)
        attributes: dict[str, dict[str, Any]] = {}
        live = {s.info.serial: s for s in self.tokens.logged_in()}
        if key.token_serial in live:
            attributes = live[key.token_serial].read_key(key.cka_id)
            if _key_class(key) in attributes:
                presence = Presence.PRESENT
            elif key.state in DESTROYED_STATES:
                presence = Presence.DESTROYED
            else:
                presence = Presence.MISSING
        else:
            presence = _unreconciled(key, {info.serial for info in self.tokens.present()})
        words = pgp_words(bytes.fromhex(key.identifier)) if key.identifier else []
        return KeyDetails(key, presence, attributes, words)

    # --- adoption --------------------------------------------------------------------------

    def adopt(self, token_ref: str, cka_id: str, name: str | None = None) -> KeyRecord:
        """Record an unmanaged token object as a managed PRE_ACTIVE key, reading its attributes."""
        assert_core_thread()
        self.guard("key.adopt", f"token:{token_ref}")
        session = self.tokens.session(token_ref)
        info = session.info
        try:
            cka_id = bytes.fromhex(cka_id.replace(":", "")).hex()
        except ValueError as exc:
            raise ValidationError(f"'{cka_id}' is not a hexadecimal CKA_ID.") from exc
        if not cka_id:
            raise ValidationError("Give the CKA_ID of the key to adopt.")
        existing = self.repo.by_token_object(info.serial, cka_id)
        if existing is not None:
            raise ValidationError(f"That object is already managed as key '{existing.name}'.")
        algorithm, kcv, spki, attributes = session.identify(cka_id)
        if algorithm is None:
            raise TokenError(
                "Keystead cannot manage this key's type or size; it manages "
                + ", ".join(a.value for a in Algorithm)
                + "."
            )
        label = next((a.get("LABEL") for a in attributes.values() if a.get("LABEL")), "")
        final_name = self.free_name(name or str(label) or f"adopted-{cka_id[:8]}")
        purpose = _purpose_from_flags(algorithm, attributes)
        extractable = any(bool(a.get("EXTRACTABLE")) for a in attributes.values())
        trusted = all(
            bool(a.get("WRAP_WITH_TRUSTED")) for a in attributes.values() if a.get("EXTRACTABLE")
        )
        key = KeyRecord(
            id=str(uuid.uuid4()),
            name=final_name,
            algorithm=algorithm,
            purpose=purpose,
            state=KeyState.PRE_ACTIVE,
            token_serial=info.serial,
            token_label=info.label,
            cka_id=cka_id,
            extractable=extractable,
            wrap_trusted=(
                TrustedWrap.NOT_APPLICABLE
                if not extractable
                else TrustedWrap.OK
                if trusted
                else TrustedWrap.PENDING
            ),
            kcv=kcv,
            fingerprint=hashlib.sha256(spki).hexdigest() if spki else None,
            created_at=self.clock(),
            created_by=self.operator,
        )
        with self.db.transaction():
            self.repo.insert(key, spki)
            record(
                self.db,
                when=key.created_at,
                operators=(self.operator,),
                action="key.adopt",
                subject=f"key:{key.id}",
                outcome=Outcome.SUCCESS,
                details={**_key_details(key), "attributes": attributes},
            )
        return key


DESTROYED_STATES = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)


def _unreconciled(key: KeyRecord, present: set[str]) -> Presence:
    """A record whose token is not logged in: destroyed, token absent, or not checked."""
    if key.state in DESTROYED_STATES:
        return Presence.DESTROYED
    return Presence.UNCHECKED if key.token_serial in present else Presence.ABSENT


# Failures that say nothing about the template: the token is gone or not logged in.
_NOT_ABOUT_TEMPLATES = (TokenRemoved, TokenNotLoggedIn, TokenNotPresent)


def _trial_refusal(trial: TrialResult, label: str, purpose: Purpose, error: str | None) -> str:
    """Why nothing was generated, in the words the CLI and GUI show."""
    first = f"{error} " if error else ""
    if trial.outcome == "wider":
        return (
            f"{first}Token '{label}' makes {trial.algorithm} keys only with "
            f"{' and '.join(trial.extra)} as well: a {purpose.value} key would gain that usage. "
            "Nothing was generated. To accept it, generate again with --allow-wider-usage "
            "(in the window: 'Accept the wider usage'); the decision is recorded."
        )
    return (
        f"{first}Token '{label}' cannot generate {trial.algorithm} keys for {purpose.value} "
        f"({trial.reason}). Nothing was generated; choose another algorithm or token."
    )


def _usage_details(
    wanted: UsagePlan, granted: UsagePlan, attributes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What the audit entry says about usage: the flags the token holds, and any usage beyond
    the purpose's that the officer accepted."""
    held = {
        cls: sorted(name for name, value in attrs.items() if name in _USAGE_NAMES and value)
        for cls, attrs in attributes.items()
    }
    extra = extra_usages(wanted, granted)
    if not extra:
        return {"token_usage": held}
    return {"token_usage": held, "wider_usage_accepted": list(extra)}


_USAGE_NAMES = {u.value for u in Usage}


def _key_class(key: KeyRecord) -> str:
    """The object class that is the key itself: without it on the token, the key is gone."""
    return "SECRET_KEY" if key.algorithm.symmetric else "PRIVATE_KEY"


def _key_details(key: KeyRecord) -> dict[str, Any]:
    return {
        "name": key.name,
        "algorithm": key.algorithm.value,
        "purpose": key.purpose.value,
        "token": key.token_serial,
        "cka_id": key.cka_id,
        "extractable": key.extractable,
        "identifier": key.identifier,
    }


def _purpose_from_flags(algorithm: Algorithm, attributes: dict[str, dict[str, Any]]) -> Purpose:
    """The purpose whose usage flags the object carries; the algorithm's default otherwise."""
    flags = {u for a in attributes.values() for u in Usage if a.get(u.value)}
    for purpose in (Purpose.KEY_WRAPPING, Purpose.ENCRYPTION, Purpose.SIGNING, Purpose.MAC):
        try:
            plan = usage_for(algorithm, purpose)
        except ValidationError:
            continue
        if plan.secret & flags == plan.secret or (plan.private | plan.public) <= flags:
            return purpose
    return default_purpose(algorithm)
