"""Unlocking the workstation and logging in to tokens for one CLI command: the operator's
passphrase, PINs from the terminal or the automation variables (never argv), the read-only
home rule, and the audit token's login that lets a change be sealed."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.cli.approvers import CliApprovers
from app.cli.secrets import (
    ENV_AUDIT_PIN,
    ENV_PIN,
    ask_operator,
    ask_secret,
    interactive,
    require_secret,
)
from app.errors import (
    KeysteadError,
    ReadOnlyHome,
    TokenNotPresent,
    ValidationError,
)
from app.paths import Home
from app.services.prompter import SecretKind

if TYPE_CHECKING:  # imported where used, so the parser (and --help) stays light
    from app.services.workstation import Workstation


def _unlock(args: argparse.Namespace) -> Workstation:
    home: Home = args.home_dir
    operator = ask_operator(args.operator)
    passphrase = require_secret(SecretKind.PASSPHRASE, f"Passphrase for {operator}")
    from app.services.workstation import Workstation

    ws = Workstation.unlock(home, operator, passphrase, wait=args.wait, program="keystead")
    ws.approvals.source = CliApprovers()  # prompts, or KEYSTEAD_APPROVER(_PASSPHRASE)
    return ws


def _login(
    ws: Workstation, token_ref: str, optional: bool = False, kind: SecretKind = SecretKind.USER_PIN
) -> bool:
    info = ws.tokens.find(token_ref)
    if any(s.info.serial == info.serial for s in ws.tokens.logged_in()):
        return True
    prompt = f"User PIN for token '{info.label}'" + (" (Enter to skip)" if optional else "")
    pin = ask_secret(kind, prompt, optional=optional)
    if pin is None:
        return False
    ws.tokens.login(info.serial, pin)
    return True


def _login_all_optional(ws: Workstation) -> None:
    """Log in where a PIN is at hand, so listings can reconcile: at a terminal each present
    token is offered (Enter skips it); for automation ``KEYSTEAD_PIN`` is the audit token's
    PIN and is tried on that token only, so it never counts wrong PINs against the others."""
    if interactive() and os.environ.get(ENV_PIN) is None:
        for status in ws.tokens.statuses():
            if not status.ambiguous:
                _login(ws, status.info.serial, optional=True)
        return
    serial = ws.audit.token_serial
    if os.environ.get(ENV_PIN) and serial and serial in {t.serial for t in ws.tokens.present()}:
        _login(ws, serial, optional=True, kind=SecretKind.AUDIT_PIN)


# Commands that only read: on a read-only home (an auditor's copy) they run without tokens and
# write nothing; every other command is refused there before it starts.
READ_ONLY_COMMANDS = frozenset(
    {
        ("keys", "list"),
        ("keys", "show"),
        ("keys", "history"),
        ("keys", "due"),
        ("audit", "list"),
        ("audit", "verify"),
        ("audit", "export"),
        ("audit", "intents"),
        ("modules", "list"),
    }
)


def _with_workstation(args: argparse.Namespace, body: Callable[[Workstation], Any]) -> Any:
    home: Home = args.home_dir
    if home.read_only():
        if (args.command, getattr(args, "action", None)) not in READ_ONLY_COMMANDS:
            raise ReadOnlyHome(
                f"{home.root} is read-only: only reading commands work there (keys list/show/"
                "history/due, audit list/verify/export/intents). Nothing was changed."
            )
        print(
            f"keystead: note: {home.root} is read-only: tokens are not used and nothing is "
            "written.",
            file=sys.stderr,
        )
    ws = _unlock(args)
    try:
        return body(ws)
    finally:
        ws.lock()


# A workstation without an audit token (made before init required one) records nothing: every
# change waits for one.
NEXT_STEP_WITHOUT_AUDIT = (
    "This workstation has no audit token yet: nothing can be recorded until one is added. Run "
    "'keystead tokens create-soft --label LABEL' (or 'keystead modules add PATH' for a hardware "
    "token) and log in to it; the first token logged in becomes the audit token."
)


def _login_if_present(ws: Workstation, serial: str) -> None:
    """Log in to the key's token when it is here and a PIN is at hand; else changes wait."""
    if any(t.serial == serial for t in ws.tokens.present()):
        _login(ws, serial, optional=True)


def foreign_pin_refusal(
    ws: Workstation, token_ref: str, audit_serial: str
) -> ValidationError | None:
    """The refusal to take the audit token's PIN from ``KEYSTEAD_PIN`` when the command names
    another token (``token_ref``): that variable holds the named token's PIN (README), and one
    token's PIN is never tried on another, where a wrong one counts toward its lock-out (F19).
    None when nothing would be tried wrongly (``KEYSTEAD_AUDIT_PIN`` set, no ``KEYSTEAD_PIN``,
    or the named token is the audit token). Asked before any login."""
    if os.environ.get(ENV_AUDIT_PIN) is not None or os.environ.get(ENV_PIN) is None:
        return None
    if token_ref == audit_serial:
        return None
    try:
        named = ws.tokens.find(token_ref)
    except KeysteadError:
        if not ws.tokens.tokens.known(token_ref):
            raise  # no such token: that is the error, before any login
        named_label = token_ref  # a key's token, absent now: still not the audit token
    else:
        if named.serial == audit_serial:
            return None
        named_label = named.label
    audit = next((t for t in ws.tokens.present() if t.serial == audit_serial), None)
    label = audit.label if audit is not None else audit_serial
    return ValidationError(
        f"{ENV_PIN} is the PIN of token '{named_label}', which this command names; the audit "
        f"token '{label}' needs its own: set {ENV_AUDIT_PIN} (one token's PIN is never tried "
        "on another). Nothing was tried."
    )


def _login_audit_token(ws: Workstation, required: bool, names: str | None = None) -> None:
    """Log in to the audit token so the command's change is sealed (``required``: refuse
    without it). ``names`` is the token the command names (a label or serial), whose PIN
    ``KEYSTEAD_PIN`` then holds: when that is another token, the audit token's PIN comes from
    ``KEYSTEAD_AUDIT_PIN`` or the terminal, never from ``KEYSTEAD_PIN``
    (``foreign_pin_refusal``)."""
    serial = ws.audit.token_serial
    if serial is None and required:
        raise TokenNotPresent(NEXT_STEP_WITHOUT_AUDIT)
    if serial and any(t.serial == serial for t in ws.tokens.present()):
        if names is not None and not any(s.info.serial == serial for s in ws.tokens.logged_in()):
            refusal = foreign_pin_refusal(ws, names, serial)
            if refusal is not None:
                raise refusal
        _login(ws, serial, optional=not required, kind=SecretKind.AUDIT_PIN)
    elif required and serial is None:
        raise TokenNotPresent(
            "This workstation has no audit token yet: log in to a token that can hold the "
            "audit keys, or create the embedded one (keystead tokens create-soft --label L)."
        )
    elif required:
        raise TokenNotPresent("The workstation's audit token is not present. Insert it.")
