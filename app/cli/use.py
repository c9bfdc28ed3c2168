"""``keystead keys sign|verify|encrypt|decrypt``: using a key on files, checked and recorded by
``KeyUseService``."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.args import add_input, add_output, on_key
from app.cli.secrets import interactive
from app.domain.keys import KeyRecord
from app.errors import ValidationError

if TYPE_CHECKING:
    from app.services.key_use import UseResult
    from app.services.workstation import Workstation


def register(keys: Any) -> None:
    """Add the use commands to the ``keys`` subparsers."""
    sign = keys.add_parser("sign", help="detached signature of a file, made on the token")
    sign.add_argument("key")
    add_input(sign)
    add_output(sign)
    sign.add_argument(
        "--mechanism",
        help="RSA-PSS-SHA256|384|512, RSA-PKCS1-SHA256|384|512, ECDSA-SHA256|384|512, ED25519 "
        "(default: RSA-PSS-SHA256, ECDSA with the curve's hash, ED25519)",
    )
    sign.add_argument(
        "--cms",
        action="store_true",
        help="write a CMS (PKCS#7) detached SignedData (DER) with the key's certificate "
        "instead of a raw signature",
    )
    sign.set_defaults(run=cmd_sign)

    verify = keys.add_parser("verify", help="check a detached signature (exit 1 if it fails)")
    verify.add_argument("key")
    add_input(verify)
    verify.add_argument("--sig", required=True, type=Path)
    verify.add_argument("--mechanism")
    verify.set_defaults(run=cmd_verify)

    for name, helptext in (
        ("encrypt", "encrypt a file with AES-GCM inside the token"),
        ("decrypt", "decrypt a Keystead-encrypted file (the key is named in its header)"),
    ):
        command = keys.add_parser(name, help=helptext)
        command.add_argument("key")
        add_input(command)
        add_output(command)
        command.set_defaults(run=cmd_encrypt if name == "encrypt" else cmd_decrypt)


def _run(args: argparse.Namespace, operation: str) -> int:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if interactive() and total >= 16 * 1024 * 1024:
            print(f"\r{done * 100 // max(total, 1):3d} %", end="", file=sys.stderr, flush=True)

    def body(ws: Workstation, key: KeyRecord) -> UseResult:
        if operation == "sign" and args.cms:
            if args.mechanism:
                raise ValidationError("--cms chooses the mechanism from the key's certificate.")
            return ws.use.sign_file_cms(
                key.id,
                args.source,
                args.out,
                overwrite=args.overwrite,
                progress=progress,
                cancel=cancel,
            )
        if operation == "sign":
            return ws.use.sign_file(
                key.id,
                args.source,
                args.out,
                args.mechanism,
                overwrite=args.overwrite,
                progress=progress,
                cancel=cancel,
            )
        if operation == "verify":
            return ws.use.verify_file(
                key.id, args.source, args.sig, args.mechanism, progress=progress, cancel=cancel
            )
        if operation == "encrypt":
            return ws.use.encrypt_file(
                key.id,
                args.source,
                args.out,
                overwrite=args.overwrite,
                progress=progress,
                cancel=cancel,
            )
        return ws.use.decrypt_file(
            key.id,
            args.source,
            args.out,
            overwrite=args.overwrite,
            progress=progress,
            cancel=cancel,
        )

    result: UseResult = on_key(args, args.key, body, token=operation != "verify")
    row = _result_dict(result)
    if args.json:
        output.print_json(row)
    elif operation == "verify":
        print(
            f"Signature OK: '{args.source.name}' signed by key '{result.key_name}' "
            f"({result.mechanism}); recorded as audit entry #{result.event_seq}."
        )
    else:
        print(
            f"{operation.capitalize()}ed '{args.source.name}' with key '{result.key_name}' "
            f"({result.mechanism}) into '{args.out}'; input SHA-256 {result.input_sha256}, "
            f"output SHA-256 {result.output_sha256}; audit entry #{result.event_seq}."
        )
    return 0


def _result_dict(result: UseResult) -> dict[str, Any]:
    return {
        "key_id": result.key_id,
        "key_name": result.key_name,
        "operation": result.operation.value,
        "mechanism": result.mechanism,
        "input_sha256": result.input_sha256,
        "input_bytes": result.input_bytes,
        "output": str(result.output) if result.output else None,
        "output_sha256": result.output_sha256,
        "output_bytes": result.output_bytes,
        "audit_seq": result.event_seq,
    }


def cmd_sign(args: argparse.Namespace) -> int:
    return _run(args, "sign")


def cmd_verify(args: argparse.Namespace) -> int:
    return _run(args, "verify")


def cmd_encrypt(args: argparse.Namespace) -> int:
    return _run(args, "encrypt")


def cmd_decrypt(args: argparse.Namespace) -> int:
    return _run(args, "decrypt")
