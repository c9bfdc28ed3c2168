"""``keystead selftest``: check this installation on a throw-away workstation (see
``app.services.selftest``); exit 0 when every step passed, else 1 with the failed step."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from app.cli import output

if TYPE_CHECKING:
    from app.services.selftest import StepResult


def register(sub: Any) -> None:
    """Add the ``selftest`` command to the top-level subparsers ``sub``."""
    sub.add_parser(
        "selftest",
        help="check the installation: module, token, database, key, audit, no network",
    ).set_defaults(run=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    def progress(result: StepResult) -> None:
        if not args.json:
            print(f"ok  {result.step}: {result.detail}", flush=True)

    from app.services.selftest import run_selftest

    results = run_selftest(progress)
    if args.json:
        output.print_json({"passed": [{"step": r.step, "detail": r.detail} for r in results]})
    else:
        print("Self-test passed.")
    return 0
