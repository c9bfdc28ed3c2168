"""Certificates, requests and CRLs signed by token keys (the PKI meaning of use and revocation).

Each artefact is built with asn1crypto (``app.pki.build``), its to-be-signed bytes signed inside
the token through ``KeyUseService`` (which checks the signing key's state and purpose first and
records refusals), then verified with ``cryptography`` and linted with pkilint
(``app.pki.lint``): an error finding refuses it and nothing is stored or written. Certificates
and CRLs are kept in the database; the artefact, its record and its audit entry commit together.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.domain.approval import Authorisation
from app.domain.keys import KeyRecord
from app.domain.usage import Operation
from app.errors import KeysteadError, NotFoundError, PolicyError, ValidationError
from app.hsm.operations import KeyInUse
from app.pki import build
from app.pki.lint import Finding, lint_certificate, lint_crl, refuse_on_errors
from app.pki.profiles import PROFILE_FILE, Profile, profile_named
from app.pki.reasons import REASONS
from app.services.approvals import ApprovalService
from app.services.audit import Outcome, failure_outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.key_use import KeyUseService, check_target
from app.services.keys import KeyService, identity_of
from app.services.tokens import TokenService
from app.storage.certificates import CertificateRepository, StoredCertificate, StoredCrl
from app.storage.database import Database
from app.storage.files import read_regular
from app.storage.repository import utc_text

log = logging.getLogger(__name__)

RULE_NOT_CA = "KS-PKI-ISSUER-NOT-CA"
RULE_PATH = "KS-PKI-PATH-LENGTH"
MAX_CSR_BYTES = 64 * 1024


@dataclass(frozen=True)
class Issued:
    """An artefact made here: its DER, where it was written, and what pkilint remarked."""

    der: bytes
    output: Path | None
    findings: list[Finding]
    serial: str | None = None
    number: int | None = None


def to_pem(der: bytes, label: str) -> bytes:
    import base64

    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN "
        + label.encode()
        + b"-----\n"
        + b"\n".join(lines)
        + (b"\n-----END " + label.encode() + b"-----\n")
    )


class CertificateService:
    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        keys: KeyService,
        use: KeyUseService,
        operator: str,
        clock: Callable[[], datetime],
        approvals: ApprovalService,
    ) -> None:
        self.approvals = approvals  # cert.self-sign / cert.sign-csr / cert.crl (policy)
        self.db = db
        self.tokens = tokens
        self.keys = keys
        self.use = use
        self.operator = operator
        self.clock = clock
        self.repo = CertificateRepository(db)
        self.profile_file = PROFILE_FILE  # resources/cert-profiles.toml

    # --- signing on the token --------------------------------------------------------------

    def _signer(self, key: KeyRecord) -> tuple[build.SignatureChoice, build.Signer]:
        """The key's X.509 signature algorithm and a function that signs bytes on the token,
        after the use check (ACTIVE, signing purpose)."""
        self.use.authorize(key, Operation.SIGN)
        choice = build.signature_for(key.algorithm)
        session = self.tokens.session(key.token_serial)
        signer = KeyInUse(session, identity_of(key), key.name)

        def sign(data: bytes) -> bytes:
            name = choice.mechanism.hash_name
            if name is None:
                return signer.sign_message(data)
            return signer.sign_digest(choice.mechanism, hashlib.new(name, data).digest())

        return choice, sign

    def _spki(self, key: KeyRecord) -> bytes:
        spki = self.keys.repo.spki(key.id)
        if spki is None or key.algorithm.symmetric:
            raise ValidationError(f"Key '{key.name}' has no public key; it cannot be certified.")
        return spki

    # --- CSR -------------------------------------------------------------------------------

    def csr(self, key_ref: str, subject: str, target: Path, *, overwrite: bool = False) -> Issued:
        """A PKCS#10 request for the key, signed by it on the token, written as PEM."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        name = build.parse_name(subject)
        check_target(target, overwrite)
        choice, sign = self._signer(key)
        info = build.csr_info(name, self._spki(key))
        der = self._attempt(
            key, "cert.csr", lambda: build.assemble_csr(info, choice, sign(info.dump()))
        )
        request = x509.load_der_x509_csr(der)
        if not request.is_signature_valid:
            raise KeysteadError(
                "The token's signature on the request does not verify; not written."
            )
        details = {"subject": request.subject.rfc4514_string(), "sha256": _sha(der)}
        self.use.write_recorded(
            key,
            "cert.csr",
            details,
            target,
            overwrite,
            lambda out: out.write(to_pem(der, "CERTIFICATE REQUEST")),
        )
        return Issued(der, target, [])

    # --- certificates ----------------------------------------------------------------------

    def self_sign(
        self,
        key_ref: str,
        profile_name: str,
        subject: str,
        days: int,
        target: Path,
        *,
        overwrite: bool = False,
    ) -> Issued:
        """A self-signed certificate (a root CA) for the key, from a self-signed profile."""
        assert_core_thread()
        key = self.keys.resolve(key_ref)
        profile = issuing_profile(profile_name, days, self_signed=True, path=self.profile_file)
        name = build.parse_name(subject)
        now = self.clock()
        not_after = now + timedelta(days=days)
        check_target(target, overwrite)
        spki = self._spki(key)
        choice, sign = self._signer(key)
        who = self.approvals.obtain(
            "cert.self-sign",
            f"key:{key.id}",
            {
                "key": key.name,
                "fingerprint": key.fingerprint,
                "subject": subject.strip(),
                "profile": profile.name,
                "days": days,
                "output": target.name,
            },
        )
        spec = build.CertificateSpec(
            serial=build.new_serial(),
            issuer=name,
            subject=name,
            spki=spki,
            not_before=now,
            not_after=not_after,
            ca=profile.ca,
            path_length=profile.path_length,
            key_usage=profile.key_usage,
            extended_key_usage=profile.extended_key_usage,
            crl_urls=profile.crl_urls,
        )
        return self._issue(key, key.id, spec, choice, sign, profile, None, target, overwrite, who)

    def sign_csr(
        self,
        issuer_ref: str,
        csr_path: Path,
        profile_name: str,
        days: int,
        target: Path,
        *,
        overwrite: bool = False,
    ) -> Issued:
        """Issue a certificate for a PKCS#10 request with a CA key that holds a CA certificate
        made here. Refuses a request whose signature fails, an unsupported or weak key, a
        subject RFC 5280 forbids, an issuer that is not a CA, a path length the issuer does not
        allow, and a validity beyond the issuer's."""
        assert_core_thread()
        issuer = self.keys.resolve(issuer_ref)
        profile = issuing_profile(profile_name, days, self_signed=False, path=self.profile_file)
        request = _load_csr(csr_path)
        build.check_name(request.subject)
        _check_public_key(request.public_key())
        ca = self.repo.ca_certificate(issuer.id)
        if ca is None:
            self._deny(
                issuer,
                "cert.issue",
                RULE_NOT_CA,
                f"Key '{issuer.name}' has no CA certificate made here; it cannot issue",
            )
        if (
            profile.ca
            and ca.path_length is not None
            and (
                ca.path_length == 0
                or (profile.path_length is not None and profile.path_length >= ca.path_length)
            )
        ):
            self._deny(
                issuer,
                "cert.issue",
                RULE_PATH,
                f"The issuer's path length ({ca.path_length}) does not allow a "
                f"'{profile.name}' certificate below it",
            )
        now = self.clock()
        not_after = now + timedelta(days=days)
        ca_cert = x509.load_der_x509_certificate(ca.der)
        if not_after > ca_cert.not_valid_after_utc:
            raise ValidationError(
                f"The certificate would outlive its issuer ({ca.not_after}); ask for fewer days."
            )
        check_target(target, overwrite, (csr_path,))
        spki = request.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        subject_key = self.repo.managed_key(hashlib.sha256(spki).hexdigest())
        choice, sign = self._signer(issuer)
        who = self.approvals.obtain(
            "cert.sign-csr",
            f"key:{issuer.id}",
            {
                "issuer": issuer.name,
                "subject": request.subject.rfc4514_string(),
                "subject_public_key_sha256": hashlib.sha256(spki).hexdigest(),
                "csr_sha256": _sha(request.public_bytes(serialization.Encoding.DER)),
                "profile": profile.name,
                "days": days,
                "output": target.name,
            },
        )
        from asn1crypto import x509 as asn1_x509

        spec = build.CertificateSpec(
            serial=build.new_serial(),
            issuer=asn1_x509.Name.load(ca_cert.subject.public_bytes()),
            subject=asn1_x509.Name.load(request.subject.public_bytes()),
            spki=spki,
            not_before=now,
            not_after=not_after,
            ca=profile.ca,
            path_length=profile.path_length if profile.ca else None,
            key_usage=profile.key_usage,
            extended_key_usage=profile.extended_key_usage,
            issuer_key_id=build.key_identifier(self._spki(issuer)),
            crl_urls=profile.crl_urls,
        )
        return self._issue(
            issuer, subject_key, spec, choice, sign, profile, ca_cert, target, overwrite, who
        )

    def _issue(
        self,
        issuer: KeyRecord,
        subject_key_id: str | None,
        spec: build.CertificateSpec,
        choice: build.SignatureChoice,
        sign: build.Signer,
        profile: Profile,
        issuer_cert: x509.Certificate | None,
        target: Path,
        overwrite: bool,
        who: Authorisation,
    ) -> Issued:
        tbs = build.certificate_tbs(spec, choice)
        der = self._attempt(
            issuer, "cert.issue", lambda: build.assemble_certificate(tbs, choice, sign(tbs.dump()))
        )
        cert = x509.load_der_x509_certificate(der)
        try:
            cert.verify_directly_issued_by(issuer_cert or cert)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise KeysteadError(
                f"The certificate made on the token does not verify ({exc}); not written."
            ) from exc
        findings = self._lint(issuer, "cert.issue", lint_certificate(der), "certificate")
        serial = format(spec.serial, "x")
        stored = StoredCertificate(
            serial=serial,
            key_id=subject_key_id,
            issuer_key_id=issuer.id,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            profile=profile.name,
            ca=spec.ca,
            path_length=spec.path_length,
            not_before=utc_text(spec.not_before),
            not_after=utc_text(spec.not_after),
            der=der,
            sha256=_sha(der),
            created_at=utc_text(self.clock()),
            created_by=self.operator,
            revoked_at=None,
            revocation_reason=None,
        )
        details = {
            "serial": serial,
            "subject": stored.subject,
            "issuer": stored.issuer,
            "profile": profile.name,
            "not_after": stored.not_after,
            "sha256": stored.sha256,
            "subject_key": subject_key_id,
            "lint_warnings": [str(f) for f in findings],
        }
        self.use.write_recorded(
            issuer,
            "cert.issue",
            details,
            target,
            overwrite,
            lambda out: out.write(to_pem(der, "CERTIFICATE")),
            within=lambda: self.repo.insert(stored),
            operators=who,
        )
        return Issued(der, target, findings, serial=serial)

    # --- revocation ------------------------------------------------------------------------

    def revoke(self, serial: str, reason: str, when: datetime | None = None) -> StoredCertificate:
        """Mark a certificate issued here revoked (RFC 5280 reason code); recorded."""
        assert_core_thread()
        serial = serial.lower().removeprefix("0x").replace(":", "").lstrip("0") or "0"
        cert = self.repo.get(serial)
        if cert is None:
            raise NotFoundError(f"No certificate with serial {serial} was issued here.")
        if reason not in REASONS:
            raise ValidationError(
                f"Unknown reason '{reason}'. Choose one of: {', '.join(REASONS)}."
            )
        if cert.revoked_at is not None:
            raise ValidationError(f"Certificate {serial} was revoked at {cert.revoked_at}.")
        moment = when or self.clock()
        issuer = self.keys.resolve(cert.issuer_key_id)
        with self.db.transaction():
            self.repo.revoke(serial, moment, reason)
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="cert.revoke",
                subject=f"key:{issuer.id}",
                outcome=Outcome.SUCCESS,
                details={
                    "serial": serial,
                    "reason": reason,
                    "date": utc_text(moment),
                    "subject": cert.subject,
                },
            )
        return replace(cert, revoked_at=utc_text(moment), revocation_reason=reason)

    def revocable_for(self, key_id: str) -> list[StoredCertificate]:
        """Unrevoked certificates issued here whose subject key is ``key_id``."""
        return [c for c in self.repo.listing(key_id) if c.key_id == key_id and c.revoked_at is None]

    def revoke_key_certificates(
        self, key_id: str, operators: tuple[str, ...] | None = None
    ) -> list[StoredCertificate]:
        """After a key was marked compromised: revoke every unrevoked certificate issued here
        for it (reason key_compromise), all in one transaction, one ``cert.revoke`` entry each
        (``trigger``: key compromised). Only a COMPROMISED key's certificates are revoked so;
        the CRLs of their issuers must then be issued again (the result says which)."""
        assert_core_thread()
        key = self.keys.resolve(key_id)
        if key.state.value not in ("COMPROMISED", "DESTROYED_COMPROMISED"):
            raise ValidationError(
                f"Key '{key.name}' is {key.state.value}; its certificates are revoked here only "
                "once it is marked compromised (or revoke each with 'certs revoke')."
            )
        moment = self.clock()
        found = self.revocable_for(key.id)
        with self.db.transaction():
            for cert in found:
                self.repo.revoke(cert.serial, moment, "key_compromise")
                record(
                    self.db,
                    when=moment,
                    operators=operators or (self.operator,),
                    action="cert.revoke",
                    subject=f"key:{cert.issuer_key_id}",
                    outcome=Outcome.SUCCESS,
                    details={
                        "serial": cert.serial,
                        "reason": "key_compromise",
                        "date": utc_text(moment),
                        "subject": cert.subject,
                        "trigger": f"key {key.id} marked compromised",
                    },
                )
        return [
            replace(c, revoked_at=utc_text(moment), revocation_reason="key_compromise")
            for c in found
        ]

    def issue_crl(
        self, issuer_ref: str, target: Path, *, days: int = 30, overwrite: bool = False
    ) -> Issued:
        """A v2 CRL of everything this CA key revoked, number one above the last, signed on
        the token, verified and linted, stored and written as PEM."""
        assert_core_thread()
        issuer = self.keys.resolve(issuer_ref)
        ca = self.repo.ca_certificate(issuer.id)
        if ca is None:
            self._deny(
                issuer,
                "cert.crl",
                RULE_NOT_CA,
                f"Key '{issuer.name}' has no CA certificate made here; it cannot sign a CRL",
            )
        if not 1 <= days <= 366:
            raise ValidationError("A CRL's nextUpdate must be 1 to 366 days ahead.")
        check_target(target, overwrite)
        ca_cert = x509.load_der_x509_certificate(ca.der)
        from asn1crypto import x509 as asn1_x509

        number = self.repo.last_crl_number(issuer.id) + 1
        now = self.clock()
        entries = [
            build.RevokedEntry(
                int(c.serial, 16),
                _parse_utc(c.revoked_at or ""),
                c.revocation_reason or "unspecified",
            )
            for c in self.repo.revoked_by(issuer.id)
        ]
        choice, sign = self._signer(issuer)
        who = self.approvals.obtain(
            "cert.crl",
            f"key:{issuer.id}",
            {
                "issuer": issuer.name,
                "number": number,
                "revoked": len(entries),
                "days": days,
                "output": target.name,
            },
        )
        tbs = build.crl_tbs(
            asn1_x509.Name.load(ca_cert.subject.public_bytes()),
            build.key_identifier(self._spki(issuer)),
            number,
            now,
            now + timedelta(days=days),
            entries,
            choice,
        )
        der = self._attempt(
            issuer, "cert.crl", lambda: build.assemble_crl(tbs, choice, sign(tbs.dump()))
        )
        crl = x509.load_der_x509_crl(der)
        if not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
            raise KeysteadError("The CRL made on the token does not verify; not written.")
        findings = self._lint(issuer, "cert.crl", lint_crl(der), "CRL")
        stored = StoredCrl(
            issuer.id,
            number,
            utc_text(now),
            utc_text(now + timedelta(days=days)),
            der,
            _sha(der),
            utc_text(now),
            self.operator,
        )
        details = {
            "number": number,
            "revoked": len(entries),
            "sha256": stored.sha256,
            "next_update": stored.next_update,
            "lint_warnings": [str(f) for f in findings],
        }
        self.use.write_recorded(
            issuer,
            "cert.crl",
            details,
            target,
            overwrite,
            lambda out: out.write(to_pem(der, "X509 CRL")),
            within=lambda: self.repo.insert_crl(stored),
            operators=who,
        )
        return Issued(der, target, findings, number=number)

    def export(
        self, serial: str, der_format: bool, target: Path, *, overwrite: bool = False
    ) -> tuple[StoredCertificate, bytes]:
        """Write a certificate issued here to ``target`` as PEM (RFC 7468) or DER; recorded as
        ``cert.export`` against its issuer key with the output's SHA-256. NotFoundError for a
        serial not issued here; an existing ``target`` is kept unless ``overwrite``."""
        assert_core_thread()
        serial = serial.lower().removeprefix("0x").replace(":", "").lstrip("0") or "0"
        cert = self.repo.get(serial)
        if cert is None:
            raise NotFoundError(f"No certificate with serial {serial} was issued here.")
        check_target(target, overwrite)
        data = cert.der if der_format else to_pem(cert.der, "CERTIFICATE")
        issuer = self.keys.resolve(cert.issuer_key_id)
        details: dict[str, Any] = {
            "serial": cert.serial,
            "format": "der" if der_format else "pem",
            "certificate_sha256": cert.sha256,
        }
        self.use.write_recorded(
            issuer, "cert.export", details, target, overwrite, lambda out: out.write(data)
        )
        return cert, data

    def listing(self, key_ref: str | None = None) -> list[StoredCertificate]:
        key_id = self.keys.resolve(key_ref).id if key_ref else None
        return self.repo.listing(key_id)

    # --- shared ----------------------------------------------------------------------------

    def _attempt(self, key: KeyRecord, action: str, make: Callable[[], bytes]) -> bytes:
        try:
            return make()
        except KeysteadError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action=action,
                subject=f"key:{key.id}",
                outcome=failure_outcome(exc),
                details={"error": exc.message},
            )
            raise

    def _lint(
        self, key: KeyRecord, action: str, findings: list[Finding], what: str
    ) -> list[Finding]:
        try:
            return refuse_on_errors(findings, what)
        except ValidationError as exc:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action=action,
                subject=f"key:{key.id}",
                outcome=Outcome.FAILED,
                details={"error": exc.message, "lint": [str(f) for f in findings]},
            )
            raise

    def _deny(self, key: KeyRecord, action: str, rule: str, text: str) -> NoReturn:
        error = PolicyError(f"{text}. Nothing was signed.", rule)
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=action,
            subject=f"key:{key.id}",
            outcome=Outcome.DENIED,
            details={"rule": rule, "error": error.message},
        )
        raise error


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def issuing_profile(
    name: str, days: int, *, self_signed: bool, path: Path = PROFILE_FILE
) -> Profile:
    """The certificate profile ``name`` for a self-signed certificate (``self_signed``) or one
    issued for a CSR, with a validity of ``days`` it allows. ValidationError otherwise. The one
    rule ``certs self-sign``/``sign-csr`` and a ceremony script's validation apply."""
    profile = profile_named(name, path)
    if self_signed and not profile.self_signed:
        raise ValidationError(
            f"Profile '{profile.name}' is for certificates issued by a CA; use sign-csr."
        )
    if not self_signed and profile.self_signed:
        raise ValidationError(f"Profile '{profile.name}' is for self-signed certificates.")
    if not 1 <= days <= profile.max_days:
        raise ValidationError(
            f"Profile '{profile.name}' allows 1 to {profile.max_days} days; {days} asked."
        )
    return profile


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _load_csr(path: Path) -> x509.CertificateSigningRequest:
    data = read_regular(path, "certificate request", MAX_CSR_BYTES)
    try:
        request = (
            x509.load_pem_x509_csr(data) if b"-----BEGIN" in data else x509.load_der_x509_csr(data)
        )
    except ValueError as exc:
        raise ValidationError(f"'{path.name}' is not a PKCS#10 certificate request.") from exc
    try:
        valid = request.is_signature_valid
    except Exception as exc:  # unsupported signature algorithms raise here
        raise ValidationError(
            f"The request in '{path.name}' uses a signature algorithm Keystead does not accept."
        ) from exc
    if not valid:
        raise ValidationError(
            f"The request in '{path.name}' has a bad signature: it was changed after signing, or "
            "its signer does not hold the key it names. Nothing was issued."
        )
    return request


def _check_public_key(public: Any) -> None:
    """Refuse keys too weak or of a kind Keystead does not certify."""
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise ValidationError(
                f"The request's RSA key has {public.key_size} bits; at least 2048 are required."
            )
        return
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in ("secp256r1", "secp384r1"):
            raise ValidationError(
                f"The request's curve {public.curve.name} is not accepted; use P-256 or P-384."
            )
        return
    if isinstance(public, ed25519.Ed25519PublicKey):
        return
    raise ValidationError("The request's key type is not accepted (RSA, EC P-256/P-384, Ed25519).")
