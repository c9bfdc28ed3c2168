"""The one approval service: who may start an action, and who must stand behind it.

Every state-changing service asks ``ApprovalService.obtain(action, subject, parameters)``
before it changes anything; the answer is an ``Authorisation`` (initiator first, then the
approvers) that becomes the action's audit ``operators``; ``record`` adds the request hash.

The flow, usable in one call (``obtain``) or step by step (a ceremony collecting approvals):

1. ``prepare(action, subject, parameters)`` → ``ApprovalRequest`` (canonical, SHA-256, PGP
   words); the initiator's role is checked first.
2. ``approve(request, Credential(name, passphrase))`` → ``Approval``: the approver must be an
   enabled operator other than the initiator, hold a role the policy names, and give their own
   passphrase (checked against their keyslot, counted toward their back-off).
3. ``authorise(request, approvals)`` → ``Authorisation``: each approval must have been issued
   here, for this request's hash, not yet used and not expired; approvers distinct; as many as
   the policy says. The approvals and the request are then used up.

Every refusal raises ``PolicyError`` (or an authentication error) naming the rule and writes
one ``denied`` audit entry for the action. ``source`` collects credentials when an action is
run in one call: the CLI's prompts / environment, the GUI's approval dialog, a test's script.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn, Protocol

from app.domain import approval as rules
from app.domain.approval import (
    DEFAULT_TTL,
    Approval,
    ApprovalRequest,
    Authorisation,
    Credential,
    PolicyRule,
)
from app.domain.roles import RULE_ROLE, Role, describe, initiator_roles
from app.errors import (
    AuthenticationError,
    KeysteadError,
    OperationCancelled,
    PolicyError,
    UnknownOperator,
)
from app.services.audit import Outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.passphrases import PassphraseChecker
from app.storage.database import Database
from app.storage.operators import OperatorRecord, OperatorRepository, PolicyRepository
from app.storage.repository import utc_text

log = logging.getLogger(__name__)


class ApproverSource(Protocol):
    def credentials(self, request: ApprovalRequest, rule: PolicyRule) -> list[Credential] | None:
        """Names and passphrases of the approvers of ``request`` (None: cancelled)."""
        ...


@dataclass
class ScriptedApprovers:
    """Approvers from a fixed list (tests, and automation that has them at hand)."""

    approvers: list[Credential] = field(default_factory=list)
    asked: list[ApprovalRequest] = field(default_factory=list)

    def credentials(self, request: ApprovalRequest, rule: PolicyRule) -> list[Credential] | None:
        self.asked.append(request)
        return list(self.approvers[: max(rule.approvals, 0)]) if self.approvers else []


class ApprovalService:
    def __init__(
        self,
        db: Database,
        checker: PassphraseChecker,
        operator: str,
        workstation_id: str,
        clock: Callable[[], datetime],
        database_key: Callable[[], bytes],
    ) -> None:
        self.db = db
        self.checker = checker
        self.operator = operator
        self.workstation_id = workstation_id
        self.clock = clock
        self._database_key = database_key
        self.operators = OperatorRepository(db)
        self.policy = PolicyRepository(db)
        self.ttl: timedelta = DEFAULT_TTL
        self.source: ApproverSource | None = None
        self._issued: dict[str, Approval] = {}
        self._used: set[str] = set()  # approval ids
        self._done: set[bytes] = set()  # request digests already authorised

    # --- reading ---------------------------------------------------------------------------

    def rule(self, action: str) -> PolicyRule:
        found = self.policy.rule(action)
        # An action class the policy does not know needs a security officer's approval.
        return found or PolicyRule(action, 1, frozenset({Role.SECURITY_OFFICER}))

    def _who_could_approve(self, initiator: str, rule: PolicyRule) -> str:
        """When too few operators here could ever approve ``rule`` (a new workstation has
        one), a sentence saying to enrol one first; else empty. The new-user trial met the
        refusal on a one-operator workstation with no hint that nobody could approve."""
        able = [
            o.name
            for o in self.operators.all()
            if o.active and o.name != initiator and o.roles & rule.roles
        ]
        if len(able) >= rule.approvals:
            return ""
        have = f"only {len(able)} other operator(s)" if able else "no other operator"
        return (
            f"This workstation has {have} who may approve it: enrol another "
            f"{describe(rule.roles)} first (Operators page, or keystead operators add). "
        )

    def roles_of(self, name: str) -> frozenset[Role]:
        record = self.operators.get(name)
        return record.roles if record is not None and record.active else frozenset()

    def may(self, action: str, name: str | None = None) -> bool:
        """True if ``name`` (default: the initiator) holds a role that may start ``action``."""
        return bool(self.roles_of(name or self.operator) & initiator_roles(action))

    # --- the flow --------------------------------------------------------------------------

    def check_initiator(self, action: str, subject: str) -> None:
        """Refuse (denied entry, PolicyError) if the initiator may not start ``action``."""
        needed = initiator_roles(action)
        if self.roles_of(self.operator) & needed:
            return
        self._refuse(
            action,
            subject,
            None,
            PolicyError(
                f"'{action}' needs {describe(needed)}; operator '{self.operator}' holds "
                f"{describe(self.roles_of(self.operator))}. Nothing was changed.",
                RULE_ROLE,
            ),
        )

    def prepare(
        self, action: str, subject: str, parameters: Mapping[str, object] | None = None
    ) -> ApprovalRequest:
        assert_core_thread()
        self.check_initiator(action, subject)
        return ApprovalRequest(
            action=action,
            subject=subject,
            initiator=self.operator,
            workstation=self.workstation_id,
            requested_at=utc_text(self.clock()),
            nonce=secrets.token_hex(16),
            parameters=tuple(
                sorted((str(k), "" if v is None else str(v)) for k, v in (parameters or {}).items())
            ),
        )

    def approve(self, request: ApprovalRequest, credential: Credential) -> Approval:
        """One approver's consent to ``request``; refusals recorded as denied."""
        assert_core_thread()
        rule = self.rule(request.action)
        name = credential.name.strip()
        self._check_approver(request, rule, name)
        try:
            self.checker.open_slot(
                name,
                credential.passphrase,
                sealed_on_failure=True,
                expected_key=self._database_key(),
            )
        except AuthenticationError as exc:
            self._refuse(
                request.action,
                request.subject,
                request,
                exc,
                rule_id=rules.RULE_APPROVER_PASSPHRASE,
                approver=name,
            )
        now = self.clock()
        made = Approval(secrets.token_hex(16), request.digest, name, now, now + self.ttl)
        self._issued[made.id] = made
        return made

    def check_passphrase(self, name: str, passphrase: str) -> None:
        """Raise an ``AuthenticationError`` unless ``passphrase`` opens ``name``'s keyslot to this
        database's key (counted toward their back-off; the caller records the refusal). For
        people who confirm something without approving a request: a ceremony's witnesses."""
        assert_core_thread()
        self.checker.open_slot(
            name, passphrase, sealed_on_failure=True, expected_key=self._database_key()
        )

    def authorise(self, request: ApprovalRequest, approvals: Sequence[Approval]) -> Authorisation:
        """Check every approval against ``request`` and the policy, then use them up."""
        assert_core_thread()
        rule = self.rule(request.action)
        now = self.clock()
        seen: list[str] = []
        for approval in approvals:
            problem: PolicyError | None = None
            if self._issued.get(approval.id) != approval:
                problem = PolicyError(
                    f"An approval by '{approval.approver}' was not given at this workstation "
                    "for this session.",
                    rules.RULE_REPLAY,
                )
            elif approval.id in self._used or request.digest in self._done:
                problem = PolicyError(
                    f"The approval by '{approval.approver}' was already used; each approval "
                    "is good for one action. Approve again.",
                    rules.RULE_REPLAY,
                )
            elif approval.digest != request.digest:
                problem = PolicyError(
                    f"The approval by '{approval.approver}' was given for another request "
                    f"(other key or parameters), not {request.fingerprint[:19]}…",
                    rules.RULE_OTHER_REQUEST,
                )
            elif now > approval.expires_at:
                minutes = self.ttl.total_seconds() / 60
                problem = PolicyError(
                    f"The approval by '{approval.approver}' expired (approvals last "
                    f"{minutes:g} minutes). Approve again.",
                    rules.RULE_EXPIRED,
                )
            elif approval.approver in seen:
                problem = PolicyError(
                    f"'{approval.approver}' approved twice; each approver counts once.",
                    rules.RULE_DUPLICATE_APPROVER,
                )
            if problem is not None:
                self._refuse(request.action, request.subject, request, problem)
            # Still enabled and entitled now (a change may have come in between).
            self._check_approver(request, rule, approval.approver, seen)
            seen.append(approval.approver)
        if len(seen) < rule.approvals:
            missing = rule.approvals - len(seen)
            self._refuse(
                request.action,
                request.subject,
                request,
                PolicyError(
                    f"'{request.action}' needs {rule.approvals} approver(s) besides "
                    f"'{request.initiator}' ({describe(rule.roles)}); {missing} missing. "
                    f"{self._who_could_approve(request.initiator, rule)}Nothing was changed.",
                    rules.RULE_NO_APPROVER,
                ),
            )
        self._used.update(a.id for a in approvals)
        self._done.add(request.digest)
        for approval in approvals:
            self._issued.pop(approval.id, None)
        if not seen:
            return Authorisation((request.initiator,), None, request.action)
        return Authorisation((request.initiator, *seen), request.digest_hex, request.action)

    def obtain(
        self, action: str, subject: str, parameters: Mapping[str, object] | None = None
    ) -> Authorisation:
        """The whole flow in one call: role, request, approvals from ``source``, authorise."""
        request = self.prepare(action, subject, parameters)
        rule = self.rule(action)
        if rule.approvals <= 0:
            return self.authorise(request, [])
        if action == "operator.add" and [o.name for o in self.operators.all() if o.active] == [
            self.operator
        ]:
            # Bootstrap: the only operator of a new workstation enrols the second person
            # alone; from then on every operator change needs the policy's approvers.
            self._done.add(request.digest)
            return Authorisation(
                (self.operator,), request.digest_hex, "operator.add (bootstrap: sole operator)"
            )
        credentials: list[Credential] | None = []
        if self.source is not None:
            try:
                credentials = self.source.credentials(request, rule)
            except OperationCancelled as exc:
                self._refuse(action, subject, request, exc)
        if credentials is None:
            self._refuse(
                action, subject, request, OperationCancelled("Approval cancelled; nothing changed.")
            )
        approvals = [self.approve(request, c) for c in credentials or []]
        return self.authorise(request, approvals)

    # --- the policy ------------------------------------------------------------------------

    def rules(self) -> list[PolicyRule]:
        return sorted(self.policy.rules().values(), key=lambda r: r.action)

    def set_rule(
        self, action: str, approvals: int, roles: frozenset[Role] | None = None
    ) -> PolicyRule:
        """Change one rule. Needs the *current* policy's approvals for ``policy.set``; below
        the floor, out of range or with an auditor as approver it is refused (denied entry)."""
        assert_core_thread()
        subject = f"policy:{action}"
        self.check_initiator("policy.set", subject)
        current = self.policy.rule(action)
        new = PolicyRule(
            action,
            approvals,
            roles
            if roles is not None
            else (current.roles if current is not None else frozenset({Role.SECURITY_OFFICER})),
        )
        try:
            rules.check_rule(new)
        except PolicyError as exc:
            self._refuse("policy.set", subject, None, exc)
        enabled = {o.name: o.roles for o in self.operators.all() if o.active}
        stricter = current is None or (
            new.approvals > current.approvals or not new.roles >= current.roles
        )
        if stricter and not rules.meetable(new, enabled):
            self._refuse(
                "policy.set",
                subject,
                None,
                PolicyError(
                    f"Nobody could perform it: {rules.quorum_text(new)}, and the enabled "
                    "operators cannot make that quorum. Enrol more operators first. "
                    "Nothing was changed.",
                    rules.RULE_QUORUM,
                ),
            )
        who = self.obtain(
            "policy.set",
            subject,
            {
                "action": action,
                "from": f"{current.approvals} by {current.roles_text}" if current else "",
                "to": f"{new.approvals} by {new.roles_text}",
            },
        )
        with self.db.transaction():
            self.policy.put(new)
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="policy.set",
                subject=subject,
                outcome=Outcome.SUCCESS,
                details={
                    "approvals": new.approvals,
                    "roles": new.roles_text,
                    "was": None if current is None else [current.approvals, current.roles_text],
                },
            )
        return new

    # --- helpers ---------------------------------------------------------------------------

    def _check_approver(
        self, request: ApprovalRequest, rule: PolicyRule, name: str, seen: Sequence[str] = ()
    ) -> None:
        record: OperatorRecord | None = self.operators.get(name)
        problem: KeysteadError | None = None
        if not name:
            problem = PolicyError("An approver must give their name.", rules.RULE_APPROVER_UNKNOWN)
        elif name == request.initiator:
            problem = PolicyError(
                f"'{name}' started this action and cannot also approve it; another operator must.",
                rules.RULE_SELF_APPROVAL,
            )
        elif name in seen:
            problem = PolicyError(
                f"'{name}' approved twice; each approver counts once.",
                rules.RULE_DUPLICATE_APPROVER,
            )
        elif record is None or record.removed_at is not None:
            problem = PolicyError(
                f"There is no operator named '{name}' on this workstation"
                + (" (removed)." if record is not None else "."),
                rules.RULE_APPROVER_UNKNOWN,
            )
        elif not record.enabled:
            problem = PolicyError(
                f"Operator '{name}' is disabled and cannot approve.", rules.RULE_APPROVER_DISABLED
            )
        elif not record.roles & rule.roles:
            problem = PolicyError(
                f"'{request.action}' must be approved by {describe(rule.roles)}; '{name}' holds "
                f"{describe(record.roles)}.",
                rules.RULE_APPROVER_ROLE,
            )
        if problem is not None:
            self._refuse(request.action, request.subject, request, problem, approver=name)

    def _refuse(
        self,
        action: str,
        subject: str,
        request: ApprovalRequest | None,
        error: KeysteadError,
        rule_id: str | None = None,
        approver: str | None = None,
    ) -> NoReturn:
        details: dict[str, object] = {"refusal": error.message}
        rule = rule_id or getattr(error, "rule", None)
        if rule:
            details["rule"] = rule
        if request is not None:
            details["request_sha256"] = request.digest_hex
            details["parameters"] = dict(request.parameters)
        if approver is not None:
            details["approver"] = approver
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=action,
            subject=subject,
            outcome=Outcome.DENIED,
            details=details,
        )
        if isinstance(error, (UnknownOperator,)):
            raise PolicyError(error.message, rules.RULE_APPROVER_UNKNOWN) from error
        if isinstance(error, AuthenticationError) and rule_id:
            raise PolicyError(f"Approval refused: {error.message}", rule_id) from error
        raise error
