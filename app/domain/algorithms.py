"""The key algorithms Keystead generates, and what each is allowed to be used for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from app.errors import ValidationError


class Family(Enum):
    """Key family; decides the PKCS#11 key type and the fingerprint kind."""

    AES = "AES"
    RSA = "RSA"
    EC = "EC"
    EDDSA = "EdDSA"


class Usage(Enum):
    """A PKCS#11 usage flag, named as the attribute is (CKA_ENCRYPT, ...)."""

    ENCRYPT = "ENCRYPT"
    DECRYPT = "DECRYPT"
    SIGN = "SIGN"
    VERIFY = "VERIFY"
    WRAP = "WRAP"
    UNWRAP = "UNWRAP"
    DERIVE = "DERIVE"


class Purpose(Enum):
    """What the key is for; decides its usage flags and nothing else may."""

    ENCRYPTION = "encryption"
    SIGNING = "signing"
    KEY_WRAPPING = "key-wrapping"
    MAC = "mac"

    @property
    def title(self) -> str:
        return _PURPOSE_TITLES[self]


_PURPOSE_TITLES = {
    Purpose.ENCRYPTION: "Encryption",
    Purpose.SIGNING: "Signing",
    Purpose.KEY_WRAPPING: "Key wrapping",
    Purpose.MAC: "MAC",
}


class Algorithm(Enum):
    """Every algorithm a key can be generated with; values are the CLI's names."""

    AES_128 = "AES-128"
    AES_192 = "AES-192"
    AES_256 = "AES-256"
    RSA_2048 = "RSA-2048"
    RSA_3072 = "RSA-3072"
    RSA_4096 = "RSA-4096"
    EC_P256 = "EC-P256"
    EC_P384 = "EC-P384"
    ED25519 = "ED25519"

    @property
    def spec(self) -> AlgorithmSpec:
        return _SPECS[self]

    @property
    def family(self) -> Family:
        return self.spec.family

    @property
    def symmetric(self) -> bool:
        return self.spec.family is Family.AES


@dataclass(frozen=True)
class AlgorithmSpec:
    """Facts about an algorithm: family, size in bits, curve, usual size label."""

    family: Family
    bits: int
    curve: str | None = None  # "P-256", "P-384", "Ed25519"
    slow: bool = False  # generation takes seconds on ordinary tokens

    @property
    def size_label(self) -> str:
        return self.curve if self.curve else f"{self.bits} bits"


_SPECS: dict[Algorithm, AlgorithmSpec] = {
    Algorithm.AES_128: AlgorithmSpec(Family.AES, 128),
    Algorithm.AES_192: AlgorithmSpec(Family.AES, 192),
    Algorithm.AES_256: AlgorithmSpec(Family.AES, 256),
    Algorithm.RSA_2048: AlgorithmSpec(Family.RSA, 2048),
    Algorithm.RSA_3072: AlgorithmSpec(Family.RSA, 3072, slow=True),
    Algorithm.RSA_4096: AlgorithmSpec(Family.RSA, 4096, slow=True),
    Algorithm.EC_P256: AlgorithmSpec(Family.EC, 256, "P-256"),
    Algorithm.EC_P384: AlgorithmSpec(Family.EC, 384, "P-384"),
    Algorithm.ED25519: AlgorithmSpec(Family.EDDSA, 255, "Ed25519"),
}

# Usage flags each purpose grants. For key pairs, the first set goes on the private key and the
# second on the public key; secret keys get the union.
_PAIR_USAGE: dict[Purpose, tuple[frozenset[Usage], frozenset[Usage]]] = {
    Purpose.ENCRYPTION: (frozenset({Usage.DECRYPT}), frozenset({Usage.ENCRYPT})),
    Purpose.SIGNING: (frozenset({Usage.SIGN}), frozenset({Usage.VERIFY})),
    Purpose.KEY_WRAPPING: (frozenset({Usage.UNWRAP}), frozenset({Usage.WRAP})),
    Purpose.MAC: (frozenset({Usage.SIGN}), frozenset({Usage.VERIFY})),
}

_ALLOWED: dict[Family, tuple[Purpose, ...]] = {
    Family.AES: (Purpose.ENCRYPTION, Purpose.KEY_WRAPPING, Purpose.MAC),
    Family.RSA: (Purpose.SIGNING, Purpose.ENCRYPTION, Purpose.KEY_WRAPPING),
    Family.EC: (Purpose.SIGNING,),
    Family.EDDSA: (Purpose.SIGNING,),
}


@dataclass(frozen=True)
class UsagePlan:
    """Usage flags for the objects of one key: ``secret`` or ``private`` + ``public``."""

    private: frozenset[Usage]
    public: frozenset[Usage]

    @property
    def secret(self) -> frozenset[Usage]:
        return self.private | self.public


def parse_algorithm(text: str) -> Algorithm:
    """Return the algorithm named ``text`` (case-insensitive), or raise ValidationError."""
    wanted = text.strip().upper()
    for algorithm in Algorithm:
        if algorithm.value.upper() == wanted:
            return algorithm
    names = ", ".join(a.value for a in Algorithm)
    raise ValidationError(f"Unknown algorithm '{text}'. Choose one of: {names}.")


def parse_purpose(text: str) -> Purpose:
    """Return the purpose named ``text``, or raise ValidationError."""
    wanted = text.strip().lower().replace("_", "-").replace(" ", "-")
    for purpose in Purpose:
        if purpose.value == wanted:
            return purpose
    names = ", ".join(p.value for p in Purpose)
    raise ValidationError(f"Unknown purpose '{text}'. Choose one of: {names}.")


def allowed_purposes(algorithm: Algorithm) -> tuple[Purpose, ...]:
    """Purposes that make sense for ``algorithm``; the first is the default."""
    return _ALLOWED[algorithm.family]


def default_purpose(algorithm: Algorithm) -> Purpose:
    return allowed_purposes(algorithm)[0]


def usage_for(algorithm: Algorithm, purpose: Purpose) -> UsagePlan:
    """The usage flags a key of ``algorithm`` gets for ``purpose``; refuses nonsense pairs."""
    if purpose not in allowed_purposes(algorithm):
        allowed = ", ".join(p.value for p in allowed_purposes(algorithm))
        raise ValidationError(
            f"{algorithm.value} keys cannot be used for {purpose.value}; choose one of: {allowed}."
        )
    private, public = _PAIR_USAGE[purpose]
    return UsagePlan(private=private, public=public)
