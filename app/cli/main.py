"""``keystead`` entry point: parse, run on the core thread, and turn errors into one line.

Start-up cost is what an officer feels on every command: the parser is built from light modules
only (domain enums, the secret prompts, the output helpers), and the service layer (the
workstation, pkcs11, SQLCipher, cryptography, the capability probe) is imported where a command
uses it. ``tests/e2e/test_startup.py`` holds the import boundary. The commands live in one
module per group (``tokens``, ``audit``, ``operators``, ``backup``, …); ``session`` holds the
unlock and login helpers they share."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from app.cli import airgap, backup, ceremony, certs, distribution, operators, output, selftest, use
from app.cli.approvers import refusal_hint
from app.cli.audit import (
    cmd_audit_checkpoint,
    cmd_audit_export,
    cmd_audit_intents,
    cmd_audit_list,
    cmd_audit_verify,
)
from app.cli.secrets import (
    ask_operator,
    interactive,
    require_secret,
)
from app.cli.session import (  # noqa: F401 (re-exported: commands and helpers)
    NEXT_STEP_WITHOUT_AUDIT,
    READ_ONLY_COMMANDS,
    _login,
    _login_all_optional,
    _login_audit_token,
    _login_if_present,
    _unlock,
    _with_workstation,
)
from app.cli.tokens import (
    cmd_modules_add,
    cmd_modules_list,
    cmd_modules_offered,
    cmd_modules_remove,
    cmd_tokens_blank,
    cmd_tokens_create_soft,
    cmd_tokens_init,
    cmd_tokens_init_blank,
    cmd_tokens_list,
    cmd_tokens_pin,
    cmd_tokens_show,
)
from app.domain.algorithms import Algorithm, parse_algorithm, parse_purpose
from app.domain.dates import parse_moment
from app.domain.keys import TokenSync
from app.domain.lifecycle import Action
from app.domain.names import validate_token_label
from app.domain.usage import UsageTally
from app.errors import (
    KeysteadError,
    TokenNotLoggedIn,
    ValidationError,
    WorkstationExists,
)
from app.paths import resolve_home
from app.process import harden_process
from app.services.executor import CoreExecutor
from app.services.prompter import SecretKind

if TYPE_CHECKING:  # imported where used, so the parser (and --help) stays light
    from app.domain.keys import InventoryItem
    from app.services.workstation import AuditTokenChoice, SoftTokenRequest, Workstation

log = logging.getLogger("keystead")


def _version() -> str:
    import importlib.metadata  # ~0.1 s (email, zipfile): only for --version

    try:
        return importlib.metadata.version("keystead")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> NoReturn:
        print(f"keystead {_version()}")  # on stdout, as argparse's own version action does
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse, with its error line kept to one line (a value may hold newlines)."""

    def error(self, message: str) -> NoReturn:
        super().error(output.one_line(message))


# One process changes a workstation at a time; a command waits this long (seconds) for
# another one (or the GUI) to finish before it says which process has the workstation.
DEFAULT_LOCK_WAIT = 10.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("wait between 0 and 3600 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keystead", description="Keystead key management workstation")
    parser.add_argument(
        "--home", help="workstation directory (default: KEYSTEAD_HOME or the user data dir)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument("--operator", help="operator name (default: KEYSTEAD_OPERATOR or a prompt)")
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_LOCK_WAIT,
        metavar="SECONDS",
        help="wait this long for another process that has the workstation open (default 10)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    keys = sub.add_parser("keys", help="managed keys").add_subparsers(dest="action", required=True)
    lst = keys.add_parser("list", help="inventory, reconciled with the logged-in tokens")
    lst.add_argument("--filter", default="", help="show rows containing TEXT in any column")
    lst.set_defaults(run=cmd_keys_list)
    gen = keys.add_parser("generate", help="generate a key on a token")
    gen.add_argument("--token", required=True, help="token label or serial")
    gen.add_argument(
        "--algorithm", required=True, type=_algorithm, help=", ".join(a.value for a in Algorithm)
    )
    gen.add_argument("--name", required=True)
    gen.add_argument("--purpose", type=_purpose, help="encryption, signing, key-wrapping or mac")
    gen.add_argument(
        "--backup-able", action="store_true", help="EXTRACTABLE, so it can be wrapped for backup"
    )
    gen.add_argument(
        "--allow-wider-usage",
        action="store_true",
        help="accept the extra usage flags a token insists on (e.g. tpm2-pkcs11: sign+decrypt); "
        "recorded in the audit entry",
    )
    gen.set_defaults(run=cmd_keys_generate)
    show = keys.add_parser("show", help="one key with its live token attributes")
    show.add_argument("key", help="uuid or name")
    show.set_defaults(run=cmd_keys_show)
    adopt = keys.add_parser("adopt", help="manage a key found on a token")
    adopt.add_argument("--token", required=True)
    adopt.add_argument("--id", dest="cka_id", help="CKA_ID in hex")
    adopt.add_argument(
        "--key", dest="identifier", help="KCV or fingerprint (prefix) when the ID is shared or none"
    )
    adopt.add_argument("--name")
    adopt.add_argument("--purpose", type=_purpose, help="confirm or choose the purpose")
    adopt.add_argument(
        "--accept-exposed",
        action="store_true",
        help="adopt a key whose value may have been outside the token (stays marked exposed)",
    )
    adopt.add_argument(
        "--new-id", action="store_true", help="give the key's objects a fresh CKA_ID (recorded)"
    )
    adopt.add_argument(
        "--dry-run", action="store_true", help="show what adoption would do; change nothing"
    )
    adopt.set_defaults(run=cmd_keys_adopt)
    for action in Action:
        command = keys.add_parser(action.value, help=f"{action.title.lower()} a key")
        command.add_argument("key", help="uuid or name")
        if action.needs_reason:
            command.add_argument("--reason", required=True)
        if action is Action.COMPROMISE:
            command.add_argument("--date", type=_date, help="compromise date (ISO 8601)")
            command.add_argument(
                "--revoke-certificates",
                action="store_true",
                help="also revoke every certificate issued here for this key (key_compromise)",
            )
        if action is Action.DESTROY:
            command.add_argument(
                "--confirm", required=True, metavar="NAME", help="the key's name, typed again"
            )
        command.set_defaults(run=cmd_keys_transition, lifecycle_action=action)
    keys.add_parser(
        "rebind-candidates",
        help="keys whose copy was found, by KCV or public key, on another token",
    ).set_defaults(run=cmd_keys_rebind_candidates)
    rebind = keys.add_parser("rebind", help="bind a key to its copy on a replacement token")
    rebind.add_argument("key", help="uuid or name")
    rebind.add_argument("--token", required=True, help="the replacement token (label or serial)")
    rebind.add_argument("--confirm", metavar="NAME", help="the key's name, typed again")
    rebind.set_defaults(run=cmd_keys_rebind)
    rotate = keys.add_parser("rotate", help="generate a PRE_ACTIVE successor (re-key)")
    rotate.add_argument("key")
    rotate.set_defaults(run=cmd_keys_rotate)
    history = keys.add_parser("history", help="the recorded events of a key")
    history.add_argument("key")
    history.set_defaults(run=cmd_keys_history)
    use.register(keys)
    distribution.register(keys)
    certs.register(sub, keys)
    due = keys.add_parser("due", help="keys whose deactivation date is near or past")
    due.add_argument("--days", type=_days, help="window in days (default: the policy's)")
    due.set_defaults(run=cmd_keys_due)

    audit = sub.add_parser("audit", help="the tamper-evident audit history").add_subparsers(
        dest="action", required=True
    )
    listing = audit.add_parser("list", help="entries, filtered")
    listing.add_argument(
        "--since", type=_date, help="ISO 8601, UTC unless a zone is given; a date alone: 00:00"
    )
    listing.add_argument(
        "--until",
        type=_end_date,
        help="ISO 8601, UTC unless a zone is given; a date alone: the end of that day",
    )
    listing.add_argument("--operator")
    listing.add_argument("--action", dest="audit_action")
    listing.add_argument("--key", help="entries about this key (uuid or name)")
    listing.add_argument("--outcome", choices=["success", "denied", "failed", "aborted"])
    listing.set_defaults(run=cmd_audit_list)
    audit.add_parser("verify", help="recompute the chain, check MACs and checkpoints").set_defaults(
        run=cmd_audit_verify
    )
    export = audit.add_parser("export", help="write every entry to a file")
    export.add_argument("--format", choices=["csv", "json"], required=True)
    export.add_argument("--out", required=True, type=Path)
    export.set_defaults(run=cmd_audit_export)
    audit.add_parser("checkpoint", help="sign a checkpoint of the chain now").set_defaults(
        run=cmd_audit_checkpoint
    )
    audit.add_parser(
        "intents", help="token writes interrupted and not yet settled (write-ahead intents)"
    ).set_defaults(run=cmd_audit_intents)
    airgap.register(sub)
    backup.register(sub)
    ceremony.register(sub)
    selftest.register(sub)
    operators.add_parsers(sub)
    return parser


def _moment(text: str, end_of_day: bool) -> datetime:
    """An ISO 8601 date between the years 1900 and 9000, as UTC (``app.domain.dates``)."""
    out_of_range = f"'{text}' is out of range (years 1900 to 9000)"
    try:
        moment = parse_moment(text, end_of_day=end_of_day)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc
    except OverflowError as exc:
        raise argparse.ArgumentTypeError(out_of_range) from exc
    if not 1900 <= moment.year <= 9000:
        raise argparse.ArgumentTypeError(out_of_range)
    return moment


def _date(text: str) -> datetime:
    """A moment, or the start of a range: a date alone is 00:00 UTC of that day."""
    return _moment(text, end_of_day=False)


def _end_date(text: str) -> datetime:
    """The end of a range: a date alone is the end of that UTC day."""
    return _moment(text, end_of_day=True)


def _days(text: str) -> int:
    """A number of days, 0 to 36,500 (a century)."""
    try:
        days = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of days") from exc
    if not 0 <= days <= 36_500:
        raise argparse.ArgumentTypeError(f"{text} days is out of range (0 to 36500)")
    return days


def _algorithm(text: str) -> Algorithm:
    try:
        return parse_algorithm(text)
    except KeysteadError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def _purpose(text: str) -> Any:
    try:
        return parse_purpose(text)
    except KeysteadError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


# --- helpers ---------------------------------------------------------------------------------


# --- commands --------------------------------------------------------------------------------


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
        so_pin = require_secret(
            SecretKind.SO_PIN, f"New SO PIN for token '{args.soft_token}'", confirm=True
        )
        pin = require_secret(
            SecretKind.USER_PIN, f"New user PIN for token '{args.soft_token}'", confirm=True
        )
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


def _candidate_dict(candidate: Any) -> dict[str, Any]:
    return {
        "id": candidate.key.id,
        "name": candidate.key.name,
        "from_token": candidate.key.token_serial,
        "to_token": candidate.token_serial,
        "to_label": candidate.token_label,
        "cka_id": candidate.cka_id,
        "matched_by": candidate.matched_by,
    }


def cmd_keys_rebind_candidates(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        _login_all_optional(ws)
        return [_candidate_dict(c) for c in ws.rebind.candidates()]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [("name", "KEY"), ("from_token", "FROM"), ("to_label", "TO"), ("matched_by", "MATCH")],
        )
    return 0


def cmd_keys_rebind(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False)
        _login(ws, args.token, kind=SecretKind.USER_PIN)
        key = ws.keys.resolve(args.key)
        confirm = args.confirm
        if confirm is None:
            if not interactive():
                raise ValidationError(f"Confirm with --confirm '{key.name}' (the key's name).")
            confirm = input(f"Type the key's name '{key.name}' to re-bind it: ")
        if confirm != key.name:
            raise ValidationError(f"Type the key's name '{key.name}' exactly; nothing was changed.")
        return ws.rebind.rebind(key.id, args.token)

    key = _with_workstation(args, body)
    if args.json:
        output.print_json(output.key_dict(key))
    else:
        print(f"'{key.name}' is now bound to token '{key.token_label}' ({key.token_serial}).")
    return 0


def _matches(row: dict[str, Any], needle: str) -> bool:
    return not needle or any(needle in str(v).lower() for v in row.values() if v is not None)


def cmd_keys_list(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[InventoryItem]:
        _login_all_optional(ws)
        return ws.keys.inventory()

    items = _with_workstation(args, body)
    needle = args.filter.lower()
    rows = [r for r in (output.item_dict(i) for i in items) if _matches(r, needle)]
    if args.json:
        output.print_json(rows)
    else:
        for row in rows:
            row["identifier"] = row.get("kcv") or (row.get("fingerprint") or "")[:16]
            row["what"] = _what(row)
        output.print_table(
            rows,
            [
                ("name", "NAME"),
                ("algorithm", "ALGORITHM"),
                ("purpose", "PURPOSE"),
                ("state", "STATE"),
                ("token", "TOKEN"),
                ("identifier", "KCV/FPR"),
                ("presence", "ON TOKEN"),
                ("what", "OBJECT"),
                ("cka_id", "CKA_ID"),
                ("id", "ID"),
            ],
        )
    return 0


def _what(row: dict[str, Any]) -> str:
    """The OBJECT column: the kind of token object and what is odd about it."""
    parts = [row.get("object_kind") or ""]
    if row.get("shared_id"):
        parts.append("ID SHARED")
    elif row.get("object_kind") and not row.get("object_cka_id"):
        parts.append("NO ID")
    if row.get("exposure"):
        parts.append("EXPOSED")
    if row.get("related"):
        parts.append(f"+{len(row['related'])} related")
    return ", ".join(p for p in parts if p)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False)
        _login(ws, args.token)
        return output.key_dict(
            ws.keys.generate(
                args.token,
                args.algorithm,
                args.name,
                args.purpose,
                args.backup_able,
                allow_wider=args.allow_wider_usage,
            )
        )

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
    else:
        ident = (row["kcv"] and f"KCV {row['kcv']}") or f"SHA-256 {row['fingerprint']}"
        print(
            f"Generated {row['algorithm']} key '{row['name']}' ({row['id']}) on token "
            f"'{row['token']}', state {row['state']}, {ident}."
        )
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        key = ws.keys.resolve(args.key)
        try:
            _login(ws, key.token_serial, optional=True)
        except KeysteadError as exc:
            if not isinstance(exc, TokenNotLoggedIn):
                log.debug("no live attributes: %s", exc)
        row = output.details_dict(ws.keys.details(key.id))
        from app.services import usage_counts
        from app.storage.distributions import DistributionRepository

        row["usage_count"] = usage_counts.tallies(ws.db, key.id).get(key.id, UsageTally()).uses
        row["distribution"] = distribution.distribution_rows(
            DistributionRepository(ws.db).for_key(key.id)
        )
        return row

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
        return 0
    for field in (
        "id",
        "name",
        "algorithm",
        "size",
        "purpose",
        "state",
        "token",
        "token_serial",
        "cka_id",
        "extractable",
        "wrap_trusted_text",
        "kcv",
        "fingerprint",
        "created_at",
        "created_by",
        "presence",
        "usage_count",
    ):
        if row.get(field) is not None:
            label = field.removesuffix("_text").replace("_", " ")
            print(f"{label:>14}: {row[field]}")
    if row["identifier_words"]:
        print(f"{'read aloud':>14}: {' '.join(row['identifier_words'])}")
    distribution.print_distribution(row["distribution"])
    for cls, attrs in row["token_attributes"].items():
        print(f"{cls}:")
        for name, value in attrs.items():
            print(f"{'':>4}{name:<18} {value}")
    return 0


def cmd_keys_adopt(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False)
        _login(ws, args.token)
        candidate = ws.keys.adoption_candidate(args.token, args.cka_id, args.identifier)
        shown = output.candidate_dict(candidate)
        if args.dry_run:
            return {"candidate": shown}
        key = ws.keys.adopt(
            args.token,
            args.cka_id,
            args.name,
            purpose=args.purpose,
            accept_exposure=args.accept_exposed,
            new_id=args.new_id,
            identifier=args.identifier,
        )
        return {"candidate": shown, "key": output.key_dict(key)}

    result = _with_workstation(args, body)
    candidate = result["candidate"]
    if args.json:
        output.print_json(result.get("key", candidate))
        return 0
    if "key" not in result:
        _print_candidate(candidate)
        return 0
    row = result["key"]
    cleared = candidate["cleared_on_activation"].get(row["purpose"], [])
    if candidate["exposure_text"]:
        print(f"Exposed (acknowledged): {'; '.join(candidate['exposure_text'])}.")
    if cleared:
        print(f"Activating it for {row['purpose']} will clear: {', '.join(cleared)} (recorded).")
    if row["cka_id"] != candidate["cka_id"]:
        print(f"Gave its objects the fresh CKA_ID {row['cka_id']} (recorded).")
    print(
        f"Adopted {row['algorithm']} key '{row['name']}' ({row['id']}) for {row['purpose']} "
        f"as {row['state']}."
    )
    return 0


def _print_candidate(row: dict[str, Any]) -> None:
    print(f"{row['object_kind']} on token '{row['token']}', CKA_ID {row['cka_id'] or '(none)'}")
    for line in row["objects"]:
        print(f"  object: {line}")
    for line in row["related"]:
        print(f"  related (kept): {line}")
    print(f"  identifier: {row['identifier'] or '(none)'}")
    if row["refusal"]:
        print(f"  cannot be adopted: {row['refusal']}")
        return
    inferred = ", ".join(row["inferred_purposes"]) or "none fits exactly"
    print(f"  purposes its usage flags fit: {inferred}")
    for purpose, cleared in row["cleared_on_activation"].items():
        print(f"  activating for {purpose} clears: {', '.join(cleared) or 'nothing'}")
    for text in row["exposure_text"]:
        print(f"  EXPOSED: {text}")
    if row["needs_new_id"]:
        print("  needs a fresh CKA_ID (--new-id): its ID is missing or shared with another key")


def cmd_keys_transition(args: argparse.Namespace) -> int:
    action: Action = args.lifecycle_action

    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False)
        key = ws.keys.resolve(args.key)
        if action is Action.DESTROY and key.token_serial:
            _login(ws, key.token_serial)
        elif key.token_serial:  # an imported public key has no token
            _login_if_present(ws, key.token_serial)
        changed = ws.lifecycle.transition(
            key.id,
            action,
            getattr(args, "reason", "") or "",
            compromise_date=getattr(args, "date", None),
            confirm_name=getattr(args, "confirm", None),
        )
        row = output.key_dict(changed)
        if action is Action.COMPROMISE:
            if args.revoke_certificates:
                revoked = ws.certs.revoke_key_certificates(changed.id)
                row["revoked_certificates"] = [c.serial for c in revoked]
                row["crl_issuers"] = sorted({c.issuer_key_id for c in revoked})
            else:
                row["unrevoked_certificates"] = [c.serial for c in ws.certs.revocable_for(key.id)]
        return row

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
    else:
        note = "" if row["token_sync"] == TokenSync.OK.value else f" ({row['token_sync_text']})"
        print(f"Key '{row['name']}' is now {row['state']}{note}.")
        if row.get("revoked_certificates"):
            print(
                f"Revoked {len(row['revoked_certificates'])} certificate(s) of this key "
                f"(key_compromise): {', '.join(row['revoked_certificates'])}. Issue a new CRL "
                "from each issuer ('certs crl') to publish it."
            )
        elif row.get("unrevoked_certificates"):
            print(
                f"This key still has {len(row['unrevoked_certificates'])} unrevoked "
                f"certificate(s) issued here ({', '.join(row['unrevoked_certificates'])}); "
                "revoke each with 'keystead certs revoke SERIAL --reason key_compromise'."
            )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False)
        key = ws.keys.resolve(args.key)
        _login(ws, key.token_serial)
        return output.key_dict(ws.lifecycle.rotate(key.id))

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
    else:
        print(
            f"Generated successor '{row['name']}' ({row['id']}) in state {row['state']}; "
            "activating it deactivates its predecessor."
        )
    return 0


def cmd_keys_history(args: argparse.Namespace) -> int:
    events = _with_workstation(args, lambda ws: ws.lifecycle.history(args.key))
    rows = [output.event_dict(e) for e in events]
    if args.json:
        output.print_json(rows)
    else:
        output.print_events(rows, subject=False)
    return 0


def cmd_keys_due(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        by_period = ws.lifecycle.due(args.days)
        rows = [{**output.key_dict(k), "reason": "end of cryptoperiod"} for k in by_period]
        listed = {k.id for k in by_period}
        keys = ws.keys.repo.all()
        by_usage = ws.use.usage_due(keys)
        for key in keys:
            if key.id in by_usage and key.id not in listed:
                rows.append({**output.key_dict(key), "reason": by_usage[key.id]})
            elif key.id in by_usage:
                row = next(r for r in rows if r["id"] == key.id)
                row["reason"] += "; " + by_usage[key.id]
        return rows

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [
                ("name", "NAME"),
                ("state", "STATE"),
                ("deactivation_date", "DEACTIVATION (UTC)"),
                ("reason", "WHY"),
                ("token", "TOKEN"),
                ("id", "ID"),
            ],
        )
    return 0


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; a value argparse could not take as one string (``--name=--`` gives a list) is a
    usage error, like any other."""
    args = parser.parse_args(argv)
    scalars, multiple = _dests(parser)
    for name, value in vars(args).items():
        if name in scalars - multiple and isinstance(value, list):
            parser.error(f"argument --{name.replace('_', '-')}: expected one value")
    return args


def _dests(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """Destinations of options (in every subcommand) that take exactly one value, and of
    those that take several (append, nargs)."""
    scalars: set[str] = set()
    multiple: set[str] = set()
    for action in parser._actions:  # argparse has no public walk of its actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                more_scalars, more_multiple = _dests(sub)
                scalars |= more_scalars
                multiple |= more_multiple
        elif isinstance(action, argparse._StoreAction) and action.nargs is None:
            scalars.add(action.dest)
        else:
            multiple.add(action.dest)
    return scalars, multiple


def main(argv: list[str] | None = None) -> int:
    harden_process()
    # The terminal boundary: everything printed (tables, messages, errors, log lines) is
    # escaped, so text from people, files and tokens cannot drive the terminal.
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = output.EscapingStream(real_out), output.EscapingStream(real_err)
    try:
        return _main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if isinstance(sys.stdout, output.EscapingStream):  # (not after a broken pipe)
            sys.stdout = real_out
        if isinstance(sys.stderr, output.EscapingStream):
            sys.stderr = real_err


def _main(argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parse(build_parser(), argv)
    executor = CoreExecutor()
    try:
        args.home_dir = resolve_home(args.home)
        code: int = executor.call(args.run, args)
        return code
    except KeysteadError as exc:
        text = exc.message + refusal_hint(exc)
        print(f"keystead: error: {output.one_line(text)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("keystead: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (e.g. head) went away; nothing more to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keep interpreter exit quiet)
        return 0
    except (OverflowError, ValueError, OSError, TypeError, AttributeError) as exc:
        # A kind of input no check caught: still one line, and a defect to fix.
        log.debug("unexpected %s", type(exc).__name__, exc_info=True)
        print(f"keystead: error: {output.one_line(_unexpected(exc))}", file=sys.stderr)
        return 1
    finally:
        executor.shutdown()


def _unexpected(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or 'cannot use'}: {exc.filename}. Nothing was changed."
    return f"the input could not be used ({exc}). Nothing was changed."


if __name__ == "__main__":
    sys.exit(main())
