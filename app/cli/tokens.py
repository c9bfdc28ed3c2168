"""``keystead tokens …`` and ``keystead modules …``: token listing, initialisation, PINs,
embedded tokens and the PKCS#11 modules of the workstation."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.secrets import (
    ENV_AUDIT_PIN,
    ENV_PIN,
    interactive,
    new_token_pins,
    require_secret,
)
from app.domain.names import validate_token_label
from app.errors import (
    TokenNotLoggedIn,
    ValidationError,
)
from app.services.prompter import SecretKind

if TYPE_CHECKING:  # imported where used, so the parser (and --help) stays light
    from app.services.workstation import Workstation

from app.cli.session import (
    _login,
    _login_all_optional,
    _login_audit_token,
    _with_workstation,
)


def register_tokens(sub: Any) -> None:
    """Add the ``tokens`` command group to the top-level subparsers ``sub``."""
    tokens = sub.add_parser("tokens", help="tokens present").add_subparsers(
        dest="action", required=True
    )
    tokens.add_parser("list", help="tokens present, flags, objects, login").set_defaults(
        run=cmd_tokens_list
    )
    show_token = tokens.add_parser("show", help="one token: details, mechanisms, capabilities")
    show_token.add_argument("token", help="label or serial")
    show_token.add_argument("--probe", action="store_true", help="run the capability probe again")
    show_token.set_defaults(run=cmd_tokens_show)
    init_token = tokens.add_parser("init", help="erase a token and give it a new label (SO PIN)")
    init_token.add_argument("token", help="label or serial")
    init_token.add_argument("--label", required=True, help="the new label")
    init_token.add_argument(
        "--confirm", metavar="LABEL", help="the current label, typed again (asked if missing)"
    )
    init_token.set_defaults(run=cmd_tokens_init)
    tokens.add_parser("blank", help="blank (uninitialised) slots of every module").set_defaults(
        run=cmd_tokens_blank
    )
    init_blank = tokens.add_parser(
        "init-blank", help="initialise a blank slot of any module (new SO and user PIN)"
    )
    init_blank.add_argument("--module", required=True, help="the module's library path")
    init_blank.add_argument("--slot", required=True, type=int, help="slot id from `tokens blank`")
    init_blank.add_argument("--label", required=True, help="the new token's label")
    init_blank.add_argument(
        "--confirm", metavar="LABEL", help="the new label, typed again (asked if missing)"
    )
    init_blank.set_defaults(run=cmd_tokens_init_blank)
    for name, helptext in (
        ("init-pin", "set or reset the user PIN as security officer (unblocks it)"),
        ("change-pin", "change the user PIN"),
        ("change-so-pin", "change the SO PIN"),
    ):
        command = tokens.add_parser(name, help=helptext)
        command.add_argument("token", help="label or serial")
        command.set_defaults(run=cmd_tokens_pin, pin_action=name)
    soft = tokens.add_parser("create-soft", help="create another embedded SoftHSM token")
    soft.add_argument("--label", required=True)
    soft.set_defaults(run=cmd_tokens_create_soft)


def register_modules(sub: Any) -> None:
    """Add the ``modules`` command group to the top-level subparsers ``sub``."""
    modules = sub.add_parser("modules", help="PKCS#11 modules").add_subparsers(
        dest="action", required=True
    )
    modules.add_parser("list", help="list configured modules").set_defaults(run=cmd_modules_list)
    add = modules.add_parser("add", help="load a PKCS#11 module by path and remember it")
    add.add_argument("path")
    add.set_defaults(run=cmd_modules_add)
    remove = modules.add_parser("remove", help="stop using a module (its keys stay recorded)")
    remove.add_argument("path")
    remove.set_defaults(run=cmd_modules_remove)
    modules.add_parser(
        "offered", help="modules registered with p11-kit that are not configured"
    ).set_defaults(run=cmd_modules_offered)


def cmd_tokens_list(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        _login_all_optional(ws)
        rows = []
        for status in ws.tokens.statuses():
            if status.ambiguous:  # listed, never acted on: it cannot be told from another
                rows.append({**output.token_dict(status), "objects": None})
                continue
            view = ws.inspect.view(status.info.serial)
            rows.append({**output.token_dict(status), "objects": view.objects})
        return rows

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        for row in rows:
            row["flags_text"] = ", ".join(row["flags"])
            row["login"] = "logged in" if row["logged_in"] else "-"
            if row["ambiguous"]:
                row["login"] = "AMBIGUOUS: another token has this identity"
            row["objects_text"] = "?" if row["objects"] is None else row["objects"]
        output.print_table(
            rows,
            [
                ("label", "LABEL"),
                ("serial", "SERIAL"),
                ("model", "MODEL"),
                ("login", "LOGIN"),
                ("objects_text", "OBJECTS"),
                ("flags_text", "FLAGS"),
            ],
        )
    return 0


def cmd_tokens_show(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        _login(ws, args.token, optional=True)
        capabilities = None
        try:
            capabilities = ws.inspect.capabilities(args.token, refresh=args.probe)
        except TokenNotLoggedIn:
            capabilities = None
        view = ws.inspect.view(args.token)
        return output.token_view_dict(view, ws.inspect.mechanisms(args.token), capabilities)

    shown = _with_workstation(args, body)
    if args.json:
        output.print_json(shown)
    else:
        output.print_token_view(shown)
    return 0


def cmd_tokens_init(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False, names=args.token)  # so the change is sealed
        info = ws.tokens.find(args.token)
        ws.approvals.check_initiator("token.init", info.serial)  # the role, before any prompt
        confirm = args.confirm
        if confirm is None:
            if not interactive():
                raise ValidationError(
                    f"Confirm with --confirm '{info.label}' (the token's current label)."
                )
            impact = ws.admin.init_impact(info.serial)
            if impact.refusal is not None:
                raise impact.refusal
            print(output.init_impact_text(impact), file=sys.stderr)
            confirm = input(f"Type the token's label '{info.label}' to erase it: ")
        so_pin = require_secret(SecretKind.SO_PIN, f"SO PIN of token '{info.label}'")
        return ws.admin.init_token(info.serial, confirm, args.label, so_pin)

    created = _with_workstation(args, body)
    if args.json:
        output.print_json({"label": created.label, "serial": created.serial})
    else:
        print(
            f"Token {created.serial} initialised as '{created.label}'. Set its user PIN next: "
            f"keystead tokens init-pin {created.serial}"
        )
    return 0


def cmd_tokens_blank(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        return [
            {
                "module": t.module_path,
                "slot": t.slot_id,
                "slot_description": t.slot_description,
                "manufacturer": t.manufacturer,
                "model": t.model,
            }
            for t in ws.tokens.blank_slots()
        ]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    elif not rows:
        print("No module offers a blank slot.")
    else:
        for row in rows:
            print(
                f"{row['module']} slot {row['slot']}: blank ({row['manufacturer']} {row['model']})"
            )
    return 0


def cmd_tokens_init_blank(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> Any:
        ws.admin.blank_slot(args.module, args.slot, args.label)  # before any prompt
        _login_audit_token(ws, required=False)  # so the change is sealed
        confirm = args.confirm
        if confirm is None:
            if not interactive():
                raise ValidationError(f"Confirm with --confirm '{args.label}' (the new label).")
            confirm = input(f"Type the new label '{args.label}' again to initialise the slot: ")
        # The token this command creates: KEYSTEAD_SO_PIN / KEYSTEAD_PIN, as create-soft.
        pin, so_pin = new_token_pins(args.label)
        return ws.admin.init_blank(args.module, args.slot, args.label, confirm, so_pin, pin)

    created = _with_workstation(args, body)
    if args.json:
        output.print_json({"label": created.label, "serial": created.serial})
    else:
        print(f"Slot initialised as token '{created.label}' (identity {created.serial}).")
    return 0


def cmd_tokens_pin(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> str:
        _login_audit_token(ws, required=False, names=args.token)  # so the change is sealed
        info = ws.tokens.find(args.token)
        ws.approvals.check_initiator(f"token.{args.pin_action}", info.serial)
        if args.pin_action == "init-pin":
            so_pin = require_secret(SecretKind.SO_PIN, f"SO PIN of token '{info.label}'")
            new = require_secret(SecretKind.NEW_USER_PIN, "New user PIN", confirm=True)
            ws.admin.init_pin(info.serial, so_pin, new)
            return f"User PIN of token '{info.label}' set by the security officer."
        if args.pin_action == "change-pin":
            old = require_secret(SecretKind.USER_PIN, f"Current user PIN of '{info.label}'")
            new = require_secret(SecretKind.NEW_USER_PIN, "New user PIN", confirm=True)
            ws.admin.change_pin(info.serial, old, new)
            return f"User PIN of token '{info.label}' changed."
        old = require_secret(SecretKind.SO_PIN, f"Current SO PIN of '{info.label}'")
        new = require_secret(SecretKind.NEW_SO_PIN, "New SO PIN", confirm=True)
        ws.admin.change_so_pin(info.serial, old, new)
        return f"SO PIN of token '{info.label}' changed."

    print(_with_workstation(args, body))
    return 0


def cmd_tokens_create_soft(args: argparse.Namespace) -> int:
    validate_token_label(args.label)  # before any PIN is asked for

    def body(ws: Workstation) -> Any:
        ws.approvals.check_initiator("token.create-soft", f"token:{args.label}")
        # One rule for PINs (README): KEYSTEAD_PIN / KEYSTEAD_SO_PIN are the PINs of the token
        # a command names or creates (here the new token, as at ``init --soft-token``); the
        # audit token's PIN then comes from KEYSTEAD_AUDIT_PIN only, so the new token's PIN
        # is never tried on it.
        pin, so_pin = new_token_pins(args.label)
        if os.environ.get(ENV_AUDIT_PIN) is not None or (
            interactive() and os.environ.get(ENV_PIN) is None
        ):
            _login_audit_token(ws, required=False)  # so the change is sealed
        return ws.tokens.create_soft_token(args.label, so_pin, pin)

    created = _with_workstation(args, body)
    if args.json:
        output.print_json({"label": created.label, "serial": created.serial})
    else:
        print(f"Created embedded token '{created.label}' (serial {created.serial}).")
    return 0


def cmd_modules_list(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        rows = []
        for path, embedded in ws.settings.modules():
            module = ws.tokens.modules.get(path)
            info = module.info() if module else None
            rows.append(
                {
                    "path": path,
                    "embedded": embedded,
                    "description": info.description if info else "",
                    "manufacturer": info.manufacturer if info else "",
                    "cryptoki": info.cryptoki_version if info else "",
                    "error": ws.tokens.module_errors.get(path),
                }
            )
        return rows

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [
                ("path", "PATH"),
                ("description", "DESCRIPTION"),
                ("cryptoki", "CRYPTOKI"),
                ("error", "ERROR"),
            ],
        )
    return 0


def cmd_modules_add(args: argparse.Namespace) -> int:
    info = _with_workstation(args, lambda ws: ws.tokens.add_module(args.path).info())
    if args.json:
        output.print_json(info.__dict__)
    else:
        print(f"Added {info.path}: {info.description} ({info.manufacturer}).")
    return 0


def cmd_modules_remove(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> None:
        _login_audit_token(ws, required=False)
        ws.tokens.remove_module(args.path)

    _with_workstation(args, body)
    print(f"Removed {args.path}; keys on its tokens stay recorded.")
    return 0


def cmd_modules_offered(args: argparse.Namespace) -> int:
    rows = [
        {"name": m.name, "path": m.path, "config": m.config_file, "exists": m.exists}
        for m in _with_workstation(args, lambda ws: ws.inspect.offered_modules())
    ]
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(rows, [("name", "NAME"), ("path", "PATH"), ("exists", "INSTALLED")])
    return 0
