"""Token administration: initialise a token, set and change PINs. Every try is recorded.

Each operation is an ``AdminRequest``; ``approve`` says who stands behind it (the operator today;
the dual-control issue replaces that one function for the destructive ones). The event is
written in the transaction that surrounds the token call, so an entry that cannot be written
stops the operation before the token is touched, and a token that refuses rolls the entry back
(a ``failed`` entry is then written on its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.keys import KeyRecord, KeyState
from app.domain.names import validate_token_label
from app.errors import (
    KeysteadError,
    PinBackoff,
    PolicyError,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    ValidationError,
    WrongPin,
)
from app.hsm.module import TokenInfo
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.intents import COMPLETED, ROLLED_BACK, UNKNOWN, Resolution
from app.services.tokens import TokenService, _next_try_hint, backoff_seconds
from app.storage.database import Database
from app.storage.intents import IntentRow
from app.storage.repository import KeyRepository, SettingsRepository

log = logging.getLogger(__name__)

RULE_LIVE_KEYS = "KS-TOKEN-INIT-LIVE-KEYS"


def so_counter(serial: str) -> str:
    """Where Keystead counts a token's wrong SO PINs (beside its user PIN count)."""
    return f"{serial}#SO"


RULE_AUDIT_TOKEN = "KS-TOKEN-INIT-AUDIT"  # noqa: S105 (a rule id, not a secret)
_DEAD = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)
_ADMIN_ACTIONS = (
    "token.init",
    "token.init-blank",
    "token.init-pin",
    "token.change-pin",
    "token.change-so-pin",
)


def _slot_subject(module_path: str, slot_id: int) -> str:
    return f"{module_path}#slot{slot_id}"


@dataclass(frozen=True)
class AdminRequest:
    """One asked-for administration step; what an approval (dual control) will be bound to."""

    # token.init, token.init-blank, token.init-pin, token.change-pin, token.change-so-pin
    action: str
    serial: str
    new_label: str | None = None

    @property
    def destructive(self) -> bool:
        return self.action in ("token.init", "token.init-blank", "token.init-pin")


@dataclass(frozen=True)
class InitImpact:
    """What initialising a token would erase, shown before the officer confirms."""

    token: TokenInfo
    live_keys: tuple[KeyRecord, ...]  # managed keys not destroyed: initialisation is refused
    tombstones: int  # destroyed keys recorded on it (their records stay)
    is_audit_token: bool
    objects_seen: int | None  # objects visible now (None: not logged in, private ones hidden)

    @property
    def refusal(self) -> PolicyError | None:
        """Why initialisation is refused, or None."""
        if self.is_audit_token:
            return PolicyError(
                f"Token '{self.token.label}' holds this workstation's audit keys; initialising it "
                "would make the audit history unverifiable.",
                RULE_AUDIT_TOKEN,
            )
        if self.live_keys:
            names = ", ".join(k.name for k in self.live_keys[:5])
            more = f" and {len(self.live_keys) - 5} more" if len(self.live_keys) > 5 else ""
            return PolicyError(
                f"Token '{self.token.label}' holds {len(self.live_keys)} managed key(s) that are "
                f"not destroyed ({names}{more}). Destroy them through their lifecycle first; "
                "initialising would lose them.",
                RULE_LIVE_KEYS,
            )
        return None


Approver = Callable[[AdminRequest], tuple[str, ...]]


class TokenAdmin:
    """Core-thread service for token administration."""

    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        operator: str,
        clock: Callable[[], datetime],
        audit_serial: Callable[[], str | None],
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.operator = operator
        self.clock = clock
        self.audit_serial = audit_serial
        self.keys = KeyRepository(db)
        self.settings = SettingsRepository(db)
        self.approve: Approver = lambda _request: (operator,)
        self.intents = tokens.intents
        for action in _ADMIN_ACTIONS:
            self.intents.handlers[action] = self._reconcile_admin

    # --- checks ----------------------------------------------------------------------------

    def pin_limits(self, info: TokenInfo) -> tuple[int, int]:
        """The token's own minimum and maximum PIN length."""
        from app.hsm.tokeninfo import token_details  # (the C_GetTokenInfo reader: only here)

        details = token_details(info.module_path, info.slot_id)
        return details.min_pin, details.max_pin

    def check_pin(self, info: TokenInfo, pin: str, what: str) -> None:
        """Refuse a new PIN the token would refuse, before calling it."""
        low, high = self.pin_limits(info)
        length = len(pin.encode("utf-8"))
        if not low <= length <= high:
            raise ValidationError(
                f"Token '{info.label}' takes a {what} of {low} to {high} bytes (UTF-8); "
                f"this one has {length} bytes ({len(pin)} characters)."
            )

    def init_impact(self, ref: str) -> InitImpact:
        """What initialising the token ``ref`` would erase."""
        assert_core_thread()
        info = self.tokens.find(ref)
        records = self.keys.on_token(info.serial)
        objects: int | None = None
        try:
            objects = len(self.tokens.session(info.serial).key_objects())
        except TokenNotLoggedIn:
            objects = None
        return InitImpact(
            token=info,
            live_keys=tuple(k for k in records if k.state not in _DEAD),
            tombstones=sum(1 for k in records if k.state in _DEAD),
            is_audit_token=info.serial == self.audit_serial(),
            objects_seen=objects,
        )

    # --- operations ------------------------------------------------------------------------

    def init_token(self, ref: str, confirm_label: str, new_label: str, so_pin: str) -> TokenInfo:
        """C_InitToken: erase the token and give it ``new_label``. The officer types the
        current label as confirmation; refused for the audit token and for live keys."""
        assert_core_thread()
        impact = self.init_impact(ref)
        info = impact.token
        request = AdminRequest("token.init", info.serial, new_label)
        if confirm_label != info.label:
            self._denied(request, "confirmation label does not match")
            raise ValidationError(
                f"Type the token's label '{info.label}' exactly to confirm; nothing was erased."
            )
        validate_token_label(new_label)
        refusal = impact.refusal
        if refusal is not None:
            self._denied(request, refusal.rule)
            raise refusal
        operators = self.approve(request)
        self.tokens.logout(info.serial)  # C_InitToken needs the token without sessions
        module = self.tokens.module_of(info)

        def erase() -> None:
            module.reinit_token(info.serial, so_pin, new_label)

        self._carry_out(
            request,
            operators,
            erase,
            {
                "old_label": info.label,
                "new_label": new_label,
                "objects_seen": impact.objects_seen,
                "tombstones": impact.tombstones,
            },
            so=True,
        )
        self.tokens.remember_store()
        return self.tokens.find(info.serial) if self._present(info.serial) else info

    def blank_slot(self, module_path: str, slot_id: int, new_label: str) -> TokenInfo:
        """The blank slot ``slot_id`` of the configured module ``module_path``, checked for
        initialising as ``new_label`` (one token-label rule, and no present token has it);
        the CLI and GUI call it before asking for any PIN. Raises TokenNotPresent or
        ValidationError."""
        assert_core_thread()
        validate_token_label(new_label)
        slot = next(
            (
                t
                for t in self.tokens.blank_slots()
                if t.module_path == module_path and t.slot_id == slot_id
            ),
            None,
        )
        if slot is None:
            raise TokenNotPresent(
                f"Slot {slot_id} of {module_path} holds no blank token (list them with "
                "`keystead tokens blank`); nothing was initialised."
            )
        if any(t.label == new_label for t in self.tokens.present()):
            raise ValidationError(
                f"A present token is already labelled '{new_label}'; choose another label so "
                "the two can be told apart."
            )
        return slot

    def init_blank(
        self,
        module_path: str,
        slot_id: int,
        new_label: str,
        confirm_label: str,
        so_pin: str,
        user_pin: str | None = None,
    ) -> TokenInfo:
        """C_InitToken on a blank slot of any configured module (through that module's own
        function list), then C_InitPIN with ``user_pin`` if given. The officer types the new
        label twice; dual control through ``approve``; recorded like ``init_token``. The slot
        is looked at again just before: only a slot that is still blank is initialised."""
        assert_core_thread()
        slot = self.blank_slot(module_path, slot_id, new_label)
        request = AdminRequest("token.init-blank", _slot_subject(module_path, slot_id), new_label)
        if confirm_label != new_label:
            self._denied(request, "confirmation label does not match")
            raise ValidationError(
                f"Type the new label '{new_label}' again exactly to confirm; nothing was "
                "initialised."
            )
        self.check_pin(slot, so_pin, "SO PIN")
        if user_pin is not None:
            self.check_pin(slot, user_pin, "user PIN")
        operators = self.approve(request)
        module = self.tokens.modules[module_path]

        def initialise() -> None:
            module.init_token(slot_id, so_pin, new_label)
            if user_pin is not None:
                made = [t for t in module.tokens() if t.label == new_label]
                if len(made) != 1:
                    raise TokenError(f"The module shows {len(made)} tokens labelled {new_label}.")
                module.init_user_pin(made[0].serial, so_pin, user_pin)

        self._carry_out(
            request,
            operators,
            initialise,
            {
                "module": module_path,
                "slot": slot_id,
                "slot_description": slot.slot_description,
                "new_label": new_label,
                "user_pin_set": user_pin is not None,
            },
            so=True,
        )
        self.tokens.remember_store()
        created = self.tokens.find(new_label)
        with self.db.transaction():
            self.tokens.tokens.seen(created.serial, created.label, created.model, self.clock())
        return created

    def init_pin(self, ref: str, so_pin: str, new_pin: str) -> None:
        """C_InitPIN as the security officer: set the user PIN, or unblock a locked one."""
        assert_core_thread()
        info = self.tokens.find(ref)
        self.check_pin(info, new_pin, "user PIN")
        request = AdminRequest("token.init-pin", info.serial)
        operators = self.approve(request)
        self.tokens.logout(info.serial)  # an SO session cannot share the token with a user one
        module = self.tokens.module_of(info)

        def set_user_pin() -> None:
            module.init_user_pin(info.serial, so_pin, new_pin)
            self.tokens.tokens.clear_pin_failures(info.serial)  # Keystead's own count too

        self._carry_out(
            request,
            operators,
            set_user_pin,
            {"label": info.label, "unblock": "user PIN locked" in info.flag_words},
            so=True,
        )

    def change_pin(self, ref: str, old_pin: str, new_pin: str) -> None:
        """C_SetPIN as the user. Logs in with the old PIN first (counted like any login)."""
        assert_core_thread()
        info = self.tokens.find(ref)
        self.check_pin(info, new_pin, "user PIN")
        if old_pin == new_pin:
            raise ValidationError("The new PIN is the same as the old one.")
        request = AdminRequest("token.change-pin", info.serial)
        operators = self.approve(request)
        try:
            session = self.tokens.session(info.serial)
        except TokenNotLoggedIn:
            self.tokens.login(info.serial, old_pin)  # throttled, counted and recorded
            session = self.tokens.session(info.serial)
        self._carry_out(
            request,
            operators,
            lambda: session.set_pin(old_pin, new_pin),
            {"label": info.label},
        )

    def change_so_pin(self, ref: str, old_so_pin: str, new_so_pin: str) -> None:
        """C_SetPIN in a security officer session."""
        assert_core_thread()
        info = self.tokens.find(ref)
        self.check_pin(info, new_so_pin, "SO PIN")
        if old_so_pin == new_so_pin:
            raise ValidationError("The new SO PIN is the same as the old one.")
        request = AdminRequest("token.change-so-pin", info.serial)
        operators = self.approve(request)
        self.tokens.logout(info.serial)
        module = self.tokens.module_of(info)
        self._carry_out(
            request,
            operators,
            lambda: module.change_so_pin(info.serial, old_so_pin, new_so_pin),
            {"label": info.label},
            so=True,
        )

    # --- helpers ---------------------------------------------------------------------------

    def _present(self, serial: str) -> bool:
        return any(t.serial == serial for t in self.tokens.present())

    def _so_throttle(self, request: AdminRequest) -> None:
        """SO PINs are counted and throttled by Keystead like user PINs (SoftHSM never locks
        either): the same schedule, counted per token under ``<serial>#SO``."""
        failures, last = self.tokens.tokens.pin_failures(so_counter(request.serial))
        wait = backoff_seconds(failures)
        now = self.clock()
        if last is not None and wait and now < last + timedelta(seconds=wait):
            retry_after = (last + timedelta(seconds=wait) - now).total_seconds()
            self._denied(request, f"SO PIN back-off ({failures} wrong in a row)")
            raise PinBackoff(
                f"{failures} wrong SO PINs in a row for this token. Wait {retry_after:.0f} s "
                "before the next try; nothing was changed.",
                retry_after=retry_after,
            )

    def _carry_out(
        self,
        request: AdminRequest,
        operators: tuple[str, ...],
        call: Callable[[], None],
        details: dict[str, object],
        so: bool = False,
    ) -> None:
        """Entry and token call in one transaction; a refusal is recorded on its own. The
        write-ahead intent is committed first: a kill during the call leaves it pending for
        ``_reconcile_admin`` at the next unlock."""
        if so:
            self._so_throttle(request)
        intent = self.intents.begin(
            request.action,
            request.serial,
            request.serial,
            {"subject": request.serial, **{k: v for k, v in details.items() if k != "unblock"}},
        )
        try:
            with self.db.transaction():
                self.intents.finish(intent)
                record(
                    self.db,
                    when=self.clock(),
                    operators=operators,
                    action=request.action,
                    subject=request.serial,
                    outcome=Outcome.SUCCESS,
                    details=details,
                )
                call()
        except WrongPin as exc:
            what = "SO PIN" if so else "PIN"
            self.intents.abandon(intent, request.serial, f"wrong {what}")
            if not so:
                self._failed(request, operators, f"wrong {what}")
                raise WrongPin(
                    f"The token rejected the {what}; nothing was changed.", exc.failures
                ) from exc
            with self.db.transaction():  # counted like user PINs, throttled on the next try
                count = self.tokens.tokens.record_pin_failure(
                    so_counter(request.serial), self.clock()
                )
            self._failed(request, operators, f"wrong {what}", failures=count)
            raise WrongPin(
                f"The token rejected the SO PIN ({count} wrong SO PIN{'s' if count != 1 else ''} "
                f"in a row on this token); nothing was changed. {_next_try_hint(count)}"
                f"{self._so_flags(request.serial)}",
                count,
            ) from exc
        except KeysteadError as exc:
            self._failed(request, operators, exc.message, failure_outcome(exc))
            raise  # the intent stays pending: the token may have acted before it failed
        if so:
            with self.db.transaction():
                self.tokens.tokens.clear_pin_failures(so_counter(request.serial))

    def _reconcile_admin(self, intent: IntentRow) -> Resolution | None:
        """An administration step that never resolved. Initialisation is judged by the label
        the token has now; whether a PIN changed cannot be read from a token, so that is
        recorded as unknown, with what to try."""
        if intent.action == "token.init-blank":
            return self._reconcile_init_blank(intent)
        present = {t.serial: t for t in self.tokens.present()}
        info = present.get(intent.token_serial)
        if intent.action == "token.init":
            if info is None:
                return None  # judged when the token is back
            new_label = str(intent.details.get("new_label", ""))
            done = info.label == new_label
            return Resolution(COMPLETED if done else ROLLED_BACK, {"label_now": info.label})
        which = "SO PIN" if intent.action == "token.change-so-pin" else "user PIN"
        return Resolution(
            UNKNOWN,
            {
                "note": f"the token holds the old or the new {which}; try the new one first",
                "present": info is not None,
            },
        )

    def _reconcile_init_blank(self, intent: IntentRow) -> Resolution | None:
        """A blank slot's initialisation that never resolved, judged by what the module
        shows now: the slot still blank → rolled back; a token with the new label in that
        module → completed (and remembered), with the user PIN's state when one was to be
        set (C_InitToken cannot be undone: a token without its user PIN is said so, with
        what to do); neither (the module is not loaded) → judged later."""
        module_path = str(intent.details.get("module", ""))
        slot_id = intent.details.get("slot")
        label = str(intent.details.get("new_label", ""))
        if module_path not in self.tokens.modules:
            return None
        if any(
            t.module_path == module_path and t.slot_id == slot_id
            for t in self.tokens.blank_slots()
        ):
            return Resolution(ROLLED_BACK, {"slot_now": "blank"})
        made = [
            t for t in self.tokens.present() if t.module_path == module_path and t.label == label
        ]
        if len(made) != 1:
            return None  # not decidable now (the slot is gone or holds something else)
        created = made[0]
        found: dict[str, object] = {"serial": created.serial, "label": created.label}
        if intent.details.get("user_pin_set"):
            pin_set = "user PIN initialised" in created.flag_words
            found["user_pin_set"] = pin_set
            if not pin_set:
                found["note"] = (
                    "initialised without its user PIN; set it with "
                    f"`keystead tokens init-pin {created.serial}`"
                )

        def apply() -> None:
            self.tokens.tokens.seen(created.serial, created.label, created.model, self.clock())

        return Resolution(COMPLETED, found, apply)

    def _so_failures(self, serial: str) -> int:
        """Consecutive wrong SO PINs recorded for this token (newest first, up to a success)."""
        rows = self.db.query(
            "SELECT outcome, details FROM events WHERE subject = ? AND action IN "
            "('token.init', 'token.init-pin', 'token.change-so-pin') ORDER BY seq DESC LIMIT 100",
            (serial,),
        )
        count = 0
        for outcome, details in rows:
            if outcome == Outcome.SUCCESS.value:
                break
            if "wrong SO PIN" in str(details):
                count += 1
        return count

    def _so_flags(self, serial: str) -> str:
        """What the token now says about its SO PIN, in words ("" when nothing)."""
        try:
            words = [w for w in self.tokens.find(serial).flag_words if w.startswith("SO PIN")]
        except KeysteadError:
            return ""
        return f" The token reports: {', '.join(words)}." if words else ""

    def _failed(
        self,
        request: AdminRequest,
        operators: tuple[str, ...],
        error: str,
        outcome: Outcome = Outcome.FAILED,
        failures: int | None = None,
    ) -> None:
        details: dict[str, object] = {"error": error}
        if failures is not None:
            details["failures"] = failures
        record_alone(
            self.db,
            when=self.clock(),
            operators=operators,
            action=request.action,
            subject=request.serial,
            outcome=outcome,
            details=details,
        )

    def _denied(self, request: AdminRequest, reason: str) -> None:
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=request.action,
            subject=request.serial,
            outcome=Outcome.DENIED,
            details={"reason": reason},
        )
