"""Hypothesis drives the CLI's parser and every command with generated arguments (names, dates,
numbers, paths, unicode with control and bidi characters): the exit status is 0, 1 or 2, a
refusal is one ``keystead: error:`` line (a usage error ends with one), never a traceback, the
terminal never receives a raw control character, and a refusal changes no key object on the
token and no keyslot.

The CLI runs in this process (``app.cli.main.main``) so a few hundred cases stay within CI's
budget; ``tests/e2e/test_inputs.py`` runs the listed inputs as subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import main as cli_main
from app.hsm.filestore import Damaged, parse_object_file
from tests.e2e.test_cli import KEYSTEAD, PASSPHRASE, PIN, SO_PIN, TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

PARSER_EXAMPLES = 300
COMMAND_EXAMPLES = 60

COMMANDS = [
    ["tokens", "list"],
    ["tokens", "show", "{text}"],
    ["tokens", "init", "{text}", "--label", "{text}", "--confirm", "{text}"],
    ["tokens", "init-pin", "{text}"],
    ["tokens", "create-soft", "--label", "{text}"],
    ["modules", "list"],
    ["modules", "add", "{path}"],
    ["modules", "remove", "{path}"],
    ["keys", "list", "--filter", "{text}"],
    ["keys", "generate", "--token", "{token}", "--algorithm", "{text}", "--name", "{text}"],
    ["keys", "generate", "--token", "{token}", "--algorithm", "AES-128", "--name", "{name}"],
    ["keys", "show", "{text}"],
    ["keys", "adopt", "--token", "{token}", "--id", "{text}", "--name", "{text}"],
    ["keys", "activate", "{text}"],
    ["keys", "suspend", "{text}", "--reason", "{text}"],
    ["keys", "compromise", "{text}", "--reason", "{text}", "--date", "{date}"],
    ["keys", "destroy", "{text}", "--confirm", "{text}"],
    ["keys", "rotate", "{text}"],
    ["keys", "history", "{text}"],
    ["keys", "due", "--days", "{number}"],
    ["keys", "rebind", "{text}", "--token", "{text}", "--confirm", "{text}"],
    ["audit", "list", "--since", "{date}", "--until", "{date}", "--operator", "{text}"],
    ["audit", "list", "--key", "{text}", "--action", "{text}", "--outcome", "{text}"],
    ["audit", "export", "--format", "{text}", "--out", "{path}"],
    ["audit", "intents"],
    ["--home", "{path}", "keys", "list"],
]

texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(
    ["", "--", "-", "--name=--", "\x1b[2J", "\u202eevil", "a\nb", "00" * 16, "t2", "ÿ" * 33]
)
names = texts.filter(lambda t: not t.startswith("-")) | st.uuids().map(str)
dates = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "1899-12-31",
            "2026-13-01",
            "2026-02-30",
            "",
            "now",
        ]
    ),
    texts,
)
numbers = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(["99999999999", "-1", "1e9", "0x10", ""]),
)


@pytest.fixture(scope="module")
def workstation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One workstation with its embedded token, made by the installed command."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    env = _env()
    result = subprocess.run(
        [
            str(KEYSTEAD),
            "--home",
            str(home),
            "init",
            "--operator",
            "officer",
            "--soft-token",
            TOKEN,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    yield home


def _env() -> dict[str, str]:
    return {
        "KEYSTEAD_OPERATOR": "officer",
        "KEYSTEAD_PASSPHRASE": PASSPHRASE,
        "KEYSTEAD_PIN": PIN,
        "KEYSTEAD_SO_PIN": SO_PIN,
    }


def _key_objects(home: Path) -> dict[str, bytes]:
    """Every key object file of the embedded store (data objects, such as the checkpoints
    written at each lock, and token.object, rewritten at each login, are left out)."""
    found = {}
    for path in sorted((home / "softhsm" / "tokens").glob("*/*.object")):
        if path.name == "token.object":
            continue
        data = path.read_bytes()
        try:
            raw_class = parse_object_file(data).attributes.get(0, b"")
        except Damaged:
            raw_class = b""
        if int.from_bytes(raw_class or b"\0", "big") != 0:
            found[str(path)] = data
    return found


def _state(home: Path) -> tuple[dict[str, bytes], bytes]:
    return _key_objects(home), (home / "keyslots.json").read_bytes()


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main.main(argv)
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _check(code: int, out: str, err: str) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    for text in (out, err):
        assert not any(ord(c) < 32 and c not in "\n" for c in text), repr(text)
        assert "\u202e" not in text
    lines = err.strip().splitlines()
    if code == 1:
        errors = [line for line in lines if line.startswith("keystead: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], err
    elif code == 2:
        assert lines and "error:" in lines[-1], err


@settings(
    max_examples=PARSER_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    argv=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "keys",
                    "tokens",
                    "audit",
                    "modules",
                    "list",
                    "show",
                    "generate",
                    "--name",
                    "--days",
                    "--since",
                    "--date",
                    "--home",
                    "--json",
                    "--token",
                    "--algorithm",
                    "--reason",
                    "-h",
                ]
            ),
            texts,
        ),
        max_size=8,
    )
)
def test_the_parser_never_raises(argv: list[str]) -> None:
    parser = cli_main.build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli_main._parse(parser, argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), exc.code
    assert "Traceback" not in err.getvalue()


@settings(
    max_examples=COMMAND_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_every_command_with_generated_arguments(
    workstation: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Any
) -> None:
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KEYSTEAD_HOME", raising=False)
    paths = st.one_of(
        st.sampled_from(
            [
                "",
                "/proc/keystead",
                "/sys/x",
                "/etc/passwd",
                "/etc/passwd/x",
                "/dev/null",
                str(tmp_path / "export.out"),
                str(workstation / "keyslots.json"),
            ]
        ),
        texts.map(lambda t: str(tmp_path / t.replace("/", "_").replace("\0", "")[:50])),
    )
    template = data.draw(st.sampled_from(COMMANDS))
    fills = {
        "{text}": texts,
        "{name}": names,
        "{date}": dates,
        "{number}": numbers,
        "{path}": paths,
        "{token}": st.sampled_from([TOKEN, "t-missing", ""]),
    }
    argv = [data.draw(fills[part]) if part in fills else part for part in template]
    if argv[0] != "--home":
        argv = ["--home", str(workstation), *argv]
    before = _state(workstation)
    code, out, err = _run(argv)
    _check(code, out, err)
    if code != 0:
        assert _state(workstation) == before, argv
