"""Public keys in the formats recipients ask for: PEM and DER SubjectPublicKeyInfo (RFC 5280),
OpenSSH (RFC 4253 / RFC 5656 / RFC 8709) and JWK (RFC 7517/7518/8037). Pure: no I/O."""

from __future__ import annotations

import base64
import hashlib
import json
from enum import Enum

from app.errors import ValidationError


class PublicFormat(Enum):
    PEM = "pem"
    DER = "der"
    SSH = "ssh"
    JWK = "jwk"


def parse_format(text: str) -> PublicFormat:
    wanted = text.strip().lower()
    for fmt in PublicFormat:
        if fmt.value == wanted:
            return fmt
    raise ValidationError(
        f"Unknown public-key format '{text}'. Choose one of: "
        + ", ".join(f.value for f in PublicFormat)
        + "."
    )


def _b64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def jwk_of(spki: bytes) -> dict[str, str]:
    """The JWK of a public key, with ``kid`` = SHA-256 of the SPKI (hex)."""
    from cryptography.hazmat.primitives import serialization  # on use: keeps start-up light
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    public = serialization.load_der_public_key(spki)
    kid = hashlib.sha256(spki).hexdigest()
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url(_int_bytes(rsa_numbers.n)),
            "e": _b64url(_int_bytes(rsa_numbers.e)),
            "kid": kid,
        }
    if isinstance(public, ec.EllipticCurvePublicKey):
        size = (public.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[public.curve.name]
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64url(_int_bytes(numbers.x, size)),
            "y": _b64url(_int_bytes(numbers.y, size)),
            "kid": kid,
        }
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid}
    raise ValidationError("This public key type has no JWK form here.")


def encode_public(spki: bytes, fmt: PublicFormat, comment: str = "") -> bytes:
    """The public key ``spki`` (DER SubjectPublicKeyInfo) in ``fmt``."""
    if fmt is PublicFormat.DER:
        return spki
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_der_public_key(spki)
    if fmt is PublicFormat.PEM:
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if fmt is PublicFormat.SSH:
        line = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        clean = "".join(c for c in comment if c.isprintable() and not c.isspace())
        return line + (b" " + clean.encode() if clean else b"") + b"\n"
    return (json.dumps(jwk_of(spki), indent=2, sort_keys=True) + "\n").encode()
