"""The attributes Keystead reads from key objects, and what it builds from them: the lists
read for the detail panel, the read-back and enumeration, an attribute dict by name, a public
key's DER SubjectPublicKeyInfo (RFC 5280) and Keystead's algorithm for an object. Plain data
in and out (python-pkcs11 ``Attribute`` keys); nothing here talks to a token.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, KeyType, ObjectClass

from app.domain.algorithms import Algorithm, Family
from app.errors import UnsupportedAlgorithm
from app.hsm.templates import PARAMS_CURVE

# What the detail panel and the read-back show, in this order.
SHOWN_ATTRIBUTES = (
    Attribute.CLASS,
    Attribute.KEY_TYPE,
    Attribute.LABEL,
    Attribute.ID,
    Attribute.TOKEN,
    Attribute.PRIVATE,
    Attribute.MODIFIABLE,
    Attribute.SENSITIVE,
    Attribute.EXTRACTABLE,
    Attribute.WRAP_WITH_TRUSTED,
    Attribute.ALWAYS_SENSITIVE,
    Attribute.NEVER_EXTRACTABLE,
    Attribute.ENCRYPT,
    Attribute.DECRYPT,
    Attribute.SIGN,
    Attribute.VERIFY,
    Attribute.WRAP,
    Attribute.UNWRAP,
    Attribute.DERIVE,
    Attribute.LOCAL,
)
# Boolean attributes read with every object (exposure and usage).
FLAG_ATTRIBUTES = (
    Attribute.SENSITIVE,
    Attribute.ALWAYS_SENSITIVE,
    Attribute.EXTRACTABLE,
    Attribute.NEVER_EXTRACTABLE,
    Attribute.WRAP_WITH_TRUSTED,
    Attribute.MODIFIABLE,
    Attribute.ENCRYPT,
    Attribute.DECRYPT,
    Attribute.SIGN,
    Attribute.VERIFY,
    Attribute.WRAP,
    Attribute.UNWRAP,
    Attribute.DERIVE,
)
# One batched read per object during enumeration (attributes an object does not have are left
# out of the answer; sensitive values are never asked for).
ENUMERATION_ATTRIBUTES = [
    Attribute.CLASS,
    Attribute.KEY_TYPE,
    Attribute.ID,
    Attribute.LABEL,
    Attribute.APPLICATION,
    Attribute.VALUE_LEN,
    Attribute.MODULUS_BITS,
    Attribute.EC_PARAMS,
    Attribute.CHECK_VALUE,
    Attribute.MODULUS,
    Attribute.PUBLIC_EXPONENT,
    Attribute.EC_POINT,
    *FLAG_ATTRIBUTES,
]
# The classes of key objects: secret keys and either half of a pair.
KEY_CLASSES = {ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY}


def named_attributes(attributes: dict[Attribute, Any]) -> dict[str, Any]:
    """The ``SHOWN_ATTRIBUTES`` among ``attributes``, in that order, by attribute name; a
    CKA_ID as hex, enumerated values by their name."""
    out: dict[str, Any] = {}
    for attribute in SHOWN_ATTRIBUTES:
        if attribute in attributes:
            value = attributes[attribute]
            if isinstance(value, bytes) and attribute is Attribute.ID:
                value = value.hex()
            elif hasattr(value, "name"):
                value = value.name
            out[attribute.name] = value
    return out


def ec_point(raw: bytes) -> bytes:
    """CKA_EC_POINT is normally a DER OCTET STRING; some tokens give the raw point."""
    from asn1crypto.core import OctetString  # (only for EC keys: not loaded by every command)

    try:
        return bytes(OctetString.load(raw).native)
    except ValueError:
        return raw


def spki_of(public: dict[Attribute, Any], family: Family) -> bytes:
    """DER SubjectPublicKeyInfo built from a public key's attributes."""
    key: Any
    if family is Family.RSA:
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        )
        key = numbers.public_key()
    elif family is Family.EC:
        curve_name = PARAMS_CURVE.get(public[Attribute.EC_PARAMS])
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}.get(curve_name or "")
        if curve is None:
            raise UnsupportedAlgorithm("The key's elliptic curve is not one Keystead manages.")
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            curve, ec_point(public[Attribute.EC_POINT])
        )
    else:
        key = ed25519.Ed25519PublicKey.from_public_bytes(ec_point(public[Attribute.EC_POINT]))
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def algorithm_of(attributes: dict[Attribute, Any]) -> Algorithm | None:
    """Keystead's algorithm for an object's type and size, or None if it manages no such key."""
    key_type = attributes.get(Attribute.KEY_TYPE)
    if key_type == KeyType.AES:
        return {16: Algorithm.AES_128, 24: Algorithm.AES_192, 32: Algorithm.AES_256}.get(
            attributes.get(Attribute.VALUE_LEN, 0)
        )
    if key_type == KeyType.RSA:
        bits = attributes.get(Attribute.MODULUS_BITS) or 8 * len(
            attributes.get(Attribute.MODULUS) or b""  # private keys give the modulus only
        )
        return {2048: Algorithm.RSA_2048, 3072: Algorithm.RSA_3072, 4096: Algorithm.RSA_4096}.get(
            bits
        )
    if key_type in (KeyType.EC, KeyType.EC_EDWARDS):
        curve = PARAMS_CURVE.get(attributes.get(Attribute.EC_PARAMS, b""))
        return {
            "P-256": Algorithm.EC_P256,
            "P-384": Algorithm.EC_P384,
            "Ed25519": Algorithm.ED25519,
        }.get(curve or "")
    return None
