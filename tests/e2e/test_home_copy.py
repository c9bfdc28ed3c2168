"""A home copied with ``cp -a`` (or moved) uses its own token store: its ``softhsm2.conf`` is
written from the home at every start, so commands on the copy never write the original's
token (which would then refuse its own database as older than the token)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.hsm.softhsm import configured_tokendir
from app.paths import Home
from tests.e2e.test_cli import KEYSTEAD, Cli, generate

pytestmark = pytest.mark.e2e


def _token_files(home: Path) -> dict[str, bytes]:
    tokens = Home(home).softhsm_tokens
    return {str(p.relative_to(tokens)): p.read_bytes() for p in sorted(tokens.rglob("*.object"))}


def _names(cli: Cli) -> set[str]:
    return {row["name"] for row in cli.json("keys", "list") if row["id"]}


def _tokendir(home: Path) -> str | None:
    return configured_tokendir(Home(home).softhsm_conf.read_text())


def test_a_copied_home_writes_its_own_token_and_the_original_keeps_working(
    cli: Cli, tmp_path: Path
) -> None:
    generate(cli, "AES-128", "before-copy")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(cli.home), str(copy)], check=True)
    original_token = _token_files(cli.home)
    copied = Cli(copy)
    first = subprocess.run(
        [str(KEYSTEAD), "--home", str(copy), "--json", "keys", "generate", "--token", "Vault",
         "--algorithm", "AES-128", "--name", "on-the-copy"],
        env=copied.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "copied home" in first.stderr and "Traceback" not in first.stderr
    copied.run("audit", "checkpoint")
    assert _tokendir(copy) == str(Home(copy).softhsm_tokens)
    assert _token_files(cli.home) == original_token  # the original's token was not written
    assert _names(cli) == {"before-copy"}  # and its database is not "older than the token"
    cli.run("audit", "verify")
    assert _names(copied) == {"before-copy", "on-the-copy"}
    copied.run("audit", "verify")


def test_a_moved_home_uses_the_store_it_carries(cli: Cli, tmp_path: Path) -> None:
    generate(cli, "EC-P256", "moved-key")
    moved = tmp_path / "moved"
    shutil.move(str(cli.home), str(moved))
    assert _tokendir(moved) != str(Home(moved).softhsm_tokens)
    there = Cli(moved)
    result = subprocess.run(
        [str(KEYSTEAD), "--home", str(moved), "--json", "keys", "list"],
        env=there.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _tokendir(moved) == str(Home(moved).softhsm_tokens)
    assert _names(there) == {"moved-key"}
    there.run("audit", "verify")
