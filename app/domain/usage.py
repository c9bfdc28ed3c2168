"""Using a key: which operations exist, which lifecycle states allow each, and the signature
mechanisms Keystead offers. Pure: no I/O.

NIST SP 800-57 Part 1 §5.3: a key may *apply protection* (sign, encrypt, wrap) only in its
originator-usage period — state ACTIVE — and may *process protected data* (verify, decrypt,
unwrap) also after that period ends — state DEACTIVATED. SUSPENDED and COMPROMISED keys are used
for nothing; PRE_ACTIVE and destroyed keys neither.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from app.domain.algorithms import Algorithm, Family, Purpose
from app.domain.keys import KeyState
from app.errors import ValidationError

RULE_STATE = "KS-USE-STATE"
RULE_PURPOSE = "KS-USE-PURPOSE"


class Direction(Enum):
    """SP 800-57's two kinds of use."""

    PROTECT = "protect"
    PROCESS = "process"


class Operation(Enum):
    """One use of a key; the value is the audit action's suffix (``key.sign`` …)."""

    SIGN = "sign"
    VERIFY = "verify"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"

    @property
    def direction(self) -> Direction:
        return _DIRECTION[self]

    @property
    def purpose(self) -> Purpose:
        """The purpose a key must have been generated for to be used so."""
        return _PURPOSE[self]


_DIRECTION = {
    Operation.SIGN: Direction.PROTECT,
    Operation.ENCRYPT: Direction.PROTECT,
    Operation.VERIFY: Direction.PROCESS,
    Operation.DECRYPT: Direction.PROCESS,
}
_PURPOSE = {
    Operation.SIGN: Purpose.SIGNING,
    Operation.VERIFY: Purpose.SIGNING,
    Operation.ENCRYPT: Purpose.ENCRYPTION,
    Operation.DECRYPT: Purpose.ENCRYPTION,
}

ALLOWED_STATES: dict[Direction, frozenset[KeyState]] = {
    Direction.PROTECT: frozenset({KeyState.ACTIVE}),
    Direction.PROCESS: frozenset({KeyState.ACTIVE, KeyState.DEACTIVATED}),
}


def state_refusal(state: KeyState, operation: Operation) -> str | None:
    """Why a key in ``state`` may not be used for ``operation``, or None if it may."""
    if state in ALLOWED_STATES[operation.direction]:
        return None
    allowed = " or ".join(sorted(s.value for s in ALLOWED_STATES[operation.direction]))
    return (
        f"A {state.value} key cannot {operation.value}: {operation.direction.value} operations "
        f"need a key in state {allowed}"
    )


class SignatureMechanism(Enum):
    """A signature scheme with its hash; the value is the CLI's name.

    RSA-PSS uses MGF1 with the same hash and a salt as long as the hash (RFC 8017 §9.1,
    the usual choice, what ``openssl dgst -sigopt rsa_padding_mode:pss`` verifies with
    ``rsa_pss_saltlen:digest``). ECDSA signatures are DER ``Ecdsa-Sig-Value`` (RFC 3279), as
    ``openssl dgst -verify`` reads them. Ed25519 is PureEdDSA (RFC 8032) over the whole file.
    """

    RSA_PSS_SHA256 = "RSA-PSS-SHA256"
    RSA_PSS_SHA384 = "RSA-PSS-SHA384"
    RSA_PSS_SHA512 = "RSA-PSS-SHA512"
    RSA_PKCS1_SHA256 = "RSA-PKCS1-SHA256"
    RSA_PKCS1_SHA384 = "RSA-PKCS1-SHA384"
    RSA_PKCS1_SHA512 = "RSA-PKCS1-SHA512"
    ECDSA_SHA256 = "ECDSA-SHA256"
    ECDSA_SHA384 = "ECDSA-SHA384"
    ECDSA_SHA512 = "ECDSA-SHA512"
    ED25519 = "ED25519"

    @property
    def family(self) -> Family:
        if self.value.startswith("RSA"):
            return Family.RSA
        if self.value.startswith("ECDSA"):
            return Family.EC
        return Family.EDDSA

    @property
    def hash_name(self) -> str | None:
        """``sha256``/``sha384``/``sha512`` (hashlib names), None for PureEdDSA."""
        if self is SignatureMechanism.ED25519:
            return None
        return str(self.value).rsplit("-", 1)[1].lower()

    @property
    def pss(self) -> bool:
        return self.value.startswith("RSA-PSS")


_DEFAULT_SIGNATURE = {
    Family.RSA: SignatureMechanism.RSA_PSS_SHA256,
    Algorithm.EC_P256: SignatureMechanism.ECDSA_SHA256,
    Algorithm.EC_P384: SignatureMechanism.ECDSA_SHA384,
    Family.EDDSA: SignatureMechanism.ED25519,
}


def default_signature(algorithm: Algorithm) -> SignatureMechanism:
    """The mechanism used when none is asked for: RSA-PSS-SHA256 for RSA, ECDSA with the hash
    matching the curve's strength (SP 800-57 Table 3), Ed25519 for Ed25519."""
    found = _DEFAULT_SIGNATURE.get(algorithm) or _DEFAULT_SIGNATURE.get(algorithm.family)
    if found is None:
        raise ValidationError(f"{algorithm.value} keys do not sign; use a signing key pair.")
    return found


def parse_signature(text: str, algorithm: Algorithm) -> SignatureMechanism:
    """The mechanism named ``text`` (case-insensitive), checked against the key's algorithm."""
    wanted = text.strip().upper()
    mechanism = next((m for m in SignatureMechanism if m.value == wanted), None)
    if mechanism is None:
        names = ", ".join(m.value for m in SignatureMechanism)
        raise ValidationError(f"Unknown signature mechanism '{text}'. Choose one of: {names}.")
    if mechanism.family is not algorithm.family:
        usable = ", ".join(m.value for m in SignatureMechanism if m.family is algorithm.family)
        raise ValidationError(
            f"{mechanism.value} does not work with a {algorithm.value} key; "
            f"choose one of: {usable or 'none (not a signing algorithm)'}."
        )
    return mechanism


# --- usage counters and limits (resources/usage-limits.toml) ----------------------------------

COUNTERS = ("uses", "invocations", "files")


class UsageTally(NamedTuple):
    """What the audit chain counts for one key: protect ``uses`` (a batch counts each
    message), AES-GCM ``invocations`` (chunks) and ``files`` encrypted."""

    uses: int = 0
    invocations: int = 0
    files: int = 0


def usage_warning(
    purpose: Purpose, tally: UsageTally, limits: dict[Purpose, dict[str, int]], fraction: float
) -> str | None:
    """Why the key is due for replacement by its usage, or None: the first counter at or past
    ``fraction`` of its purpose's limit, e.g. "AES-GCM invocations 3,900,000,000 of
    4,294,967,296 (SP 800-38D limit)"."""
    for counter, limit in sorted(limits.get(purpose, {}).items()):
        value = int(getattr(tally, counter))
        if value >= limit * fraction:
            word = "reached" if value >= limit else "near"
            return f"usage limit {word}: {_COUNTER_TITLES[counter]} {value:,} of {limit:,}"
    return None


_COUNTER_TITLES = {
    "uses": "uses",
    "invocations": "AES-GCM invocations",
    "files": "files encrypted",
}
