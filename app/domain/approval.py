"""Dual control (M-of-N approval): the policy's rules, the canonical request, approvals.

Pure Python. A request is everything that will happen, written canonically (sorted-key JSON,
UTF-8, no spaces) and hashed with SHA-256 under a domain tag; people compare its hash read as
PGP words. An approval names one approver and is bound to that hash, expires, and is used once
(the service keeps the ledger). ``Authorisation`` is what an action's audit entry carries:
the initiator first, then every approver, and the request hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.domain.fingerprints import hex_groups, pgp_words
from app.domain.roles import AU, KC, SO, Role, describe, initiator_roles, roles_text
from app.errors import PolicyError

REQUEST_TAG = b"keystead-approval-v1\x00"
DEFAULT_TTL = timedelta(minutes=5)
MAX_APPROVALS = 5

RULE_NO_APPROVER = "KS-DUAL-NO-APPROVER"
RULE_SELF_APPROVAL = "KS-DUAL-SELF-APPROVAL"
RULE_DUPLICATE_APPROVER = "KS-DUAL-DUPLICATE-APPROVER"
RULE_APPROVER_ROLE = "KS-DUAL-APPROVER-ROLE"
RULE_APPROVER_DISABLED = "KS-DUAL-APPROVER-DISABLED"
RULE_APPROVER_UNKNOWN = "KS-DUAL-APPROVER-UNKNOWN"
RULE_APPROVER_PASSPHRASE = "KS-DUAL-APPROVER-PASSPHRASE"  # noqa: S105 (a rule id)
RULE_EXPIRED = "KS-DUAL-APPROVAL-EXPIRED"
RULE_OTHER_REQUEST = "KS-DUAL-APPROVAL-OTHER-REQUEST"
RULE_REPLAY = "KS-DUAL-APPROVAL-REPLAY"
RULE_POLICY_FLOOR = "KS-POLICY-FLOOR"
RULE_POLICY_RANGE = "KS-POLICY-RANGE"
RULE_QUORUM = "KS-DUAL-QUORUM"


@dataclass(frozen=True)
class PolicyRule:
    """How many approvers (besides the initiator) an action class needs, and their roles."""

    action: str
    approvals: int
    roles: frozenset[Role]

    @property
    def roles_text(self) -> str:
        return roles_text(self.roles)


# What each policy action class covers (the Policy page and ``policy show`` say this).
ACTION_TITLES: dict[str, str] = {
    "key.destroy": "Destroy a key",
    "key.resume": "Resume a suspended key",
    "key.import": "Import a key",
    "key.export": "Export a key",
    "backup.create": "Back up keys",
    "key.distribute": "Distribute a key",
    "backup.restore": "Restore from a backup",
    "backup.restore-override": "Restore an older backup generation (disaster recovery)",
    "key.activate": "Activate a key-wrapping or signing key",
    "key.activate-other": "Activate an encryption or MAC key",
    "key.suspend": "Suspend a key",
    "key.deactivate": "Deactivate a key",
    "key.compromise": "Mark a key compromised",
    "token.init": "Initialise a token",
    "token.init-blank": "Initialise a blank slot's token",
    "token.init-pin": "Reset a token's user PIN (as SO)",
    "token.change-so-pin": "Change a token's SO PIN",
    "operator.add": "Add an operator",
    "operator.disable": "Disable an operator",
    "operator.enable": "Enable an operator",
    "operator.remove": "Remove an operator",
    "operator.roles": "Change an operator's roles",
    "operator.reset-passphrase": "Reset an operator's passphrase",
    "policy.set": "Change the approval policy",
    "workstation.rotate-key": "Rotate the workstation key",
    "cert.self-sign": "Issue a self-signed (root CA) certificate",
    "cert.sign-csr": "Issue a certificate for a signing request",
    "cert.crl": "Sign a certificate revocation list",
}

# Any other security officer or key custodian may approve by default (two people); a
# security officer can narrow a rule on the Policy page.
_KEY_APPROVERS = frozenset({SO, KC})
_OFFICERS = _KEY_APPROVERS

DEFAULT_POLICY: dict[str, PolicyRule] = {
    action: PolicyRule(action, approvals, roles)
    for action, approvals, roles in (
        ("key.destroy", 1, _KEY_APPROVERS),
        ("key.resume", 1, _KEY_APPROVERS),
        ("key.import", 1, _KEY_APPROVERS),
        ("key.export", 1, _KEY_APPROVERS),
        ("backup.create", 1, _KEY_APPROVERS),
        ("key.distribute", 1, _KEY_APPROVERS),
        ("backup.restore", 1, _KEY_APPROVERS),
        ("backup.restore-override", 1, frozenset({SO})),
        ("key.activate", 1, _KEY_APPROVERS),
        ("key.activate-other", 0, _KEY_APPROVERS),
        ("key.suspend", 0, _KEY_APPROVERS),
        ("key.deactivate", 0, _KEY_APPROVERS),
        ("key.compromise", 0, _KEY_APPROVERS),
        ("token.init", 1, _OFFICERS),
        ("token.init-blank", 1, _OFFICERS),
        ("token.init-pin", 1, _OFFICERS),
        ("token.change-so-pin", 1, _OFFICERS),
        ("operator.add", 1, _OFFICERS),
        ("operator.disable", 1, _OFFICERS),
        ("operator.enable", 1, _OFFICERS),
        ("operator.remove", 1, _OFFICERS),
        ("operator.roles", 1, _OFFICERS),
        ("operator.reset-passphrase", 1, _OFFICERS),
        ("policy.set", 1, _OFFICERS),
        ("workstation.rotate-key", 1, _OFFICERS),
        # Certificate issuance: one person by default (the key's use is already checked); an
        # officer can require approvers for a CA's issuance on the Policy page.
        ("cert.self-sign", 0, _KEY_APPROVERS),
        ("cert.sign-csr", 0, _KEY_APPROVERS),
        ("cert.crl", 0, _KEY_APPROVERS),
    )
}

# Never below one approver (two people): irreversible, key material leaves the token, or a
# key (or a public key to trust) comes in from outside.
FLOORS: dict[str, int] = {
    "key.destroy": 1,
    "key.export": 1,
    "key.import": 1,
    "backup.create": 1,
    "key.distribute": 1,
    "backup.restore": 1,
    "backup.restore-override": 1,
}

# Restricting use never waits for a quorum, so these can never demand one.
SINGLE_ONLY = frozenset({"key.suspend", "key.deactivate", "key.compromise"})


def check_rule(rule: PolicyRule) -> None:
    """Refuse a rule the policy may not hold (below the floor, out of range, wrong roles)."""
    if rule.action not in DEFAULT_POLICY:
        raise PolicyError(
            f"'{rule.action}' is not an action class of the policy; see 'keystead policy show'.",
            RULE_POLICY_RANGE,
        )
    floor = FLOORS.get(rule.action, 0)
    if rule.approvals < floor:
        raise PolicyError(
            f"'{rule.action}' needs at least {floor} approver(s) besides the initiator "
            "(two people); the policy cannot go below that. Nothing was changed.",
            RULE_POLICY_FLOOR,
        )
    if not 0 <= rule.approvals <= MAX_APPROVALS:
        raise PolicyError(
            f"The number of approvals is 0 to {MAX_APPROVALS}; nothing was changed.",
            RULE_POLICY_RANGE,
        )
    if rule.action in SINGLE_ONLY and rule.approvals:
        raise PolicyError(
            f"'{rule.action}' restricts use and never waits for a quorum; it stays at 0.",
            RULE_POLICY_RANGE,
        )
    if not rule.roles:
        raise PolicyError(
            "Name at least one approver role; nothing was changed.", RULE_POLICY_RANGE
        )
    if AU in rule.roles:
        raise PolicyError(
            "An auditor changes nothing, so cannot approve a change; nothing was changed.",
            RULE_POLICY_RANGE,
        )


@dataclass(frozen=True)
class ApprovalRequest:
    """One prepared action, exactly as the approvers are shown it.

    ``parameters`` holds every value that decides what will happen (key name, algorithm,
    KCV or fingerprint, new label, roles…), as text. ``nonce`` makes each request unique, so
    an approval can never be carried to a second, identical-looking action.
    """

    action: str
    subject: str
    initiator: str
    workstation: str
    requested_at: str
    nonce: str
    parameters: tuple[tuple[str, str], ...] = ()

    def canonical(self) -> bytes:
        doc = {
            "action": self.action,
            "initiator": self.initiator,
            "nonce": self.nonce,
            "parameters": dict(self.parameters),
            "requested_at": self.requested_at,
            "subject": self.subject,
            "workstation": self.workstation,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(REQUEST_TAG + self.canonical()).digest()

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()

    @property
    def words(self) -> list[str]:
        """The whole SHA-256 as 32 PGP words, for reading aloud."""
        return pgp_words(self.digest)

    @property
    def fingerprint(self) -> str:
        return hex_groups(self.digest)

    @property
    def title(self) -> str:
        return ACTION_TITLES.get(self.action, self.action)


@dataclass(frozen=True)
class Approval:
    """One approver's consent to one request hash. Issued only by the approval service."""

    id: str
    digest: bytes
    approver: str
    approved_at: datetime
    expires_at: datetime


class Authorisation(tuple[str, ...]):
    """Who stands behind an action: the initiator, then each approver (as the audit entry's
    operators), with the request hash they approved (``None`` when no approval was needed)."""

    request_digest: str | None
    policy_action: str

    def __new__(
        cls, operators: tuple[str, ...], request_digest: str | None = None, policy_action: str = ""
    ) -> Authorisation:
        made = super().__new__(cls, operators)
        made.request_digest = request_digest
        made.policy_action = policy_action
        return made

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(self[1:])

    def evidence(self) -> dict[str, object]:
        return {
            "policy": self.policy_action,
            "request_sha256": self.request_digest,
            "approvers": list(self.approvers),
        }


@dataclass
class Credential:
    """What an approver gives at the workstation: their name and passphrase (never stored)."""

    name: str
    passphrase: str = field(repr=False)


def meetable(rule: PolicyRule, operators: Mapping[str, frozenset[Role]]) -> bool:
    """True if some enabled operator who may start ``rule.action`` could find
    ``rule.approvals`` *other* enabled operators holding one of ``rule.roles``.

    ``operators`` maps each enabled, not removed operator's name to their roles. A rule that
    needs no approver is always meetable. This is the check that keeps a policy change or an
    operator change from leaving an action nobody can perform (NIST SP 800-57 Part 2's
    separation of duties must stay workable).
    """
    if rule.approvals <= 0:
        return True
    starters = initiator_roles(rule.action)
    approvers = {name for name, roles in operators.items() if roles & rule.roles}
    return any(
        len(approvers - {name}) >= rule.approvals
        for name, roles in operators.items()
        if roles & starters
    )


def quorum_lost(
    rules: Iterable[PolicyRule],
    before: Mapping[str, frozenset[Role]],
    after: Mapping[str, frozenset[Role]],
) -> list[PolicyRule]:
    """The rules an operator change would make unmeetable (meetable before, not after)."""
    return [r for r in rules if meetable(r, before) and not meetable(r, after)]


def quorum_text(rule: PolicyRule) -> str:
    """One rule's quorum in words, for refusals."""
    return (
        f"'{rule.action}' needs {rule.approvals} approver(s) ({describe(rule.roles)}) besides "
        "the operator who starts it"
    )
