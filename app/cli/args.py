"""Argument blocks and the key-command body shared by the use, certs and distribution commands
(one definition of ``--in``, ``--out``/``--overwrite`` and of "log in, then act on a key")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the parser stays light (tests/e2e/test_startup.py)
    from app.domain.keys import KeyRecord
    from app.services.workstation import Workstation

T = TypeVar("T")


def add_input(parser: argparse.ArgumentParser, help_text: str = "file to read") -> None:
    parser.add_argument("--in", dest="source", required=True, type=Path, help=help_text)


def add_output(
    parser: argparse.ArgumentParser, required: bool = True, help_text: str = "file to write"
) -> None:
    """``--out FILE`` and ``--overwrite`` (an existing output is never replaced without it)."""
    parser.add_argument("--out", required=required, type=Path, help=help_text)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def on_key(
    args: argparse.Namespace,
    key_ref: str,
    action: Callable[[Workstation, KeyRecord], T],
    token: bool = True,
) -> T:
    """Unlock, log in to the audit token where a PIN is at hand and (``token``) to the key's
    token, then ``action(ws, key)``."""
    from app.cli.session import _login, _login_audit_token, _with_workstation

    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False)
        key = ws.keys.resolve(key_ref)
        if token and key.token_serial:  # a verify-only (imported public) key has no token
            _login(ws, key.token_serial)
        return action(ws, key)

    result: T = _with_workstation(args, body)
    return result
