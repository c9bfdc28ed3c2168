"""``keystead backup`` and ``keystead media`` as a subprocess: create to a directory with
shares written for automation, list, verify (plain, with shares and a drill), and refusals
that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import KEYSTEAD, TOKEN, Cli, bare_cli, cli, with_witness  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _second_person(request: pytest.FixtureRequest) -> None:
    """Backup and restore need an approver under the shipped policy: the witness."""
    if "cli" in request.fixturenames:
        with_witness(request.getfixturevalue("cli"))


def _generate(cli: Cli, name: str, *more: str) -> None:  # noqa: F811
    cli.run("keys", "generate", "--token", TOKEN, "--algorithm", "AES-256", "--name", name, *more)


def test_backup_create_list_verify(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    _generate(cli, "backed", "--backup-able")
    _generate(cli, "stays")
    stick = tmp_path / "stick"
    stick.mkdir()
    shares_file = tmp_path / "shares.json"
    created = cli.json(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-3"],
        *["--custodians", "alice,bob,carol", "--shares-out", str(shares_file)],
    )
    assert created["verified"] is True and created["generation"] == 1
    assert created["keys"] == ["backed"]
    assert created["not_backed_up"][0]["key"] == "stays"
    directory = Path(created["directory"])
    assert directory.parent == stick.resolve()
    shares = json.loads(shares_file.read_text())
    assert [s["custodian"] for s in shares["shares"]] == ["alice", "bob", "carol"]
    assert shares["kek_check_value"] == created["kek_check_value"]
    assert oct(shares_file.stat().st_mode & 0o777) == "0o600"

    listed = cli.json("backup", "list")
    assert [(b["generation"], b["keys"]) for b in listed] == [(1, 1)]

    plain = cli.json("backup", "verify", str(directory))
    assert plain["signature"] == "valid" and plain["kek_checked"] is False
    # The stick itself, not the backup on it: the error names the backup directory to give.
    error = cli.error("backup", "verify", str(stick))
    assert "holds backups, it is not one" in error and str(directory) in error
    # The same when shares or a passphrase are given (their manifest was read first and the
    # new-user trial got "The backup manifest …/manifest.json does not exist").
    for extra in (["--shares-in", str(shares_file)], ["--drill", "--shares-in", str(shares_file)]):
        error = cli.error("backup", "verify", str(stick), *extra)
        assert "holds backups, it is not one" in error and str(directory) in error
    error = cli.error("backup", "restore", str(stick), "--shares-in", str(shares_file))
    assert "holds backups, it is not one" in error and str(directory) in error
    two = tmp_path / "two.json"
    two.write_text(json.dumps([shares["shares"][2]["words"], shares["shares"][0]["words"]]))
    drilled = cli.json("backup", "verify", str(directory), "--drill", "--shares-in", str(two))
    assert drilled["kek_checked"] is True and drilled["drilled"] == 1

    one = tmp_path / "one.json"
    one.write_text(json.dumps([shares["shares"][1]["words"]]))
    error = cli.error("backup", "verify", str(directory), "--drill", "--shares-in", str(one))
    assert "needs 2" in error
    for share in shares["shares"]:
        for text in cli.outputs:
            assert share["words"] not in text


def test_backup_refusals_write_nothing(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    _generate(cli, "backed", "--backup-able")
    stick = tmp_path / "stick"
    stick.mkdir()
    error = cli.error(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-3"],
        *["--custodians", "alice,bob", "--shares-out", str(tmp_path / "s.json")],
    )
    assert "2 custodians" in error
    error = cli.error(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-2", "--custodians", "a,b"],
    )
    assert "--shares-out" in error
    error = cli.error(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-2", "--custodians", "a,b"],
        *["--shares-out", str(tmp_path / "s.json")],
        KEYSTEAD_SO_PIN="SENTINEL-cli-wrongpin-2291",
    )
    assert "rejected the SO PIN" in error
    assert list(stick.iterdir()) == []
    assert not (tmp_path / "s.json").exists()
    assert cli.json("backup", "list") == []
    # the user login came back after the refused SO login: generation still works
    _generate(cli, "after")


def test_media_list_runs(cli: Cli) -> None:  # noqa: F811
    assert isinstance(cli.json("media", "list"), list)


def test_restore_onto_a_new_workstation(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    _generate(cli, "backed", "--backup-able")
    shares_file = tmp_path / "shares.json"
    created = cli.json(
        *["backup", "create", "--to", str(tmp_path), "--shares", "2-of-2"],
        *["--custodians", "alice,bob", "--shares-out", str(shares_file)],
    )
    other = Cli(tmp_path / "home-b")
    other.json("init", "--operator", "officer", "--soft-token", TOKEN)
    with_witness(other)
    restored = other.json(
        "backup", "restore", created["directory"], "--shares-in", str(shares_file)
    )
    assert restored["restored"] == ["backed"] and restored["audit_entries"] > 0
    keys = other.json("keys", "list")
    assert [k["name"] for k in keys] == ["backed"]
    again = other.json("backup", "restore", created["directory"], "--shares-in", str(shares_file))
    assert (
        again["restored"] == [] and again["skipped"][0]["reason"] == "already on this workstation"
    )
    other.assert_no_secret_printed()


@pytest.mark.parametrize("kill_at", ["keys.bin", "audit.enc", "manifest.sig"])
def test_sigkill_while_writing_leaves_nothing_that_looks_complete(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    kill_at: str,
) -> None:
    """SIGKILL the moment a file of the new backup appears (watched in a loop; under load the
    kill can land later): what is left is either without a manifest, which verify calls
    incomplete, or complete and verifying (its shares were handed out before any file was
    written); it is recorded only when complete and verified, and the next backup is written
    beside it."""
    import os
    import signal
    import subprocess
    import time

    for index in range(20):
        _generate(cli, f"k{index}", "--backup-able")
    stick = tmp_path / "stick"
    stick.mkdir()
    process = subprocess.Popen(
        [
            *[str(KEYSTEAD), "--home", str(cli.home), "backup", "create", "--to", str(stick)],
            *["--shares", "2-of-2", "--custodians", "a,b"],
            *["--shares-out", str(tmp_path / "s.json")],
        ],
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    killed = False
    while process.poll() is None and time.monotonic() < deadline:
        if any(p.name.startswith(kill_at) for d in stick.iterdir() for p in d.iterdir()):
            os.kill(process.pid, signal.SIGKILL)
            killed = True
            break
    process.wait(timeout=60)
    assert killed, "the backup finished before the file appeared"
    (left,) = list(stick.iterdir())
    if (left / "manifest.json").exists():
        assert cli.json("backup", "verify", str(left))["signature"] == "valid"
        assert (tmp_path / "s.json").exists()  # its shares were out before it was written
    else:
        assert "incomplete" in cli.error("backup", "verify", str(left))
    recorded = cli.json("backup", "list")
    if recorded:
        # Under load the kill can land after the backup was read back, verified and recorded
        # in one transaction: then, and only then, it is listed, and it is the complete one.
        assert (left / "manifest.json").exists()
        assert [Path(r["directory"]).name for r in recorded] == [left.name]
        assert recorded[0]["verified_at"]
    created = cli.json(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-2", "--custodians", "a,b"],
        *["--shares-out", str(tmp_path / "s2.json")],
    )
    assert created["verified"] is True
    assert sorted(p.name for p in stick.iterdir()) == sorted(
        [left.name, Path(created["directory"]).name]
    )


def test_policy_backup_before_activation(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """``keystead policy backup-before-activation PURPOSE --on``: activation of such a key is
    refused, naming the fix, until the key is in a verified backup."""
    shown = {r["purpose"]: r for r in cli.json("policy", "backup-before-activation")}
    assert not any(r["backup_before_activation"] for r in shown.values())
    assert "not a purpose" in cli.error("policy", "backup-before-activation", "nope", "--on")
    cli.run("policy", "backup-before-activation", "encryption", "--on")
    shown = {r["purpose"]: r for r in cli.json("policy", "backup-before-activation")}
    assert shown["encryption"]["backup_before_activation"] is True
    assert shown["signing"]["backup_before_activation"] is False
    _generate(cli, "dek", "--backup-able", "--purpose", "encryption")
    refused = cli.error("keys", "activate", "dek")
    assert "KS-BACKUP-BEFORE-ACTIVATION" in refused and "Back it up first" in refused
    stick = tmp_path / "stick"
    stick.mkdir()
    cli.run(
        *["backup", "create", "--to", str(stick), "--shares", "2-of-2"],
        *["--custodians", "alice,bob", "--shares-out", str(tmp_path / "s.json")],
    )
    cli.run("keys", "activate", "dek")
    states = [k["state"].lower() for k in cli.json("keys", "list") if k["name"] == "dek"]
    assert states == ["active"]
