"""The workstation: initialise it, unlock it as an operator, lock it.

An unlocked ``Workstation`` owns the open database, the loaded PKCS#11 modules and the token
sessions; all of them belong to the core thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from app.domain.algorithms import Purpose
from app.domain.approval import Authorisation
from app.domain.audit import database_identity
from app.domain.keys import KeyRecord
from app.domain.lifecycle import Action
from app.domain.names import validate_name, validate_new_passphrase, validate_token_label
from app.domain.pins import check_new_pins
from app.domain.roles import FIRST_OPERATOR_ROLES, Role, parse_roles, roles_text
from app.errors import (
    AmbiguousToken,
    DatabaseRolledBack,
    DiskFull,
    KeysteadError,
    OperatorDisabled,
    PolicyError,
    StorageError,
    TokenError,
    TokenNotPresent,
    UnsupportedAlgorithm,
    ValidationError,
    WorkstationExists,
)
from app.hsm.module import Pkcs11Module, TokenInfo
from app.hsm.session import audit_keys_refusal
from app.hsm.softhsm import ensure_config, find_softhsm_module
from app.paths import Home
from app.process import harden_process as harden_process  # (was defined here)
from app.services import backup_policy
from app.services.airgap import AirGapGuard
from app.services.approvals import ApprovalService
from app.services.audit import Outcome, record_alone
from app.services.audit import record as _record
from app.services.audit_log import AuditLog
from app.services.executor import assert_core_thread
from app.services.keys import KeyService
from app.services.lifecycle import LifecycleService, TransitionRequest
from app.services.passphrases import PassphraseChecker
from app.services.policy import load_policy
from app.services.token_admin import AdminRequest, TokenAdmin
from app.services.tokens import TokenService
from app.services.trusted_wrap import protect_pending
from app.storage import rotation
from app.storage.database import Checks, Database
from app.storage.events import unsealed_refusal
from app.storage.home_lock import HomeLock
from app.storage.keyslots import KdfCost, KeySlotFile, new_database_key
from app.storage.operators import OperatorRepository
from app.storage.repository import SettingsRepository

if TYPE_CHECKING:  # built on first use: see Workstation.use / .backup / .certs / .inspect …
    from app.services.backup import BackupService
    from app.services.certificates import CertificateService
    from app.services.distribution import DistributionService
    from app.services.key_use import KeyUseService
    from app.services.operators import OperatorService
    from app.services.policy import UsageLimits
    from app.services.rebind import RebindService
    from app.services.token_inspect import TokenInspector

log = logging.getLogger(__name__)

# Set once an unlock has seen unlock-failures.json: its absence later is recorded.
FAILURES_FILE_SETTING = "unlock_failures_file"
# Why a keyslot opens nothing and is removed at the next unlock.
ORPHAN_SLOT = "no operator record (an operators add or enable was cut short)"

ROLE_SECURITY_OFFICER = "security-officer"
# Intents reconciled at the login to their token, and those reconciled at unlock.
KEY_INTENTS = frozenset({"key.generate", "key.transition", "key.adopt-id", "key.restore"})
TOKEN_INTENTS = frozenset(
    {"token.create-soft", "token.init", "token.init-blank", "token.init-pin",
     "token.change-pin", "token.change-so-pin"}
)
# Activation of these needs the policy's "key.activate" approvals; other purposes use
# "key.activate-other".
DUAL_ACTIVATION = (Purpose.KEY_WRAPPING, Purpose.SIGNING)
IDLE_LOCK_DEFAULT, IDLE_LOCK_MIN, IDLE_LOCK_MAX = 10, 1, 60  # minutes
RULE_ROTATE_OLD_SLOTS = "KS-ROTATE-OLD-KEYSLOTS"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SoftTokenRequest:
    """The embedded SoftHSM token to create at initialisation."""

    label: str
    so_pin: str
    user_pin: str


@dataclass(frozen=True)
class AuditTokenChoice:
    """A present token to hold the audit keys, reached through ``modules`` (library paths,
    added to the workstation), and its user PIN."""

    token: str  # label or serial
    pin: str
    modules: tuple[str, ...] = ()


def _check_audit_choice(choice: AuditTokenChoice) -> None:
    """Refuse a chosen audit token before anything exists: absent, ambiguous, or unable to
    hold the audit keys. Loads the named modules and finalises them again."""
    if not choice.modules:
        raise ValidationError(
            "Name the module of the chosen audit token (its PKCS#11 library), or create the "
            "embedded token for audit instead."
        )
    found: list[tuple[Pkcs11Module, TokenInfo]] = []
    loaded: list[Pkcs11Module] = []
    try:
        for path in choice.modules:
            module = Pkcs11Module(path)
            loaded.append(module)
            found += [
                (module, t)
                for t in module.tokens()
                if choice.token in (t.serial, t.label, t.reported_serial)
            ]
        if not found:
            raise TokenNotPresent(
                f"No token labelled or numbered '{choice.token}' is present in "
                f"{', '.join(choice.modules)}. Nothing was created."
            )
        if len(found) > 1:
            raise AmbiguousToken(
                f"{len(found)} present tokens answer to '{choice.token}'; name one by its "
                "label or identity. Nothing was created."
            )
        module, info = found[0]
        refusal = audit_keys_refusal(module, info)
        if refusal is not None:
            raise UnsupportedAlgorithm(
                f"{refusal}. Nothing was created. Use the embedded token for audit "
                f"(--soft-token LABEL) and keep your keys on '{info.label}': a common "
                "arrangement."
            )
    finally:
        for module in loaded:
            module.close()


def _check_soft_token(request: SoftTokenRequest) -> None:
    """The checks the token service makes when it creates the token, made up front."""
    validate_token_label(request.label)
    check_new_pins(request.so_pin, request.user_pin)


class Workstation:
    """An unlocked workstation. Create with ``initialize`` or ``unlock``; end with ``lock``."""

    def __init__(
        self,
        home: Home,
        db: Database,
        operator: str,
        workstation_id: str,
        clock: Callable[[], datetime],
        database_key: bytes,
    ) -> None:
        self.home = home
        self._home_lock: HomeLock | None = None  # set by initialize / unlock
        self._database_key = database_key
        self.db = db
        self.operator = operator
        self.workstation_id = workstation_id
        self.clock = clock
        self.settings = SettingsRepository(db)
        self.tokens = TokenService(db, home, operator, clock)
        self.airgap = AirGapGuard(db, operator, clock)
        self.keys = KeyService(db, self.tokens, operator, clock, self.airgap)
        self.lifecycle = LifecycleService(
            db, self.tokens, self.keys, operator, clock, load_policy()
        )
        self.audit = AuditLog(
            db, self.tokens, workstation_id, operator, clock, database_identity(database_key)
        )
        self.admin = TokenAdmin(db, self.tokens, operator, clock, lambda: self.audit.token_serial)
        self.keys.usage_of = self._usage_of  # counters read the audit chain only
        self._usage_limits: UsageLimits | None = None  # resources/usage-limits.toml, when read
        self.tokens.on_login += [self.audit.on_login, self._after_login]
        self.tokens.on_logout.append(self.audit.on_logout)
        # Roles and dual control: one approval service behind every service's hooks.
        self.checker = PassphraseChecker(home, clock)
        self.approvals = ApprovalService(
            db, self.checker, operator, workstation_id, clock, lambda: self._database_key
        )
        guard = self.approvals.check_initiator
        for service in (self.tokens, self.keys, self.lifecycle):
            service.guard = guard
        self.lifecycle.approve = self._approve_transition
        self.admin.approve = self._approve_admin
        self.airgap.approve = self.approvals.obtain  # turning the air-gap policy off
        # Fixed at unlock for a window to read on its own thread; ``roles`` reads them now.
        self.unlocked_roles = self.approvals.roles_of(operator)

    # --- services built on first use --------------------------------------------------------
    # Key use, backups and certificates bring cryptography's x509/serialisation, SLIP-39 and
    # pkilint with them (a third of a CLI command's start-up); most commands use none of them,
    # so each is imported and built the first time it is asked for, wired like the others.
    # The token inspector (mechanism tables, p11-kit, capability probes), re-binding and the
    # operator roster likewise: ``keys list`` uses none of them (issue 17). None of these
    # registers a hook, an intent handler or a guard that unlock or login rely on.

    @cached_property
    def inspect(self) -> TokenInspector:
        """Modules, tokens and their mechanisms (``tokens show``, the Tokens page)."""
        from app.services.token_inspect import TokenInspector

        return TokenInspector(self.db, self.tokens, self.clock)

    @cached_property
    def rebind(self) -> RebindService:
        """Re-binding a record to the token object it lost."""
        from app.services.rebind import RebindService

        service = RebindService(self.db, self.tokens, self.keys, self.operator, self.clock)
        service.guard = self.approvals.check_initiator
        return service

    @cached_property
    def roster(self) -> OperatorService:
        """Operators: add, enable, disable, remove, roles."""
        from app.services.operators import OperatorService

        return OperatorService(
            self.db, self.home, self.approvals, self.checker, self.operator, self.clock,
            lambda: self._database_key,
        )

    @cached_property
    def use(self) -> KeyUseService:
        """Signing, verifying, encrypting and decrypting with managed keys."""
        from app.services.key_use import KeyUseService

        service = KeyUseService(self.db, self.tokens, self.keys, self.operator, self.clock)
        service.guard = self.approvals.check_initiator
        service.limits_source = lambda: self.usage_limits
        return service

    @cached_property
    def backup(self) -> BackupService:
        """Backup creation, verification and restore."""
        from app.services.backup import BackupService

        service = BackupService(
            self.db, self.tokens, self.audit, self.airgap, self.operator, self.workstation_id,
            self.clock,
        )
        service.approve = self.approvals.obtain
        return service

    @cached_property
    def certs(self) -> CertificateService:
        """CSRs, certificates and CRLs of managed keys."""
        from app.services.certificates import CertificateService

        return CertificateService(
            self.db, self.tokens, self.keys, self.use, self.operator, self.clock, self.approvals
        )

    @cached_property
    def distribution(self) -> DistributionService:
        """Wrapped key transfer and imported public keys (docs/key-transfer.md)."""
        from app.services.distribution import DistributionService

        return DistributionService(
            self.db,
            self.tokens,
            self.keys,
            self.use,
            self.approvals,
            self.tokens.intents,
            self.operator,
            self.workstation_id,
            self.clock,
        )

    def _usage_of(
        self, keys: list[KeyRecord] | None
    ) -> tuple[dict[str, int], dict[str, str]]:
        """Per key id: protect uses, and why a usage limit makes it due (inventory), of
        ``keys`` (None: every key with a recorded use, read by id; the inventory's first
        screenful, which reads no other record)."""
        from app.services import usage_counts

        counted = usage_counts.tallies(self.db)  # one grouped query over the audit chain
        if keys is None:
            keys = self.keys.repo.by_ids(counted)
        return (
            {k: t.uses for k, t in counted.items()},
            usage_counts.usage_due(self.db, keys, self.usage_limits, counted),
        )

    @property
    def usage_limits(self) -> UsageLimits:
        """The per-purpose usage limits, read from resources/ once (one place for the
        inventory, ``keys due`` and key use)."""
        if self._usage_limits is None:
            from app.services.policy import load_usage_limits

            self._usage_limits = load_usage_limits()
        return self._usage_limits

    @usage_limits.setter
    def usage_limits(self, limits: UsageLimits) -> None:
        self._usage_limits = limits

    # --- policy: no activation before a verified backup ------------------------------------

    def backup_before_activation(self) -> frozenset[Purpose]:
        """Purposes whose keys need a verified backup before activation."""
        assert_core_thread()
        return backup_policy.required_purposes(self.db)

    def set_backup_before_activation(self, purpose: Purpose, required: bool) -> frozenset[Purpose]:
        """Change the rule for one purpose (``policy.set`` approvals; recorded)."""
        assert_core_thread()
        return backup_policy.set_required(
            self.db,
            purpose,
            required,
            self.approvals.check_initiator,
            self.approvals.obtain,
            self.clock,
        )

    # --- dual control hooks ----------------------------------------------------------------

    def _approve_transition(self, request: TransitionRequest, key: KeyRecord) -> Authorisation:
        """Who stands behind a lifecycle transition (the approval service decides)."""
        action = f"key.{request.action.value}"
        if request.action is Action.ACTIVATE and key.purpose not in DUAL_ACTIVATION:
            action = "key.activate-other"
        parameters: dict[str, object] = {
            "key": key.name,
            "key_id": key.id,
            "algorithm": key.algorithm.value,
            "purpose": key.purpose.value,
            "state": key.state.value,
            "token": f"{key.token_label} ({key.token_serial})",
            "cka_id": key.cka_id,
            "kcv": key.kcv,
            "fingerprint": key.fingerprint,
            "transition": request.action.value,
            "reason": request.reason,
            "compromise_date": request.compromise_date.isoformat()
            if request.compromise_date
            else None,
        }
        also = self.lifecycle.also_changed(key, request)
        if also:
            # The approvers approve these too (the new-user trial found the predecessor of an
            # activated successor deactivated with no word of it in the approval dialog).
            parameters["also_changes"] = [
                f"'{k.name}' ({k.kcv or (k.fingerprint or '')[:16]}) becomes {k.state.value}"
                for k in also
            ]
        authorisation = self.approvals.obtain(action, f"key:{key.id}", parameters)
        return authorisation

    def _approve_admin(self, request: AdminRequest) -> Authorisation:
        """Who stands behind a token administration step."""
        label = next((t.label for t in self.tokens.present() if t.serial == request.serial), "")
        return self.approvals.obtain(
            request.action,
            request.serial,
            {"token": label, "serial": request.serial, "new_label": request.new_label},
        )

    @classmethod
    def initialize(
        cls,
        home: Home,
        operator: str,
        passphrase: str,
        confirmation: str,
        soft_token: SoftTokenRequest | None = None,
        cost: KdfCost | None = None,
        clock: Callable[[], datetime] = utc_now,
        audit_token: AuditTokenChoice | None = None,
        wait: float = 0.0,
        program: str | None = None,
    ) -> Workstation:
        """Create the database and the first security officer; optionally an embedded token,
        or a present token chosen to hold the audit keys (``audit_token``; its modules are
        added). Every refusal comes before anything exists. Holds the home's process lock
        (``HomeLock``, waiting up to ``wait`` s) until ``lock``."""
        assert_core_thread()
        operator = validate_name(operator, "Operator name", distinct_from=())
        validate_new_passphrase(passphrase, confirmation, operator)
        if soft_token is not None and audit_token is not None:
            raise ValidationError(
                "Either create the embedded token for audit or choose a present token, not both."
            )
        if soft_token is not None:  # refused before anything exists, not half-way
            _check_soft_token(soft_token)
        if audit_token is not None and home.exists():
            raise WorkstationExists(
                f"A workstation already exists in {home.root}; unlock it instead. "
                "Nothing was changed."
            )
        if audit_token is not None:
            _check_audit_choice(audit_token)
        if home.exists():
            raise WorkstationExists(
                f"A workstation already exists in {home.root}; unlock it instead. "
                "Nothing was changed."
            )
        home.ensure()
        home_lock = HomeLock.acquire(home.root, program, wait)
        try:
            return cls._initialize_locked(
                home, operator, passphrase, soft_token, cost, clock, home_lock, audit_token
            )
        except BaseException:
            home_lock.release()
            raise

    @classmethod
    def _initialize_locked(
        cls,
        home: Home,
        operator: str,
        passphrase: str,
        soft_token: SoftTokenRequest | None,
        cost: KdfCost | None,
        clock: Callable[[], datetime],
        home_lock: HomeLock,
        audit_token: AuditTokenChoice | None,
    ) -> Workstation:
        if home.exists():  # another process initialised it while this one waited
            raise WorkstationExists(
                f"A workstation already exists in {home.root}; unlock it instead. "
                "Nothing was changed."
            )
        slots = KeySlotFile.create(home.keyslots)
        database_key = new_database_key()
        slots.add(operator, passphrase, database_key, cost or KdfCost())
        db = Database.create(home.database, database_key)
        try:
            now = clock()
            settings = SettingsRepository(db)
            with db.transaction():
                settings.put("workstation_id", slots.workstation_id)
                settings.put("created_at", now.isoformat())
                OperatorRepository(db).add(operator, FIRST_OPERATOR_ROLES, operator, now)
                softhsm = find_softhsm_module()
                if softhsm:
                    settings.add_module(softhsm, True, now)
                chosen_modules = audit_token.modules if audit_token else ()
                for path in chosen_modules:
                    settings.add_module(path, False, now)
                _record(
                    db,
                    when=now,
                    operators=(operator,),
                    action="workstation.initialize",
                    subject=f"workstation:{slots.workstation_id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        "operator": operator,
                        "roles": roles_text(FIRST_OPERATOR_ROLES),
                        "embedded_module": softhsm or "",
                        **({"modules": list(chosen_modules)} if chosen_modules else {}),
                    },
                )
            slots.save()
        except BaseException:
            db.close()
            home.database.unlink(missing_ok=True)
            raise
        ensure_config(home)
        workstation = cls(home, db, operator, slots.workstation_id, clock, database_key)
        workstation._home_lock = home_lock
        try:
            workstation.tokens.load_modules()
            if soft_token is not None:
                created = workstation.tokens.create_soft_token(
                    soft_token.label, soft_token.so_pin, soft_token.user_pin
                )
                # Logging in designates the new token as the audit token and creates its keys.
                workstation.tokens.login(created.serial, soft_token.user_pin)
            if audit_token is not None:
                workstation.tokens.login(audit_token.token, audit_token.pin)
                if workstation.audit.token_serial is None:
                    raise TokenError("The chosen token did not take the audit keys.")
        except BaseException:
            with contextlib.suppress(KeysteadError):
                workstation.lock()  # no open database or initialised module left behind
            raise
        return workstation

    def _after_login(self, serial: str) -> None:
        """Once the audit token seals entries: leftovers of failed generations, pending token
        changes, then due cryptoperiods."""
        self.keys.settle(self.tokens.session(serial))
        self.tokens.intents.reconcile(KEY_INTENTS, serial)
        if serial == self.audit.token_serial:
            # Now changes can be recorded: every logged-in token's pending changes.
            for session in self.tokens.logged_in():
                self.lifecycle.enforce_pending(session.info.serial)
                protect_pending(self.db, session, self.operator, self.clock)
            self.lifecycle.apply_due()
        else:
            self.lifecycle.enforce_pending(serial)
            protect_pending(self.db, self.tokens.session(serial), self.operator, self.clock)

    @classmethod
    def unlock(
        cls,
        home: Home,
        operator: str,
        passphrase: str,
        clock: Callable[[], datetime] = utc_now,
        wait: float = 0.0,
        program: str | None = None,
        defer_checks: bool = False,
    ) -> Workstation:
        """Open the workstation with the operator's own keyslot.

        Takes the home's process lock first (waiting up to ``wait`` s; WorkstationInUse names
        the process that has it, by ``program`` or the running program's name) and holds it
        until ``lock``: one process changes a workstation at a time. A home on a read-only
        mount takes no lock (nothing there can be changed, and the lock file cannot be made).

        Nothing is written until the database has been matched against the evidence kept
        outside it: the keyslot file's workstation id must be the database's, and when the
        audit token is present its newest checkpoint (read without a login) must name this
        workstation and database key and vouch for this exact chain. A refusal writes nothing,
        so retrying it gives the same refusal.

        Wrong passphrases are counted outside the database (back-off per name) and sealed
        into the audit chain here, at the next successful unlock, as ``workstation.unlock``
        entries with outcome ``failed``. A keyslot whose operator is disabled or removed in
        the database opens nothing.

        ``defer_checks`` (the window: paint first, DESIGN.md "Storage"): the database's two
        whole-file integrity checks and the unlock's own records (the ``workstation.unlock``
        entry, sealed wrong passphrases, store repairs, token intents) are left for
        ``finish_unlock``, which the first write of any kind runs itself; until then the
        workstation serves reads only. Without it (the CLI) both happen here, the same way.
        """
        assert_core_thread()
        if not home.exists():
            KeySlotFile.load(home.keyslots)  # raises WorkstationMissing, in its words
        if not home.keyslots.exists():  # the database without the only way to open it
            raise StorageError(
                f"The keyslot file {home.keyslots} is missing, but the database "
                f"{home.database} is here: restore keyslots.json from the same copy of this "
                "home as the database (the keyslots are the only way to open it). Nothing was "
                "changed."
            )
        try:
            home_lock = None if home.read_only() else HomeLock.acquire(home.root, program, wait)
            try:
                return cls._unlock_locked(
                    home, operator, passphrase, clock, home_lock, defer_checks
                )
            except BaseException:
                if home_lock is not None:
                    home_lock.release()
                raise
        except DiskFull as exc:
            # Whichever file the unlock was writing (the wrong-passphrase record, the lock,
            # the session's audit entries), the officer's fault is the same and so are the
            # words: a full disk, nothing changed (F10).
            raise DiskFull(
                f"The disk holding {home.root} is full: Keystead cannot open the workstation "
                "(every session writes its audit entries there). Free some space on it; "
                "nothing was changed."
            ) from exc

    @classmethod
    def _unlock_locked(
        cls,
        home: Home,
        operator: str,
        passphrase: str,
        clock: Callable[[], datetime],
        home_lock: HomeLock | None,
        defer_checks: bool = False,
    ) -> Workstation:
        """``unlock`` once the process lock is held (None: a read-only home). Recovering a
        cut-short rotation and counting wrong passphrases write files: they come after it."""
        recovered = rotation.recover(home) if home.exists() else None  # a rotation cut short
        checker = PassphraseChecker(home, clock)
        if home.read_only():  # an auditor's read-only copy: nothing can be counted or written
            slots = KeySlotFile.load(home.keyslots)
            database_key = slots.open(operator, passphrase)
            return cls._open_read_only(home, operator, slots.workstation_id, clock, database_key)
        database_key = checker.open_slot(operator, passphrase)
        slots = KeySlotFile.load(home.keyslots)
        db = Database.open(home.database, database_key, defer_checks=defer_checks)
        workstation: Workstation | None = None
        try:
            recorded_id = SettingsRepository(db).get("workstation_id")
            if recorded_id != slots.workstation_id:
                raise DatabaseRolledBack(
                    f"The keyslot file names workstation {slots.workstation_id} but the "
                    f"database belongs to {recorded_id}: one of them was replaced or edited. "
                    "Restore both from the same backup; nothing was changed."
                )
            workstation = cls(home, db, operator, slots.workstation_id, clock, database_key)
            workstation._home_lock = home_lock
            workstation.tokens.load_modules(hold_records=True)
            workstation.audit.precheck_rollback()
            record = workstation.approvals.operators.get(operator)
            if record is None or not record.active:
                unrecorded = record is None
                with db.transaction():
                    _record(
                        db,
                        when=clock(),
                        operators=(operator,),
                        action="workstation.unlock",
                        subject=f"workstation:{slots.workstation_id}",
                        outcome=Outcome.DENIED,
                        details={
                            "refusal": ORPHAN_SLOT if unrecorded else "operator disabled or removed"
                        },
                    )
                if unrecorded:
                    raise OperatorDisabled(
                        f"'{operator}' has a keyslot but {ORPHAN_SLOT}: it opens nothing and is "
                        "removed at the next unlock by an operator. A security officer adds "
                        f"'{operator}' again."
                    )
                raise OperatorDisabled(
                    f"Operator '{operator}' is disabled or removed on this workstation; "
                    "a security officer can enable them again."
                )
            # The unlock's own records: the first write (after the integrity checks).
            db.before_first_write = lambda: workstation._record_unlock(checker, recovered)
            if not defer_checks:
                workstation.finish_unlock()
        except BaseException:
            if workstation is not None:
                workstation.tokens.close()
            db.close()
            raise
        try:
            slots = KeySlotFile.load(home.keyslots)  # as the unlock's records left it
            if slots.ensure_key_pair(operator, passphrase):
                slots.save()  # a slot from before rotation support gets its key pair
        except KeysteadError as exc:  # the unlock stands; rotation will say what is missing
            log.warning("keyslot of %s not upgraded: %s", operator, exc.message)
        return workstation

    def finish_unlock(self) -> None:
        """Run what ``unlock(defer_checks=True)`` left: both integrity checks, then the
        unlock's records; nothing if done already (any write runs this first). Raises
        DatabaseDamaged if a check fails (then nothing is written, ever, through this
        workstation: lock it)."""
        assert_core_thread()
        self.db.require_checked()

    @property
    def integrity_pending(self) -> bool:
        """True while the deferred integrity checks have not passed (reads only)."""
        return self.db.checks_pending

    def _record_unlock(self, checker: PassphraseChecker, recovered: str | None) -> None:
        """The unlock's records, in this order: wrong passphrases since the last unlock, a
        rotation recovered, the ``workstation.unlock`` entry, store repairs, token intents."""
        sealed = self._seal_failures(checker)
        self._note_missing_failures(checker)
        if recovered is not None:
            self._record_recovery(recovered)
        with self.db.transaction():
            _record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="workstation.unlock",
                subject=f"workstation:{self.workstation_id}",
                outcome=Outcome.SUCCESS,
                details={"failures_since_last_unlock": sealed} if sealed else None,
            )
        self.tokens.record_repairs()
        self._remove_orphan_keyslots()
        # Token-level intents left by a kill (a half-made embedded token, an interrupted
        # initialisation or PIN change) need no login to be settled.
        self.tokens.intents.reconcile(TOKEN_INTENTS)

    def _remove_orphan_keyslots(self) -> None:
        """Keyslots no active operator record vouches for: ``operators add`` / ``enable``
        killed after keyslots.json was saved and before the record was committed (the file is
        written inside the record's transaction). Such a slot wraps the database key under a
        passphrase nobody approved, so it goes, and the entry says so (one per slot, written
        before the file is saved: a kill in between removes and records it again next time).
        A file that cannot be written is left for the next unlock (the slot opens nothing:
        unlock refuses an operator without an active record)."""
        slots = KeySlotFile.load(self.home.keyslots)
        operators = self.approvals.operators
        orphans = []
        for name in slots.operators():
            found = operators.get(name)
            if found is None or not found.active:
                orphans.append((name, found))
        if not orphans:
            return
        for name, found in orphans:
            with self.db.transaction():
                _record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="operator.keyslot-orphan",
                    subject=f"operator:{name}",
                    outcome=Outcome.SUCCESS,
                    details={
                        "reason": ORPHAN_SLOT
                        if found is None
                        else "the operator is disabled or removed",
                        "resolution": "keyslot removed",
                    },
                )
            slots.remove(name)
        try:
            slots.save()
        except KeysteadError as exc:
            log.error("orphan keyslots not removed yet: %s", exc.message)

    @classmethod
    def _open_read_only(
        cls,
        home: Home,
        operator: str,
        workstation_id: str,
        clock: Callable[[], datetime],
        database_key: bytes,
    ) -> Workstation:
        """A home on a read-only mount (an auditor's copy): the database opened read-only, no
        token module loaded (a login writes the token's files), nothing recorded. Reading
        commands work; anything that would write is refused (``ReadOnlyHome``)."""
        db = Database.open(home.database, database_key, read_only=True)
        try:
            recorded_id = SettingsRepository(db).get("workstation_id")
            if recorded_id != workstation_id:
                raise DatabaseRolledBack(
                    f"The keyslot file names workstation {workstation_id} but the database "
                    f"belongs to {recorded_id}: one of them was replaced or edited."
                )
            return cls(home, db, operator, workstation_id, clock, database_key)
        except BaseException:
            db.close()
            raise

    @property
    def read_only(self) -> bool:
        return self.db.read_only


    def _record_recovery(self, recovered: str) -> None:
        """A rotation was interrupted: say at this unlock how it ended."""
        with self.db.transaction():
            _record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="workstation.rotation-recovered",
                subject=f"workstation:{self.workstation_id}",
                outcome=Outcome.SUCCESS if recovered == "completed" else Outcome.ABORTED,
                details={"interrupted": True, "recovery": recovered},
            )

    # --- workstation key rotation ----------------------------------------------------------

    def rotate_key(self, step: rotation.Step = lambda _name: None) -> int:
        """Re-key the database under a fresh random key and re-seal every keyslot to it
        (approved by the policy's ``workstation.rotate-key`` rule); crash-safe, see
        ``app.storage.rotation``. Returns the number of keyslots re-sealed."""
        assert_core_thread()
        subject = f"workstation:{self.workstation_id}"
        if not self.audit.sealing:
            # Refused before anything: the checkpoints that vouch for the database key are
            # the token's, so a rotation it cannot vouch for would lock every operator out.
            raise unsealed_refusal(self.db, "workstation.rotate-key")
        self.approvals.check_initiator("workstation.rotate-key", subject)
        slots = KeySlotFile.load(self.home.keyslots)
        missing = slots.without_key_pair()
        if missing:
            error = PolicyError(
                "These operators' keyslots predate rotation: "
                f"{', '.join(missing)}. Each unlocks once (or has their passphrase reset) "
                "first; nothing was changed.",
                RULE_ROTATE_OLD_SLOTS,
            )
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="workstation.rotate-key",
                subject=subject,
                outcome=Outcome.DENIED,
                details={"refusal": error.message, "rule": error.rule},
            )
            raise error
        who = self.approvals.obtain(
            "workstation.rotate-key", subject, {"keyslots": ", ".join(slots.operators())}
        )
        new_key = new_database_key()
        # The chain as it stands, vouched for by the token under the old key *and* the new
        # one: whichever pair a crash or a token error leaves on disk, the next unlock's
        # rollback check accepts it (app.storage.rotation recovers the files).
        self.audit.checkpoint("before key rotation", next_database=database_identity(new_key))
        slots = KeySlotFile.load(self.home.keyslots)  # as it is now, after the approval
        resealed = slots.resealed(new_key)
        try:
            rotation.rotate_files(
                self.home,
                self.db,
                resealed,
                new_key,
                {"by": list(who), "keyslots": slots.operators()},
                step,
            )
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=who,
                action="workstation.rotate-key",
                subject=subject,
                outcome=Outcome.FAILED,
                details={"error": exc.message},
            )
            raise
        self.db.reopen(new_key)
        self._database_key = new_key
        self.audit.database_id = database_identity(new_key)  # checkpoints name the new key
        with self.db.transaction():
            _record(
                self.db,
                when=self.clock(),
                operators=who,
                action="workstation.rotate-key",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"keyslots": slots.operators()},
            )
        if self.audit.sealing:  # evidence outside the database now vouches for the new key
            self.audit.checkpoint("after key rotation")
        return len(resealed.slots)

    def _note_missing_failures(self, checker: PassphraseChecker) -> None:
        """The wrong-passphrase record (unlock-failures.json) is written before every
        passphrase check and never deleted by Keystead, so once an unlock has seen it, its
        absence at a later unlock means it was deleted: wrong passphrases and lock-outs since
        the last unlock may have been erased. Recorded (``workstation.unlock-failures-missing``,
        before any token login, so unsealed), so an auditor sees it; the database remembers
        that the file existed (setting ``unlock_failures_file``)."""
        settings = SettingsRepository(self.db)
        seen = settings.get(FAILURES_FILE_SETTING) is not None
        if seen and not checker.record_was_missing:
            return
        with self.db.transaction():
            if seen:
                _record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="workstation.unlock-failures-missing",
                    subject=f"workstation:{self.workstation_id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        "file": self.home.unlock_failures.name,
                        "note": "the wrong-passphrase record was missing at this unlock: wrong "
                        "passphrases and lock-outs since the last unlock may have been erased",
                    },
                )
            settings.put(FAILURES_FILE_SETTING, "present")

    def _seal_failures(self, checker: PassphraseChecker) -> int:
        """Write the wrong passphrases of the side record into the audit chain (each once)."""
        failures = checker.failures.unsealed()
        lost = checker.failures.lost()
        if not failures and not lost:
            return 0
        done = {
            str(row[0])
            for row in self.db.query(
                "SELECT json_extract(details, '$.attempt') FROM events "
                "WHERE action = 'workstation.unlock' AND outcome = 'failed'"
            )
            if row[0] is not None
        }
        with self.db.transaction():
            for failure in failures:
                if failure.id in done:
                    continue
                _record(
                    self.db,
                    when=self.clock(),
                    operators=(failure.operator,),
                    action="workstation.unlock",
                    subject=f"workstation:{self.workstation_id}",
                    outcome=Outcome.FAILED,
                    details={
                        "attempt": failure.id,
                        "time": failure.time,
                        "operator": failure.operator,
                        "reason": failure.reason,
                    },
                )
            if lost:
                _record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="workstation.unlock",
                    subject=f"workstation:{self.workstation_id}",
                    outcome=Outcome.FAILED,
                    details={"reason": f"{lost} older failed tries not kept individually"},
                )
        checker.failures.sealed({f.id for f in failures})
        return len(failures) + lost

    @property
    def roles(self) -> frozenset[Role]:
        """The unlocked operator's roles now (a change takes effect at once)."""
        return self.approvals.roles_of(self.operator)

    @staticmethod
    def operators(home: Home) -> list[str]:
        """Names with a keyslot (for the unlock dialog)."""
        try:
            return KeySlotFile.load(home.keyslots).operators()
        except KeysteadError:
            return []

    def add_operator(
        self,
        name: str,
        passphrase: str,
        confirmation: str,
        role: str | frozenset[Role] = ROLE_SECURITY_OFFICER,
        cost: KdfCost | None = None,
    ) -> None:
        """Enrol another operator with their own keyslot (``OperatorService.add``)."""
        roles = parse_roles(role) if isinstance(role, str) else role
        if cost is not None:
            self.roster.cost = cost
        self.roster.add(name, roles, passphrase, confirmation)

    # --- idle lock ------------------------------------------------------------------------

    def idle_lock_minutes(self) -> int:
        """Minutes without input before the GUI locks (a security officer sets it, 1–60)."""
        value = self.settings.get("idle_lock_minutes")
        return int(value) if value is not None else IDLE_LOCK_DEFAULT

    def set_idle_lock(self, minutes: int) -> int:
        assert_core_thread()
        subject = f"workstation:{self.workstation_id}"
        self.approvals.check_initiator("workstation.idle-lock", subject)
        if not IDLE_LOCK_MIN <= minutes <= IDLE_LOCK_MAX:
            error = ValidationError(
                f"The idle lock is {IDLE_LOCK_MIN} to {IDLE_LOCK_MAX} minutes; nothing was changed."
            )
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="workstation.idle-lock",
                subject=subject,
                outcome=Outcome.DENIED,
                details={"refusal": error.message, "minutes": minutes},
            )
            raise error
        before = self.idle_lock_minutes()
        with self.db.transaction():
            self.settings.put("idle_lock_minutes", str(minutes))
            _record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="workstation.idle-lock",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"from": before, "to": minutes},
            )
        return minutes

    def lock(self, reason: str = "") -> None:
        """Close sessions, unload modules and close the database (``reason``: "idle",
        "requested", … recorded in the lock entry)."""
        assert_core_thread()
        if self.read_only or self.db.checks is Checks.FAILED:
            # Read-only, or damaged (deferred checks failed): nothing may be written, and no
            # checkpoint may vouch for this file.
            try:
                self.tokens.close()
                self.db.close()
                self._database_key = b""
            finally:
                if self._home_lock is not None:
                    self._home_lock.release()
            return
        try:
            # Deferred checks and the unlock's records come before the lock's (a damaged file
            # raises DatabaseDamaged here; the lock still closes everything below).
            self.finish_unlock()
            if self.audit.sealing:
                try:
                    self.audit.checkpoint("lock")
                except KeysteadError as exc:
                    log.error("no checkpoint at lock: %s", exc.message)
            with self.db.transaction():
                _record(
                    self.db,
                    when=self.clock(),
                    operators=(self.operator,),
                    action="workstation.lock",
                    subject=f"workstation:{self.workstation_id}",
                    outcome=Outcome.SUCCESS,
                    details={"reason": reason} if reason else None,
                )
        finally:
            try:
                self.tokens.close()
                self.db.close()
                self._database_key = b""  # the key goes with the lock (no cached secret stays)
            finally:
                if self._home_lock is not None:
                    self._home_lock.release()
