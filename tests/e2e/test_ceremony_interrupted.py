"""A ceremony step killed (SIGKILL) right after its action committed, then ``ceremony resume``:
the step's action is never done twice. Resume reads what the action left (the key the step
generated, the backup it wrote) from the records made after the step's recorded start, shows
it for sign-off and the ceremony completes (outside testers, F6: the resumed key.generate
failed the ceremony "already exists", backup.create wrote a second backup with a second share
set)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.ceremony import script as scripts
from app.ceremony.templates import template_dir
from tests.e2e.test_ceremony_cli import REHEARSAL, answers, make_rehearsal_token, room_run
from tests.e2e.test_cli import WITNESS, WITNESS_PASS, Cli, with_witness
from tests.hsm.ceremony_kit import EXTERNAL

pytestmark = pytest.mark.e2e

# The CLI in a process that SIGKILLs itself right after the named service method returns:
# as if the power went at that instant (nothing after it runs, no handler, no cleanup).
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

GENERATE = """schema = 1
name = "gen"
title = "Generate a key"

[participants]
witnesses = 1

[profiles.rehearsal]
token_label = "Rehearsal"

[profiles.production]
token_serial = "REPLACE-WITH-THE-TOKEN-SERIAL"

[[steps]]
id = "g"
type = "key.generate"
instruction = "Generate the key. Read its check value aloud."
[steps.params]
name = "cerkey"
algorithm = "AES-256"
purpose = "encryption"
backup = true

[[steps]]
id = "c"
type = "audit.checkpoint"
instruction = "Sign a checkpoint."
"""


@pytest.fixture
def room(cli: Cli) -> Cli:
    with_witness(cli)
    make_rehearsal_token(cli)
    return cli


def _killed_run(cli: Cli, target: str, script: Path, work: Path, *more: str) -> str:
    parsed = scripts.load(script)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_AFTER,
            target,
            *["--home", str(cli.home), "ceremony", "run", str(script)],
            *["--profile", "rehearsal", "--workdir", str(work), *more],
        ],
        env=cli.env,
        input=answers(parsed),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    cli.outputs += [result.stdout, result.stderr]
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr)
    (running,) = [c for c in cli.json("ceremony", "list") if c["state"] == "running"]
    return str(running["id"])


def _resume_answers(parsed: scripts.Script, start: int) -> str:
    """DONE and the sign-offs for each step from ``start`` on (witness operator and the
    external witness, as ``answers`` registered them)."""
    own_role = "custodian" if parsed.custodians else "witness"
    people = [(WITNESS, own_role), (EXTERNAL[0], "witness")]
    lines: list[str] = []
    for step in parsed.steps[start:]:
        lines.append("DONE")
        for name in [n for n, role in people if role in step.signers][: step.quorum]:
            lines += [WITNESS, "WI", WITNESS_PASS] if name == WITNESS else [name, name]
    return "\n".join(lines) + "\n"


def test_a_key_generated_before_a_kill_is_taken_up_not_generated_again(
    room: Cli, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "gen.toml"
    script.write_text(GENERATE)
    ident = _killed_run(room, "app.services.keys:KeyService.generate", script, work)
    made = room.json("keys", "show", "cerkey")
    out = room_run(
        room,
        *["ceremony", "resume", ident],
        stdin=_resume_answers(scripts.load(script), 0),
        expect=0,
    ).stdout
    assert "completed before the interruption" in out
    assert made["kcv"].upper() in out.replace(":", "").upper()  # read aloud for the sign-off
    keys = [k for k in room.json("keys", "list") if k["name"].startswith("cerkey")]
    assert len(keys) == 1 and keys[0]["id"] == made["id"]
    (row,) = [c for c in room.json("ceremony", "list") if c["id"] == ident]
    assert row["state"] == "completed"
    transcript = tmp_path / "t.json"
    room.run("ceremony", "transcript", ident, "--out", str(transcript))
    doc = json.loads(transcript.read_text())
    assert doc["steps"][0]["outputs"]["key_id"] == made["id"]
    assert room.json("ceremony", "verify", str(transcript))["sha256"] == row["transcript_sha256"]
    assert room.json("audit", "verify")["ok"]


def test_a_backup_written_before_a_kill_is_taken_up_not_written_again(
    room: Cli, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    room.run(
        *["keys", "generate", "--token", REHEARSAL, "--algorithm", "AES-256"],
        *["--name", "rehkey", "--purpose", "encryption", "--backup-able"],
    )
    script = template_dir() / "backup.toml"
    shares = tmp_path / "shares1.json"
    ident = _killed_run(
        room,
        "app.services.backup:BackupService.create",
        script,
        work,
        "--shares-out",
        str(shares),
    )
    (first,) = room.json("backup", "list")
    out = room_run(
        room,
        *["ceremony", "resume", ident, "--shares-out", str(tmp_path / "shares2.json")],
        stdin=_resume_answers(scripts.load(script), 1),
        expect=0,
    ).stdout
    assert "completed before the interruption" in out
    assert room.json("backup", "list") == [first]  # no second backup, no second share set
    assert not (tmp_path / "shares2.json").exists()
    assert len(list((work / "backup").iterdir())) == 1
    (row,) = [c for c in room.json("ceremony", "list") if c["id"] == ident]
    assert row["state"] == "completed"
    transcript = tmp_path / "t.json"
    room.run("ceremony", "transcript", ident, "--out", str(transcript))
    doc = json.loads(transcript.read_text())
    assert doc["steps"][1]["outputs"]["backup_id"] == first["id"]
