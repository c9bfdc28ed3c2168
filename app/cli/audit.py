"""``keystead audit …``: list, verify, export, checkpoint and the pending write-ahead intents."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import args as cli_args
from app.cli import output

if TYPE_CHECKING:  # imported where used, so the parser (and --help) stays light
    from app.domain.audit import Checkpoint, Report
    from app.services.workstation import Workstation

from app.cli.session import (
    _login_all_optional,
    _login_audit_token,
    _with_workstation,
)


def register(sub: Any) -> None:
    """Add the ``audit`` command group to the top-level subparsers ``sub``."""
    audit = sub.add_parser("audit", help="the tamper-evident audit history").add_subparsers(
        dest="action", required=True
    )
    listing = audit.add_parser("list", help="entries, filtered")
    listing.add_argument(
        "--since",
        type=cli_args.start_date,
        help="ISO 8601, UTC unless a zone is given; a date alone: 00:00",
    )
    listing.add_argument(
        "--until",
        type=cli_args.end_date,
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
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    export.set_defaults(run=cmd_audit_export)
    audit.add_parser("checkpoint", help="sign a checkpoint of the chain now").set_defaults(
        run=cmd_audit_checkpoint
    )
    audit.add_parser(
        "intents", help="token writes interrupted and not yet settled (write-ahead intents)"
    ).set_defaults(run=cmd_audit_intents)


def cmd_audit_list(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        subject = f"key:{ws.keys.resolve(args.key).id}" if args.key else None
        from app.services.audit_log import AuditFilter

        flt = AuditFilter(
            args.since, args.until, args.operator, args.audit_action, subject, args.outcome
        )
        return [output.event_dict(e) for e in ws.audit.page(flt, 0, 10_000_000)]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        if args.since or args.until:
            since = args.since.isoformat() if args.since else "the first entry"
            until = args.until.isoformat() if args.until else "the last entry"
            print(f"Entries from {since} to {until} (UTC)")
        output.print_events(rows)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> Report:
        _login_audit_token(ws, required=False)
        return ws.audit.verify()

    report = _with_workstation(args, body)
    if args.json:
        output.print_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "macs_checked": report.macs_checked,
                "unsealed": report.unmaced,
                "unsealed_by_action": report.unmaced_actions,
                "checkpoint": report.checkpoint_seq,
                "fault": report.fault.value if report.fault else None,
                "bad_seq": report.bad_seq,
                "summary": report.summary(),
            }
        )
    else:
        print(report.summary())
        if report.detail and report.ok:
            print(report.detail)
        if report.ok and report.unmaced:
            print(report.unmaced_note())
    if not report.ok:
        print(f"keystead: error: {output.one_line(report.summary())}", file=sys.stderr)
        return 1
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> int:
        _login_audit_token(ws, required=False)
        return ws.audit.export(args.out.resolve(), args.format, overwrite=args.overwrite)

    count = _with_workstation(args, body)
    if args.json:
        output.print_json({"entries": count, "file": str(args.out)})
    else:
        print(f"Exported {count} entries to {args.out}.")
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> Checkpoint:
        _login_audit_token(ws, required=True)
        return ws.audit.checkpoint("requested")

    checkpoint = _with_workstation(args, body)
    if args.json:
        output.print_json(checkpoint.to_json())
    else:
        print(
            f"Checkpoint {checkpoint.seq} signed at {checkpoint.time}: head {checkpoint.head.hex()}"
        )
    return 0


def cmd_audit_intents(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        _login_all_optional(ws)  # the login itself settles what it can
        return [
            {
                "id": i.id,
                "created_at": i.created_at,
                "operator": i.operator,
                "action": i.action,
                "token": i.token_serial,
                "subject": str(i.details.get("subject", "")),
            }
            for i in ws.tokens.intents.pending()
        ]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [
                ("id", "INTENT"),
                ("created_at", "BEGUN (UTC)"),
                ("operator", "BY"),
                ("action", "ACTION"),
                ("token", "TOKEN"),
                ("subject", "SUBJECT"),
            ],
        )
    return 0
