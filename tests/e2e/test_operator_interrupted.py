"""``operators add`` (and ``operators enable``) killed (SIGKILL) right after keyslots.json was
saved and before the database committed the operator's record: the keyslot holds the database
key under a passphrase no record vouches for. The next unlock by any operator removes such a
keyslot and records it (outside testers, F15: the slot opened the database key, and the name
could then be neither added, enabled nor removed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.e2e.test_cli import PASSPHRASE, Cli
from tests.e2e.test_cli import bare_cli as bare_cli
from tests.e2e.test_cli import cli as cli

pytestmark = pytest.mark.e2e

FRANK_PASS = "SENTINEL-cli-frank-8f8f"

# The CLI in a process that SIGKILLs itself right after the named method returns.
KILLED_AFTER = """
import importlib, os, signal, sys
module, _, attribute = sys.argv[1].partition(":")
owner_name, _, method = attribute.partition(".")
owner = getattr(importlib.import_module(module), owner_name)
original = getattr(owner, method)
def killed_after(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(owner, method, killed_after)
from app.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def killed(cli: Cli, target: str, *args: str, stdin: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER, target, "--home", str(cli.home), *args],
        env=cli.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    cli.outputs += [result.stdout, result.stderr]
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr)


def slot_names(cli: Cli) -> list[str]:
    return [s["operator"] for s in json.loads((cli.home / "keyslots.json").read_text())["slots"]]


def test_a_keyslot_left_by_a_killed_add_is_removed_and_recorded_at_the_next_unlock(
    cli: Cli,
) -> None:
    killed(
        cli,
        "app.storage.keyslots:KeySlotFile.save",
        *["operators", "add", "frank", "--role", "key-custodian"],
        stdin=FRANK_PASS + "\n",
    )
    assert "frank" in slot_names(cli)  # the kill came after the file was saved
    # frank's keyslot opens nothing: no record vouches for it; the message says why.
    refused = cli.error("keys", "list", KEYSTEAD_OPERATOR="frank", KEYSTEAD_PASSPHRASE=FRANK_PASS)
    assert "frank" in refused and "no operator record" in refused
    # The next unlock by an operator removes it, recorded.
    assert [o["name"] for o in cli.json("operators", "list", "--all")] == ["officer"]
    assert slot_names(cli) == ["officer"]
    entries = cli.json("audit", "list", "--action", "operator.keyslot-orphan")
    assert len(entries) == 1 and entries[0]["subject"] == "operator:frank"
    assert "no operator record" in entries[0]["details"]["reason"]
    # frank's passphrase opens nothing now, and the name can be added properly.
    cli.error("keys", "list", KEYSTEAD_OPERATOR="frank", KEYSTEAD_PASSPHRASE=FRANK_PASS)
    cli.run("operators", "add", "frank", "--role", "key-custodian", stdin=FRANK_PASS + "\n")
    assert sorted(slot_names(cli)) == ["frank", "officer"]
    cli.run("keys", "list", KEYSTEAD_OPERATOR="frank", KEYSTEAD_PASSPHRASE=FRANK_PASS)
    # The orphan is settled once: later unlocks record nothing more.
    cli.run("keys", "list")
    assert len(cli.json("audit", "list", "--action", "operator.keyslot-orphan")) == 1
    assert cli.json("audit", "verify")["ok"]
    assert PASSPHRASE not in (cli.home / "keyslots.json").read_text()
