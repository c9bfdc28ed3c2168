"""F19: one token's PIN is never tried on another. ``KEYSTEAD_PIN`` is the PIN of the token a
command names; when that is not the audit token and ``KEYSTEAD_AUDIT_PIN`` is unset, the
command is refused before any login, with one line saying to set ``KEYSTEAD_AUDIT_PIN`` —
the named token's PIN is not presented to (and counted as wrong by) the audit token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import OTHER_PIN, OTHER_SO, PIN, TOKEN, Cli, peer_login, with_witness

pytestmark = pytest.mark.e2e

SPARE = "Spare"
NEW = "SENTINEL-cli-newpin-7373"


@pytest.fixture
def two_tokens(cli: Cli) -> Cli:
    """The audit token Vault (PIN) and a second token Spare (OTHER_PIN) holding key 'sk'."""
    with_witness(cli)
    cli.json(
        "tokens",
        "create-soft",
        "--label",
        SPARE,
        KEYSTEAD_SO_PIN=OTHER_SO,
        KEYSTEAD_PIN=OTHER_PIN,
        KEYSTEAD_AUDIT_PIN=PIN,
    )
    cli.json(
        "keys",
        "generate",
        "--token",
        SPARE,
        "--algorithm",
        "AES-256",
        "--name",
        "sk",
        "--purpose",
        "encryption",
        KEYSTEAD_PIN=OTHER_PIN,
        KEYSTEAD_AUDIT_PIN=PIN,
    )
    return cli


def failed_logins(cli: Cli) -> list[str]:
    return [
        e["subject"]
        for e in cli.json("audit", "list")
        if e["action"] == "token.login" and e["outcome"] != "success"
    ]


def refused(cli: Cli, *args: str, **env: str) -> str:
    """The command's one error line, run with KEYSTEAD_PIN = Spare's PIN and no
    KEYSTEAD_AUDIT_PIN; the audit token saw no login attempt."""
    before = failed_logins(cli)
    cli.env.pop("KEYSTEAD_AUDIT_PIN", None)
    line = cli.error(*args, KEYSTEAD_PIN=OTHER_PIN, **env)
    assert "KEYSTEAD_AUDIT_PIN" in line and f"'{SPARE}'" in line and f"'{TOKEN}'" in line, line
    assert "Nothing was tried" in line and "\n" not in line
    assert failed_logins(cli) == before
    flags = {t["label"]: t["flags"] for t in cli.json("tokens", "list")}
    assert "count low" not in str(flags[TOKEN])
    return line


def test_change_pin_of_another_token_never_presents_its_pin_to_the_audit_token(
    two_tokens: Cli,
) -> None:
    """The tester's input: ``tokens change-pin ws2`` with ws2's PIN in KEYSTEAD_PIN."""
    refused(two_tokens, "tokens", "change-pin", SPARE, KEYSTEAD_NEW_PIN=NEW)
    assert peer_login(two_tokens, SPARE, OTHER_PIN)  # nothing changed
    assert peer_login(two_tokens, TOKEN, PIN)


SIBLINGS = [
    ("keys", "generate", "--token", SPARE, "--algorithm", "AES-128", "--name", "n1"),
    ("keys", "adopt", "--token", SPARE, "--dry-run"),
    ("keys", "rebind", "--token", SPARE, "sk"),
    ("keys", "deactivate", "sk", "--reason", "r"),
    ("keys", "rotate", "sk"),
    ("keys", "encrypt", "sk", "--in", "{in}", "--out", "{out}"),
    ("backup", "restore", "{dir}", "--token", SPARE),
    ("keys", "import-wrapped", "--token", SPARE, "--in", "{in}", "--name", "w1"),
    ("tokens", "init-pin", SPARE),
]


def test_every_command_naming_another_token_refuses_before_any_login(
    two_tokens: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x")
    (tmp_path / "bk").mkdir()
    values = {"in": source, "out": tmp_path / "out.bin", "dir": tmp_path / "bk"}
    for args in SIBLINGS:
        filled = tuple(a.format(**values) for a in args)
        refused(two_tokens, *filled, KEYSTEAD_NEW_PIN=NEW, KEYSTEAD_SO_PIN=OTHER_SO)
    assert not (tmp_path / "out.bin").exists()
    assert [k["name"] for k in two_tokens.json("keys", "list")] == ["sk"]
    assert peer_login(two_tokens, SPARE, OTHER_PIN)


def test_naming_the_audit_token_or_setting_audit_pin_works(two_tokens: Cli) -> None:
    two_tokens.run(
        "keys",
        "generate",
        "--token",
        TOKEN,
        "--algorithm",
        "AES-128",
        "--name",
        "on-vault",
        "--purpose",
        "encryption",
    )
    two_tokens.run(
        "tokens",
        "change-pin",
        SPARE,
        KEYSTEAD_PIN=OTHER_PIN,
        KEYSTEAD_AUDIT_PIN=PIN,
        KEYSTEAD_NEW_PIN=NEW,
    )
    assert peer_login(two_tokens, SPARE, NEW)
    assert failed_logins(two_tokens) == []
