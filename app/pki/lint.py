"""RFC 5280 linting of certificates and CRLs with pkilint (DigiCert's pkilint, the PKIX
validator sets its ``lint_pkix_cert`` and ``lint_crl`` commands run). A finding of severity
ERROR or FATAL refuses the document; WARNING and below are returned for display.

pkilint (and the pyasn1 modules it loads, ~0.3 s) is imported when a document is linted, not
when this module is imported: every CLI command and the window import the certificate service,
few of them lint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import ValidationError


@dataclass(frozen=True)
class Finding:
    """One pkilint finding: severity name (FATAL, ERROR, WARNING, NOTICE, INFO), code, text."""

    severity: str
    code: str
    message: str
    node: str

    @property
    def refuses(self) -> bool:
        return self.severity in ("FATAL", "ERROR")

    def __str__(self) -> str:
        text = f" ({self.message})" if self.message else ""
        return f"{self.severity} {self.code} at {self.node}{text}"


def _certificate_validator() -> Any:
    from pkilint.pkix import certificate, extension, name

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def _crl_validator() -> Any:
    from pkilint import pkix
    from pkilint.pkix import crl, extension, name

    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )


def _findings(results: Any) -> list[Finding]:
    from pkilint.validation import ValidationFindingSeverity

    found = []
    for result in results:
        for description in result.finding_descriptions:
            found.append(
                Finding(
                    ValidationFindingSeverity(description.finding.severity).name,
                    description.finding.code,
                    description.message or "",
                    str(result.node.path),
                )
            )
    return found


def lint_certificate(der: bytes) -> list[Finding]:
    """Every pkilint finding on a DER certificate."""
    from pkilint import loader

    try:
        document = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "certificate")
    except ValueError as exc:
        raise ValidationError(f"pkilint cannot read the certificate: {exc}") from exc
    return _findings(_certificate_validator().validate(document.root))


def lint_crl(der: bytes) -> list[Finding]:
    """Every pkilint finding on a DER CRL."""
    from pkilint import loader

    try:
        document = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    except ValueError as exc:
        raise ValidationError(f"pkilint cannot read the CRL: {exc}") from exc
    return _findings(_crl_validator().validate(document.root))


def refuse_on_errors(findings: list[Finding], what: str) -> list[Finding]:
    """Raise ValidationError naming the first errors; else return the warnings and notices
    (INFO and DEBUG findings, e.g. "SKI made by method 1", are not worth a person's time)."""
    errors = [f for f in findings if f.refuses]
    if errors:
        listed = "; ".join(str(f) for f in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise ValidationError(
            f"pkilint refuses the {what}: {listed}{more}. Nothing was stored or written; "
            "change the profile or the input."
        )
    return [f for f in findings if f.severity in ("WARNING", "NOTICE")]
