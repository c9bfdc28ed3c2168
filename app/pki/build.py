"""To-be-signed structures of certificates (RFC 5280 §4), CRLs (RFC 5280 §5) and certification
requests (RFC 2986), built with asn1crypto and completed with a signature made elsewhere (on
the token). No I/O, no keys: ``sign`` is a callable from the bytes to sign to the signature.

Signature algorithms follow the issuer key: RSA → sha256WithRSAEncryption (PKCS#1 v1.5,
parameters NULL, RFC 4055), EC P-256 → ecdsa-with-SHA256, P-384 → ecdsa-with-SHA384 (RFC 5758,
no parameters), Ed25519 → id-Ed25519 (RFC 8410). Times before 2050 are UTCTime, later ones
GeneralizedTime (RFC 5280 §4.1.2.5). Key identifiers are the SHA-1 of the subjectPublicKey
BIT STRING (RFC 5280 §4.2.1.2 method 1), which is what OpenSSL computes too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID

from app.domain.algorithms import Algorithm, Family
from app.domain.names import has_control
from app.domain.usage import SignatureMechanism
from app.errors import ValidationError

Signer = Callable[[bytes], bytes]

# RFC 5280 Appendix A upper bounds (characters), and the DN as a whole kept readable.
_UPPER_BOUNDS = {
    NameOID.COMMON_NAME: 64,
    NameOID.ORGANIZATION_NAME: 64,
    NameOID.ORGANIZATIONAL_UNIT_NAME: 64,
    NameOID.LOCALITY_NAME: 128,
    NameOID.STATE_OR_PROVINCE_NAME: 128,
    NameOID.SERIAL_NUMBER: 64,
    NameOID.EMAIL_ADDRESS: 255,
}
MAX_DN_CHARACTERS = 512


@dataclass(frozen=True)
class SignatureChoice:
    """How an issuer key of ``algorithm`` signs X.509 structures."""

    mechanism: SignatureMechanism
    asn1_name: str  # asn1crypto's SignedDigestAlgorithmId name

    def identifier(self) -> asn1_x509.SignedDigestAlgorithm:
        value: dict[str, object] = {"algorithm": self.asn1_name}
        if self.mechanism.family is Family.RSA:
            value["parameters"] = core.Null()
        return asn1_x509.SignedDigestAlgorithm(value)


def signature_for(algorithm: Algorithm) -> SignatureChoice:
    if algorithm.family is Family.RSA:
        return SignatureChoice(SignatureMechanism.RSA_PKCS1_SHA256, "sha256_rsa")
    if algorithm is Algorithm.EC_P256:
        return SignatureChoice(SignatureMechanism.ECDSA_SHA256, "sha256_ecdsa")
    if algorithm is Algorithm.EC_P384:
        return SignatureChoice(SignatureMechanism.ECDSA_SHA384, "sha384_ecdsa")
    if algorithm is Algorithm.ED25519:
        return SignatureChoice(SignatureMechanism.ED25519, "ed25519")
    raise ValidationError(f"{algorithm.value} keys cannot sign certificates.")


def parse_name(text: str) -> asn1_x509.Name:
    """An RFC 4514 DN ("CN=Example Root,O=Example,C=DE") as an X.501 Name; refuses empty
    names, unknown syntax, over-long attributes and a country that is not two letters."""
    try:
        parsed = x509.Name.from_rfc4514_string(text.strip())
    except ValueError as exc:
        raise ValidationError(
            f"'{text[:80]}' is not a usable distinguished name ({exc}); write it like "
            "CN=Example Root CA,O=Example,C=DE."
        ) from exc
    check_name(parsed)
    return asn1_x509.Name.load(parsed.public_bytes())


def check_name(name: x509.Name) -> None:
    """Refuse a DN that RFC 5280's upper bounds or common sense forbid."""
    if not list(name):
        raise ValidationError("The subject is empty; give at least CN=….")
    if len(name.rfc4514_string()) > MAX_DN_CHARACTERS:
        raise ValidationError(f"The subject is longer than {MAX_DN_CHARACTERS} characters.")
    for attribute in name:
        value = attribute.value if isinstance(attribute.value, str) else ""
        bound = _UPPER_BOUNDS.get(attribute.oid)
        if bound is not None and len(value) > bound:
            raise ValidationError(
                f"{attribute.oid._name} is {len(value)} characters; RFC 5280 allows {bound}."
            )
        if attribute.oid == NameOID.COUNTRY_NAME and (len(value) != 2 or not value.isalpha()):
            raise ValidationError(f"C={value} is not a two-letter ISO 3166 country code.")
        if not value.strip():
            raise ValidationError(f"{attribute.oid._name} is empty.")
        if has_control(value):
            raise ValidationError(
                f"{attribute.oid._name} contains control or invisible characters; remove them."
            )


def key_identifier(spki: bytes) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING (RFC 5280 §4.2.1.2 (1))."""
    info = asn1_keys.PublicKeyInfo.load(spki)
    return hashlib.sha1(info["public_key"].contents[1:]).digest()  # noqa: S324 (RFC method)


def new_serial() -> int:
    """A positive serial of 159 random bits (at most 20 octets, RFC 5280 §4.1.2.2)."""
    return secrets.randbits(159) | (1 << 158)


def _time(moment: datetime) -> asn1_x509.Time:
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if moment.year < 2050:
        return asn1_x509.Time({"utc_time": moment})
    return asn1_x509.Time({"general_time": moment})


@dataclass(frozen=True)
class CertificateSpec:
    """Everything a certificate says, decided before anything is signed."""

    serial: int
    issuer: asn1_x509.Name
    subject: asn1_x509.Name
    spki: bytes
    not_before: datetime
    not_after: datetime
    ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    extended_key_usage: tuple[str, ...] = ()
    issuer_key_id: bytes | None = None  # None: self-signed (AKI = SKI)
    crl_urls: tuple[str, ...] = field(default=())


def _extensions(spec: CertificateSpec) -> list[dict[str, object]]:
    ski = key_identifier(spec.spki)
    constraints: dict[str, object] = {"ca": spec.ca}
    if spec.ca and spec.path_length is not None:
        constraints["path_len_constraint"] = spec.path_length
    extensions: list[dict[str, object]] = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": constraints},
        {"extn_id": "key_usage", "critical": True, "extn_value": set(spec.key_usage)},
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": spec.issuer_key_id or ski},
        },
    ]
    if spec.extended_key_usage:
        extensions.append(
            {
                "extn_id": "extended_key_usage",
                "critical": False,
                "extn_value": list(spec.extended_key_usage),
            }
        )
    if spec.crl_urls:
        extensions.append(
            {
                "extn_id": "crl_distribution_points",
                "critical": False,
                "extn_value": [
                    {
                        "distribution_point": asn1_x509.DistributionPointName(
                            name="full_name",
                            value=[
                                asn1_x509.GeneralName(name="uniform_resource_identifier", value=u)
                                for u in spec.crl_urls
                            ],
                        )
                    }
                ],
            }
        )
    return extensions


def certificate_tbs(spec: CertificateSpec, choice: SignatureChoice) -> asn1_x509.TbsCertificate:
    return asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": spec.serial,
            "signature": choice.identifier(),
            "issuer": spec.issuer,
            "validity": {"not_before": _time(spec.not_before), "not_after": _time(spec.not_after)},
            "subject": spec.subject,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(spec.spki),
            "extensions": _extensions(spec),
        }
    )


def assemble_certificate(
    tbs: asn1_x509.TbsCertificate, choice: SignatureChoice, signature: bytes
) -> bytes:
    """DER Certificate from its TBS part and a signature over ``tbs.dump()``."""
    return bytes(
        asn1_x509.Certificate(
            {
                "tbs_certificate": tbs,
                "signature_algorithm": choice.identifier(),
                "signature_value": signature,
            }
        ).dump()
    )


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    date: datetime
    reason: str  # asn1crypto CRLReason name: key_compromise, superseded, ...


def crl_tbs(
    issuer: asn1_x509.Name,
    issuer_key_id: bytes,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: list[RevokedEntry],
    choice: SignatureChoice,
) -> asn1_crl.TbsCertList:
    """A v2 CRL: AKI and CRL number extensions; each entry with its reason code (omitted when
    'unspecified', as RFC 5280 §5.3.1 recommends)."""
    entries = []
    for entry in revoked:
        item: dict[str, object] = {
            "user_certificate": entry.serial,
            "revocation_date": _time(entry.date),
        }
        if entry.reason != "unspecified":
            item["crl_entry_extensions"] = [
                {"extn_id": "crl_reason", "critical": False, "extn_value": entry.reason}
            ]
        entries.append(item)
    value: dict[str, object] = {
        "version": "v2",
        "signature": choice.identifier(),
        "issuer": issuer,
        "this_update": _time(this_update),
        "next_update": _time(next_update),
        "crl_extensions": [
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": issuer_key_id},
            },
            {"extn_id": "crl_number", "critical": False, "extn_value": number},
        ],
    }
    if entries:
        value["revoked_certificates"] = entries
    return asn1_crl.TbsCertList(value)


def assemble_crl(tbs: asn1_crl.TbsCertList, choice: SignatureChoice, signature: bytes) -> bytes:
    return bytes(
        asn1_crl.CertificateList(
            {
                "tbs_cert_list": tbs,
                "signature_algorithm": choice.identifier(),
                "signature": signature,
            }
        ).dump()
    )


def csr_info(subject: asn1_x509.Name, spki: bytes) -> asn1_csr.CertificationRequestInfo:
    return asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": subject,
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
            "attributes": [],
        }
    )


def assemble_csr(
    info: asn1_csr.CertificationRequestInfo, choice: SignatureChoice, signature: bytes
) -> bytes:
    return bytes(
        asn1_csr.CertificationRequest(
            {
                "certification_request_info": info,
                "signature_algorithm": choice.identifier(),
                "signature": signature,
            }
        ).dump()
    )
