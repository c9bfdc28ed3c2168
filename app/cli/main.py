"""``keystead`` entry point: parse, run on the core thread, and turn errors into one line.

Start-up cost is what an officer feels on every command (issue 17), so a process builds only
what its argv needs. The top level lists every command group from a static table (``GROUPS``:
name, help, the function that registers it); a group's parser is filled in, and its module
imported, only when argparse selects that group (or shows its help). The service layer (the
workstation, pkcs11, SQLCipher, cryptography, the capability probe) is imported where a command
uses it. ``tests/e2e/test_startup.py`` holds both boundaries. The commands live in one module
per group (``init``, ``tokens``, ``keys``, ``audit``, ``operators``, ``backup``, …);
``session`` holds the unlock and login helpers they share."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys

from app.cli import terminal
from app.errors import KeysteadError
from app.process import harden_process

# Not ``typing.TYPE_CHECKING``: importing ``typing`` alone is a measurable share of ``--help``
# (mypy treats this name the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn


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
        super().error(terminal.one_line(message))


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


# The command groups, in the order ``keystead --help`` lists them: (name, help, where the
# function that fills the group in lives, as "module:function"). The function is called with
# the top-level subparsers (see ``_OneGroup``); ``test_startup`` checks that each one
# registers exactly its row's name and help.
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("init", "create the workstation and its first security officer", "app.cli.init:register"),
    ("tokens", "tokens present", "app.cli.tokens:register_tokens"),
    ("modules", "PKCS#11 modules", "app.cli.tokens:register_modules"),
    ("keys", "managed keys", "app.cli.keys:register"),
    ("certs", "certificates and CRLs from token keys", "app.cli.main:register_certs"),
    ("audit", "the tamper-evident audit history", "app.cli.audit:register"),
    ("airgap", "the air gap: what is open, and the policy", "app.cli.airgap:register"),
    ("media", "removable volumes for backups", "app.cli.backup:register"),
    ("backup", "encrypted offline backups", "app.cli.backup:register"),
    ("ceremony", "scripted, witnessed key ceremonies", "app.cli.ceremony:register"),
    (
        "selftest",
        "check the installation: module, token, database, key, audit, no network",
        "app.cli.selftest:register",
    ),
    ("operators", "operators and their roles", "app.cli.operators:add_parsers"),
    ("passphrase", "your own passphrase", "app.cli.operators:add_parsers"),
    ("policy", "the dual-control approval policy", "app.cli.operators:add_parsers"),
    ("workstation", "the workstation itself", "app.cli.operators:add_parsers"),
    (
        "lock-status",
        "wrong passphrases and lockouts per operator (no unlock needed)",
        "app.cli.operators:add_parsers",
    ),
)


class _Nothing:
    """Takes any parser-building call and builds nothing: the groups a register function adds
    besides the one being filled (``backup.register`` adds ``media`` and ``backup``)."""

    def __getattr__(self, name: str) -> Callable[..., _Nothing]:
        return self._absorb

    def _absorb(self, *_: Any, **__: Any) -> _Nothing:
        return self


class _OneGroup:
    """The top-level subparsers as a group's register function sees them while one group is
    filled in: ``add_parser(name)`` returns that group's parser (already listed, with its help
    from ``GROUPS``) and a ``_Nothing`` for any other name. ``added`` records every name and
    help the function asked for (tests compare them with ``GROUPS``)."""

    def __init__(self, name: str, parser: argparse.ArgumentParser) -> None:
        self.name, self.parser = name, parser
        self.added: dict[str, str | None] = {}

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        self.added[name] = kwargs.get("help")
        return self.parser if name == self.name else _Nothing()


def register_certs(sub: Any) -> None:
    """``certs`` shares its module with ``keys export-public``: fill in only the group."""
    from app.cli import certs

    certs.register(sub, _Nothing())


def fill_group(name: str, parser: argparse.ArgumentParser) -> _OneGroup:
    """Import the module of group ``name`` and let it add its commands to ``parser``."""
    where = next(row[2] for row in GROUPS if row[0] == name)
    module, function = where.split(":")
    register: Callable[[Any], None] = getattr(importlib.import_module(module), function)
    sub = _OneGroup(name, parser)
    register(sub)
    if name not in sub.added:
        raise RuntimeError(f"{where} did not register the command group '{name}'")
    return sub


class _Group(_Parser):
    """A top-level command group whose sub-commands are added on first use: when argparse
    parses the group's arguments or formats its help."""

    def __init__(self, *args: Any, group: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfilled = group

    def fill(self) -> None:
        if self._unfilled:
            name, self._unfilled = self._unfilled, ""
            fill_group(name, self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.fill()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.fill()
        return super().format_usage()

    def format_help(self) -> str:
        self.fill()
        return super().format_help()


def _remember_argparse_messages() -> None:
    """argparse looks each of its own messages ("usage: ", "options", "show this help message
    and exit", …) up with ``gettext`` every time it builds a parser, and every look-up searches
    the locale directories for a catalogue again (0.1 ms each; the ``keys`` group makes 120, two
    thirds of the time it takes to build). The answer cannot change within a process, so the
    look-up is remembered; the texts argparse prints are the same."""
    lookup = getattr(argparse, "_", None)  # argparse: ``from gettext import gettext as _``
    if callable(lookup) and not hasattr(lookup, "cache_info"):
        argparse._ = functools.cache(lookup)  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the global options and every command group, each filled in only
    when used."""
    _remember_argparse_messages()
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
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Group)
    for name, helptext, _ in GROUPS:
        sub.add_parser(name, help=helptext, group=name)
    return parser


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
    sys.stdout, sys.stderr = terminal.EscapingStream(real_out), terminal.EscapingStream(real_err)
    try:
        return _main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if isinstance(sys.stdout, terminal.EscapingStream):  # (not after a broken pipe)
            sys.stdout = real_out
        if isinstance(sys.stderr, terminal.EscapingStream):
            sys.stderr = real_err


def _main(argv: list[str] | None) -> int:
    args = _parse(build_parser(), argv)
    # Only a command that runs needs these (``--help`` and usage errors end in ``_parse``).
    import logging

    from app.cli.logs import hold_log_lines
    from app.paths import resolve_home
    from app.services.executor import CoreExecutor

    held = hold_log_lines()  # the error line first; warnings after it (or at the end)
    executor = CoreExecutor()
    try:
        args.home_dir = resolve_home(args.home)
        code: int = executor.call(args.run, args)
        return code
    except KeysteadError as exc:
        from app.cli.approvers import refusal_hint

        text = exc.message + refusal_hint(exc)
        print(f"keystead: error: {terminal.one_line(text)}", file=sys.stderr)
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
        logging.getLogger("keystead").debug("unexpected %s", type(exc).__name__, exc_info=True)
        print(f"keystead: error: {terminal.one_line(_unexpected(exc))}", file=sys.stderr)
        return 1
    finally:
        executor.shutdown()
        with contextlib.suppress(OSError, ValueError):
            held.flush_to(sys.stderr)


def _unexpected(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or 'cannot use'}: {exc.filename}. Nothing was changed."
    return f"the input could not be used ({exc}). Nothing was changed."


if __name__ == "__main__":
    sys.exit(main())
