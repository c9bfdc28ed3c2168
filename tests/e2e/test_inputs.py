"""Any input gets one line, never a traceback: the inputs from issue 10 and their siblings, as
a subprocess (the installed command), each refused with exit 1 or 2 and nothing changed; text
with escape sequences is printed escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import PIN, TOKEN, Cli, generate
from tests.hsm.kit import peer_keys

pytestmark = pytest.mark.e2e

ESCAPE = "\x1b[2J\x1b[31mFORGED ENTRY\x1b[0m"


def _one_line(cli: Cli, *args: str, expect: int, **env: str) -> str:
    result = cli.run(*args, expect=expect, **env)
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr and "\x1b" not in result.stdout
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "generate", "--token", TOKEN, "--algorithm", "AES-128", "--name=--"),
        ("audit", "list", "--since", "0001-01-01T00:00:00+14:00"),
        ("audit", "list", "--until", "9999-12-31T23:59:59-14:00"),
        ("audit", "list", "--since", "1899-12-31"),
        ("keys", "compromise", "k", "--reason", "r", "--date", "0001-01-01T00:00:00+14:00"),
        ("keys", "compromise", "k", "--reason", "r", "--date", "9999-12-31T23:59:59-14:00"),
        ("keys", "due", "--days", "99999999999"),
        ("keys", "due", "--days", "-1"),
        ("keys", "due", "--days", "1e9"),
    ],
)
def test_usage_errors_are_one_line_and_change_nothing(cli: Cli, args: tuple[str, ...]) -> None:
    before = cli.files()
    line = _one_line(cli, *args, expect=2)
    assert "error:" in line
    assert cli.files() == before


def test_refusals_are_one_line_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    key = generate(cli, "AES-128", "kept")
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    cases: list[tuple[list[str], str]] = [
        (["--home", str(a_file), "keys", "list"], "is a file"),
        (["--home", str(a_file / "below"), "keys", "list"], "which is a file"),
        (["--home", "/proc/keystead", "keys", "list"], "virtual file system"),
        (["--home", "/sys/keystead", "keys", "list"], "virtual file system"),
        (["--home", "", "keys", "list"], "--home is empty"),
        (["--home", "   ", "keys", "list"], "--home is empty"),
        (
            ["keys", "generate", "--token", TOKEN, "--algorithm", "AES-128", "--name", key["id"]],
            "reads as a UUID",
        ),
        (
            [
                "keys",
                "generate",
                "--token",
                TOKEN,
                "--algorithm",
                "AES-128",
                "--name",
                "{12345678-1234-5678-1234-567812345678}",
            ],
            "reads as a UUID",
        ),
        (["tokens", "create-soft", "--label", "a\x1bb"], "control or invisible"),
        (["tokens", "create-soft", "--label", "bidi\u202eabc"], "control or invisible"),
        (["tokens", "create-soft", "--label", "x" * 33], "1 to 32 bytes"),
    ]
    keys_before = _keys(cli)
    objects_before = _objects(cli)
    for args, words in cases:
        line = _one_line(cli, *args, expect=1)
        assert line.startswith("keystead: error: ") and words in line, (args, line)
    # Refused after unlock: the unlock/lock entries and checkpoints are written (that is the
    # record of the try); no key, token object or keyslot changed.
    assert _keys(cli) == keys_before and _objects(cli) == objects_before


def _keys(cli: Cli) -> list[tuple[str, str]]:
    return sorted((r["name"], r["state"]) for r in cli.json("keys", "list"))


def _objects(cli: Cli) -> list[tuple[str, str]]:
    keys = peer_keys(cli.home, TOKEN, PIN)
    return sorted((k.kind, k.cka_id) for k in keys)


def test_escape_sequences_in_reasons_are_printed_escaped(cli: Cli) -> None:
    key = generate(cli, "AES-128", "escaped")
    cli.json("keys", "activate", key["id"])
    cli.run("keys", "suspend", key["id"], "--reason", ESCAPE)
    for args in (("keys", "history", key["id"]), ("audit", "list")):
        out = cli.run(*args).stdout
        assert "\x1b" not in out
        assert "\\x1b[2J\\x1b[31mFORGED ENTRY\\x1b[0m" in out
    rows = cli.json("audit", "list", "--action", "key.suspend")
    assert rows[-1]["details"]["reason"] == ESCAPE  # the record keeps the text as given
    assert json.loads(json.dumps(rows))  # and JSON escapes it its own way


def test_an_error_naming_user_text_is_escaped(cli: Cli) -> None:
    line = _one_line(cli, "keys", "show", "no\x1b[31mkey", expect=1)
    assert "\\x1b[31m" in line
