"""``keystead certs …`` (requests, certificates, revocation, CRLs) and
``keystead keys export-public``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.args import add_output, on_key
from app.domain.public_formats import PublicFormat, parse_format
from app.pki.reasons import REASONS

if TYPE_CHECKING:
    from app.services.workstation import Workstation
    from app.storage.certificates import StoredCertificate


def _shown(text: str) -> str:
    """Text from a certificate, safe on a terminal: control and format characters escaped."""
    import unicodedata

    return "".join(
        c if c.isprintable() and unicodedata.category(c) != "Cf" else f"\\u{ord(c):04x}"
        for c in text
    )


def register(sub: Any, keys: Any) -> None:
    """Add ``certs`` to the top-level subparsers and ``export-public`` to ``keys``."""
    export = keys.add_parser(
        "export-public", help="the public key as PEM, DER, OpenSSH or JWK, with its fingerprint"
    )
    export.add_argument("key")
    export.add_argument("--format", default="pem", type=parse_format, help="pem|der|ssh|jwk")
    add_output(export, required=False, help_text="file to write (default: standard output)")
    export.set_defaults(run=cmd_export_public)

    certs = sub.add_parser("certs", help="certificates and CRLs from token keys").add_subparsers(
        dest="action", required=True
    )
    csr = certs.add_parser("csr", help="a PKCS#10 request signed by the key on the token")
    csr.add_argument("key")
    csr.add_argument("--subject", required=True, help="RFC 4514 DN, e.g. 'CN=Root,O=Org,C=DE'")
    add_output(csr)
    csr.set_defaults(run=cmd_csr)

    self_sign = certs.add_parser("self-sign", help="a self-signed (root CA) certificate")
    self_sign.add_argument("key")
    self_sign.add_argument("--profile", default="root-ca")
    self_sign.add_argument("--subject", required=True)
    self_sign.add_argument("--days", type=int, required=True)
    add_output(self_sign)
    self_sign.set_defaults(run=cmd_self_sign)

    sign_csr = certs.add_parser("sign-csr", help="issue a certificate for a request (CA key)")
    sign_csr.add_argument("issuer_key")
    sign_csr.add_argument("--csr", required=True, type=Path)
    sign_csr.add_argument("--profile", required=True)
    sign_csr.add_argument("--days", type=int, required=True)
    add_output(sign_csr)
    sign_csr.set_defaults(run=cmd_sign_csr)

    listing = certs.add_parser("list", help="certificates issued here")
    listing.add_argument("--key")
    listing.set_defaults(run=cmd_list)

    export_cert = certs.add_parser("export", help="a certificate issued here, as PEM or DER")
    export_cert.add_argument("serial", help="hexadecimal serial number (certs list)")
    export_cert.add_argument("--format", default="pem", choices=("pem", "der"))
    add_output(export_cert)
    export_cert.set_defaults(run=cmd_export_certificate)

    revoke = certs.add_parser("revoke", help="revoke a certificate issued here")
    revoke.add_argument("serial", help="hexadecimal serial number")
    revoke.add_argument("--reason", required=True, choices=REASONS)
    revoke.set_defaults(run=cmd_revoke)

    crl = certs.add_parser("crl", help="issue the next CRL of a CA key")
    crl.add_argument("issuer_key")
    crl.add_argument("--days", type=int, default=30, help="nextUpdate, days ahead (default 30)")
    add_output(crl)
    crl.set_defaults(run=cmd_crl)


def _signing(args: argparse.Namespace, key_ref: str, action: Any) -> Any:
    return on_key(args, key_ref, lambda ws, key: action(ws, key.id))


def _report(args: argparse.Namespace, issued: Any, what: str) -> int:
    row = {
        "output": str(issued.output),
        "serial": issued.serial,
        "number": issued.number,
        "lint": [str(f) for f in issued.findings],
    }
    if args.json:
        output.print_json(row)
    else:
        extra = f" serial {issued.serial}" if issued.serial else ""
        extra += f" number {issued.number}" if issued.number else ""
        print(f"Wrote {what}{extra} to '{issued.output}'.")
        for finding in issued.findings:
            print(f"  pkilint: {finding}")
    return 0


def cmd_csr(args: argparse.Namespace) -> int:
    from app.pki.build import parse_name

    parse_name(args.subject)  # a bad subject is refused before any PIN is asked
    issued = _signing(
        args,
        args.key,
        lambda ws, key_id: ws.certs.csr(key_id, args.subject, args.out, overwrite=args.overwrite),
    )
    return _report(args, issued, "certificate request")


def cmd_self_sign(args: argparse.Namespace) -> int:
    from app.pki.build import parse_name

    parse_name(args.subject)  # a bad subject is refused before any PIN is asked
    issued = _signing(
        args,
        args.key,
        lambda ws, key_id: ws.certs.self_sign(
            key_id, args.profile, args.subject, args.days, args.out, overwrite=args.overwrite
        ),
    )
    return _report(args, issued, "self-signed certificate")


def cmd_sign_csr(args: argparse.Namespace) -> int:
    issued = _signing(
        args,
        args.issuer_key,
        lambda ws, key_id: ws.certs.sign_csr(
            key_id, args.csr, args.profile, args.days, args.out, overwrite=args.overwrite
        ),
    )
    return _report(args, issued, "certificate")


def cmd_crl(args: argparse.Namespace) -> int:
    issued = _signing(
        args,
        args.issuer_key,
        lambda ws, key_id: ws.certs.issue_crl(
            key_id, args.out, days=args.days, overwrite=args.overwrite
        ),
    )
    return _report(args, issued, "CRL")


def _cert_dict(cert: StoredCertificate) -> dict[str, Any]:
    return {
        "serial": cert.serial,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "profile": cert.profile,
        "ca": cert.ca,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "key_id": cert.key_id,
        "issuer_key_id": cert.issuer_key_id,
        "sha256": cert.sha256,
        "revoked_at": cert.revoked_at,
        "revocation_reason": cert.revocation_reason,
    }


def cmd_list(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation

    rows = [_cert_dict(c) for c in _with_workstation(args, lambda ws: ws.certs.listing(args.key))]
    if args.json:
        output.print_json(rows)
        return 0
    for row in rows:
        state = (
            f"revoked {row['revoked_at']} ({row['revocation_reason']})"
            if row["revoked_at"]
            else "valid"
        )
        print(
            f"{row['serial']}  {_shown(row['subject'])}  {row['profile']}  "
            f"until {row['not_after']}  {state}"
        )
    return 0


def cmd_export_certificate(args: argparse.Namespace) -> int:
    from app.cli.session import _login_audit_token, _with_workstation

    def body(ws: Workstation) -> tuple[StoredCertificate, bytes]:
        _login_audit_token(ws, required=False)
        exported: tuple[StoredCertificate, bytes] = ws.certs.export(
            args.serial, args.format == "der", args.out, overwrite=args.overwrite
        )
        return exported

    cert, _data = _with_workstation(args, body)
    if args.json:
        output.print_json({**_cert_dict(cert), "output": str(args.out), "format": args.format})
    else:
        print(
            f"Wrote certificate {cert.serial} ({_shown(cert.subject)}) as "
            f"{args.format.upper()} to '{args.out}'. SHA-256 of the certificate: {cert.sha256}"
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from app.cli.session import _login_audit_token, _with_workstation

    def body(ws: Workstation) -> StoredCertificate:
        _login_audit_token(ws, required=False)
        return ws.certs.revoke(args.serial, args.reason)

    cert = _with_workstation(args, body)
    if args.json:
        output.print_json(_cert_dict(cert))
    else:
        print(
            f"Revoked certificate {cert.serial} ({_shown(cert.subject)}) as "
            f"{cert.revocation_reason}; issue a CRL to publish it."
        )
    return 0


def cmd_export_public(args: argparse.Namespace) -> int:
    from app.cli.session import _login_audit_token, _with_workstation

    fmt: PublicFormat = args.format
    if args.out is None and fmt is PublicFormat.DER:
        from app.errors import ValidationError

        raise ValidationError("DER is binary; give --out FILE.")

    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False)
        return ws.use.export_public(args.key, fmt, args.out, overwrite=args.overwrite)

    exported = _with_workstation(args, body)
    if args.json:
        output.print_json(
            {
                "key_id": exported.key_id,
                "format": fmt.value,
                "fingerprint_sha256": exported.fingerprint,
                "words": exported.words,
                "output": str(exported.output) if exported.output else None,
                "data": None if fmt is PublicFormat.DER else exported.data.decode(),
            }
        )
        return 0
    if args.out is None:
        sys.stdout.write(exported.data.decode("ascii"))  # PEM, OpenSSH, JWK: ASCII text
        sys.stdout.flush()
        return 0
    print(f"Wrote the public key of '{exported.key_name}' ({fmt.value}) to '{args.out}'.")
    print(f"SHA-256 of the SubjectPublicKeyInfo: {exported.fingerprint}")
    print("Read aloud: " + " ".join(exported.words))
    return 0
