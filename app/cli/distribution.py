"""``keystead keys wrap-for|import-wrapped|import-public``: moving keys between HSMs and taking
in public keys, under dual control (``DistributionService``; format in docs/key-transfer.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.args import add_input, add_output, on_key
from app.cli.secrets import interactive, require_secret
from app.errors import OperationCancelled, ValidationError
from app.services.prompter import SecretKind

if TYPE_CHECKING:  # the parser stays light (tests/e2e/test_startup.py)
    from app.domain.keys import KeyRecord
    from app.services.workstation import Workstation
    from app.storage.distributions import Distribution


def register(keys: Any) -> None:
    """Add the distribution commands to the ``keys`` subparsers."""
    wrap = keys.add_parser(
        "wrap-for",
        help="wrap a secret key for another HSM into a transfer file (dual control)",
    )
    wrap.add_argument("key")
    how = wrap.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--recipient",
        type=Path,
        help="the recipient HSM's RSA public key or certificate (PEM/DER, >= 2048 bits): "
        "RSA-OAEP with SHA-1 (needs the token's SO PIN: KEYSTEAD_SO_PIN)",
    )
    how.add_argument(
        "--kek",
        help="a managed AES key-wrapping key both HSMs hold (AES key wrap, RFC 5649); compare "
        "its KCV with the recipient first",
    )
    add_output(wrap, help_text="the transfer file to write")
    wrap.set_defaults(run=cmd_wrap_for)

    unwrap = keys.add_parser(
        "import-wrapped",
        help="import a key from a transfer file made for this token (dual control, PRE_ACTIVE)",
    )
    unwrap.add_argument("--token", required=True)
    add_input(unwrap, "the transfer file")
    unwrap.add_argument("--name", required=True)
    unwrap.add_argument(
        "--unwrapping-key",
        help="the key-wrapping key the file was made for (default: found by the file's recipient)",
    )
    unwrap.add_argument(
        "--expect-kcv", help="the KCV the sender read out; anything else is refused"
    )
    unwrap.add_argument(
        "--expect-purpose",
        metavar="PURPOSE",
        help="the purpose the sender read out (asked at a terminal if missing; required "
        "otherwise): the file's purpose is covered by no check value",
    )
    unwrap.add_argument(
        "--backup-able",
        action="store_true",
        help="keep the imported key extractable by a trusted KEK (for backups)",
    )
    unwrap.set_defaults(run=cmd_import_wrapped)

    public = keys.add_parser(
        "import-public",
        help="import a public key or certificate as a verify-only key (dual control, PRE_ACTIVE)",
    )
    add_input(public, "a PEM or DER public key or certificate")
    public.add_argument("--name", required=True)
    public.set_defaults(run=cmd_import_public)


def distribution_rows(items: list[Distribution]) -> list[dict[str, Any]]:
    return [
        {
            "direction": d.direction,
            "mechanism": d.mechanism,
            "recipient": d.recipient,
            "recipient_name": d.recipient_name,
            "kcv": d.kcv,
            "file_sha256": d.file_sha256,
            "operators": list(d.operators),
            "at": d.created_at,
            "audit_seq": d.event_seq,
        }
        for d in items
    ]


def print_distribution(rows: list[dict[str, Any]]) -> None:
    """The distribution record under ``keys show``."""
    if not rows:
        return
    print("distribution:")
    for row in rows:
        how = "sent to" if row["direction"] == "sent" else "received via"
        print(
            f"{'':>4}{row['at']}  {how} {row['recipient_name']} "
            f"[{row['recipient'][:16]}…] by {row['mechanism']}, KCV {row['kcv']}, "
            f"by {', '.join(row['operators'])} (#{row['audit_seq']})"
        )


def cmd_wrap_for(args: argparse.Namespace) -> int:
    def body(ws: Workstation, key: KeyRecord) -> dict[str, Any]:
        so_pin = user_pin = ""
        if args.recipient is not None:
            ws.approvals.check_initiator("key.distribute", f"key:{key.id}")
            so_pin = require_secret(
                SecretKind.SO_PIN, "SO PIN of the key's token (trusts the recipient key once)"
            )
            user_pin = require_secret(SecretKind.USER_PIN, "User PIN of the key's token")
        made = ws.distribution.wrap_for(
            key.id,
            args.out,
            so_pin=so_pin,
            user_pin=user_pin,
            recipient=args.recipient,
            kek_ref=args.kek,
            overwrite=args.overwrite,
        )
        return {
            "key_id": made.key.id,
            "key_name": made.key.name,
            "kcv": made.kcv,
            "purpose": made.key.purpose.value,
            "mechanism": made.mechanism.value,
            "recipient": made.recipient,
            "recipient_name": made.recipient_name,
            "out": str(made.output),
            "file_sha256": made.file_sha256,
            "note": made.note,
            "audit_seq": made.event_seq,
        }

    row = on_key(args, args.key, body)
    if args.json:
        output.print_json(row)
        return 0
    print(
        f"Wrapped key '{row['key_name']}' (KCV {row['kcv']}) for "
        f"{row['recipient_name']} [{row['recipient']}] with {row['mechanism']} "
        f"into '{row['out']}' (SHA-256 {row['file_sha256']}); audit entry #{row['audit_seq']}."
    )
    print(f"Note: {row['note']}")
    print(
        f"Read the KCV {row['kcv']} and the purpose '{row['purpose']}' to the recipient; they "
        f"import with --expect-kcv {row['kcv']} --expect-purpose {row['purpose']}."
    )
    return 0


def _import_row(done: Any) -> dict[str, Any]:
    return {
        **output.key_dict(done.key),
        "identifier_words": done.words,
        "sender_key_id": done.sender_key_id,
        "audit_seq": done.event_seq,
    }


def cmd_import_wrapped(args: argparse.Namespace) -> int:
    from app.cli.session import _login, _login_audit_token, _with_workstation
    from app.domain.algorithms import parse_purpose

    expected = parse_purpose(args.expect_purpose) if args.expect_purpose is not None else None
    if expected is None and interactive():
        expected = _confirm_purpose(args.source)

    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False, names=args.token)
        _login(ws, args.token)
        return _import_row(
            ws.distribution.import_wrapped(
                args.token,
                args.source,
                args.name,
                unwrapping_key=args.unwrapping_key,
                expect_kcv=args.expect_kcv,
                backup_able=args.backup_able,
                expect_purpose=expected,
            )
        )

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
        return 0
    print(
        f"Imported key '{row['name']}' ({row['id']}) onto token "
        f"'{row['token']}' as {row['state']}, KCV {row['kcv']} checked; "
        f"audit entry #{row['audit_seq']}."
    )
    print(f"Read aloud: {' '.join(row['identifier_words'])}")
    return 0


def _confirm_purpose(source: Path) -> Any:
    """At a terminal: show what the file says (key, algorithm, purpose, KCV, sender) and have
    the officer type the purpose the sender read out; the service compares it."""
    from app.domain import transfer
    from app.domain.algorithms import parse_purpose
    from app.storage.files import read_regular

    made = transfer.decode(read_regular(source, "transfer file", transfer.MAX_FILE_BYTES))
    print(
        f"The file holds {made.algorithm.value} key '{made.key_name}' for purpose "
        f"'{made.purpose.value}', KCV {made.kcv}, from {', '.join(made.operators) or '?'}. "
        "The purpose is covered by no check value: compare it with what the sender read out.",
        file=sys.stderr,
    )
    try:
        answer = input("Type the purpose the sender read out: ").strip()
    except (EOFError, KeyboardInterrupt) as exc:
        raise OperationCancelled("No purpose was confirmed; nothing was imported.") from exc
    if not answer:
        raise OperationCancelled("No purpose was confirmed; nothing was imported.")
    return parse_purpose(answer)


def cmd_import_public(args: argparse.Namespace) -> int:
    from app.cli.session import _login_audit_token, _with_workstation

    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False)
        if not args.name.strip():
            raise ValidationError("Give the imported key a --name.")
        return _import_row(ws.distribution.import_public(args.source, args.name))

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
        return 0
    print(
        f"Imported verify-only {row['algorithm']} key '{row['name']}' "
        f"({row['id']}) as {row['state']}; SHA-256 of its SubjectPublicKeyInfo "
        f"{row['fingerprint']}; audit entry #{row['audit_seq']}."
    )
    print(f"Read aloud: {' '.join(row['identifier_words'])}")
    return 0
