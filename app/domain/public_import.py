"""Reading a public key someone hands over: PEM or DER SubjectPublicKeyInfo, or an X.509
certificate (its subject public key). Pure: no I/O.

Used for a transfer's recipient (RSA only, at least 2048 bits: SP 800-131A) and for importing
a verify-only key (any algorithm Keystead manages). A private key, or anything that is not a
public key, is refused: it is never read, kept or echoed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.domain.algorithms import Algorithm
from app.errors import ValidationError

MAX_INPUT_BYTES = 1 << 20
MIN_RSA_BITS = 2048

_PRIVATE_MARKERS = (b"PRIVATE KEY", b"OPENSSH PRIVATE")


@dataclass(frozen=True)
class PublicKeyInput:
    """A public key read from a file."""

    spki: bytes  # DER SubjectPublicKeyInfo
    algorithm: Algorithm
    source: str  # "public key" or "certificate"
    subject: str  # certificate subject (RFC 4514), "" for a bare key
    # From a certificate (RFC 5280): its validity and whether its KeyUsage lets the key
    # encipher keys (None: no KeyUsage extension, so no restriction).
    not_before: datetime | None = None
    not_after: datetime | None = None
    key_encipherment: bool | None = None

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 of the DER SubjectPublicKeyInfo."""
        return hashlib.sha256(self.spki).hexdigest()

    def rsa_numbers(self) -> tuple[bytes, bytes]:
        """(modulus, public exponent) big-endian, for an RSA key."""
        key = serialization.load_der_public_key(self.spki)
        assert isinstance(key, rsa.RSAPublicKey)  # noqa: S101 (checked by callers' algorithm)
        numbers = key.public_numbers()
        return (
            numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"),
            numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"),
        )


def _algorithm(key: object, what: str) -> Algorithm:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValidationError(
                f"The {what} is RSA-{key.key_size}: too weak (at least {MIN_RSA_BITS} bits, "
                "SP 800-131A). Nothing was done."
            )
        try:
            return Algorithm(f"RSA-{key.key_size}")
        except ValueError as exc:
            raise ValidationError(
                f"The {what} is RSA-{key.key_size}; Keystead manages RSA-2048, -3072 and -4096."
            ) from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        found = {"secp256r1": Algorithm.EC_P256, "secp384r1": Algorithm.EC_P384}.get(key.curve.name)
        if found is None:
            raise ValidationError(
                f"The {what} is on curve {key.curve.name}; Keystead manages P-256 and P-384."
            )
        return found
    if isinstance(key, ed25519.Ed25519PublicKey):
        return Algorithm.ED25519
    raise ValidationError(
        f"The {what} is of a kind Keystead does not manage ({type(key).__name__})."
    )


def read_public(data: bytes) -> PublicKeyInput:
    """The public key in ``data`` (PEM or DER SPKI, PEM or DER certificate). ValidationError
    for a private key, anything else that is not a public key, or an algorithm or size
    Keystead does not manage (RSA below 2048 bits is refused as too weak)."""
    if len(data) > MAX_INPUT_BYTES:
        raise ValidationError("The file is larger than any public key or certificate.")
    if any(marker in data for marker in _PRIVATE_MARKERS):
        raise ValidationError(
            "The file holds a PRIVATE key, not a public key or certificate. Nothing was read "
            "from it; ask for the public key (and keep the private key where it was)."
        )
    loaders = (
        ("certificate", lambda d: x509.load_pem_x509_certificate(d)),
        ("certificate", lambda d: x509.load_der_x509_certificate(d)),
        ("public key", lambda d: serialization.load_pem_public_key(d)),
        ("public key", lambda d: serialization.load_der_public_key(d)),
    )
    for source, load in loaders:
        try:
            loaded = load(data)
        except (ValueError, TypeError):
            continue
        except Exception:  # noqa: S112 (cryptography raises assorted errors on garbage)
            continue
        key: Any
        validity: tuple[datetime | None, datetime | None] = (None, None)
        encipher: bool | None = None
        if isinstance(loaded, x509.Certificate):
            key, subject = loaded.public_key(), loaded.subject.rfc4514_string()
            validity = (loaded.not_valid_before_utc, loaded.not_valid_after_utc)
            try:
                usage = loaded.extensions.get_extension_for_class(x509.KeyUsage).value
                encipher = usage.key_encipherment
            except x509.ExtensionNotFound:
                encipher = None
        else:
            key, subject = loaded, ""
        algorithm = _algorithm(key, source)
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return PublicKeyInput(spki, algorithm, source, subject, *validity, encipher)
    raise ValidationError(
        "The file is not a public key or certificate (PEM or DER). Nothing was done."
    )
