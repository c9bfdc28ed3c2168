"""Modules, tokens and logins: which tokens are present, which are logged in, and wrong PINs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from app.domain.names import validate_token_label
from app.domain.pins import check_new_pins
from app.errors import (
    AmbiguousToken,
    KeysteadError,
    ModuleLoadError,
    PinBackoff,
    PinLocked,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    TokenRemoved,
    ValidationError,
    WrongPin,
)
from app.hsm.filestore import TOKEN_OBJECT, Repair, token_identity
from app.hsm.module import Pkcs11Module, TokenInfo, library_initialized
from app.hsm.session import PinState, TokenSession
from app.hsm.softhsm import (
    activate_config,
    file_store,
    is_softhsm,
    quarantine_directory,
    token_directories,
)
from app.paths import Home
from app.services.audit import Outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.guard import Guard, unguarded
from app.services.intents import COMPLETED, ROLLED_BACK, IntentLog, Resolution
from app.storage.database import Database
from app.storage.intents import IntentRow
from app.storage.repository import SettingsRepository, TokenRepository

log = logging.getLogger(__name__)

# Keystead's own PIN throttle (SoftHSM never locks): after this many consecutive failures each
# further try waits, doubling from BACKOFF_BASE up to BACKOFF_MAX seconds.
FREE_ATTEMPTS = 3
BACKOFF_BASE = 5.0
BACKOFF_MAX = 300.0


def backoff_seconds(failures: int) -> float:
    """How long to wait after ``failures`` consecutive wrong PINs before the next try."""
    if failures < FREE_ATTEMPTS:
        return 0.0
    # The exponent is bounded too: 2 ** 1024 and more overflow a float.
    doublings = min(failures - FREE_ATTEMPTS, 32)
    return float(min(BACKOFF_BASE * 2**doublings, BACKOFF_MAX))


@dataclass(frozen=True)
class TokenStatus:
    """A present token and whether this workstation is logged in to it."""

    info: TokenInfo
    logged_in: bool
    pin_failures: int
    ambiguous: bool = False  # another present token answers to the same identity


class TokenService:
    """Loaded modules and open sessions. Core thread only."""

    def __init__(
        self, db: Database, home: Home, operator: str, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.home = home
        self.operator = operator
        self.clock = clock
        self.guard: Guard = unguarded  # the role check (wired by the workstation)
        self.tokens = TokenRepository(db)
        self.settings = SettingsRepository(db)
        self.modules: dict[str, Pkcs11Module] = {}
        self.module_errors: dict[str, str] = {}
        self._sessions: dict[str, TokenSession] = {}
        self.on_login: list[Callable[[str], object]] = []  # called with the serial after login
        self.on_logout: list[Callable[[str], object]] = []
        self._present: frozenset[str] | None = None  # serials seen by the last poll
        self._soft_dirs: frozenset[str] | None = None  # the embedded store's token dirs
        self.rescan_pending = False  # a new embedded token waits for a rescan
        self._repairs: list[Repair] = []  # embedded store repairs not yet recorded
        # The workstation's one write-ahead intent log (every token write goes through it).
        self.intents = IntentLog(db, operator, clock)
        self.intents.handlers["token.create-soft"] = self._reconcile_create_soft

    # --- modules ---------------------------------------------------------------------------

    def load_modules(self, hold_records: bool = False) -> None:
        """Load every configured module; a module that fails is reported, not fatal. Repairs
        of the embedded store are recorded now, or with ``hold_records`` kept for
        ``record_repairs`` (unlock records nothing before its rollback check passed)."""
        assert_core_thread()
        try:
            self._load_modules()
        finally:
            if not hold_records:
                self.record_repairs()

    def _load_modules(self) -> None:
        for path, _embedded in self.settings.modules():
            if path in self.modules:
                continue
            try:
                self.modules[path] = self._load(path)
                self.module_errors.pop(path, None)
            except ModuleLoadError as exc:
                self.module_errors[path] = exc.message
                log.warning(
                    "registered PKCS#11 module %s could not be loaded (%s); its tokens are not "
                    "listed. If it is gone for good: keystead modules remove %s",
                    path,
                    exc.message,
                    path,
                )

    def _load(self, path: str) -> Pkcs11Module:
        if not is_softhsm(path):
            return Pkcs11Module(path)
        activate_config(self.home)
        store = file_store(self.home)
        # Damaged token files are put right before SoftHSM reads them (C_Initialize), and
        # only when no other process of this workstation has the store open.
        repairs = store.open(may_repair=not library_initialized(path))
        try:
            module = Pkcs11Module(path, store)
        except BaseException:
            store.close()
            raise
        self._repairs.extend(repairs)
        return module

    def record_repairs(self) -> None:
        """Each file put right (or found beyond repair) at open is an audit entry."""
        repairs, self._repairs = self._repairs, []
        for repair in repairs:
            self._record_alone(
                "token.store-repair",
                repair.serial or repair.token_dir,
                Outcome.FAILED if repair.action == "unrepairable" else Outcome.SUCCESS,
                dict(repair.details()),
            )

    def add_module(self, path: str) -> Pkcs11Module:
        """Load ``path`` and, if it is a PKCS#11 module, remember it (audited)."""
        assert_core_thread()
        self.guard("module.add", path)
        if path in self.modules:
            return self.modules[path]
        try:
            module = self._load(path)
        except ModuleLoadError as exc:
            self._record_alone("module.add", path, Outcome.FAILED, {"error": exc.message})
            raise
        finally:
            self.record_repairs()
        with self.db.transaction():
            self.settings.add_module(path, is_softhsm(path), self.clock())
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="module.add",
                subject=path,
                outcome=Outcome.SUCCESS,
                details={"description": module.info().description},
            )
        self.modules[path] = module
        return module

    def remove_module(self, path: str) -> None:
        """Stop using a module (audited). Its tokens' sessions end; keys stay recorded."""
        assert_core_thread()
        self.guard("module.remove", path)
        configured = [p for p, _embedded in self.settings.modules()]
        if path not in configured:
            raise ValidationError(f"{path} is not a configured module.")
        module = self.modules.get(path)
        with self.db.transaction():
            self.settings.remove_module(path)
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="module.remove",
                subject=path,
                outcome=Outcome.SUCCESS,
                details={},
            )
        if module is not None:
            for serial, session in list(self._sessions.items()):
                if session.module is module:
                    self.logout(serial)
            module.close()
            if module.store is not None:
                module.store.close()
            del self.modules[path]
        self.module_errors.pop(path, None)

    # --- presence ----------------------------------------------------------------------------

    def poll(self) -> bool:
        """Notice tokens inserted or removed since the last poll; True if anything changed.

        Modules are asked for their slots (C_GetSlotList + C_GetTokenInfo), which notices a
        hardware token coming or going. SoftHSM looks at its token directory only when it is
        initialised, so the embedded store's directories are compared too: a new one makes
        Keystead initialise the module again when no session is open on it (otherwise
        ``rescan_pending`` asks the officer to rescan). A logged-in token that went away loses
        its session, and that is recorded.
        """
        assert_core_thread()
        dirs = token_directories(self.home)
        if self._soft_dirs is not None and dirs - self._soft_dirs:
            if any(is_softhsm(s.module.path) for s in self._sessions.values()):
                self.rescan_pending = True
            else:
                self._reinitialize_embedded()
        self._soft_dirs = dirs
        tokens = self.present()
        present = frozenset(t.serial for t in tokens)
        twins = ambiguous_identities(tokens)
        changed = self._present is not None and present != self._present
        self._present = present
        for serial, session in list(self._sessions.items()):
            if serial not in present:
                self._lost(serial, "token removed")
                changed = True
            elif serial in twins:
                self._lost(serial, "another present token answers to the same identity")
                changed = True
            elif not self.alive(session):
                changed = True
            elif session.lost:
                self._lost(serial, "the token forgot the login")
                changed = True
        return changed

    def rescan(self) -> None:
        """Initialise the embedded SoftHSM module again so it sees its token store as it is
        now. Ends every session on embedded tokens (they must be logged in again)."""
        assert_core_thread()
        for serial, session in list(self._sessions.items()):
            if is_softhsm(session.module.path):
                self.logout(serial)
        self._reinitialize_embedded()
        self._soft_dirs = token_directories(self.home)

    def _reinitialize_embedded(self) -> None:
        for path, module in self.modules.items():
            if is_softhsm(path):
                module.reinitialize()
        self.rescan_pending = False

    def _lost(self, serial: str, why: str) -> None:
        """A logged-in token went away or forgot the login: end the session and record it."""
        session = self._sessions.get(serial)
        label = session.info.label if session else serial
        self.logout(serial)
        self._record_alone(
            "token.session-lost", serial, Outcome.SUCCESS, {"label": label, "why": why}
        )
        log.warning("session on token %s ended: %s", serial, why)

    def remember_store(self) -> None:
        """The embedded store changed through this workstation (a token created or
        initialised): take it as the new normal rather than as an insertion."""
        self._soft_dirs = token_directories(self.home)

    # --- tokens ----------------------------------------------------------------------------

    def present(self) -> list[TokenInfo]:
        assert_core_thread()
        found: list[TokenInfo] = []
        for module in self.modules.values():
            found.extend(module.tokens())
        return found

    def blank_slots(self) -> list[TokenInfo]:
        """Slots whose token is not initialised, in every loaded module (tpm2-pkcs11 always
        offers one; SoftHSM one per store)."""
        assert_core_thread()
        found: list[TokenInfo] = []
        for module in self.modules.values():
            found.extend(t for t in module.tokens(include_uninitialized=True) if not t.initialized)
        return found

    def statuses(self) -> list[TokenStatus]:
        present = self.present()
        twins = ambiguous_identities(present)
        return [
            TokenStatus(
                info,
                info.serial in self._sessions,
                self.tokens.pin_failures(info.serial)[0],
                info.serial in twins,
            )
            for info in present
        ]

    def find(self, ref: str) -> TokenInfo:
        """The present token whose identity (``TokenInfo.serial``), label or reported serial is
        ``ref``. Raises ValidationError when ``ref`` names several tokens, and AmbiguousToken
        when the token it names cannot be told apart from another present token: Keystead
        acts on neither until the officer removes or re-initialises one."""
        present = self.present()
        twins = ambiguous_identities(present)
        for match in (
            [t for t in present if t.serial == ref],
            [t for t in present if t.label == ref],
            [t for t in present if t.reported_serial == ref],
        ):
            if not match:
                continue
            if match[0].serial in twins:
                raise AmbiguousToken(_ambiguous_message(twins[match[0].serial]))
            if len({t.serial for t in match}) > 1:
                serials = ", ".join(t.serial for t in match)
                what = "are labelled" if match[0].label == ref else "answer to"
                raise ValidationError(
                    f"Several tokens {what} '{ref}' (serials {serials}); name one by serial."
                )
            return match[0]
        raise TokenNotPresent(f"No token labelled or numbered '{ref}' is present. Insert it.")

    def module_of(self, info: TokenInfo) -> Pkcs11Module:
        return self.modules[info.module_path]

    # --- sessions --------------------------------------------------------------------------

    def login(self, ref: str, pin: str) -> TokenInfo:
        """Log in with ``pin``; counts and throttles wrong PINs; every try is audited.

        The token's own PIN flags are heeded: a locked PIN is refused before C_Login (a
        security officer must reset it); after a wrong PIN the flags are read again and the
        message says when the token will lock; a PIN the token wants changed logs in, and the
        returned info (``PinState.of(info).must_change``, ``flag_words``) and the entry say so.
        """
        assert_core_thread()
        info = self.find(ref)
        if info.serial in self._sessions:
            return info
        state = PinState.of(info)
        if state.locked:
            self._login_event(info, Outcome.DENIED, {"reason": "user PIN locked"}, self.clock())
            raise PinLocked(_locked_message(info))
        failures, last = self.tokens.pin_failures(info.serial)
        wait = backoff_seconds(failures)
        now = self.clock()
        if last is not None and wait and now < last + timedelta(seconds=wait):
            retry_after = (last + timedelta(seconds=wait) - now).total_seconds()
            self._login_event(
                info, Outcome.DENIED, {"reason": "backoff", "failures": failures}, now
            )
            raise PinBackoff(
                f"{failures} wrong PINs in a row for token '{info.label}'. Wait "
                f"{retry_after:.0f} s before the next try.",
                retry_after=retry_after,
            )
        try:
            session = TokenSession.login(self.module_of(info), info, pin)
        except WrongPin as exc:
            after = self._pin_state_now(info)  # what the token says now, after this try
            with self.db.transaction():
                count = self.tokens.record_pin_failure(info.serial, now)
                details: dict[str, object] = {"reason": "wrong PIN", "failures": count}
                if after.locked or after.final_try or after.count_low:
                    details["token_pin"] = _pin_words(after)
                record(
                    self.db,
                    when=now,
                    operators=(self.operator,),
                    action="token.login",
                    subject=info.serial,
                    outcome=Outcome.FAILED,
                    details=details,
                )
            wrong = (
                f"Wrong PIN for token '{info.label}' ({count} failure{'s' if count != 1 else ''} "
                "in a row)."
            )
            if after.locked:
                raise PinLocked(f"{wrong} {_locked_message(info)}") from exc
            if after.final_try:
                warning = "The token locks its user PIN after one more wrong PIN. "
            elif after.count_low:
                warning = "The token reports few user PIN tries left (user PIN count low). "
            else:
                warning = ""
            raise WrongPin(f"{wrong} {warning}{_next_try_hint(count)}", failures=count) from exc
        except PinLocked as exc:
            self._login_event(info, Outcome.FAILED, {"reason": "user PIN locked"}, now)
            raise PinLocked(_locked_message(info)) from exc
        except KeysteadError as exc:
            self._login_event(info, Outcome.FAILED, {"error": exc.message}, now)
            raise
        try:
            with self.db.transaction():
                self.tokens.clear_pin_failures(info.serial)
                self.tokens.seen(info.serial, info.label, info.model, now)
                success: dict[str, object] = {"label": info.label}
                if state.must_change:
                    success["must_change_pin"] = True
                record(
                    self.db,
                    when=now,
                    operators=(self.operator,),
                    action="token.login",
                    subject=info.serial,
                    outcome=Outcome.SUCCESS,
                    details=success,
                )
        except BaseException:
            session.close()
            raise
        self._sessions[info.serial] = session
        try:
            for callback in self.on_login:
                callback(info.serial)
        except BaseException:
            self.logout(info.serial)  # a refused login leaves no session behind
            raise
        return info

    def _record_alone(
        self,
        action: str,
        subject: str,
        outcome: Outcome,
        details: dict[str, object],
        when: datetime | None = None,
    ) -> None:
        """A refusal, failure or observation recorded in its own transaction."""
        record_alone(
            self.db,
            when=when or self.clock(),
            operators=(self.operator,),
            action=action,
            subject=subject,
            outcome=outcome,
            details=details,
        )

    def _login_event(
        self, info: TokenInfo, outcome: Outcome, details: dict[str, object], when: datetime
    ) -> None:
        """A refused or failed login, recorded on its own."""
        self._record_alone("token.login", info.serial, outcome, details, when)

    def _pin_state_now(self, info: TokenInfo) -> PinState:
        """The token's PIN flags read afresh (a wrong PIN changes them); the old ones if the
        token does not answer."""
        try:
            return PinState.of(self.find(info.serial))
        except KeysteadError:
            return PinState.of(info)

    def logout(self, serial: str) -> None:
        assert_core_thread()
        session = self._sessions.pop(serial, None)
        if session is not None:
            for callback in self.on_logout:
                callback(serial)
            session.close()

    def session(self, ref: str) -> TokenSession:
        """The open session on a token (by serial or label); raises TokenNotLoggedIn."""
        info = self.find(ref)
        session = self._sessions.get(info.serial)
        if session is not None and session.lost:
            self._lost(info.serial, "the token forgot the login")
            session = None
        if session is None:
            raise TokenNotLoggedIn(f"Log in to token '{info.label}' first.")
        try:
            session.reaches_device()
        except TokenRemoved:
            self._lost(info.serial, "the token stopped answering (its device is gone)")
            raise
        return session

    def alive(self, session: TokenSession) -> bool:
        """True if a call reaching the token's device works on ``session``; otherwise the
        session ends and that is recorded (``token.session-lost``)."""
        try:
            session.reaches_device()
        except TokenRemoved:
            self._lost(session.info.serial, "the token stopped answering (its device is gone)")
            return False
        return True

    def logged_in(self) -> list[TokenSession]:
        return list(self._sessions.values())

    def create_soft_token(self, label: str, so_pin: str, user_pin: str) -> TokenInfo:
        """Create a token in the embedded SoftHSM store (SO PIN, then user PIN); audited."""
        assert_core_thread()
        self.guard("token.create-soft", f"token:{label}")
        embedded = [p for p, emb in self.settings.modules() if emb and p in self.modules]
        if not embedded:
            raise ModuleLoadError("The embedded SoftHSM module is not available; install softhsm2.")
        validate_token_label(label)
        check_new_pins(so_pin, user_pin)
        if any(t.label == label for t in self.present()):
            raise ValidationError(
                f"A token labelled '{label}' already exists; choose another label."
            )
        module = self.modules[embedded[0]]
        free = [t for t in module.tokens(include_uninitialized=True) if not t.initialized]
        if not free:
            raise TokenNotPresent("SoftHSM offers no free slot for a new token.")
        subject = f"token-label:{label}"
        # Write-ahead: a token made half-way (no user PIN) by a kill or a failure is removed
        # at the next unlock (``_reconcile_create_soft``).
        intent = self.intents.begin(
            "token.create-soft",
            "",
            subject,
            {
                "subject": subject,
                "label": label,
                "dirs_before": sorted(token_directories(self.home)),
            },
        )
        try:
            module.init_token(free[0].slot_id, so_pin, label)
            created = next((t for t in module.tokens() if t.label == label), None)
            if created is None:
                raise TokenError(
                    f"SoftHSM shows no token labelled '{label}' after creating it; the "
                    "half-made token is removed at the next unlock."
                )
            module.init_user_pin(created.serial, so_pin, user_pin)
        except KeysteadError as exc:
            self._record_alone("token.create-soft", label, Outcome.FAILED, {"error": exc.message})
            raise
        self.remember_store()
        with self.db.transaction():
            self.intents.finish(intent)
            self.tokens.seen(created.serial, created.label, created.model, self.clock())
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="token.create-soft",
                subject=created.serial,
                outcome=Outcome.SUCCESS,
                details={"label": label},
            )
        return created

    def _reconcile_create_soft(self, intent: IntentRow) -> Resolution | None:
        """An embedded token creation that never resolved: a token directory that appeared
        since, with that label, and that the database does not know, is moved to the
        quarantine (it may lack its user PIN; nothing on it was ever recorded)."""
        label = str(intent.details.get("label", ""))
        before = set(intent.details.get("dirs_before", []))
        removed: list[str] = []
        for name in sorted(token_directories(self.home) - before):
            directory = self.home.softhsm_tokens / name
            serial, found_label = token_identity(_read_token_object(directory))
            if found_label != label:
                continue
            if serial and self.tokens.known(serial):
                return Resolution(COMPLETED, {"serial": serial})
            for serial_now, session in list(self._sessions.items()):
                if session.info.serial == serial:
                    self.logout(serial_now)
            quarantine_directory(self.home, directory)
            removed.append(serial or name)
        if removed:
            self.rescan()
        return Resolution(ROLLED_BACK, {"label": label, "tokens_removed": removed})

    def close(self) -> None:
        for serial in list(self._sessions):
            self.logout(serial)
        for module in self.modules.values():
            module.close()
            if module.store is not None:
                module.store.close()
        self.modules.clear()


def ambiguous_identities(present: list[TokenInfo]) -> dict[str, list[TokenInfo]]:
    """Identities that more than one present token answers to, with those tokens."""
    groups: dict[str, list[TokenInfo]] = {}
    for info in present:
        groups.setdefault(info.serial, []).append(info)
    return {identity: infos for identity, infos in groups.items() if len(infos) > 1}


def _ambiguous_message(twins: list[TokenInfo]) -> str:
    where = "; ".join(
        f"{Path(t.module_path).name} slot {t.slot_id} ({t.model or 'no model'})" for t in twins
    )
    first = twins[0]
    return (
        f"{len(twins)} present tokens cannot be told apart: each reports serial "
        f"'{first.reported_serial}' and label '{first.label}' ({where}). Keystead acts on none "
        "of them and binds no key to them: remove all but one, or initialise one with another "
        "label."
    )


def _read_token_object(directory: Path) -> bytes | None:
    try:
        return (directory / TOKEN_OBJECT).read_bytes()
    except OSError:
        return None


def _locked_message(info: TokenInfo) -> str:
    return (
        f"Token '{info.label}' has locked its user PIN; a security officer must reset it "
        f"(Tokens → PINs → Set user PIN (SO)…, or `keystead tokens init-pin {info.serial}`)."
    )


def _pin_words(state: PinState) -> list[str]:
    words = [
        ("user PIN locked", state.locked),
        ("user PIN final try", state.final_try),
        ("user PIN count low", state.count_low),
    ]
    return [word for word, on in words if on]


def _next_try_hint(failures: int) -> str:
    wait = backoff_seconds(failures)
    if not wait:
        left = FREE_ATTEMPTS - failures
        return f"{left} more {'try' if left == 1 else 'tries'} before Keystead makes you wait."
    return f"Keystead waits {wait:.0f} s before the next try."
