"""``keystead operators / passphrase / policy / lock-status`` as a subprocess, and dual control
through ``KEYSTEAD_APPROVER`` / ``KEYSTEAD_APPROVER_PASSPHRASE``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.e2e.test_cli import PASSPHRASE, TOKEN, WRONG_PASSPHRASE, Cli, generate
from tests.e2e.test_cli import bare_cli as bare_cli
from tests.e2e.test_cli import cli as cli

pytestmark = pytest.mark.e2e

CUSTODIAN_PASS = "SENTINEL-cli-custodian-4d4d"
AUDITOR_PASS = "SENTINEL-cli-auditor-3c3c"


def audit(cli: Cli, action: str) -> list[tuple[str, str]]:
    return [
        (e["outcome"], e["details"].get("rule", ""))
        for e in cli.json("audit", "list", "--action", action)
    ]


def as_custodian(**more: str) -> dict[str, str]:
    return {
        "KEYSTEAD_APPROVER": "custodian",
        "KEYSTEAD_APPROVER_PASSPHRASE": CUSTODIAN_PASS,
        **more,
    }


def test_officer_custodian_auditor(cli: Cli) -> None:
    # The sole officer enrols the first colleague alone; the passphrase comes on stdin.
    cli.run("operators", "add", "custodian", "--role", "key-custodian", stdin=CUSTODIAN_PASS)
    # From now on operator changes need an approver.
    refused = cli.error("operators", "add", "auditor", "--role", "auditor", stdin=AUDITOR_PASS)
    assert "KS-DUAL-NO-APPROVER" in refused
    cli.run(
        "operators",
        "add",
        "auditor",
        "--role",
        "auditor",
        stdin=AUDITOR_PASS,
        **as_custodian(),
    )
    listed = {o["name"]: o for o in cli.json("operators", "list")}
    assert listed["officer"]["roles"] == ["key-custodian", "security-officer"]
    assert listed["auditor"]["roles"] == ["auditor"] and listed["auditor"]["enabled"]

    # The officer destroys a key only with the custodian's approval, named in the entry.
    generate(cli, "AES-128", "doomed")
    alone = cli.error("keys", "destroy", "doomed", "--confirm", "doomed")
    assert "KS-DUAL-NO-APPROVER" in alone
    # Without a terminal the line says how approvers are given.
    assert "run the command at a terminal" in alone and "KEYSTEAD_APPROVER_PASSPHRASE" in alone
    wrong = cli.error(
        "keys",
        "destroy",
        "doomed",
        "--confirm",
        "doomed",
        KEYSTEAD_APPROVER="custodian",
        KEYSTEAD_APPROVER_PASSPHRASE=WRONG_PASSPHRASE,
    )
    assert "KS-DUAL-APPROVER-PASSPHRASE" in wrong
    selfish = cli.error(
        "keys",
        "destroy",
        "doomed",
        "--confirm",
        "doomed",
        KEYSTEAD_APPROVER="officer",
        KEYSTEAD_APPROVER_PASSPHRASE=PASSPHRASE,
    )
    assert "KS-DUAL-SELF-APPROVAL" in selfish
    mismatch = cli.error(
        "keys",
        "destroy",
        "doomed",
        "--confirm",
        "doomed",
        KEYSTEAD_APPROVER="custodian,auditor",
        KEYSTEAD_APPROVER_PASSPHRASE=CUSTODIAN_PASS,
    )
    assert "same order" in mismatch
    # F16: an empty approver passphrase is not a try (as an empty answer at the terminal):
    # refused before any passphrase is checked, and never counted toward a lock-out.
    def custodian_failures() -> int:
        rows = cli.json("lock-status")["operators"]
        return next((r["failures"] for r in rows if r["operator"] == "custodian"), 0)

    counted = custodian_failures()
    for names, given in (("custodian", ""), ("custodian,auditor", f"{CUSTODIAN_PASS},")):
        empty = cli.error(
            "keys",
            "destroy",
            "doomed",
            "--confirm",
            "doomed",
            KEYSTEAD_APPROVER=names,
            KEYSTEAD_APPROVER_PASSPHRASE=given,
        )
        assert "KEYSTEAD_APPROVER_PASSPHRASE is empty for approver" in empty
        assert "nothing was tried" in empty
    assert custodian_failures() == counted
    cli.run("keys", "destroy", "doomed", "--confirm", "doomed", **as_custodian())
    [done] = [e for e in cli.json("keys", "history", "doomed") if e["outcome"] == "success"][1:]
    assert done["operators"] == "officer, custodian"
    assert done["details"]["approval"]["approvers"] == ["custodian"]

    # The auditor reads, verifies and exports; every change is refused with a denied entry.
    auditor = {"KEYSTEAD_OPERATOR": "auditor", "KEYSTEAD_PASSPHRASE": AUDITOR_PASS}
    cli.run("audit", "verify", **auditor)
    cli.run("audit", "export", "--format", "json", "--out", str(cli.home / "x.json"), **auditor)
    for args in (
        ("keys", "generate", "--token", TOKEN, "--algorithm", "AES-128", "--name", "n"),
        ("operators", "add", "x2", "--role", "auditor"),
        ("policy", "set", "key.resume", "--approvals", "2"),
        ("tokens", "create-soft", "--label", "Nope"),
    ):
        message = cli.error(*args, **auditor)
        assert "KS-ROLE-REQUIRED" in message and "auditor" in message, args
    assert ("denied", "KS-ROLE-REQUIRED") in audit(cli, "key.generate")

    # The policy keeps its floor; changing it needs its own approvers.
    assert "KS-POLICY-FLOOR" in cli.error("policy", "set", "key.destroy", "--approvals", "0")
    # Two approvers besides the initiator: the officer and the custodian cannot make that.
    quorum = cli.error("policy", "set", "key.resume", "--approvals", "2", **as_custodian())
    assert "KS-DUAL-QUORUM" in quorum and "Enrol more operators" in quorum
    cli.run("policy", "set", "key.activate-other", "--approvals", "1", **as_custodian())
    rules = {r["action"]: r for r in cli.json("policy", "show")}
    assert rules["key.activate-other"]["approvals"] == 1
    assert rules["key.resume"]["approvals"] == 1 and rules["key.destroy"]["approvals"] == 1

    # The last security officer stays; a too-short passphrase is refused.
    assert "KS-OPERATOR-LAST-OFFICER" in cli.error(
        "operators", "disable", "officer", **as_custodian()
    )
    assert "at least 12" in cli.error(
        "operators", "reset-passphrase", "auditor", stdin="short\n", **as_custodian()
    )
    cli.run("operators", "roles", "auditor", "--set", "auditor,key-custodian", **as_custodian())
    assert cli.run("audit", "verify").returncode == 0
    # F16: a disabled operator at unlock is told the name may be disabled, not only unknown.
    cli.run("operators", "disable", "auditor", **as_custodian())
    gone = cli.error("keys", "list", **auditor)
    assert "no operator named 'auditor'" in gone and "disabled or removed" in gone
    # F16: enabling an enabled operator is refused before a new passphrase is asked for.
    already = cli.error("operators", "enable", "officer", **as_custodian())
    assert "'officer' is enabled" in already and "passphrase" not in already


def test_wrong_passphrases_are_counted_shown_and_sealed(cli: Cli) -> None:
    for _ in range(2):
        cli.error("keys", "list", KEYSTEAD_PASSPHRASE=WRONG_PASSPHRASE)
    status = cli.json("lock-status")  # needs no passphrase
    assert status["failures_since_last_unlock"] == 2
    [row] = status["operators"]
    assert row["operator"] == "officer" and row["failures"] == 2 and not row["locked_out"]
    wait_until = datetime.fromisoformat(row["next_try_after"])
    assert isinstance(row["waiting"], bool)
    # In words: a failure whose wait is over reads "may try now", never as a lock.
    text = cli.run("lock-status").stdout
    assert ("waiting" in text) or ("may try now" in text)
    assert "back-off" not in text.splitlines()[-1]
    # After the back-off delay (read from lock-status, never guessed), the right passphrase
    # opens and seals both failures into the audit history.
    time.sleep(max(0.0, (wait_until - datetime.now(UTC)).total_seconds()) + 0.2)
    failed = [
        e
        for e in cli.json("audit", "list", "--action", "workstation.unlock")
        if e["outcome"] == "failed"
    ]
    assert [(e["operators"], e["details"]["reason"]) for e in failed] == [
        ("officer", "wrong passphrase")
    ] * 2
    assert cli.json("lock-status") == {
        "operators": [],
        "failures_since_last_unlock": 0,
        "in_progress": None,
    }


def test_an_unlock_in_progress_is_not_shown_as_a_failure(cli: Cli) -> None:
    """New-user trial: lock-status during another process's unlock showed a phantom failed
    unlock with back-off (a try is counted before it is checked, so a kill cannot hide it).
    Here this test process is that other process: it holds the workstation and has begun a
    try, as an unlock does before checking the passphrase."""
    from app.paths import Home
    from app.storage.home_lock import HomeLock
    from app.storage.unlock_failures import UnlockFailures

    home = Home(cli.home)
    held = HomeLock.acquire(home.root, program="unlock-in-progress")
    try:
        UnlockFailures(home.unlock_failures).begin("officer", datetime.now(UTC))
        status = cli.json("lock-status")
        assert status["failures_since_last_unlock"] == 0 and status["operators"] == []
        assert status["in_progress"]["operator"] == "officer"
        assert "unlock-in-progress" in status["in_progress"]["by"]
        said = cli.run("lock-status").stdout
        assert "An unlock by officer is in progress" in said and "0 failed unlock(s)" in said
    finally:
        held.release()
    # Nobody holds it any more: the same try is what a killed unlock leaves, a failure.
    status = cli.json("lock-status")
    assert status["failures_since_last_unlock"] == 1 and status["in_progress"] is None
    [row] = status["operators"]
    assert row["operator"] == "officer" and row["failures"] == 1


def test_passphrase_change_reads_the_new_one_from_stdin(cli: Cli) -> None:
    new = "SENTINEL-cli-newpass-6a6a"
    cli.run("passphrase", "change", stdin=new + "\n")
    cli.error("keys", "list")  # the old one no longer opens
    cli.run("keys", "list", KEYSTEAD_PASSPHRASE=new)
