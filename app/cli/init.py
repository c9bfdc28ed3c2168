"""``keystead init``: create the workstation, its first security officer and its audit token."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli import output
from app.cli.secrets import ask_operator, new_token_pins, require_secret
from app.cli.session import NEXT_STEP_WITHOUT_AUDIT
from app.domain.names import validate_token_label
from app.errors import ValidationError, WorkstationExists
from app.services.prompter import SecretKind


def register(sub: Any) -> None:
    """Add the ``init`` command to the top-level subparsers ``sub``."""
    init = sub.add_parser("init", help="create the workstation and its first security officer")
    init.add_argument(
        "--operator", dest="init_operator", help="first security officer (or KEYSTEAD_OPERATOR)"
    )
    init.add_argument(
        "--soft-token",
        metavar="LABEL",
        help="create an embedded SoftHSM token to hold the audit keys (this or --audit-token)",
    )
    init.add_argument(
        "--audit-token",
        metavar="TOKEN",
        help="a present token (label or serial) to hold the audit keys instead; needs --module",
    )
    init.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="PATH",
        help="a PKCS#11 library to add (repeatable); the --audit-token is looked for there",
    )
    init.set_defaults(run=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    operator = ask_operator(args.init_operator or args.operator)
    if args.home_dir.exists():
        raise WorkstationExists(
            f"A workstation already exists in {args.home_dir.root}; unlock it instead. "
            "Nothing was changed."
        )
    if not args.soft_token and not args.audit_token:
        # As the GUI's first-start dialog: a workstation without an audit token could record
        # nothing (every sealed entry would be refused), so it is not created at all.
        raise ValidationError(NO_AUDIT_TOKEN_AT_INIT)
    passphrase = require_secret(
        SecretKind.PASSPHRASE, f"New passphrase for {operator}", confirm=True
    )
    from app.services.workstation import AuditTokenChoice, SoftTokenRequest, Workstation

    soft: SoftTokenRequest | None = None
    if args.soft_token is not None:
        validate_token_label(args.soft_token)
    if args.soft_token:
        pin, so_pin = new_token_pins(args.soft_token)
        soft = SoftTokenRequest(args.soft_token, so_pin, pin)
    audit: AuditTokenChoice | None = None
    if args.audit_token:
        if soft is not None:
            raise ValidationError("Give --soft-token or --audit-token, not both.")
        audit_pin = require_secret(
            SecretKind.AUDIT_PIN, f"User PIN for token '{args.audit_token}' (audit token)"
        )
        audit = AuditTokenChoice(args.audit_token, audit_pin, tuple(args.module))
    elif args.module:
        raise ValidationError("--module is for the --audit-token's library; add others later.")
    ws = Workstation.initialize(
        args.home_dir,
        operator,
        passphrase,
        passphrase,
        soft,
        audit_token=audit,
        wait=args.wait,
        program="keystead",
    )
    try:
        result: dict[str, Any] = {
            "home": str(ws.home.root),
            "operator": ws.operator,
            "tokens": [output.token_dict(s) for s in ws.tokens.statuses()],
            "audit_token": ws.audit.token_serial,
        }
        if result["audit_token"] is None:
            result["next_step"] = NEXT_STEP_WITHOUT_AUDIT
    finally:
        ws.lock()
    if args.json:
        output.print_json(result)
    else:
        print(f"Workstation created in {result['home']} for security officer {operator}.")
        for token in result["tokens"]:
            print(f"Token '{token['label']}' (serial {token['serial']}) is ready.")
        if result["audit_token"] is None:
            print(NEXT_STEP_WITHOUT_AUDIT)
    return 0


NO_AUDIT_TOKEN_AT_INIT = (
    "A workstation needs an audit token to seal its audit log: give --soft-token LABEL (an "  # noqa: S105
    "embedded SoftHSM token, PINs from the terminal or KEYSTEAD_PIN/KEYSTEAD_SO_PIN) or "
    "--audit-token TOKEN --module PATH (a present hardware token). Nothing was created."
)
