"""Operators: add, disable / enable, change roles, reset a passphrase, remove; and each
operator's own passphrase change. Every change is approved (``ApprovalService``) and audited.

Each operator has their own keyslot in ``keyslots.json``. Disabling or removing someone drops
their keyslot at once (their passphrase no longer opens anything); enabling them again needs a
new passphrase typed by them. The keyslot file is written inside the database transaction of
the change, so a failed write rolls the change back; a keyslot without an active operator row
is refused at unlock, and removed (recorded) at the next unlock by an operator: a kill between
saving the file and committing the record leaves one (``Workstation._remove_orphan_keyslots``).
(Someone who could read the database key while enrolled keeps it: rotate the workstation key
after removing a person you no longer trust.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

from app.domain.approval import RULE_QUORUM, quorum_lost, quorum_text
from app.domain.names import validate_name, validate_new_passphrase
from app.domain.roles import SO, Role, roles_text
from app.errors import KeysteadError, NotFoundError, PolicyError, ValidationError
from app.paths import Home
from app.services.approvals import ApprovalService
from app.services.audit import Outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.passphrases import PassphraseChecker
from app.storage.database import Database
from app.storage.keyslots import KdfCost, KeySlotFile
from app.storage.operators import OperatorRecord, OperatorRepository

log = logging.getLogger(__name__)

RULE_LAST_OFFICER = "KS-OPERATOR-LAST-OFFICER"


class OperatorService:
    def __init__(
        self,
        db: Database,
        home: Home,
        approvals: ApprovalService,
        checker: PassphraseChecker,
        operator: str,
        clock: Callable[[], datetime],
        database_key: Callable[[], bytes],
    ) -> None:
        self.db = db
        self.home = home
        self.approvals = approvals
        self.checker = checker
        self.operator = operator
        self.clock = clock
        self._database_key = database_key
        self.repo = OperatorRepository(db)
        self.cost = KdfCost()

    # --- reading ---------------------------------------------------------------------------

    def list(self, include_removed: bool = False) -> list[OperatorRecord]:
        return self.repo.all(include_removed)

    def get(self, name: str) -> OperatorRecord:
        found = self.repo.get(name)
        if found is None or found.removed_at is not None:
            raise NotFoundError(f"There is no operator named '{name}'.")
        return found

    # --- changes ---------------------------------------------------------------------------

    def add(
        self, name: str, roles: frozenset[Role], passphrase: str, confirmation: str
    ) -> OperatorRecord:
        """Enrol ``name`` with ``roles``; the new operator typed ``passphrase`` twice."""
        assert_core_thread()
        subject = f"operator:{name.strip()}"
        self.approvals.check_initiator("operator.add", subject)
        try:
            slots = KeySlotFile.load(self.home.keyslots)
            known = {o.name for o in self.repo.all(True)} | set(slots.operators())
            name = validate_name(name, "Operator name", distinct_from=known)
            validate_new_passphrase(passphrase, confirmation, name)
            if not roles:
                raise ValidationError("Give the new operator at least one role.")
            if name in known:
                raise ValidationError(
                    f"Operator '{name}' already exists (or existed: names are not reused)."
                )
        except ValidationError as exc:
            self._denied("operator.add", subject, exc)
            raise
        who = self.approvals.obtain(
            "operator.add", subject, {"name": name, "roles": roles_text(roles)}
        )
        slots.add(name, passphrase, self._database_key(), self.cost)
        now = self.clock()
        with self.db.transaction():
            self.repo.add(name, roles, self.operator, now)
            record(
                self.db,
                when=now,
                operators=who,
                action="operator.add",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"roles": roles_text(roles)},
            )
            slots.save()  # inside the transaction: no keyslot, no record
        return self.get(name)

    def set_roles(self, name: str, roles: frozenset[Role]) -> OperatorRecord:
        assert_core_thread()
        subject = f"operator:{name}"
        self.approvals.check_initiator("operator.roles", subject)
        target = self._existing("operator.roles", name)
        if not roles:
            self._denied("operator.roles", subject, ValidationError("Give at least one role."))
        if SO not in roles:
            self._keep_an_officer("operator.roles", target)
        self._keep_quorum("operator.roles", target, roles)
        who = self.approvals.obtain(
            "operator.roles",
            subject,
            {"name": name, "from": target.roles_text, "to": roles_text(roles)},
        )
        with self.db.transaction():
            self.repo.set_roles(name, roles)
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="operator.roles",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"from": target.roles_text, "to": roles_text(roles)},
            )
        return self.get(name)

    def disable(self, name: str) -> OperatorRecord:
        """Take away ``name``'s keyslot at once; the record stays, disabled."""
        assert_core_thread()
        subject = f"operator:{name}"
        self.approvals.check_initiator("operator.disable", subject)
        target = self._existing("operator.disable", name)
        if not target.enabled:
            self._denied("operator.disable", subject, ValidationError(f"'{name}' is disabled."))
        self._keep_an_officer("operator.disable", target)
        self._keep_quorum("operator.disable", target, None)
        who = self.approvals.obtain("operator.disable", subject, {"name": name})
        slots = KeySlotFile.load(self.home.keyslots)
        slots.remove(name)
        with self.db.transaction():
            self.repo.set_enabled(name, False)
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="operator.disable",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"keyslot": "removed"},
            )
            slots.save()
        return self.get(name)

    def check_enable(self, name: str) -> None:
        """The refusals of ``enable`` that need no passphrase (the initiator's role, an
        unknown or removed name, an operator who is enabled), so an interface asks for the new
        passphrase only when it can be used. Refusals are recorded as denied."""
        subject = f"operator:{name}"
        self.approvals.check_initiator("operator.enable", subject)
        target = self._existing("operator.enable", name)
        if target.enabled:
            self._denied("operator.enable", subject, ValidationError(f"'{name}' is enabled."))

    def enable(self, name: str, passphrase: str, confirmation: str) -> OperatorRecord:
        """Enable ``name`` again with a new keyslot (they type a new passphrase)."""
        assert_core_thread()
        subject = f"operator:{name}"
        self.check_enable(name)
        self._check_passphrase("operator.enable", subject, name, passphrase, confirmation)
        who = self.approvals.obtain("operator.enable", subject, {"name": name})
        slots = KeySlotFile.load(self.home.keyslots)
        slots.replace(name, passphrase, self._database_key(), self.cost)
        with self.db.transaction():
            self.repo.set_enabled(name, True)
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="operator.enable",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"keyslot": "new"},
            )
            slots.save()
        return self.get(name)

    def remove(self, name: str) -> None:
        """Remove ``name``: keyslot gone, record kept (marked removed) for the audit history."""
        assert_core_thread()
        subject = f"operator:{name}"
        self.approvals.check_initiator("operator.remove", subject)
        target = self._existing("operator.remove", name)
        self._keep_an_officer("operator.remove", target)
        self._keep_quorum("operator.remove", target, None)
        who = self.approvals.obtain("operator.remove", subject, {"name": name})
        slots = KeySlotFile.load(self.home.keyslots)
        slots.remove(name)
        with self.db.transaction():
            self.repo.mark_removed(name, self.clock())
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="operator.remove",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={"roles": target.roles_text},
            )
            slots.save()

    def reset_passphrase(self, name: str, passphrase: str, confirmation: str) -> None:
        """A new keyslot for ``name``, with the passphrase they typed (approved)."""
        assert_core_thread()
        subject = f"operator:{name}"
        self.approvals.check_initiator("operator.reset-passphrase", subject)
        target = self._existing("operator.reset-passphrase", name)
        if not target.enabled:
            self._denied(
                "operator.reset-passphrase",
                subject,
                ValidationError(f"'{name}' is disabled; enable them (with a new passphrase)."),
            )
        self._check_passphrase("operator.reset-passphrase", subject, name, passphrase, confirmation)
        who = self.approvals.obtain("operator.reset-passphrase", subject, {"name": name})
        self._rewrap(name, passphrase, who, "operator.reset-passphrase")

    def change_own_passphrase(self, old: str, new: str, confirmation: str) -> None:
        """The unlocked operator changes their own passphrase (re-wraps only their keyslot)."""
        assert_core_thread()
        subject = f"operator:{self.operator}"
        self._check_passphrase(
            "operator.passphrase-change", subject, self.operator, new, confirmation
        )
        if old == new:
            self._denied(
                "operator.passphrase-change",
                subject,
                ValidationError("The new passphrase is the same as the old one."),
            )
        try:
            self.checker.open_slot(
                self.operator, old, sealed_on_failure=True, expected_key=self._database_key()
            )
        except KeysteadError as exc:
            self._denied("operator.passphrase-change", subject, exc)
        self._rewrap(self.operator, new, (self.operator,), "operator.passphrase-change")

    # --- helpers ---------------------------------------------------------------------------

    def _rewrap(self, name: str, passphrase: str, who: tuple[str, ...], action: str) -> None:
        slots = KeySlotFile.load(self.home.keyslots)
        slots.replace(name, passphrase, self._database_key(), self.cost)
        with self.db.transaction():
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action=action,
                subject=f"operator:{name}",
                outcome=Outcome.SUCCESS,
                details={"keyslot": "re-wrapped"},
            )
            slots.save()

    def _existing(self, action: str, name: str) -> OperatorRecord:
        found = self.repo.get(name)
        if found is None or found.removed_at is not None:
            self._denied(action, f"operator:{name}", NotFoundError(f"No operator named '{name}'."))
        return found

    def _keep_an_officer(self, action: str, target: OperatorRecord) -> None:
        others = [n for n in self.repo.active_with(SO) if n != target.name]
        if target.active and SO in target.roles and not others:
            self._denied(
                action,
                f"operator:{target.name}",
                PolicyError(
                    f"'{target.name}' is the last enabled security officer; make another "
                    "operator a security officer first. Nothing was changed.",
                    RULE_LAST_OFFICER,
                ),
            )

    def _keep_quorum(
        self, action: str, target: OperatorRecord, roles: frozenset[Role] | None
    ) -> None:
        """Refuse a change after which some policy rule could no longer be met by anyone
        (``roles`` None: the target leaves; otherwise their new roles)."""
        before = {o.name: o.roles for o in self.repo.all() if o.active}
        after = {n: r for n, r in before.items() if n != target.name}
        if roles is not None and target.active:
            after[target.name] = roles
        lost = quorum_lost(self.approvals.rules(), before, after)
        if lost:
            change = "Removing" if roles is None else "Changing the roles of"
            if action == "operator.disable":
                change = "Disabling"
            self._denied(
                action,
                f"operator:{target.name}",
                PolicyError(
                    f"{change} '{target.name}' would leave {len(lost)} action(s) that nobody "
                    f"could perform: {quorum_text(lost[0])}. Enrol another operator or change "
                    "the policy first. Nothing was changed.",
                    RULE_QUORUM,
                ),
            )

    def _check_passphrase(
        self, action: str, subject: str, name: str, passphrase: str, confirmation: str
    ) -> None:
        try:
            validate_new_passphrase(passphrase, confirmation, name)
        except ValidationError as exc:
            self._denied(action, subject, exc)

    def _denied(self, action: str, subject: str, error: KeysteadError) -> NoReturn:
        details: dict[str, object] = {"refusal": error.message}
        if isinstance(error, PolicyError):
            details["rule"] = error.rule
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=action,
            subject=subject,
            outcome=Outcome.DENIED,
            details=details,
        )
        raise error
