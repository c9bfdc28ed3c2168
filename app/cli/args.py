"""Argument blocks, argument types and the key-command body shared by the command modules
(one definition of ``--in``, ``--out``/``--overwrite``, of a date or a number of days on the
command line, and of "log in, then act on a key")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the parser stays light (tests/e2e/test_startup.py)
    from app.domain.algorithms import Algorithm, Purpose
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
        key = ws.keys.resolve(key_ref)
        named = key.token_serial if token and key.token_serial else None
        _login_audit_token(ws, required=False, names=named)
        if token and key.token_serial:  # a verify-only (imported public) key has no token
            _login(ws, key.token_serial)
        return action(ws, key)

    result: T = _with_workstation(args, body)
    return result


# --- argument types: argparse's ``type=``; a bad value is a usage error (exit 2) -------------


def moment(text: str, end_of_day: bool) -> datetime:
    """An ISO 8601 date between the years 1900 and 9000, as UTC (``app.domain.dates``)."""
    from app.domain.dates import parse_moment
    from app.errors import ValidationError

    out_of_range = f"'{text}' is out of range (years 1900 to 9000)"
    try:
        value = parse_moment(text, end_of_day=end_of_day)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc
    except OverflowError as exc:
        raise argparse.ArgumentTypeError(out_of_range) from exc
    if not 1900 <= value.year <= 9000:
        raise argparse.ArgumentTypeError(out_of_range)
    return value


def start_date(text: str) -> datetime:
    """A moment, or the start of a range: a date alone is 00:00 UTC of that day."""
    return moment(text, end_of_day=False)


def end_date(text: str) -> datetime:
    """The end of a range: a date alone is the end of that UTC day."""
    return moment(text, end_of_day=True)


def days(text: str) -> int:
    """A number of days, 0 to 36,500 (a century)."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of days") from exc
    if not 0 <= value <= 36_500:
        raise argparse.ArgumentTypeError(f"{text} days is out of range (0 to 36500)")
    return value


def algorithm(text: str) -> Algorithm:
    """A key algorithm by its name (``app.domain.algorithms``)."""
    from app.domain.algorithms import parse_algorithm
    from app.errors import KeysteadError

    try:
        return parse_algorithm(text)
    except KeysteadError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def purpose(text: str) -> Purpose:
    """A key purpose by its name (``app.domain.algorithms``)."""
    from app.domain.algorithms import parse_purpose
    from app.errors import KeysteadError

    try:
        return parse_purpose(text)
    except KeysteadError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc
