"""``keystead operators …``, ``passphrase change``, ``policy …``, ``lock-status``.

A new passphrase is typed by its operator: twice at a terminal, or for automation one line on
standard input when that is not a terminal. Approvers come from ``app.cli.approvers``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.approvers import terminal_text
from app.cli.secrets import ENV_PASSPHRASE, interactive, require_secret
from app.domain.approval import ACTION_TITLES
from app.domain.backoff import locked_out, retry_at
from app.domain.roles import Role, describe, parse_roles, roles_text
from app.errors import NotFoundError, OperationCancelled, ValidationError
from app.paths import Home
from app.services.prompter import SecretKind

if TYPE_CHECKING:
    from app.services.workstation import Workstation
    from app.storage.operators import OperatorRecord


def add_parsers(sub: Any) -> None:
    """Register the command groups on the top-level subparsers."""
    ops = sub.add_parser("operators", help="operators and their roles").add_subparsers(
        dest="action", required=True
    )
    listing = ops.add_parser("list", help="operators, roles, enabled")
    listing.add_argument("--all", action="store_true", help="include removed operators")
    listing.set_defaults(run=cmd_operators_list)
    add = ops.add_parser("add", help="enrol an operator (they type their passphrase)")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="security-officer,key-custodian,auditor")
    add.set_defaults(run=cmd_operators_add)
    for name, helptext in (
        ("disable", "take the operator's keyslot away (record kept)"),
        ("enable", "enable again with a new passphrase typed by the operator"),
        ("remove", "remove the operator (record kept for the audit history)"),
        ("reset-passphrase", "a new passphrase, typed by the operator"),
    ):
        command = ops.add_parser(name, help=helptext)
        command.add_argument("name")
        command.set_defaults(run=cmd_operators_change, operator_action=name)
    roles = ops.add_parser("roles", help="set an operator's roles")
    roles.add_argument("name")
    roles.add_argument("--set", required=True, dest="roles", help="ROLE[,ROLE]")
    roles.set_defaults(run=cmd_operators_roles)

    phrase = sub.add_parser("passphrase", help="your own passphrase").add_subparsers(
        dest="action", required=True
    )
    phrase.add_parser("change", help="change your passphrase").set_defaults(
        run=cmd_passphrase_change
    )

    policy = sub.add_parser("policy", help="the dual-control approval policy").add_subparsers(
        dest="action", required=True
    )
    policy.add_parser("show", help="approvals needed per action class").set_defaults(
        run=cmd_policy_show
    )
    setter = policy.add_parser("set", help="change one action class's rule")
    setter.add_argument("policy_action", metavar="ACTION")
    setter.add_argument("--approvals", type=int, required=True)
    setter.add_argument("--roles", help="approver roles ROLE[,ROLE] (default: unchanged)")
    setter.set_defaults(run=cmd_policy_set)
    backup_first = policy.add_parser(
        "backup-before-activation",
        help="refuse to activate keys of a purpose until they are in a verified backup",
    )
    backup_first.add_argument(
        "purpose", nargs="?", help="encryption, signing, key-wrapping or mac (none: show)"
    )
    switch = backup_first.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="required", action="store_true", default=None)
    switch.add_argument("--off", dest="required", action="store_false")
    backup_first.set_defaults(run=cmd_policy_backup_first)

    station = sub.add_parser("workstation", help="the workstation itself").add_subparsers(
        dest="action", required=True
    )
    station.add_parser(
        "rotate-key", help="re-key the database and re-seal every keyslot (crash-safe)"
    ).set_defaults(run=cmd_rotate_key)

    sub.add_parser(
        "lock-status", help="wrong passphrases and lockouts per operator (no unlock needed)"
    ).set_defaults(run=cmd_lock_status)


def _common() -> Any:
    from app.cli import session  # the shared unlock, login and lock helpers

    return session


MAX_PASSPHRASE_LINE = 4096  # characters: far above any passphrase, far below /dev/zero


def new_passphrase(name: str) -> tuple[str, str]:
    """The new passphrase typed by ``name``: twice at a terminal, else one line of stdin."""
    if not interactive():
        line = sys.stdin.readline(MAX_PASSPHRASE_LINE + 2)
        if len(line.rstrip("\r\n")) > MAX_PASSPHRASE_LINE:
            raise ValidationError(
                f"The new passphrase for '{name}' on standard input is longer than "
                f"{MAX_PASSPHRASE_LINE} characters; nothing was changed."
            )
        if not line:
            raise ValidationError(
                f"A new passphrase for '{name}' is needed: one line on standard input."
            )
        value = line.rstrip("\r\n")
        return value, value
    try:
        first = getpass.getpass(f"{terminal_text(name)}, type your new passphrase: ")
        second = getpass.getpass("Type it again: ")
    except (EOFError, KeyboardInterrupt) as exc:
        raise OperationCancelled("Cancelled; nothing was changed.") from exc
    return first, second


def operator_dict(record: OperatorRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "roles": sorted(r.value for r in record.roles),
        "enabled": record.enabled,
        "removed_at": record.removed_at,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }


def cmd_operators_list(args: argparse.Namespace) -> int:
    rows = [
        operator_dict(r)
        for r in _common()._with_workstation(args, lambda ws: ws.roster.list(args.all))
    ]
    if args.json:
        output.print_json(rows)
    else:
        for row in rows:
            row["roles_text"] = ",".join(row["roles"])
            row["state"] = (
                "removed" if row["removed_at"] else ("enabled" if row["enabled"] else "disabled")
            )
            row["name"] = terminal_text(row["name"])
        output.print_table(rows, [("name", "NAME"), ("roles_text", "ROLES"), ("state", "STATE")])
    return 0


def cmd_operators_add(args: argparse.Namespace) -> int:
    roles = parse_roles(args.role)

    def body(ws: Workstation) -> OperatorRecord:
        _common()._login_audit_token(ws, required=False)
        ws.approvals.check_initiator("operator.add", f"operator:{args.name}")
        passphrase, confirmation = new_passphrase(args.name)
        return ws.roster.add(args.name, roles, passphrase, confirmation)

    record = _common()._with_workstation(args, body)
    if args.json:
        output.print_json(operator_dict(record))
    else:
        print(
            f"Operator '{terminal_text(record.name)}' added with the role(s) "
            f"{roles_list(record.roles)}."
        )
    return 0


def cmd_operators_change(args: argparse.Namespace) -> int:
    action = args.operator_action

    def body(ws: Workstation) -> str:
        _common()._login_audit_token(ws, required=False)
        name = args.name
        if action == "disable":
            ws.roster.disable(name)
            return f"Operator '{name}' is disabled; their keyslot is gone."
        if action == "remove":
            ws.roster.remove(name)
            return f"Operator '{name}' is removed; their keyslot is gone."
        ws.approvals.check_initiator(f"operator.{action}", f"operator:{name}")
        if action == "enable":
            ws.roster.check_enable(name)  # an enabled operator: refused before any passphrase
        passphrase, confirmation = new_passphrase(name)
        if action == "enable":
            ws.roster.enable(name, passphrase, confirmation)
            return f"Operator '{name}' is enabled with their new passphrase."
        ws.roster.reset_passphrase(name, passphrase, confirmation)
        return f"The passphrase of '{name}' was reset."

    print(terminal_text(_common()._with_workstation(args, body)))
    return 0


def cmd_operators_roles(args: argparse.Namespace) -> int:
    roles = parse_roles(args.roles)

    def body(ws: Workstation) -> OperatorRecord:
        _common()._login_audit_token(ws, required=False)
        return ws.roster.set_roles(args.name, roles)

    record = _common()._with_workstation(args, body)
    if args.json:
        output.print_json(operator_dict(record))
    else:
        print(f"'{terminal_text(record.name)}' now holds {roles_text(record.roles)}.")
    return 0


def cmd_passphrase_change(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> None:
        _common()._login_audit_token(ws, required=False)
        old = os.environ.get(ENV_PASSPHRASE) or require_secret(
            SecretKind.PASSPHRASE, "Current passphrase"
        )
        new, confirmation = new_passphrase(ws.operator)
        ws.roster.change_own_passphrase(old, new, confirmation)

    _common()._with_workstation(args, body)
    print("Your passphrase was changed; only your keyslot was re-wrapped.")
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    rules = _common()._with_workstation(args, lambda ws: ws.approvals.rules())
    rows = [
        {
            "action": r.action,
            "title": ACTION_TITLES.get(r.action, ""),
            "approvals": r.approvals,
            "roles": sorted(x.value for x in r.roles),
        }
        for r in rules
    ]
    if args.json:
        output.print_json(rows)
    else:
        for row in rows:
            row["roles_text"] = ",".join(row["roles"])
        output.print_table(
            rows,
            [
                ("action", "ACTION"),
                ("approvals", "APPROVERS"),
                ("roles_text", "APPROVER ROLES"),
                ("title", "WHAT"),
            ],
        )
    return 0


def cmd_policy_set(args: argparse.Namespace) -> int:
    roles = parse_roles(args.roles) if args.roles else None

    def body(ws: Workstation) -> Any:
        _common()._login_audit_token(ws, required=False)
        return ws.approvals.set_rule(args.policy_action, args.approvals, roles)

    rule = _common()._with_workstation(args, body)
    if args.json:
        output.print_json(
            {"action": rule.action, "approvals": rule.approvals, "roles": rule.roles_text}
        )
    else:
        print(
            f"'{rule.action}' now needs {rule.approvals} approver(s) besides the initiator, "
            f"each {describe(rule.roles)}."
        )
    return 0


def roles_list(roles: frozenset[Role]) -> str:
    """``"security officer and key custodian"``: every role an operator holds, in words."""
    titles = [r.title.lower() for r in Role if r in roles]
    return " and ".join(titles) if titles else "none"


def cmd_policy_backup_first(args: argparse.Namespace) -> int:
    """Show, or change with ``--on`` / ``--off``, which purposes need a verified backup
    before a key is activated (a ``policy.set`` approval)."""
    from app.domain.algorithms import Purpose

    if args.purpose is None and args.required is not None:
        raise ValidationError("Name the purpose to change: encryption, signing, key-wrapping, mac.")
    if args.purpose is not None and args.required is None:
        raise ValidationError(f"Say --on or --off for '{args.purpose}'.")
    purpose = None
    if args.purpose is not None:
        try:
            purpose = Purpose(args.purpose)
        except ValueError:
            raise ValidationError(
                f"'{args.purpose}' is not a purpose: encryption, signing, key-wrapping, mac."
            ) from None

    def body(ws: Workstation) -> Any:
        if purpose is None:
            return ws.backup_before_activation()
        _common()._login_audit_token(ws, required=False)
        return ws.set_backup_before_activation(purpose, bool(args.required))

    required = _common()._with_workstation(args, body)
    rows = [{"purpose": p.value, "backup_before_activation": p in required} for p in Purpose]
    if args.json:
        output.print_json(rows)
    else:
        for row in rows:
            needs = (
                "needs a verified backup" if row["backup_before_activation"] else "no backup rule"
            )
            print(f"{row['purpose']:<14} {needs}")
    return 0


def cmd_lock_status(args: argparse.Namespace) -> int:
    """Read the side record only: works while the workstation is locked."""
    home: Home = args.home_dir
    from app.storage.home_lock import in_use_by
    from app.storage.unlock_failures import UnlockFailures

    failures = UnlockFailures(home.unlock_failures)
    pending = failures.unsealed()
    # A try is counted as failed before it is checked (so a kill cannot hide it); while the
    # process making it still holds the workstation, the newest such try is in progress, not
    # failed (the new-user trial saw phantom failures during normal use).
    holder = in_use_by(home.root) if home.exists() else None
    in_progress = (
        pending[-1] if holder and pending and pending[-1].reason == "interrupted" else None
    )
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for name, state in sorted(failures.states().items()):
        consecutive = state.consecutive - (
            1 if in_progress is not None and in_progress.operator == name else 0
        )
        if consecutive <= 0:
            continue
        allowed = retry_at(consecutive, state.last)
        rows.append(
            {
                "operator": name,
                "failures": consecutive,
                "last_failure": state.last.isoformat() if state.last else None,
                "next_try_after": allowed.isoformat() if allowed else None,
                "locked_out": locked_out(state.consecutive),
                "waiting": allowed is not None and allowed > now,
            }
        )
    if not home.exists():
        raise NotFoundError(f"No workstation here ({home.root}). Initialise one first.")
    unsealed = len(pending) + failures.lost() - (1 if in_progress is not None else 0)
    progress = (
        None
        if in_progress is None
        else {"operator": in_progress.operator, "since": in_progress.time, "by": holder}
    )
    if args.json:
        output.print_json(
            {"operators": rows, "failures_since_last_unlock": unsealed, "in_progress": progress}
        )
    else:
        print(f"{unsealed} failed unlock(s) since the last successful unlock.")
        if in_progress is not None:
            print(
                f"An unlock by {terminal_text(in_progress.operator)} is in progress in "
                f"{holder}; it counts as failed only if it fails."
            )
        for row in rows:
            row["operator"] = terminal_text(row["operator"])
            # A failure with no wait yet is not a lock (the new-user trial read it as one).
            waiting = "waiting" if row["waiting"] else "may try now"
            row["state"] = "LOCKED OUT" if row["locked_out"] else waiting
        if not rows:
            print("No operator is in back-off or locked out.")
            return 0
        output.print_table(
            rows,
            [
                ("operator", "OPERATOR"),
                ("failures", "FAILURES IN A ROW"),
                ("last_failure", "LAST (UTC)"),
                ("next_try_after", "NEXT TRY AFTER"),
                ("state", "STATE"),
            ],
        )
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> int:
        _common()._login_audit_token(ws, required=True)  # it vouches for the new key
        count: int = ws.rotate_key()
        return count

    count = _common()._with_workstation(args, body)
    if args.json:
        output.print_json({"keyslots": count})
    else:
        print(f"The workstation key was rotated; {count} keyslot(s) re-sealed to the new key.")
    return 0
