"""Rollback detection that holds: an older ``keystead.db``, one edited ``workstation_id``, a
swapped database, an emptied or missing database — each refused before anything is written,
with the same words however often it is retried (with or without the token PIN)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_cli import TOKEN, Cli, generate

pytestmark = pytest.mark.e2e

RETRIES = 8


def _refused_every_time(cli: Cli, *args: str, **env: str) -> str:
    """Run ``args`` RETRIES times: each must fail with one line, the same line, and leave every
    file of the home byte for byte as it was."""
    before = cli.files()
    lines = {cli.error(*args, **env) for _ in range(RETRIES)}
    assert len(lines) == 1, lines
    assert cli.files() == before
    return lines.pop()


def _older_copy(cli: Cli, tmp_path: Path) -> Path:
    """A copy of the database taken now; then the workstation moves on (and checkpoints)."""
    generate(cli, "AES-128", "kept")
    old = tmp_path / "old.db"
    shutil.copy2(cli.home / "keystead.db", old)
    later = generate(cli, "AES-128", "later")
    cli.json("keys", "activate", later["id"])
    cli.json("keys", "suspend", later["id"], "--reason", "rollback drill")
    cli.json("audit", "checkpoint")
    return old


@pytest.mark.parametrize("pin", [True, False])
def test_an_older_database_is_refused_the_same_way_every_time(
    cli: Cli, tmp_path: Path, pin: bool
) -> None:
    old = _older_copy(cli, tmp_path)
    shutil.copy2(old, cli.home / "keystead.db")
    env = {} if pin else {"KEYSTEAD_PIN": ""}
    for args in (("keys", "list"), ("audit", "verify"), ("keys", "show", "later")):
        line = _refused_every_time(cli, *args, **env)
        assert "older than the token" in line and "nothing was changed" in line.lower()
        assert "keystead backup restore" in line  # a way back that exists (attack F9)


def test_an_older_database_that_was_used_since_is_refused(cli: Cli, tmp_path: Path) -> None:
    """The copy grows its own chain past the checkpoint (as refused runs once made it do):
    the entry at the checkpoint's sequence differs, so it is still refused."""
    old = _older_copy(cli, tmp_path)
    current = cli.home / "keystead.db"
    saved = tmp_path / "current.db"
    shutil.copy2(current, saved)
    slots = json.loads((cli.home / "keyslots.json").read_text())
    # Grow the old copy in another home with no token (nothing vouches for it there).
    other = Cli(tmp_path / "other")
    other.home.mkdir()
    shutil.copy2(old, other.home / "keystead.db")
    (other.home / "keyslots.json").write_text(json.dumps(slots))
    for _ in range(12):
        other.run("keys", "list", KEYSTEAD_PIN="")
    shutil.copy2(other.home / "keystead.db", current)
    line = _refused_every_time(cli, "keys", "list")
    assert "differs from the token's checkpoint" in line


def test_an_edited_workstation_id_is_refused(cli: Cli, tmp_path: Path) -> None:
    old = _older_copy(cli, tmp_path)
    path = cli.home / "keyslots.json"
    doc = json.loads(path.read_text())
    doc["workstation_id"] = "00000000-0000-4000-8000-000000000000"
    path.write_text(json.dumps(doc))
    line = _refused_every_time(cli, "keys", "list")
    assert "keyslot file names workstation" in line
    shutil.copy2(old, cli.home / "keystead.db")  # rolled back as well
    line = _refused_every_time(cli, "keys", "list")
    assert "keyslot file names workstation" in line


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_an_empty_or_missing_database_is_damage_not_a_new_start(cli: Cli, damage: str) -> None:
    generate(cli, "AES-128", "kept")
    database = cli.home / "keystead.db"
    if damage == "empty":
        database.write_bytes(b"")
    else:
        database.unlink()
    for args in (("keys", "list"), ("audit", "verify"), ("keys", "generate", "--token", TOKEN,
                                                          "--algorithm", "AES-128", "--name", "x")):
        line = _refused_every_time(cli, *args)
        assert f"({damage}" in line or damage in line, line
    assert database.exists() == (damage == "empty")
