"""Operator roles (NIST SP 800-57 / PCI PIN vocabulary) and which role may start which action.

Pure data. An operator holds one or more roles:

- security officer: operators, the approval policy, tokens and modules, the workstation key;
- key custodian: key lifecycle, generation, backups (and, later, holds backup shares);
- auditor: reads, verifies and exports the audit history; changes nothing.

``INITIATOR_ROLES`` says who may *start* an action (an action not listed needs a security
officer: fail closed). Who must *approve* it is the database policy's business
(``app.domain.approval``).
"""

from __future__ import annotations

from enum import Enum

from app.errors import ValidationError


class Role(Enum):
    SECURITY_OFFICER = "security-officer"
    KEY_CUSTODIAN = "key-custodian"
    AUDITOR = "auditor"

    @property
    def title(self) -> str:
        return {
            Role.SECURITY_OFFICER: "Security officer",
            Role.KEY_CUSTODIAN: "Key custodian",
            Role.AUDITOR: "Auditor",
        }[self]


SO = Role.SECURITY_OFFICER
KC = Role.KEY_CUSTODIAN
AU = Role.AUDITOR

# The first operator created by ``init`` holds these.
FIRST_OPERATOR_ROLES = frozenset({SO, KC})

RULE_ROLE = "KS-ROLE-REQUIRED"

_KEYS = frozenset({KC})
_RESTRICT = frozenset({KC, SO})  # restricting use never waits: either role may do it
_OFFICER = frozenset({SO})

INITIATOR_ROLES: dict[str, frozenset[Role]] = {
    "key.generate": _KEYS,
    "key.adopt": _KEYS,
    "key.import": _KEYS,
    "key.rotate": _KEYS,
    "key.edit": _KEYS,
    "key.rebind": _KEYS,
    "key.activate": _KEYS,
    "key.activate-other": _KEYS,
    "key.resume": _KEYS,
    "key.destroy": _KEYS,
    "key.suspend": _RESTRICT,
    "key.deactivate": _RESTRICT,
    "key.compromise": _RESTRICT,
    "key.export": _KEYS,
    # Key use (app/services/key_use.py): custodians use keys; anyone may check a signature.
    "key.sign": _KEYS,
    "key.encrypt": _KEYS,
    "key.decrypt": _KEYS,
    "key.verify": frozenset({KC, SO, AU}),
    "key.distribute": _KEYS,
    "backup.create": _KEYS,
    "backup.restore": frozenset({KC, SO}),
    "backup.restore-override": frozenset({KC, SO}),
    "token.change-pin": frozenset({KC, SO}),
    "token.init": _OFFICER,
    "token.init-blank": _OFFICER,
    "token.init-pin": _OFFICER,
    "token.change-so-pin": _OFFICER,
    "token.create-soft": _OFFICER,
    "module.add": _OFFICER,
    "module.remove": _OFFICER,
    "operator.add": _OFFICER,
    "operator.disable": _OFFICER,
    "operator.enable": _OFFICER,
    "operator.remove": _OFFICER,
    "operator.roles": _OFFICER,
    "operator.reset-passphrase": _OFFICER,
    "policy.set": _OFFICER,
    "workstation.rotate-key": _OFFICER,
    "workstation.idle-lock": _OFFICER,
    "ceremony.run": frozenset({KC, SO}),
    # Certificate issuance signs with a key: whoever may sign with it (key.sign) may start it.
    "cert.self-sign": _KEYS,
    "cert.sign-csr": _KEYS,
    "cert.crl": _KEYS,
}


def initiator_roles(action: str) -> frozenset[Role]:
    """Roles of which the initiator must hold one; unknown actions need a security officer."""
    return INITIATOR_ROLES.get(action, _OFFICER)


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError as exc:
        names = ", ".join(r.value for r in Role)
        raise ValidationError(f"Unknown role '{text.strip()}'; roles are {names}.") from exc


def parse_roles(text: str) -> frozenset[Role]:
    """``"security-officer,auditor"`` → the set; empty or unknown names are refused."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise ValidationError("Give at least one role.")
    return frozenset(parse_role(p) for p in parts)


def roles_text(roles: frozenset[Role] | set[Role]) -> str:
    """Stable, comma-joined role names (the stored form)."""
    return ",".join(r.value for r in Role if r in roles)


def roles_from_text(text: str) -> frozenset[Role]:
    return frozenset(Role(p) for p in text.split(",") if p)


def describe(roles: frozenset[Role]) -> str:
    """``"a security officer or a key custodian"``."""
    titles = [r.title.lower() for r in Role if r in roles]
    if not titles:
        return "nobody"
    return " or ".join(f"a{'n' if t[0] in 'aeiou' else ''} {t}" for t in titles)
