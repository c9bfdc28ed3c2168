"""``keystead airgap``: look for ways off the machine now, and the policy that blocks sensitive
actions while any is open."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.cli import output

if TYPE_CHECKING:
    from app.services.workstation import Workstation


def register(sub: Any) -> None:
    """Add the ``airgap`` command group to the top-level subparsers ``sub``."""
    group = sub.add_parser(
        "airgap", help="the air gap: what is open, and the policy"
    ).add_subparsers(dest="action", required=True)
    group.add_parser(
        "status", help="list interfaces up with an address and radios not blocked (exit 1 if any)"
    ).set_defaults(run=cmd_status)
    policy = group.add_parser(
        "policy", help="show, or (security officer) set, whether key generation needs the air gap"
    )
    policy.add_argument("setting", nargs="?", choices=("on", "off"))
    policy.set_defaults(run=cmd_policy)


def cmd_status(args: argparse.Namespace) -> int:
    from app.services.airgap import look
    from app.services.workstation import utc_now

    report = look(utc_now)
    if args.json:
        output.print_json(
            {
                "air_gapped": report.air_gapped,
                "checked_at": report.checked_at.isoformat(),
                "interfaces": [
                    {"name": i.name, "addresses": list(i.addresses)} for i in report.interfaces
                ],
                "radios": [{"name": r.name, "type": r.kind} for r in report.radios],
                "problem": report.problem,
            }
        )
    elif report.air_gapped:
        print(report.describe())
    if not report.air_gapped:
        print(f"keystead: error: not air-gapped: {report.describe()}", file=sys.stderr)
        return 1
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from app.cli.session import _login_audit_token, _with_workstation

    def body(ws: Workstation) -> bool:
        if args.setting is not None:
            _login_audit_token(ws, required=True)  # the change is a sealed audit entry
            ws.airgap.set_blocking(args.setting == "on")
        return ws.airgap.blocking()

    from app.services.airgap import POLICY_KEY

    blocking = _with_workstation(args, body)
    if args.json:
        output.print_json({"setting": POLICY_KEY, "value": "on" if blocking else "off"})
    elif blocking:
        print("Key generation is refused while the workstation is not air-gapped.")
    else:
        print("Key generation is allowed while the workstation is connected.")
    return 0
