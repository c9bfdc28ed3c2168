"""CMS (RFC 5652) detached SignedData around a signature made elsewhere (on the token).

One SignerInfo: sid = issuerAndSerialNumber of the signer's certificate (which is included),
signed attributes contentType = id-data, signingTime and messageDigest, in DER (SET OF sorted)
order; the signature is over the DER SET OF those attributes (RFC 5652 §5.4). Digests: SHA-256
for RSA and P-256, SHA-384 for P-384, SHA-512 for Ed25519 (RFC 8419 §3.1). No content is
included (detached): ``openssl cms -verify -binary -content FILE`` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509

from app.domain.algorithms import Algorithm, Family

_DIGEST = {
    Algorithm.EC_P384: "sha384",
    Algorithm.ED25519: "sha512",
}
_SIGNATURE = {Family.RSA: "rsassa_pkcs1v15", Family.EDDSA: "ed25519"}


def digest_name(algorithm: Algorithm) -> str:
    """The message digest (hashlib name) CMS uses with a key of ``algorithm``."""
    return _DIGEST.get(algorithm, "sha256")


def signed_attributes(digest: bytes, when: datetime) -> cms.CMSAttributes:
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute(
            {
                "type": "signing_time",
                "values": [cms.Time({"utc_time": when.astimezone(UTC).replace(microsecond=0)})],
            }
        ),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
    ]
    attributes.sort(key=lambda a: a.dump())  # DER: a SET OF in the order of its encodings
    return cms.CMSAttributes(attributes)


def detached_signed_data(
    algorithm: Algorithm,
    certificate_der: bytes,
    digest: bytes,
    when: datetime,
    sign: Callable[[bytes], bytes],
) -> bytes:
    """DER ContentInfo(SignedData) for a file whose ``digest`` (``digest_name``) is given;
    ``sign`` signs the DER signed attributes with the certificate's key."""
    certificate = asn1_x509.Certificate.load(certificate_der)
    attributes = signed_attributes(digest, when)
    signature = sign(attributes.dump())
    name = digest_name(algorithm)
    if algorithm.family is Family.EC:
        signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": f"{name}_ecdsa"})
    else:
        signature_algorithm = algos.SignedDigestAlgorithm(
            {"algorithm": _SIGNATURE[algorithm.family]}
            | ({"parameters": core.Null()} if algorithm.family is Family.RSA else {})
        )
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": name}),
            "signed_attrs": attributes,
            "signature_algorithm": signature_algorithm,
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": name})],
            "encap_content_info": {"content_type": "data"},
            "certificates": [certificate],
            "signer_infos": [signer],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())
