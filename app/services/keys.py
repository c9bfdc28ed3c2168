"""Managed keys: generate, adopt, list with reconciliation, show."""

from __future__ import annotations

import gc
import json
import logging
import secrets
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.domain.algorithms import (
    Algorithm,
    Purpose,
    Usage,
    UsagePlan,
    default_purpose,
    parse_algorithm,
    usage_for,
)
from app.domain.fingerprints import pgp_words
from app.domain.identity import KeyIdentity, TokenEntry, group_objects, is_of
from app.domain.key_history import vouched
from app.domain.keys import (
    BackupStatus,
    InventoryHead,
    InventoryItem,
    KeyRecord,
    KeyState,
    ObjectKind,
    Presence,
    TokenObject,
    TrustedWrap,
    name_order,
)
from app.domain.names import mixed_script, validate_key_name
from app.errors import (
    KeysteadError,
    NotFoundError,
    PolicyError,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    TokenRemoved,
    UnsupportedAlgorithm,
    ValidationError,
)
from app.hsm.session import BlankKeys, TokenSession
from app.hsm.templates import KeySpec
from app.services.airgap import AirGapGuard
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.guard import Guard, unguarded
from app.services.intents import COMPLETED, ROLLED_BACK, IntentLog, Resolution
from app.services.tokens import TokenService
from app.storage.backups import BackupRepository
from app.storage.database import Database
from app.storage.intents import IntentRow
from app.storage.repository import KeyRepository, SettingsRepository

if TYPE_CHECKING:
    # Generation's trials, adoption and the known-key check are imported where they are used:
    # a command that only lists keys does not load them (issue 17, tests/e2e/test_startup.py).
    from app.domain.known_keys import KnownKeys
    from app.hsm.trials import TrialResult
    from app.services.adoption import AdoptionCandidate

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


def new_key_id() -> str:
    """A new key's id: a random UUID (RFC 9562 version 4) as text. ``uuid`` is imported here:
    it loads ``platform``, which a command that only reads keys does not need."""
    import uuid

    return str(uuid.uuid4())


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
        self.intents.handlers["key.adopt-id"] = self._reconcile_adopt_id
        self.intents.handlers["key.restore"] = self._reconcile_restore
        # Usage counters and usage-limit warnings per key id (wired by the workstation to
        # ``KeyUseService``, which depends on this service): (uses, why due).
        self.usage_of: (
            Callable[[list[KeyRecord] | None], tuple[dict[str, int], dict[str, str]]] | None
        ) = None
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
        # A key name is read aloud and approved by name: one that reads as another key's is
        # refused, as operators' names are (outside tester attack2 A8: 'pay', Cyrillic 'раy'
        # and 'PAY' side by side, and the destroy approval showed 'Key: раy').
        if mixed_script(cleaned):
            raise ValidationError(
                f"Key name '{cleaned}' mixes Latin, Cyrillic or Greek letters, which look "
                "alike; type it in one script."
            )
        if unicodedata.normalize("NFKC", cleaned) != cleaned:
            raise ValidationError(
                f"Key name '{cleaned}' holds compatibility characters (full-width letters, "
                "ligatures, superscripts) that read as other letters; type them plainly."
            )
        for other in self.repo.names_like(cleaned):
            if other != cleaned:
                raise ValidationError(
                    f"Key name '{cleaned}' reads as the key '{other}' (only case differs); "
                    "choose a name nobody can mistake for it."
                )
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
        from app.hsm.trials import widened
        from app.services.token_inspect import backup_refusal, known_trial

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
        # The token's object files before the call (embedded store): the evidence that
        # tells an object this generation left without its template from anyone else's.
        before = session.object_files()
        intent = self.intents.begin(
            "key.generate",
            info.serial,
            subject,
            {
                "subject": subject,
                "name": name,
                "label": spec.label,
                "cka_id": cka_id,
                "algorithm": algorithm.value,
                "replaces": replaces.id if replaces else None,
            },
            evidence={"token_files": None if before is None else sorted(before)},
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
                self._clear_after_refusal(session, algorithm, before, info.serial)
                self.intents.abandon(intent, subject, exc.message)
            raise
        key = KeyRecord(
            id=new_key_id(),
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
                session.destroy_generated(generated.cka_id)
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

    def _clear_after_refusal(
        self,
        session: TokenSession,
        algorithm: Algorithm,
        before: frozenset[str] | None,
        serial: str,
    ) -> None:
        """SoftHSM 2.6.1 keeps the object it created when it then refuses the template
        (``CreateObject`` does not delete it): the refused generation's own leftovers go too.
        Never raises (the refusal is on its way)."""
        if before is None or self.intents.writer_running(serial):
            return
        try:
            self._clear_blank_keys(session, algorithm.value, before, "this refused generation")
        except KeysteadError as exc:
            log.error("could not look for a refused generation's leftovers: %s", exc.message)

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
        from app.services.token_inspect import remember_trial

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
        if session is None or self.intents.writer_running(serial):
            return None  # not now: the token is not open, or another live writer is at it
        count = session.destroy_generated(cka_id)  # the try's own random CKA_ID
        files = intent.details.get("token_files")
        blank = self._clear_blank_keys(
            session,
            str(intent.details.get("algorithm", "")),
            None if files is None else frozenset(str(f) for f in files),
            f"interrupted generation {intent.id}",
        )
        outcome_on_token = (
            "destroyed"
            if count
            else "destroyed (created without its template)" if blank.destroyed else "absent"
        )
        found = {
            "cka_id": cka_id,
            "objects_destroyed": count,
            "blank_objects_destroyed": blank.destroyed,
            "blank_objects_left_for_officer": blank.left,
        }

        def apply() -> None:
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.generate",
                subject=f"key:{name}",
                outcome=Outcome.ABORTED,
                details={"token": serial, "token_object": outcome_on_token, **found},
            )

        return Resolution(ROLLED_BACK, found, apply)

    def _reconcile_restore(self, intent: IntentRow) -> Resolution | None:
        """A backup restore that never resolved (killed between unwrapping its keys onto the
        token and recording them). Its CKA_IDs were free on the token when it began (restore
        refuses otherwise): an object under one that a record here points at on this token is
        kept (the restore rebound that record, or the key was adopted since); the objects under
        the others are the restore's own and are destroyed, so the next restore finds the
        token as before and restores them properly. Recorded as the restore's abort."""
        serial = intent.token_serial
        session = next((s for s in self.tokens.logged_in() if s.info.serial == serial), None)
        if session is None or self.intents.writer_running(serial):
            return None
        kept: list[str] = []
        destroyed = 0
        for cka_id in (str(c) for c in intent.details.get("cka_ids", [])):
            if self.repo.by_token_object(serial, cka_id) is not None:
                kept.append(cka_id)
            else:
                destroyed += session.destroy_generated(cka_id)
        found = {
            "backup_id": intent.details.get("backup_id"),
            "objects_destroyed": destroyed,
            "kept_for_records": kept,
        }

        def apply() -> None:
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="backup.restore",
                subject=str(intent.details.get("subject", f"token:{serial}")),
                outcome=Outcome.ABORTED,
                details={"token": serial, **found},
            )

        return Resolution(ROLLED_BACK, found, apply)

    def _clear_blank_keys(
        self, session: TokenSession, algorithm_name: str, before: frozenset[str] | None, what: str
    ) -> BlankKeys:
        """Objects a generation left without its template (no CKA_ID, no label:
        ``TokenSession.clear_blank_keys``), judged against the token's object files recorded
        before the call."""
        try:
            algorithm = parse_algorithm(algorithm_name)
        except KeysteadError:
            return BlankKeys(0, 0)
        blank = session.clear_blank_keys(algorithm, before)
        if blank.left:
            log.warning(
                "%d key object(s) without ID or label on token %s: not provably from %s, "
                "left for the officer (they are listed as unmanaged objects)",
                blank.left,
                session.info.serial,
                what,
            )
        return blank

    def _reconcile_adopt_id(self, intent: IntentRow) -> Resolution | None:
        """An adoption with a fresh CKA_ID that never resolved: the key is recorded
        (completed), or the objects that already carry the fresh ID get their old one back
        (rolled back), so the token is as the officer left it."""
        key_id = str(intent.details["key"])
        before = str(intent.details["cka_id_before"])
        assigned = str(intent.details["cka_id_assigned"])
        if self.repo.get(key_id) is not None:
            return Resolution(COMPLETED, {"cka_id": assigned})
        serial = intent.token_serial
        session = next((s for s in self.tokens.logged_in() if s.info.serial == serial), None)
        if session is None:
            return None
        renamed = [e for e in session.entries_with_id(assigned) if e.is_key]
        if renamed:
            session.assign_id(renamed, bytes.fromhex(before))
        return Resolution(
            ROLLED_BACK,
            {"cka_id_restored": before, "objects": [e.describe for e in renamed]},
        )

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
                    count = session.destroy_generated(item["cka_id"])
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
        """Every managed record and every object on the logged-in tokens, reconciled per
        token. A record matches the one listed key with its CKA_ID, algorithm and (where both
        are known) KCV or public-key fingerprint; everything else on the token is listed as
        unmanaged: keys, lone public keys, certificates and data objects."""
        assert_core_thread()
        records = self.repo.all()
        backed_up = BackupRepository(self.db).status_per_key()
        seen, present, index = self._listed()
        uses, due = self.usage_of(records) if self.usage_of is not None else ({}, {})
        taken: set[int] = set()
        items: list[InventoryItem] = []
        add = items.append
        # The cyclic collector is paused while 100,000 items are made (no cycles among them):
        # with it on, the young generations were promoted into full collections over the
        # records just read, a third of this loop's time.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._reconcile(records, seen, present, index, backed_up, uses, due, taken, add)
        finally:
            if paused:
                gc.enable()
        for objects in seen.values():
            items.extend(
                InventoryItem(Presence.UNMANAGED, None, o) for o in objects if id(o) not in taken
            )
        return items

    def inventory_head(
        self, limit: int, due_before: datetime, now: datetime
    ) -> InventoryHead:
        """The first ``limit`` rows of ``inventory()`` in name order (``name_order``) and its
        totals, without reading every record: the first screenful at unlock (issue 17).

        Rows: the first ``limit`` records by name (one indexed query) and every unmanaged
        object of the logged-in tokens, reconciled as ``inventory`` does, merged in name
        order (records before objects of the same name, objects in token order, as the full
        list's stable sort has them). Exact because a record can only match objects with
        its own (token, CKA_ID), which the schema makes unique: the records bound to a
        listed object are read one by one (as many queries as objects on the tokens).
        Totals come from grouped and indexed counts; what depends on the tokens is the
        difference the bound records make. Raises what ``inventory`` raises."""
        assert_core_thread()
        seen, present, index = self._listed()
        head = self.repo.first_by_name(limit)
        bound: dict[str, KeyRecord] = {}
        for serial, cka_id in index:
            record = self.repo.by_token_object(serial, cka_id)
            if record is not None:
                bound[record.id] = record
        needed = {**{r.id: r for r in head}, **bound}
        backed_up = BackupRepository(self.db).status_per_key(list(needed))
        uses, usage_due = self.usage_of(None) if self.usage_of is not None else ({}, {})
        taken: set[int] = set()
        reconciled: dict[str, InventoryItem] = {}

        def add(item: InventoryItem) -> None:  # every item ``_reconcile`` makes has a record
            reconciled[item.record.id if item.record else ""] = item

        self._reconcile(
            list(needed.values()), seen, present, index, backed_up, uses, usage_due, taken, add
        )
        unmanaged = [
            InventoryItem(Presence.UNMANAGED, None, o)
            for objects in seen.values()
            for o in objects
            if id(o) not in taken
        ]
        rows = [reconciled[r.id] for r in head] + unmanaged
        rows.sort(key=lambda item: name_order(item.name))  # stable: as the full list sorts

        totals: Counter[Presence] = Counter()
        compromised = 0
        for serial, state, count in self.repo.count_by_token_and_state():
            if state is KeyState.COMPROMISED:
                compromised += count
            if serial in seen:  # no object with its CKA_ID: gone from the token
                totals[Presence.DESTROYED if state in DESTROYED_STATES else Presence.MISSING] += (
                    count
                )
            else:
                totals[_unreconciled_state(state, serial, present)] += count
        for record in bound.values():  # bound to a listed object: as reconciled
            totals[
                Presence.DESTROYED if record.state in DESTROYED_STATES else Presence.MISSING
            ] -= 1
            totals[reconciled[record.id].presence] += 1
        totals[Presence.UNMANAGED] += len(unmanaged)
        due_count = self.repo.count_deadline_due(due_before)
        overdue = self.repo.count_deadline_due(due_before, at_or_before=now)
        for record in self.repo.by_ids(usage_due):  # due by a usage limit, not by date
            date = record.deactivation_date
            if date is None or date >= due_before:
                due_count += 1
        return InventoryHead(
            rows[:limit],
            sum(totals.values()),
            {presence: n for presence, n in totals.items() if n},
            due_count,
            overdue,
            self.repo.count_not_backed_up(),
            compromised,
        )

    def _listed(
        self,
    ) -> tuple[
        dict[str, list[TokenObject]], set[str], dict[tuple[str, str], list[TokenObject]]
    ]:
        """What the logged-in tokens hold (serial → objects, after settling their pending
        generations), the serials of the tokens present, and the key objects by (serial,
        CKA_ID)."""
        seen: dict[str, list[TokenObject]] = {}
        for session in self.tokens.logged_in():
            self.settle(session)  # a failed generation's key is not an unmanaged key
            seen[session.info.serial] = session.key_objects()
        present = {info.serial for info in self.tokens.present()}
        index: dict[tuple[str, str], list[TokenObject]] = {}
        for serial, objects in seen.items():
            for obj in objects:
                if obj.kind.is_key or obj.kind is ObjectKind.PUBLIC_ONLY:
                    index.setdefault((serial, obj.cka_id), []).append(obj)
        return seen, present, index

    @staticmethod
    def _reconcile(
        records: list[KeyRecord],
        seen: dict[str, list[TokenObject]],
        present: set[str],
        index: dict[tuple[str, str], list[TokenObject]],
        backed_up: dict[str, BackupStatus],
        uses: dict[str, int],
        due: dict[str, str],
        taken: set[int],
        add: Callable[[InventoryItem], None],
    ) -> None:
        """One item per record (``inventory``'s hot loop, positional construction)."""
        for key in records:
            key_id = key.id
            backup = backed_up.get(key_id)
            used = uses.get(key_id, 0)
            why = due.get(key_id, "")
            if key.token_serial not in seen:
                add(InventoryItem(_unreconciled(key, present), key, None, used, why, backup))
                continue
            candidates = index.get((key.token_serial, key.cka_id), [])
            match = _matching(key, candidates)
            if match is None:
                # A public half left behind is not the key; it is shown in the record's row.
                left = next(
                    (
                        o
                        for o in candidates
                        if o.kind is ObjectKind.PUBLIC_ONLY
                        and o.algorithm is key.algorithm
                        and o.identifier == (key.fingerprint or o.identifier)
                        and id(o) not in taken
                    ),
                    None,
                )
                if left is not None:
                    taken.add(id(left))
                gone = Presence.DESTROYED if key.state in DESTROYED_STATES else Presence.MISSING
                add(InventoryItem(gone, key, left, used, why, backup))
            else:
                taken.add(id(match))
                add(InventoryItem(Presence.PRESENT, key, match, used, why, backup))

    def details(self, key_id: str) -> KeyDetails:
        key = self.resolve(key_id)
        attributes: dict[str, dict[str, Any]] = {}
        live = {s.info.serial: s for s in self.tokens.logged_in()}
        if key.token_serial in live:
            attributes = live[key.token_serial].read_key(identity_of(key))
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

    def adoption_candidates(self, token_ref: str) -> list[AdoptionCandidate]:
        """Every unmanaged key on the token (and lone public keys), as adoption would take
        them, with live attributes, inferred purposes, exposure and refusals."""
        from app.domain.known_keys import KnownKeys

        assert_core_thread()
        self.guard("key.adopt", f"token:{token_ref}")
        session = self.tokens.session(token_ref)
        entries = session.entries()
        listed = group_objects(entries, session.info.serial, session.info.label)
        managed = {k.cka_id for k in self.repo.on_token(session.info.serial)}
        held = KnownKeys(self.repo.all())
        result = []
        for key in listed:
            if key.kind in (ObjectKind.CERTIFICATE, ObjectKind.DATA, ObjectKind.OTHER):
                continue
            if key.cka_id in managed and not key.shared_id:
                continue
            result.append(self._candidate(session, key, entries, held))
        return result

    def adoption_candidate(
        self, token_ref: str, cka_id: str | None, identifier: str | None = None
    ) -> AdoptionCandidate:
        """The one unmanaged key with this CKA_ID (hex; "" for none) and/or whose KCV or
        public-key fingerprint starts with ``identifier``. Raises NotFoundError, or
        ValidationError when more than one key fits (say which by its identifier)."""
        assert_core_thread()
        wanted_id = _parse_id(cka_id) if cka_id is not None else None
        prefix = (identifier or "").replace(":", "").strip().lower()
        if wanted_id is None and not prefix:
            raise ValidationError("Give the CKA_ID (--id) or the identifier (--key) to adopt.")
        session = self.tokens.session(token_ref)
        entries = session.entries()
        listed = group_objects(entries, session.info.serial, session.info.label)
        fits = [
            k
            for k in listed
            if (wanted_id is None or k.cka_id == wanted_id)
            and (not prefix or (k.identifier and k.identifier.lower().startswith(prefix)))
            and k.kind not in (ObjectKind.CERTIFICATE, ObjectKind.DATA, ObjectKind.OTHER)
        ]
        where = f"token '{session.info.label}'"
        if not fits:
            if wanted_id is not None and any(k.cka_id == wanted_id for k in listed):
                raise NotFoundError(
                    f"No key with ID {wanted_id or '(none)'} on {where}: only certificates or "
                    "data objects carry it."
                )
            raise NotFoundError(
                f"No key with ID {wanted_id if wanted_id is not None else '(any)'}"
                f"{' and identifier ' + prefix if prefix else ''} on {where}."
            )
        if len(fits) > 1:
            shown = "; ".join(
                f"{k.kind.value} '{k.label}' {k.algorithm.value if k.algorithm else k.key_type} "
                f"identifier {k.identifier or '(none)'}"
                for k in fits
            )
            raise ValidationError(
                f"{len(fits)} keys on {where} share ID {wanted_id or '(none)'}: {shown}. Choose "
                "one with --key IDENTIFIER (its KCV or fingerprint); adopting it gives it a "
                "fresh CKA_ID (--new-id). Nothing was changed."
            )
        return self._candidate(session, fits[0], entries)

    def _candidate(
        self,
        session: TokenSession,
        key: TokenObject,
        entries: list[TokenEntry],
        held: KnownKeys | None = None,
    ) -> AdoptionCandidate:
        from app.domain.known_keys import RULE_KNOWN_KEY, KnownKeys
        from app.services.adoption import candidate_for

        parts = _parts_of(key, entries)
        live = session.attributes_of([e.position for e in parts])
        attributes = {e.object_class: live.get(e.position, {}) for e in parts}
        candidate = candidate_for(key, parts, attributes)
        existing = self.repo.by_token_object(candidate.token_serial, candidate.cka_id)
        if existing is not None and not candidate.needs_new_id:
            return replace(candidate, managed_as=existing.name)
        algorithm = candidate.algorithm
        if candidate.refusal is None and algorithm is not None and candidate.identifier:
            symmetric = algorithm.symmetric
            found = (held or KnownKeys(self.repo.all())).holding(
                algorithm,
                candidate.identifier if symmetric else None,
                None if symmetric else candidate.identifier,
            )
            if found is not None:
                advice = (
                    ""
                    if found.retired
                    else "; a key is managed once (if that key's own object is gone, "
                    "'keys rebind' points its record at this one)"
                )
                return replace(
                    candidate,
                    refusal=f"This object holds {found.describe()}{advice}.",
                    known_rule=RULE_KNOWN_KEY,
                )
        return candidate

    def adopt(
        self,
        token_ref: str,
        cka_id: str | None,
        name: str | None = None,
        *,
        purpose: Purpose | None = None,
        accept_exposure: bool = False,
        new_id: bool = False,
        identifier: str | None = None,
    ) -> KeyRecord:
        """Record an unmanaged key as a managed PRE_ACTIVE key.

        Refused (ValidationError / TokenError, nothing changed, a denied entry written) when:
        the candidate cannot be adopted at all (a public key alone...); no purpose was given and
        the flags do not name exactly one, or the inferred one would clear usage flags at
        activation; the key is exposed and ``accept_exposure`` is not set; it has no CKA_ID or
        shares one and ``new_id`` is not set; the label is not plain text and no name is given.
        With ``new_id`` the key's objects (and only they) get a fresh random CKA_ID on the token,
        in the transaction that records the adoption (put back if the record fails).
        """
        assert_core_thread()
        candidate = self.adoption_candidate(token_ref, cka_id, identifier)
        try:
            chosen, explicit = self._adoption_checks(
                candidate, name, purpose, accept_exposure, new_id
            )
            final_name = self.free_name(name or candidate.suggested_name or "")
        except (ValidationError, TokenError, PolicyError) as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.adopt",
                subject=f"token:{candidate.token_serial}",
                outcome=Outcome.DENIED,
                details={
                    "cka_id": candidate.cka_id,
                    "identifier": candidate.identifier,
                    "label": candidate.key.label,
                    "refusal": exc.message,
                },
            )
            raise
        algorithm = candidate.algorithm
        if algorithm is None:  # refused above already; kept for the type checker
            raise TokenError("Keystead cannot manage this key's type.")
        session = self.tokens.session(candidate.token_serial)
        spki = None
        if not algorithm.symmetric:
            public = next((e for e in candidate.objects if e.fingerprint), None)
            spki = session.public_spki(public) if public else None
        extractable = any(bool(a.get("EXTRACTABLE")) for a in candidate.attributes.values())
        trusted = all(
            bool(a.get("WRAP_WITH_TRUSTED"))
            for a in candidate.attributes.values()
            if a.get("EXTRACTABLE")
        )
        key = KeyRecord(
            id=new_key_id(),
            name=final_name,
            algorithm=algorithm,
            purpose=chosen,
            state=KeyState.PRE_ACTIVE,
            token_serial=candidate.token_serial,
            token_label=candidate.token_label,
            cka_id=candidate.cka_id,
            extractable=extractable,
            wrap_trusted=(
                TrustedWrap.NOT_APPLICABLE
                if not extractable
                else TrustedWrap.OK
                if trusted
                else TrustedWrap.PENDING
            ),
            kcv=candidate.key.identifier if algorithm.symmetric else None,
            fingerprint=None if algorithm.symmetric else candidate.identifier or None,
            created_at=self.clock(),
            created_by=self.operator,
            exposure=tuple(e.value for e in candidate.exposure),
        )
        if key.kcv == "":
            key = key._replace(kcv=None)
        details: dict[str, Any] = {
            "purpose_chosen": "explicit" if explicit else "inferred",
            "inferred_purposes": [p.value for p in candidate.inferred],
            "cleared_on_activation": list(candidate.cleared_on_activation.get(chosen, ())),
            "exposure": list(key.exposure),
            "exposure_acknowledged": bool(key.exposure),
            "objects": [e.describe for e in candidate.objects],
            "related_objects": list(candidate.related),
            "attributes": candidate.attributes,
        }
        renamed: list[TokenEntry] = []
        intent: int | None = None
        fresh = b""
        if candidate.needs_new_id:
            # The fresh CKA_ID is a token write: its write-ahead intent goes first.
            fresh = secrets.token_bytes(16)
            key = key._replace(cka_id=fresh.hex())
            details["cka_id_before"] = candidate.cka_id
            details["cka_id_assigned"] = fresh.hex()
            intent = self.intents.begin(
                "key.adopt-id",
                candidate.token_serial,
                f"key:{key.id}",
                {
                    "subject": f"key:{key.id}",
                    "key": key.id,
                    "cka_id_before": candidate.cka_id,
                    "cka_id_assigned": fresh.hex(),
                    "objects": [e.describe for e in candidate.objects],
                },
                recorded_as="key.adopt",
            )
        try:
            with self.db.transaction():
                self.repo.insert(key, spki)
                record(
                    self.db,
                    when=key.created_at,
                    operators=(self.operator,),
                    action="key.adopt",
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details={**_key_details(key), **details},
                )
                if intent is not None:
                    self.intents.finish(intent)
                    renamed = session.assign_id(list(candidate.objects), fresh)
        except BaseException as exc:
            message = getattr(exc, "message", type(exc).__name__)
            put_back = True
            if renamed:
                try:
                    session.assign_id(renamed, bytes.fromhex(candidate.cka_id))
                except KeysteadError as back:
                    put_back = False  # left to the intent's reconciliation
                    log.error("could not put back the CKA_ID of %s: %s", key.cka_id, back.message)
            if intent is not None and put_back:
                self.intents.abandon(intent, f"key:{key.id}", message)
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.adopt",
                subject=f"token:{candidate.token_serial}",
                outcome=failure_outcome(exc),
                details={
                    "cka_id": candidate.cka_id,
                    "identifier": candidate.identifier,
                    "error": message,
                },
            )
            raise
        return key

    def _adoption_checks(
        self,
        candidate: AdoptionCandidate,
        name: str | None,
        purpose: Purpose | None,
        accept_exposure: bool,
        new_id: bool,
    ) -> tuple[Purpose, bool]:
        """The purpose to record and whether the officer chose it; raises what refuses it."""
        if candidate.refusal and candidate.known_rule:
            raise PolicyError(f"{candidate.refusal} Nothing was changed.", candidate.known_rule)
        if candidate.refusal:
            raise TokenError(f"{candidate.refusal} Nothing was changed.")
        if candidate.managed_as is not None:
            raise ValidationError(
                f"That object is already managed as key '{candidate.managed_as}'; nothing was "
                "changed."
            )
        if candidate.needs_new_id and not new_id:
            why = (
                "has no CKA_ID"
                if not candidate.cka_id
                else f"shares CKA_ID {candidate.cka_id} with another key on the token"
            )
            raise ValidationError(
                f"This key {why}, so an action by ID could reach another object. Adopt it with "
                "a fresh CKA_ID (--new-id: Keystead gives its objects a new random ID, "
                "recorded), or give the objects distinct IDs with the tool that made them. "
                "Nothing was changed."
            )
        if purpose is None:
            if candidate.purpose is None:
                fits = ", ".join(p.value for p in candidate.inferred) or "none fits exactly"
                raise ValidationError(
                    f"Its usage flags do not name one purpose ({fits}); choose one with "
                    f"--purpose ({', '.join(p.value for p in candidate.allowed_purposes())}). "
                    "Nothing was changed."
                )
            cleared = candidate.cleared_on_activation.get(candidate.purpose, ())
            if cleared:
                raise ValidationError(
                    f"Its flags say {candidate.purpose.value}, but activating it for that "
                    f"would clear {', '.join(cleared)}. Confirm with --purpose "
                    f"{candidate.purpose.value} (recorded) or choose another. Nothing was changed."
                )
            chosen, explicit = candidate.purpose, False
        else:
            if candidate.algorithm is None:
                raise TokenError("Keystead cannot manage this key's type.")
            usage_for(candidate.algorithm, purpose)  # refuses a purpose the type cannot have
            chosen, explicit = purpose, True
        if candidate.exposure and not accept_exposure:
            raise ValidationError(
                "This key is exposed: "
                + "; ".join(e.title for e in candidate.exposure)
                + ". Adopt it only if you accept that (--accept-exposed); it stays marked "
                "exposed. Nothing was changed."
            )
        if not name and candidate.suggested_name is None:
            raise ValidationError(
                "The key's label is empty or not plain text "
                f"('{candidate.key.label}'); give it a name (--name). Nothing was changed."
            )
        return chosen, explicit


def identity_of(key: KeyRecord) -> KeyIdentity:
    """How the token objects of a managed key are found."""
    return KeyIdentity(key.cka_id, key.algorithm, key.kcv, key.fingerprint)


def _matching(key: KeyRecord, objects: list[TokenObject]) -> TokenObject | None:
    """The listed key that is this record's: same algorithm, a key object, and the same KCV or
    fingerprint where both are known; None when there is none. When several fit, the first
    is returned: it is marked ``shared_id``, and actions on the key are refused as ambiguous
    (``app.domain.identity.select_key``)."""
    fits = [
        o
        for o in objects
        if is_of(o.algorithm, o.key_type, key.algorithm)
        and o.kind.is_key
        and (not key.identifier or not o.identifier or o.identifier == key.identifier)
    ]
    return fits[0] if fits else None


def _parts_of(key: TokenObject, entries: list[TokenEntry]) -> list[TokenEntry]:
    """The entries that make the listed ``key`` (key object first)."""
    same = [
        e
        for e in entries
        if e.is_key
        and e.cka_id == key.cka_id
        and e.object_class in key.classes
        and e.key_type == key.key_type
        and e.algorithm is key.algorithm
    ]
    if key.identifier:
        same = [
            e
            for e in same
            if (e.kcv or e.fingerprint) in (key.identifier, None)
            and not (e.object_class == "PUBLIC_KEY" and e.fingerprint != key.identifier)
        ]
    if not key.cka_id:
        same = [e for e in same if e.label == key.label] or same
    order = {"SECRET_KEY": 0, "PRIVATE_KEY": 0, "PUBLIC_KEY": 1}
    chosen: dict[str, TokenEntry] = {}
    for entry in sorted(same, key=lambda e: order.get(e.object_class, 2)):
        chosen.setdefault(entry.object_class, entry)
    return list(chosen.values())


def _parse_id(text: str) -> str:
    """A CKA_ID typed as hex (colons allowed). A key without a CKA_ID is chosen by its
    identifier instead."""
    try:
        parsed = bytes.fromhex(text.replace(":", "").strip()).hex()
    except ValueError as exc:
        raise ValidationError(f"'{text}' is not a hexadecimal CKA_ID.") from exc
    if not parsed:
        raise ValidationError(
            "Give the CKA_ID of the key to adopt (a key without one: give its identifier)."
        )
    return parsed


DESTROYED_STATES = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)


def _unreconciled(key: KeyRecord, present: set[str]) -> Presence:
    """A record whose token is not logged in: destroyed, token absent, or not checked."""
    return _unreconciled_state(key.state, key.token_serial, present)


def _unreconciled_state(state: KeyState, serial: str, present: set[str]) -> Presence:
    """``_unreconciled`` of a record in ``state`` bound to token ``serial``."""
    if state in DESTROYED_STATES:
        return Presence.DESTROYED
    if not serial:
        return Presence.PUBLIC_ONLY
    return Presence.UNCHECKED if serial in present else Presence.ABSENT


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
    from app.hsm.trials import extra_usages

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
        **vouched(key),
    }
