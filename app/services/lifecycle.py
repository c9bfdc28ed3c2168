"""Lifecycle transitions of managed keys, reflected on the token, each recorded with its change.

A transition is a ``TransitionRequest``; ``approve`` decides who stands behind it (one operator
today; the dual-control issue replaces that one function) and ``_execute`` carries it out:
database update, event and token change in one transaction, all or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any, NamedTuple

from app.domain.algorithms import Purpose, Usage
from app.domain.backup_rules import unwrappable_reason
from app.domain.identity import parse_exposure, select_key
from app.domain.keys import KeyRecord, KeyState, TokenSync
from app.domain.lifecycle import (
    MAX_REASON_LENGTH,
    ON_TOKEN,
    RULE_ROTATE,
    RULE_TRANSITION,
    Action,
    next_state,
    rotation_refusal,
    usage_in_state,
)
from app.domain.names import validate_name
from app.errors import (
    AmbiguousKey,
    KeysteadError,
    PolicyError,
    TokenError,
    TokenNotLoggedIn,
    ValidationError,
)
from app.hsm.session import TokenSession
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.backup_policy import check_activation
from app.services.executor import assert_core_thread
from app.services.guard import Guard, unguarded
from app.services.intents import COMPLETED, ROLLED_BACK, Resolution
from app.services.keys import KeyService, identity_of
from app.services.policy import CryptoperiodPolicy
from app.services.tokens import TokenService
from app.storage.database import Database
from app.storage.events import StoredEvent, list_events
from app.storage.intents import IntentRow
from app.storage.repository import KeyRepository

log = logging.getLogger(__name__)

WORKSTATION_ACTOR = "workstation"
# Default policy: a key whose value may have been seen in clear is not put to use for
# key wrapping or signing (what it protects or vouches for would rest on a value known outside
# the token). Encryption and MAC keys are allowed, marked exposed.
RULE_EXPOSED = "KS-EXPOSED-KEY-USE"
# A key whose objects cannot be told apart from another object on its token is not acted on.
RULE_AMBIGUOUS = "KS-KEY-AMBIGUOUS"
_EXPOSED_REFUSED = (Purpose.KEY_WRAPPING, Purpose.SIGNING)


def exposure_refusal(key: KeyRecord, action: Action) -> str | None:
    """Why the default policy refuses putting the exposed ``key`` to use, or None."""
    if action not in (Action.ACTIVATE, Action.RESUME) or key.purpose not in _EXPOSED_REFUSED:
        return None
    clear = [e for e in parse_exposure(key.exposure) if e.clear_value]
    if not clear:
        return None
    return (
        f"Key '{key.name}' is exposed ({'; '.join(e.title for e in clear)}); the default "
        f"policy does not activate exposed keys for {key.purpose.value}. Generate a new key "
        "on the token instead."
    )


# Widening use needs the object: a key whose object is gone cannot become usable. (Destroy
# has its own checks around the token call, see ``_execute`` and ``_destroyed_despite``.)
NEEDS_OBJECT = frozenset({Action.ACTIVATE, Action.RESUME})


@dataclass(frozen=True)
class TransitionRequest:
    """One asked-for lifecycle change; what an approval (dual control) will be bound to."""

    key_id: str
    action: Action
    reason: str = ""
    compromise_date: datetime | None = None
    confirm_name: str | None = None  # destroy: the key's name, typed by the officer


class _Change(NamedTuple):
    before: KeyRecord
    after: KeyRecord
    action: Action
    reason: str


Approver = Callable[[TransitionRequest, KeyRecord], tuple[str, ...]]


class LifecycleService:
    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        keys: KeyService,
        operator: str,
        clock: Callable[[], datetime],
        policy: CryptoperiodPolicy,
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.keys = keys
        self.repo = KeyRepository(db)
        self.operator = operator
        self.clock = clock
        self.guard: Guard = unguarded  # the role check (wired by the workstation)
        self.policy = policy
        self.approve: Approver = lambda _request, _key: (operator,)
        self.intents = keys.intents
        self.intents.handlers["key.transition"] = self._reconcile_transition

    # --- transitions -----------------------------------------------------------------------

    def transition(
        self,
        ref: str,
        action: Action,
        reason: str = "",
        compromise_date: datetime | None = None,
        confirm_name: str | None = None,
    ) -> KeyRecord:
        """Carry out ``action`` on the key ``ref``; refusals are recorded as denied."""
        assert_core_thread()
        key = self.keys.resolve(ref)
        self.guard(f"key.{action.value}", f"key:{key.id}")  # the role, before anything else
        request = TransitionRequest(key.id, action, reason.strip(), compromise_date, confirm_name)
        try:
            self._check(key, request)
            if action is Action.ACTIVATE:
                check_activation(self.db, key)  # "no activation before a verified backup"
            self._check_object(key, request)
        except (PolicyError, ValidationError) as exc:
            self._record_refusal(key, request, exc)
            raise
        return self._execute(key, request, self.approve(request, key))

    def _check(self, key: KeyRecord, request: TransitionRequest) -> None:
        try:
            next_state(key.state, request.action)
        except PolicyError as exc:
            raise PolicyError(
                f"Key '{key.name}' is {key.state.value}: "
                f"{request.action.value} refused. {exc.message.rsplit(' [', 1)[0]}",
                exc.rule,
            ) from exc
        if request.action.needs_reason and not request.reason:
            raise ValidationError(f"{request.action.title} needs a reason; nothing was changed.")
        if len(request.reason) > MAX_REASON_LENGTH:
            raise ValidationError(f"The reason is longer than {MAX_REASON_LENGTH} characters.")
        if request.action is Action.DESTROY and request.confirm_name != key.name:
            raise ValidationError(
                f"To destroy '{key.name}', type its name exactly; nothing was destroyed."
            )
        if request.compromise_date is not None and request.compromise_date > self.clock():
            raise ValidationError("The compromise date is in the future.")
        refusal = exposure_refusal(key, request.action)
        if refusal:
            raise PolicyError(refusal, RULE_EXPOSED)

    def _check_object(self, key: KeyRecord, request: TransitionRequest) -> None:
        """Actions that widen use are refused when the logged-in token answers that the
        object is gone: recording them as done would be a lie.
        Restricting actions still go through (restricting use never waits)."""
        if request.action not in NEEDS_OBJECT:
            return
        session = self._session(key)
        try:
            if session is None or session.holds_key(identity_of(key)):
                return
        except AmbiguousKey as exc:  # another object could be it: act on none (recorded)
            raise PolicyError(exc.message, RULE_AMBIGUOUS) from exc
        raise PolicyError(
            f"The object of key '{key.name}' is missing on token '{key.token_label}' "
            f"(serial {key.token_serial}): {request.action.value} refused; nothing was changed. "
            "Investigate the token, or re-bind the key to a replacement (Tokens page).",
            "KS-LIFECYCLE-OBJECT-MISSING",
        )

    def _record_refusal(
        self, key: KeyRecord, request: TransitionRequest, exc: KeysteadError
    ) -> None:
        details: dict[str, Any] = {
            "action": request.action.value,
            "state": key.state.value,
            "reason": request.reason,
            "refusal": exc.message,
        }
        if isinstance(exc, PolicyError):
            details["rule"] = exc.rule
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=f"key.{request.action.value}",
            subject=f"key:{key.id}",
            outcome=Outcome.DENIED,
            details=details,
        )

    def also_changed(self, key: KeyRecord, request: TransitionRequest) -> list[KeyRecord]:
        """The other keys ``request`` would change besides ``key``, as they will be after it
        (today: the predecessor an activated successor deactivates). What the approvers must
        read, and what the CLI reports afterwards. Empty when the transition itself is not
        allowed (``transition`` refuses it then, naming the key)."""
        try:
            changes = self._changes(key, request)
        except KeysteadError:
            return []
        return [c.after for c in changes[1:]]

    def _changes(self, key: KeyRecord, request: TransitionRequest) -> list[_Change]:
        """The key's change and, when activating a successor, its predecessor's."""
        now = self.clock()
        target = next_state(key.state, request.action)
        after = key._replace(state=target)
        if request.action is Action.ACTIVATE:
            activated = (
                key.activation_date if key.activation_date and key.activation_date <= now else now
            )
            after = after._replace(
                activation_date=activated,
                deactivation_date=key.deactivation_date
                or self.policy.deactivation_for(key.purpose, activated),
            )
        elif request.action is Action.DEACTIVATE and (
            key.deactivation_date is None or key.deactivation_date > now
        ):
            after = after._replace(deactivation_date=now)
        elif request.action is Action.COMPROMISE:
            after = after._replace(compromise_date=request.compromise_date or key.created_at)
        changes = [_Change(key, after, request.action, request.reason)]
        if request.action is Action.ACTIVATE and key.replaces:
            predecessor = self.repo.get(key.replaces)
            if predecessor is not None and predecessor.state in (
                KeyState.ACTIVE,
                KeyState.SUSPENDED,
            ):
                changes.append(
                    _Change(
                        predecessor,
                        predecessor._replace(state=KeyState.DEACTIVATED, deactivation_date=now),
                        Action.DEACTIVATE,
                        f"successor '{key.name}' activated",
                    )
                )
        return changes

    def _execute(
        self, key: KeyRecord, request: TransitionRequest, operators: tuple[str, ...]
    ) -> KeyRecord:
        changes = self._changes(key, request)
        session = self._session(key)
        if request.action is Action.DESTROY and session is None and key.token_serial:
            raise TokenNotLoggedIn(f"Log in to token '{key.token_label}' to destroy '{key.name}'.")
        applied: list[KeyRecord] = []  # keys whose token flags were changed (to put back)
        intent: int | None = None
        now = self.clock()
        destroying: dict[str, Any] = {}
        try:
            if request.action is Action.DESTROY and session is not None:
                # Read before the intent: an ambiguous key is refused with nothing written.
                destroying = self._destroy_plan(session, key)
            intent = self._begin(key, request, changes, session)
            with self.db.transaction():
                if intent is not None:
                    self.intents.finish(intent)
                for before, after, action, reason in changes:
                    if after.state in ON_TOKEN:
                        after = after._replace(token_sync=self._reflect(session, after))
                        if session is not None and after.token_sync is TokenSync.OK:
                            applied.append(before)
                    self.repo.update(after)
                    record(
                        self.db,
                        when=now,
                        operators=operators,
                        action=f"key.{action.value}",
                        subject=f"key:{after.id}",
                        outcome=Outcome.SUCCESS,
                        details={
                            **_transition_details(before, after, reason),
                            **(destroying if after.id == key.id else {}),
                        },
                    )
                if request.action is Action.DESTROY and session is not None:
                    session.destroy_key(identity_of(key))
        except BaseException as exc:
            for before in applied:
                self._put_back(session, before)
            message = exc.message if isinstance(exc, KeysteadError) else type(exc).__name__
            if intent is not None:
                self._settle_failed(intent, key, session, message)
            if (
                request.action is Action.DESTROY
                and session is not None
                and isinstance(exc, TokenError)
                and self._key_gone(session, key)
            ):
                return self._destroyed_despite(session, changes[0], operators, message)
            record_alone(
                self.db,
                when=self.clock(),
                operators=operators,
                action=f"key.{request.action.value}",
                subject=f"key:{key.id}",
                outcome=failure_outcome(exc),
                details=_failure_details(key, request, message),
            )
            raise
        log.info("key %s: %s -> %s", key.id, key.state.value, changes[0].after.state.value)
        return self.keys.resolve(key.id)

    def _destroy_plan(self, session: TokenSession, key: KeyRecord) -> dict[str, Any]:
        """What destroying ``key`` will take off the token, for its audit entry: exactly the
        key's objects (refused as ambiguous when they cannot be told apart), and the
        certificates and data objects under the same CKA_ID, which stay."""
        found = session.entries_with_id(key.cka_id)
        objects = select_key(found, identity_of(key))  # AmbiguousKey: nothing is destroyed
        related = [e.describe for e in found if not e.is_key]
        return {"token_objects": [e.describe for e in objects], "kept_related": related}

    def _key_gone(self, session: TokenSession, key: KeyRecord) -> bool:
        """After a failed destroy: True only if the token answers and the key is not on it."""
        try:
            return not session.holds_key(identity_of(key))
        except KeysteadError:
            return False  # the token does not answer: nothing is known

    def _destroyed_despite(
        self, session: TokenSession, change: _Change, operators: tuple[str, ...], error: str
    ) -> KeyRecord:
        """The token answered the destroy with an error, yet the key is gone from it (the
        answer was lost after it acted). The record must not stay live and point at nothing:
        the destruction is recorded as done, with the token's answer; leftovers (a public
        half) are removed if the token lets them be."""
        before, after, action, reason = change
        try:
            with self.db.transaction():
                self.repo.update(after)
                record(
                    self.db,
                    when=self.clock(),
                    operators=operators,
                    action=f"key.{action.value}",
                    subject=f"key:{after.id}",
                    outcome=Outcome.SUCCESS,
                    details={**_transition_details(before, after, reason), "token_answer": error},
                )
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=operators,
                action=f"key.{action.value}",
                subject=f"key:{after.id}",
                outcome=Outcome.FAILED,
                details={"state": before.state.value, "error": error, "then": exc.message},
            )
            raise
        try:
            session.destroy_key(identity_of(after))
        except KeysteadError as exc:
            log.warning("leftovers of destroyed key %s stay: %s", after.id, exc.message)
        log.warning("key %s destroyed although the token answered: %s", after.id, error)
        return self.keys.resolve(after.id)

    # --- write-ahead intents ----------------------------------------------------------------

    def _begin(
        self,
        key: KeyRecord,
        request: TransitionRequest,
        changes: list[_Change],
        session: TokenSession | None,
    ) -> int | None:
        """The intent of a transition that will write to the token (flags or destroy)."""
        if session is None:
            return None
        subject = f"key:{key.id}"
        return self.intents.begin(
            "key.transition",
            key.token_serial,
            subject,
            {
                "subject": subject,
                "transition": request.action.value,
                "changes": [
                    {
                        "key": c.before.id,
                        "cka_id": c.before.cka_id,
                        "from": c.before.state.value,
                        "to": c.after.state.value,
                    }
                    for c in changes
                ],
            },
            recorded_as=f"key.{request.action.value}",
        )

    def _settle_failed(
        self, intent: int, key: KeyRecord, session: TokenSession | None, message: str
    ) -> None:
        """After a failure in this process: resolved as rolled back when the token is known
        to be as before (flags put back, or the key still there); else left to reconcile."""
        try:
            if session is not None and session.holds_key(identity_of(key)):
                self.intents.abandon(intent, f"key:{key.id}", message)
        except KeysteadError:
            log.warning("intent %s left for reconciliation", intent)

    def _reconcile_transition(self, intent: IntentRow) -> Resolution | None:
        """A transition that never resolved. The database is the truth of what was
        committed: flags are set to match each key's recorded state (completed if the
        transition was committed, rolled back if not). A destroy that removed the key from the
        token is completed in the database (the token cannot be rolled back); one that did
        not is rolled back."""
        session = next(
            (s for s in self.tokens.logged_in() if s.info.serial == intent.token_serial), None
        )
        if session is None:
            return None
        changes = list(intent.details.get("changes", []))
        primary = self.repo.get(str(changes[0]["key"])) if changes else None
        if primary is None:
            return Resolution(ROLLED_BACK, {"note": "key no longer recorded"})
        target = KeyState(str(changes[0]["to"]))
        if target in (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED):
            if primary.state is target:
                session.destroy_key(identity_of(primary))  # whatever part is left
                return Resolution(COMPLETED, {"state": target.value})
            if not session.holds_key(identity_of(primary)):
                after = primary._replace(state=target, token_sync=TokenSync.OK)
                # the public half a kill between the two destroys left behind
                removed = [e.describe for e in session.destroy_left_half(identity_of(primary))]

                def complete() -> None:
                    self.repo.update(after)
                    record(
                        self.db,
                        when=self.clock(),
                        operators=(intent.operator,),
                        action="key.destroy",
                        subject=f"key:{primary.id}",
                        outcome=Outcome.SUCCESS,
                        details={
                            **_transition_details(primary, after, "interrupted; completed"),
                            "intent": intent.id,
                            "objects_removed_now": removed,
                        },
                    )

                return Resolution(COMPLETED, {"state": target.value}, complete)
        states: dict[str, str] = {}
        for change in changes:
            current = self.repo.get(str(change["key"]))
            if current is None or current.state not in ON_TOKEN:
                continue
            private, public = usage_in_state(current.algorithm, current.purpose, current.state)
            session.set_usage(identity_of(current), private, public)
            states[current.id] = current.state.value
        committed = primary.state is target
        return Resolution(
            COMPLETED if committed else ROLLED_BACK,
            {"states": states, "token_flags": "set to the recorded states"},
        )

    # --- token reflection ------------------------------------------------------------------

    def _session(self, key: KeyRecord) -> TokenSession | None:
        for session in self.tokens.logged_in():
            if session.info.serial == key.token_serial:
                # A module may answer from its own store after the device is gone.
                return session if self.tokens.alive(session) else None
        return None

    def _reflect(self, session: TokenSession | None, key: KeyRecord) -> TokenSync:
        """Set the token's usage flags for ``key.state``; PENDING if the token is not here."""
        if not key.token_serial:
            return TokenSync.RECORDED  # an imported verify-only public key: no token object
        if session is None:
            return TokenSync.PENDING
        private, public = usage_in_state(key.algorithm, key.purpose, key.state)
        if not session.set_usage(identity_of(key), private, public):
            return TokenSync.REFUSED
        return TokenSync.OK if self._enforces(session) else TokenSync.RECORDED

    def _enforces(self, session: TokenSession) -> bool:
        """Whether this token was seen refusing an operation whose usage flag was cleared
        (its capability probe, or a trial run now once and kept)."""
        # (the probe's store: imported here, not by every command that builds the service)
        from app.services.token_inspect import remember_enforcement, usage_enforcement

        tried, enforced = usage_enforcement(self.db, session.info.serial)
        if not tried:
            found = session.usage_enforced()
            remember_enforcement(self.db, session.info.serial, found.enforced, found.note)
            enforced = found.enforced
        return enforced is True

    def _put_back(self, session: TokenSession | None, before: KeyRecord) -> None:
        if session is None:
            return
        try:
            private, public = usage_in_state(before.algorithm, before.purpose, before.state)
            session.set_usage(identity_of(before), private, public)
        except KeysteadError as exc:
            log.error("could not put back the usage flags of %s: %s", before.id, exc.message)

    def enforce_pending(self, serial: str) -> int:
        """After a login: apply the flags of keys changed while their token was away.

        Fail closed: a token is changed only together with its ``key.token-sync`` entry. The
        entry must be sealed, so while the audit token is not logged in nothing is applied and
        the keys stay *pending* (applied when it is; ``Workstation._after_login`` calls this
        again then). A key whose change fails stays pending, its flags put back, and the
        failure is logged: a login (and any read-only command behind it) never fails here.
        Returns how many keys were brought in line.
        """
        session = next((s for s in self.tokens.logged_in() if s.info.serial == serial), None)
        pending = self.repo.sync_pending(serial) if session is not None else []
        if session is None or not pending:
            return 0
        if self.db.sealer is None:
            log.warning(
                "%d key(s) on token %s wait for their token change: the audit token is not "
                "logged in, so the change could not be recorded",
                len(pending),
                serial,
            )
            return 0
        done = 0
        for key in pending:
            if key.state not in ON_TOKEN:
                continue
            try:
                self._sync_one(session, key)
            except KeysteadError as exc:
                log.error("token change of key %s stays pending: %s", key.id, exc.message)
                continue
            done += 1
        return done

    def _sync_one(self, session: TokenSession, key: KeyRecord) -> None:
        """One pending key: flags and entry together, or neither."""
        before = session.usage(identity_of(key))
        applied = False
        try:
            with self.db.transaction():
                synced = key._replace(token_sync=self._reflect(session, key))
                applied = synced.token_sync is TokenSync.OK
                self.repo.update(synced)
                record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="key.token-sync",
                    subject=f"key:{key.id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        "state": key.state.value,
                        "token_sync": synced.token_sync.value,
                        "token_sync_text": synced.token_sync.title,
                    },
                )
        except BaseException:
            if applied:
                log.error("the token change of key %s could not be recorded; undoing it", key.id)
                private = _flags(before, "SECRET_KEY") | _flags(before, "PRIVATE_KEY")
                try:
                    session.set_usage(identity_of(key), private, _flags(before, "PUBLIC_KEY"))
                except KeysteadError as exc:
                    log.error("could not undo the token change of %s: %s", key.id, exc.message)
            raise

    # --- cryptoperiods ---------------------------------------------------------------------

    def apply_due(self) -> list[KeyRecord]:
        """Activate keys whose activation date came, deactivate keys past protect-stop.

        Each is recorded like a manual transition with the workstation as actor. A failure
        is recorded and logged, and the other keys still get their turn.
        """
        assert_core_thread()
        now = self.clock()
        work = [
            (k, Action.ACTIVATE, "activation date reached") for k in self.repo.activation_due(now)
        ]
        work += [
            (k, Action.DEACTIVATE, "end of cryptoperiod")
            for k in self.repo.due(now)
            if k.state in (KeyState.ACTIVE, KeyState.SUSPENDED)
        ]
        changed = []
        for key, action, reason in work:
            if action is Action.ACTIVATE:
                try:
                    check_activation(self.db, key)
                except PolicyError as exc:
                    # It stays pre-active until it is backed up; asked again each minute, so
                    # logged rather than recorded (one denied entry a minute would drown the
                    # audit history). A manual activation records its refusal.
                    log.info("automatic activation of %s waits: %s", key.id, exc.message)
                    continue
            try:
                changed.append(
                    self._execute(
                        key, TransitionRequest(key.id, action, reason), (WORKSTATION_ACTOR,)
                    )
                )
            except KeysteadError as exc:
                log.error("automatic %s of %s failed: %s", action.value, key.id, exc.message)
        return changed

    def due(self, days: int | None = None) -> list[KeyRecord]:
        """Live keys whose protect-stop date is within ``days`` (policy default) or past."""
        window = self.policy.due_warning if days is None else _days(days)
        return self.repo.due(self.clock() + window)

    # --- rotation, edits, history ----------------------------------------------------------

    def rotate(self, ref: str) -> KeyRecord:
        """Generate a PRE_ACTIVE successor with the same algorithm, purpose and policy."""
        assert_core_thread()
        self.guard("key.rotate", f"key:{ref}")
        key = self.keys.resolve(ref)
        refusal = rotation_refusal(key.state, key.replaced_by)
        if refusal:
            error = PolicyError(refusal, RULE_ROTATE)
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.rotate",
                subject=f"key:{key.id}",
                outcome=Outcome.DENIED,
                details={"state": key.state.value, "refusal": error.message},
            )
            raise error
        return self.keys.generate(
            key.token_serial,
            key.algorithm,
            self._successor_name(key.name),
            key.purpose,
            # Backup-able as its predecessor, unless no backup could ever hold it (an Ed25519
            # key recorded backup-able before that rule): then it stays on its token.
            key.extractable and unwrappable_reason(key.algorithm) is None,
            replaces=key,
        )

    def _successor_name(self, name: str) -> str:
        base, _, number = name.rpartition("-v")
        stem, n = (base, int(number) + 1) if base and number.isdigit() else (name, 2)
        while self.repo.by_name(candidate := f"{stem}-v{n}") is not None:
            n += 1
        return validate_name(candidate)

    def lineage(self, ref: str) -> list[KeyRecord]:
        """The key's whole line, oldest first: predecessors, the key, successors."""
        key = self.keys.resolve(ref)
        line = [key]
        seen = {key.id}
        while line[0].replaces and line[0].replaces not in seen:
            previous = self.repo.get(line[0].replaces)
            if previous is None:
                break
            seen.add(previous.id)
            line.insert(0, previous)
        while line[-1].replaced_by and line[-1].replaced_by not in seen:
            following = self.repo.get(line[-1].replaced_by)
            if following is None:
                break
            seen.add(following.id)
            line.append(following)
        return line

    def edit(
        self,
        ref: str,
        *,
        name: str | EllipsisType = ...,
        tags: tuple[str, ...] | EllipsisType = ...,
        notes: str | EllipsisType = ...,
        activation_date: datetime | EllipsisType | None = ...,
        deactivation_date: datetime | EllipsisType | None = ...,
    ) -> KeyRecord:
        """Change a key's name, tags, notes or cryptoperiod dates (``...`` leaves a field)."""
        assert_core_thread()
        self.guard("key.edit", f"key:{ref}")
        key = self.keys.resolve(ref)
        changes: dict[str, Any] = {}
        if not isinstance(name, EllipsisType) and name != key.name:
            changes["name"] = self.keys.free_name(name)
        if not isinstance(tags, EllipsisType):
            changes["tags"] = tuple(validate_name(t, "Tag") for t in tags)
        if not isinstance(notes, EllipsisType):
            if len(notes) > 4000:
                raise ValidationError("Notes are limited to 4,000 characters.")
            changes["notes"] = notes
        if not isinstance(activation_date, EllipsisType):
            if key.state is not KeyState.PRE_ACTIVE:
                raise ValidationError("The activation date can only be changed before activation.")
            changes["activation_date"] = activation_date
        if not isinstance(deactivation_date, EllipsisType):
            changes["deactivation_date"] = deactivation_date
        edited = key._replace(**changes)
        if (
            edited.activation_date
            and edited.deactivation_date
            and edited.deactivation_date <= edited.activation_date
        ):
            raise ValidationError("The deactivation date must come after the activation date.")
        if not changes:
            return key
        who: tuple[str, ...] = (self.operator,)
        if changes.get("activation_date") is not None:
            # A planned date activates the key without anyone present later, so the
            # activation's approvals are given now, for that date.
            planned = changes["activation_date"].isoformat()
            who = self.approve(
                TransitionRequest(key.id, Action.ACTIVATE, f"planned activation {planned}"), key
            )
        with self.db.transaction():
            self.repo.update(edited)
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="key.edit",
                subject=f"key:{key.id}",
                outcome=Outcome.SUCCESS,
                details={field: _jsonable(value) for field, value in changes.items()},
            )
        return edited

    def history(self, ref: str) -> list[StoredEvent]:
        key = self.keys.resolve(ref)
        return list_events(self.db, subject=f"key:{key.id}")


def _failure_details(key: KeyRecord, request: TransitionRequest, error: str) -> dict[str, Any]:
    """What a failed transition records: the error and everything the officer gave (a
    compromise report is never lost, even when the change itself could not be made)."""
    details: dict[str, Any] = {"state": key.state.value, "error": error}
    if request.reason:
        details["reason"] = request.reason
    if request.compromise_date is not None:
        details["compromise_date"] = _jsonable(request.compromise_date)
    return details


def _flags(usage: dict[str, dict[str, bool]], object_class: str) -> frozenset[Usage]:
    return frozenset(Usage(name) for name, on in usage.get(object_class, {}).items() if on)


def _days(days: int) -> timedelta:
    if days < 0:
        raise ValidationError("The number of days cannot be negative.")
    return timedelta(days=days)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _transition_details(before: KeyRecord, after: KeyRecord, reason: str) -> dict[str, Any]:
    details: dict[str, Any] = {
        "from": before.state.value,
        "to": after.state.value,
        "reason": reason,
        "token_sync": after.token_sync.value,
        "token_sync_text": after.token_sync.title,
    }
    for field in ("activation_date", "deactivation_date", "compromise_date"):
        if getattr(before, field) != getattr(after, field):
            details[field] = _jsonable(getattr(after, field))
    return details


__all__ = ["RULE_TRANSITION", "WORKSTATION_ACTOR", "LifecycleService", "TransitionRequest"]
