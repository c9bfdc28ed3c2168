"""SIGKILL in the middle of ``keystead backup restore`` (attack F2), and the CLI's answer to a
partial restore (F1, F13).

The restore writes a ``key.restore`` intent before its first token object: the process kills
itself right after the token made its k-th key (as the attack's harness did); pkcs11-tool then
sees the half-restored objects; the next login destroys them
(recorded), nothing stays pending, and the restore run again brings every key back. Before, the
orphans had no intent, blocked every later restore and could not be adopted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli import KEYSTEAD, PIN, TOKEN, Cli, with_witness
from tests.hsm.kit import peer_keys

pytestmark = [pytest.mark.crash, pytest.mark.e2e]


KILL_AFTER = """
import os, signal, sys
from app.hsm import backup_wrap
from app.cli.main import main
name, nth = sys.argv[1], int(sys.argv[2])
original = getattr(backup_wrap.KekSession, name)
calls = 0
def killing(self, *args, **kwargs):
    global calls
    result = original(self, *args, **kwargs)
    calls += 1
    if calls == nth:
        os.kill(os.getpid(), signal.SIGKILL)  # right after the token made the object
    return result
setattr(backup_wrap.KekSession, name, killing)
sys.exit(main(sys.argv[3:]))
"""


def _restore_killed_after(cli: Cli, args: list[str], method: str, nth: int) -> int:
    """Run ``keystead ARGS`` in a process that SIGKILLs itself right after the ``nth`` call
    of ``KekSession.<method>`` (the token holds the object, nothing recorded yet)."""
    result = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, method, str(nth), "--home", str(cli.home), *args],
        env=cli.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode


def _json(cli: Cli, *args: str) -> Any:
    """``keystead --json ARGS`` that must succeed; warnings on stderr are allowed (the login
    after a kill reports what it settled)."""
    result = subprocess.run(
        [str(KEYSTEAD), "--home", str(cli.home), "--json", *args],
        env=cli.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (args, result.stderr)
    return json.loads(result.stdout)


def _made(cli: Cli, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    for name, algorithm in (("a1", "AES-256"), ("a2", "AES-128"), ("a3", "AES-192")):
        cli.run(
            *["keys", "generate", "--token", TOKEN, "--algorithm", algorithm, "--name", name],
            "--backup-able",
        )
    cli.run(
        *["keys", "generate", "--token", TOKEN, "--algorithm", "EC-P256", "--name", "e1"],
        *["--purpose", "signing", "--backup-able"],
    )
    shares = tmp_path / "shares.json"
    created = cli.json(
        *["backup", "create", "--to", str(tmp_path), "--shares", "2-of-2"],
        *["--custodians", "alice,bob", "--shares-out", str(shares)],
    )
    return created, shares


def test_a_restore_killed_half_way_is_settled_and_runs_again(tmp_path: Path) -> None:
    source = Cli(tmp_path / "home-a")
    source.run("init", "--operator", "officer", "--soft-token", TOKEN)
    with_witness(source)
    created, shares = _made(source, tmp_path)
    ids = {k["name"]: k["cka_id"] for k in source.json("keys", "list") if k["id"]}

    target = Cli(tmp_path / "home-b")
    target.run("init", "--operator", "officer", "--soft-token", TOKEN)
    with_witness(target)
    restore = ["backup", "restore", created["directory"], "--shares-in", str(shares)]
    for method, nth in (("restore_secret", 1), ("restore_secret", 3), ("restore_private", 1)):
        assert _restore_killed_after(target, restore, method, nth) == -signal.SIGKILL
        left = {p.cka_id for p in peer_keys(target.home, TOKEN, PIN)} & set(ids.values())
        assert left, "the kill came before any restored object"
        listed = _json(target, "keys", "list")  # the next login settles the intent
        assert [k for k in listed if k["id"]] == []
        assert not {k["cka_id"] for k in listed} & set(ids.values())  # no orphan left
        assert not {p.cka_id for p in peer_keys(target.home, TOKEN, PIN)} & set(ids.values())
        assert target.json("audit", "intents") == []
        aborted = target.json("audit", "list", "--action", "backup.restore")
        assert aborted[-1]["outcome"] == "aborted"

    done = target.json(*restore)
    assert sorted(done["restored"]) == ["a1", "a2", "a3", "e1"] and done["complete"]
    assert {k["name"]: k["cka_id"] for k in target.json("keys", "list") if k["id"]} == ids
    assert target.run("audit", "verify").returncode == 0


def test_the_cli_exits_1_when_a_key_needs_action_and_renames(tmp_path: Path) -> None:
    source = Cli(tmp_path / "home-a")
    source.run("init", "--operator", "officer", "--soft-token", TOKEN)
    with_witness(source)
    created, shares = _made(source, tmp_path)
    target = Cli(tmp_path / "home-b")
    target.run("init", "--operator", "officer", "--soft-token", TOKEN)
    with_witness(target)
    target.run("keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", "a1")
    restore = ["backup", "restore", created["directory"], "--shares-in", str(shares)]
    result = subprocess.run(
        [str(KEYSTEAD), "--home", str(target.home), "--json", *restore],
        env=target.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    row = json.loads(result.stdout)
    assert sorted(row["restored"]) == ["a2", "a3", "e1"] and row["complete"] is False
    assert row["skipped"][0]["key"] == "a1" and row["skipped"][0]["needs_action"]
    (line,) = result.stderr.splitlines()
    assert line.startswith("keystead: error: 1 key(s) of the backup were not restored")
    assert "a1" in line
    assert "--rename takes OLD=NEW" in target.error(*restore, "--rename", "a1")
    renamed = target.json(*restore, "--rename", "a1=a1-from-backup")
    assert renamed["restored"] == ["a1-from-backup"] and renamed["complete"]
    assert renamed["renamed"] == {"a1": "a1-from-backup"}
    names = sorted(k["name"] for k in target.json("keys", "list") if k["id"])
    assert names == ["a1", "a1-from-backup", "a2", "a3", "e1"]
