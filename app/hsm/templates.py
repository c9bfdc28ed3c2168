"""Complete, explicit PKCS#11 templates for every key Keystead generates, and their check.

python-pkcs11 defaults to session objects and to encrypt+sign+wrap capabilities; nothing here
relies on a default. Every usage flag is written out, true or false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pkcs11 import Attribute, KeyType

from app.domain.algorithms import Algorithm, Family, Usage, UsagePlan

USAGE_ATTR: dict[Usage, Attribute] = {
    Usage.ENCRYPT: Attribute.ENCRYPT,
    Usage.DECRYPT: Attribute.DECRYPT,
    Usage.SIGN: Attribute.SIGN,
    Usage.VERIFY: Attribute.VERIFY,
    Usage.WRAP: Attribute.WRAP,
    Usage.UNWRAP: Attribute.UNWRAP,
    Usage.DERIVE: Attribute.DERIVE,
}
# Which usage flags exist on which object class.
SECRET_USAGES = tuple(Usage)
PRIVATE_USAGES = (Usage.DECRYPT, Usage.SIGN, Usage.UNWRAP, Usage.DERIVE)
PUBLIC_USAGES = (Usage.ENCRYPT, Usage.VERIFY, Usage.WRAP, Usage.DERIVE)

# DER of the curve OIDs: the form SoftHSM and most HSMs accept in CKA_EC_PARAMS (what
# python-pkcs11's ``encode_named_curve_parameters`` gives; written out so that asn1crypto is
# not loaded by every command, and checked against it in tests/unit/test_hsm_lazy_util.py).
CURVE_PARAMS: dict[str, bytes] = {
    "P-256": bytes.fromhex("06082a8648ce3d030107"),  # OID 1.2.840.10045.3.1.7 (secp256r1)
    "P-384": bytes.fromhex("06052b81040022"),  # OID 1.3.132.0.34 (secp384r1)
    "Ed25519": bytes.fromhex("06032b6570"),  # OID 1.3.101.112
}
PARAMS_CURVE = {value: name for name, value in CURVE_PARAMS.items()}
# Ed25519 as a PrintableString "edwards25519", which some tokens return.
PARAMS_CURVE[b"\x13\x0cedwards25519"] = "Ed25519"

KEY_TYPE: dict[Family, KeyType] = {
    Family.AES: KeyType.AES,
    Family.RSA: KeyType.RSA,
    Family.EC: KeyType.EC,
    Family.EDDSA: KeyType.EC_EDWARDS,
}

GENERATE_MECHANISM: dict[Family, str] = {
    Family.AES: "AES_KEY_GEN",
    Family.RSA: "RSA_PKCS_KEY_PAIR_GEN",
    Family.EC: "EC_KEY_PAIR_GEN",
    Family.EDDSA: "EC_EDWARDS_KEY_PAIR_GEN",
}


@dataclass(frozen=True)
class KeySpec:
    """Everything needed to generate one key on a token."""

    algorithm: Algorithm
    label: str
    cka_id: bytes
    usage: UsagePlan
    extractable: bool


def _usage_flags(allowed: tuple[Usage, ...], granted: frozenset[Usage]) -> dict[Attribute, bool]:
    return {USAGE_ATTR[u]: (u in granted) for u in allowed}


def secret_template(spec: KeySpec) -> dict[Attribute, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: spec.extractable,
        # Only a KEK the SO marked CKA_TRUSTED may wrap a backup-able key (PKCS#11 v2.40 4.4).
        Attribute.WRAP_WITH_TRUSTED: spec.extractable,
        Attribute.MODIFIABLE: True,
        Attribute.LABEL: spec.label,
        Attribute.ID: spec.cka_id,
        Attribute.VALUE_LEN: spec.algorithm.spec.bits // 8,
        **_usage_flags(SECRET_USAGES, spec.usage.secret),
    }


def public_template(spec: KeySpec) -> dict[Attribute, Any]:
    template: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        # Private, so the label and key are encrypted in SoftHSM's store and hidden before login.
        Attribute.PRIVATE: True,
        Attribute.MODIFIABLE: True,
        Attribute.LABEL: spec.label,
        Attribute.ID: spec.cka_id,
        **_usage_flags(PUBLIC_USAGES, spec.usage.public),
    }
    algo = spec.algorithm.spec
    if algo.family is Family.RSA:
        template[Attribute.MODULUS_BITS] = algo.bits
        template[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
        template[Attribute.VERIFY_RECOVER] = False
    else:
        template[Attribute.EC_PARAMS] = CURVE_PARAMS[algo.curve or ""]
    return template


def private_template(spec: KeySpec) -> dict[Attribute, Any]:
    template: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: spec.extractable,
        Attribute.WRAP_WITH_TRUSTED: spec.extractable,
        Attribute.MODIFIABLE: True,
        Attribute.LABEL: spec.label,
        Attribute.ID: spec.cka_id,
        **_usage_flags(PRIVATE_USAGES, spec.usage.private),
    }
    if spec.algorithm.family is Family.RSA:
        template[Attribute.SIGN_RECOVER] = False
    return template


# Attributes whose read-back must equal the template (the rest are inputs like VALUE_LEN).
_CHECKED = {
    Attribute.TOKEN,
    Attribute.PRIVATE,
    Attribute.SENSITIVE,
    Attribute.EXTRACTABLE,
    Attribute.WRAP_WITH_TRUSTED,
    Attribute.LABEL,
    Attribute.ID,
    *(USAGE_ATTR.values()),
}


def expected_readback(
    template: dict[Attribute, Any], sensitive_object: bool
) -> dict[Attribute, Any]:
    """What reading the generated object must return, including the derived ALWAYS/NEVER flags."""
    expected = {a: v for a, v in template.items() if a in _CHECKED}
    if sensitive_object:
        expected[Attribute.ALWAYS_SENSITIVE] = True
        expected[Attribute.NEVER_EXTRACTABLE] = not template[Attribute.EXTRACTABLE]
    return expected


def mismatches(expected: dict[Attribute, Any], actual: dict[Attribute, Any]) -> list[str]:
    """Names of attributes whose read-back differs from what was asked for."""
    wrong = []
    for attribute, value in expected.items():
        got = actual.get(attribute)
        if isinstance(value, str) and isinstance(got, bytes):
            got = got.decode("utf-8", "replace")
        if got != value:
            wrong.append(attribute.name)
    return sorted(wrong)
