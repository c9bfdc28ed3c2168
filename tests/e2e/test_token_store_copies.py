"""F21: a copied token directory in the embedded store (one serial twice) made every command
abort inside SoftHSM's C_Initialize (SIGABRT, exit 134, nothing said). Keystead reads the
store's token.object files first and refuses with one line naming both directories; nothing
changes, and moving the copy out makes everything work again. Siblings: a stray file in the
tokens directory, a copied directory whose token.object is truncated or empty (SoftHSM skips
such a directory; no conflict)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from app.paths import Home
from tests.e2e.test_cli import KEYSTEAD, TOKEN, Cli

pytestmark = pytest.mark.e2e


def token_dir(cli: Cli) -> Path:
    (directory,) = [p for p in Home(cli.home).softhsm_tokens.iterdir() if p.is_dir()]
    return directory


def store_files(cli: Cli) -> dict[str, bytes]:
    tokens = Home(cli.home).softhsm_tokens
    return {str(p.relative_to(tokens)): p.read_bytes() for p in tokens.rglob("*") if p.is_file()}


def test_a_copied_token_directory_is_refused_in_one_line_not_aborted(
    cli: Cli, tmp_path: Path
) -> None:
    cli.run("keys", "generate", "--token", TOKEN, "--algorithm", "AES-128", "--name", "k1")
    original = token_dir(cli)
    copy = original.with_name(original.name[:-1] + ("0" if original.name[-1] != "0" else "1"))
    shutil.copytree(original, copy)
    before = store_files(cli)
    for command in (("keys", "list"), ("tokens", "list"), ("audit", "verify")):
        result = cli.run(*command, expect=1)
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith("keystead: error: "), result.stderr
        assert "two copies of token 'Vault'" in line, line
        assert str(original) in line and str(copy) in line and "Nothing was changed" in line
    assert store_files(cli) == before  # no repair, no shadow, no token write
    shutil.move(str(copy), tmp_path / "kept-copy")  # what the message says to do
    assert [k["name"] for k in cli.json("keys", "list")] == ["k1"]
    assert cli.run("audit", "verify").returncode == 0


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing"])
def test_a_copy_whose_token_object_is_damaged_is_no_conflict(cli: Cli, damage: str) -> None:
    original = token_dir(cli)
    copy = original.with_name(original.name + "-copy")
    shutil.copytree(original, copy)
    target = copy / "token.object"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:50])
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        target.unlink()
    result = subprocess.run(
        [str(KEYSTEAD), "--home", str(cli.home), "--json", "tokens", "list"],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    cli.outputs += [result.stdout, result.stderr]
    assert result.returncode == 0, result.stderr  # not 134: SoftHSM skips such a directory
    assert [t["label"] for t in json.loads(result.stdout)] == [TOKEN]
    if damage != "missing":  # the damage is reported (a copied directory has no good copy)
        assert "unrepairable" in result.stderr and copy.name in result.stderr


def test_a_stray_file_in_the_tokens_directory_is_ignored(cli: Cli) -> None:
    stray = Home(cli.home).softhsm_tokens / "notes.txt"
    stray.write_text("not a token")
    assert [t["label"] for t in cli.json("tokens", "list")] == [TOKEN]
    assert stray.read_text() == "not a token"
