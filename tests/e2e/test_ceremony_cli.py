"""``keystead ceremony`` as a subprocess: every shipped template runs to the end on SoftHSM with
the room's answers on standard input; transcripts verify against the chain; a changed one does
not; two rehearsals differ only where they must; the bad inputs of the issue are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from app.ceremony import script as scripts
from app.ceremony.templates import template_dir
from tests.e2e.test_cli import PIN, SO_PIN, WITNESS, WITNESS_PASS, Cli, with_witness
from tests.hsm.ceremony_kit import EXTERNAL, write_csr

pytestmark = pytest.mark.e2e

REHEARSAL = "Rehearsal"


@pytest.fixture
def room(cli: Cli) -> Cli:
    """The officer, an enrolled witness operator (also the dual-control approver) and a
    Rehearsal SoftHSM token beside the audit token."""
    with_witness(cli)
    make_rehearsal_token(cli)
    return cli


def make_rehearsal_token(cli: Cli) -> None:
    cli.run(
        "tokens",
        "create-soft",
        "--label",
        REHEARSAL,
        KEYSTEAD_SO_PIN=SO_PIN,  # the PINs of the token a command creates (README's one rule)
        KEYSTEAD_PIN=PIN,
    )
    # Commands naming the rehearsal token take the audit token's PIN from its own variable
    # (one token's PIN is never tried on another, even when both are the same).
    cli.env["KEYSTEAD_AUDIT_PIN"] = PIN


def answers(script: scripts.Script, confirm: str = "YES") -> str:
    """What the room types: the hash confirmation, three participants (the witness operator
    as custodian when the script needs one, else as witness; an external witness), then per
    step DONE and the sign-offs its quorum needs, by role."""
    own_role = "custodian" if script.custodians else "witness"
    lines = [
        confirm,
        own_role,
        WITNESS,
        "operator",
        WITNESS_PASS,
        "witness",
        EXTERNAL[0],
        "external",
        EXTERNAL[1],
        "",
    ]
    people = [(WITNESS, own_role), (EXTERNAL[0], "witness")]
    for step in script.steps:
        lines.append("DONE")
        signers = [name for name, role in people if role in step.signers][: step.quorum]
        for name in signers:
            if name == WITNESS:
                lines += [WITNESS, "WI", WITNESS_PASS]
            else:
                lines += [name, name]
    return "\n".join(lines) + "\n"


def room_run(cli: Cli, *args: str, stdin: str, expect: int, **env: str) -> Any:
    """A ceremony run prints the room's dialogue on stdout, so a failure is checked here:
    the exit code, and on failure exactly one error line on stderr (besides refusals the room
    was shown and answered again)."""
    import subprocess

    from tests.e2e.test_cli import KEYSTEAD

    result = subprocess.run(
        [str(KEYSTEAD), "--home", str(cli.home), *args],
        env={**cli.env, **env},
        capture_output=True,
        text=True,
        timeout=600,
        input=stdin,
        check=False,
    )
    cli.outputs += [result.stdout, result.stderr]
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("keystead: error:")]
    assert len(errors) == (1 if expect else 0), result.stderr
    return result


def run_template(
    cli: Cli,
    name: str,
    workdir: Path,
    *more: str,
    expect: int = 0,
    script_path: Path | None = None,
    **env: str,
) -> str:
    path = script_path or template_dir() / f"{name}.toml"
    script = scripts.load(path)
    result = room_run(
        cli,
        "ceremony",
        "run",
        str(path),
        "--profile",
        "rehearsal",
        "--workdir",
        str(workdir),
        *more,
        stdin=answers(script),
        expect=expect,
        **env,
    )
    stdout: str = result.stdout
    return stdout


def ceremony_id(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("Ceremony ") and line.endswith(" begun."):
            return line.split()[1]
    raise AssertionError(stdout)


def test_every_template_runs_to_the_end(room: Cli, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    listed = {t["name"] for t in room.json("ceremony", "list-templates")}
    done: dict[str, str] = {}
    # Initialise the Rehearsal token (erased and relabelled), then a fresh Rehearsal token
    # for the keys.
    done["init-token"] = ceremony_id(run_template(room, "init-token", work, KEYSTEAD_NEW_PIN=PIN))
    labels = {t["label"] for t in room.json("tokens", "list")}
    assert "Keystead-keys" in labels and REHEARSAL not in labels
    make_rehearsal_token(room)
    out = run_template(room, "generate-kek", work)
    done["generate-kek"] = ceremony_id(out)
    kek = room.json("keys", "show", "kek-2026")
    assert kek["state"] == "ACTIVE" and kek["token"] == REHEARSAL
    assert kek["kcv"].upper() in out.replace(":", "").upper()  # read aloud
    # New-user trial F6: a later step showed 'expected kcv: @generate.kcv', not the value.
    assert "@generate" not in out
    assert f"expected kcv: {kek['kcv']} (recorded by step 'generate')" in out
    shares = tmp_path / "shares.json"
    done["backup"] = ceremony_id(run_template(room, "backup", work, "--shares-out", str(shares)))
    assert len(json.loads(shares.read_text())["shares"]) == 3
    done["restore-drill"] = ceremony_id(
        run_template(room, "restore-drill", work, "--shares-in", str(shares))
    )
    done["rotate-key"] = ceremony_id(run_template(room, "rotate-key", work))
    assert room.json("keys", "show", "kek-2026")["state"] == "DEACTIVATED"
    assert room.json("keys", "show", "kek-2026-v2")["state"] == "ACTIVE"
    done["destroy-key"] = ceremony_id(run_template(room, "destroy-key", work))
    assert room.json("keys", "show", "kek-2026")["state"] == "DESTROYED"
    write_csr(work)
    done["root-ca"] = ceremony_id(run_template(room, "root-ca", work))
    root = x509.load_pem_x509_certificate((work / "root-ca.pem").read_bytes())
    inter = x509.load_pem_x509_certificate((work / "intermediate-ca.pem").read_bytes())
    inter.verify_directly_issued_by(root)
    assert set(done) == listed
    rows = {r["id"]: r for r in room.json("ceremony", "list")}
    for name, ident in done.items():
        assert rows[ident]["state"] == "completed", name
        transcript = tmp_path / f"{name}.json"
        room.run("ceremony", "transcript", ident, "--out", str(transcript))
        verified = room.json("ceremony", "verify", str(transcript))
        assert verified["sha256"] == rows[ident]["transcript_sha256"]
    assert room.json("audit", "verify")["ok"]
    # A modified transcript fails verification.
    changed = tmp_path / "changed.json"
    doc = json.loads((tmp_path / "root-ca.json").read_text())
    doc["steps"][1]["outputs"]["fingerprint"] = "00" * 32
    changed.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    assert "was changed" in room.error("ceremony", "verify", str(changed))
    # show names every step and who signed it
    shown = room.run("ceremony", "show", done["root-ca"][:8]).stdout
    assert "sign-intermediate [cert.sign-csr] signed; signed by witness" in shown
    # never written over
    assert "never written over" in room.error(
        "ceremony", "transcript", done["root-ca"], "--out", str(tmp_path / "root-ca.json")
    )


def test_two_rehearsals_differ_only_where_expected(room: Cli, tmp_path: Path) -> None:
    other = Cli(tmp_path / "other-home")
    other.json("init", "--operator", "officer", "--soft-token", "Vault")
    with_witness(other)
    make_rehearsal_token(other)
    ids = []
    for index, cli in enumerate((room, other)):
        work = tmp_path / f"work{index}"
        work.mkdir()
        write_csr(work)
        ids.append(ceremony_id(run_template(cli, "root-ca", work)))
    first = tmp_path / "first.json"
    room.run("ceremony", "transcript", ids[0], "--out", str(first))
    check_pdf(room, ids[0], tmp_path)
    compared = other.json("ceremony", "diff", str(first), ids[1])
    assert compared["same_script"] and compared["unexpected"] == []
    expected = "\n".join(compared["expected"])
    for varying in (
        "output fingerprint",
        "output serial",
        "output certificate_sha256",
        "output key_id",
        "ceremony.token",
        "performed_at",
    ):
        assert varying in expected, varying
    # A script changed in one parameter: the same steps, but an unexpected difference.
    changed_script = tmp_path / "root-ca-changed.toml"
    changed_script.write_bytes(
        (template_dir() / "root-ca.toml").read_bytes().replace(b"days = 3650", b"days = 3000")
    )
    work = tmp_path / "work-changed"
    work.mkdir()
    write_csr(work)
    third = tmp_path / "third-home"
    cli3 = Cli(third)
    cli3.json("init", "--operator", "officer", "--soft-token", "Vault")
    with_witness(cli3)
    make_rehearsal_token(cli3)
    changed_id = ceremony_id(run_template(cli3, "root-ca", work, script_path=changed_script))
    result = room_run(cli3, "ceremony", "diff", str(first), changed_id, stdin="", expect=1)
    assert "script.sha256" in result.stdout and "params" in result.stdout


def test_bad_scripts_are_refused_before_anything(room: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    source = (template_dir() / "rotate-key.toml").read_text()
    cases: list[tuple[str, str]] = [
        (source.replace('name = "rotate-key"', 'name = "rotate-key'), "line 5, column"),
        (source.replace('type = "key.rotate"', 'type = "key.spin"'), "unknown step type"),
        (source.replace('key = "kek-2026"\n', 'key = "kek-2026"\npin = "1234"\n', 1), "secret"),
        (source.replace('key = "kek-2026"\n', "", 1), "needs the parameter 'key'"),
    ]
    before = room.files()
    for text, words in cases:
        bad.write_text(text)
        assert words in room.error("ceremony", "validate", str(bad))
        refusal = room.error(
            "ceremony", "run", str(bad), "--profile", "rehearsal", "--workdir", str(tmp_path)
        )
        assert words in refusal
    assert room.files() == before  # not even unlocked: nothing written


def test_a_token_that_does_not_match_the_profile(room: Cli, tmp_path: Path) -> None:
    refusal = room_run(
        room,
        "ceremony",
        "run",
        "root-ca",
        "--profile",
        "production",
        "--workdir",
        str(tmp_path),
        stdin="YES\n",
        expect=1,
    ).stderr
    assert "REPLACE-WITH-THE-TOKEN-SERIAL" in refusal and "KS-CEREMONY-TOKEN" in refusal
    denied = [e for e in room.json("audit", "list") if e["action"] == "ceremony.begin"]
    assert [e["outcome"] for e in denied] == ["denied"]


def test_a_hash_not_confirmed_starts_nothing(room: Cli, tmp_path: Path) -> None:
    script = scripts.load(template_dir() / "rotate-key.toml")
    room_run(
        room,
        "ceremony",
        "run",
        "rotate-key",
        "--profile",
        "rehearsal",
        "--workdir",
        str(tmp_path),
        stdin=answers(script, confirm="no"),
        expect=1,
    )
    assert room.json("ceremony", "list") == []


def test_a_failed_step_stops_with_its_reason_and_pause_resumes(room: Cli, tmp_path: Path) -> None:
    # rotate-key needs kek-2026, which does not exist here: step 2 fails and stops everything.
    out = room_run(
        room,
        "ceremony",
        "run",
        "rotate-key",
        "--profile",
        "rehearsal",
        "--workdir",
        str(tmp_path),
        stdin=answers(scripts.load(template_dir() / "rotate-key.toml")),
        expect=1,
    )
    assert "kek-2026" in out.stderr
    row = room.json("ceremony", "list")[0]
    assert row["state"] == "failed" and row["transcript_sha256"]
    shown = room.json("ceremony", "show", row["id"])
    assert "kek-2026" in shown["steps"][1]["reason"]
    # Pause after the first step (input ends), then resume to the end.
    script = scripts.load(template_dir() / "generate-kek.toml")
    full = answers(script).splitlines()
    # registration (10 lines), DONE, the external witness's sign-off of step 1 (2 lines)
    first_part = full[:13]
    assert full[10] == "DONE" and full[11] == EXTERNAL[0]
    out = room_run(
        room,
        "ceremony",
        "run",
        "generate-kek",
        "--profile",
        "rehearsal",
        "--workdir",
        str(tmp_path),
        stdin="\n".join(first_part) + "\nPAUSE\n",
        expect=0,
    ).stdout
    ident = ceremony_id(out)
    assert "Paused" in out
    assert room.json("ceremony", "show", ident)["ceremony"]["state"] == "paused"
    rest = full[len(first_part) :]
    room_run(room, "ceremony", "resume", ident[:8], stdin="\n".join(rest) + "\n", expect=0)
    assert room.json("ceremony", "show", ident)["ceremony"]["state"] == "completed"


def check_pdf(cli: Cli, ident: str, tmp_path: Path) -> None:
    """The PDF through Qt's writer: pages rendered to PNG by pdftoppm (kept beside the test's
    files to look at), the transcript's SHA-256 — the chain's — on the last page, a signature
    line per participant there."""
    import subprocess

    pdf = tmp_path / "transcript.pdf"
    printed = cli.json("ceremony", "transcript", ident, "--out", str(pdf))
    recorded = printed["recorded"]
    assert recorded == printed["sha256"]
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(next(x for x in info.stdout.splitlines() if x.startswith("Pages:")).split()[1])
    assert pages >= 2
    last = subprocess.run(
        ["pdftotext", "-layout", "-f", str(pages), "-l", str(pages), str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = last.replace(":", "").replace(" ", "").replace("\n", "").lower()
    assert recorded in flat
    assert last.count("Signature:") == 3 and EXTERNAL[1] in last
    first_page = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Key ceremony: Root CA" in first_page and "COMPLETED" in first_page
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) == pages
    assert "never written over" in cli.error("ceremony", "transcript", ident, "--out", str(pdf))


def test_a_ceremony_that_cannot_start_is_closed_not_left_registering(
    room: Cli, tmp_path: Path
) -> None:
    """Registration that ends short of the script's quorum: one error line naming what is
    missing, and the ceremony is recorded as abandoned (it never stays 'registering')."""
    path = template_dir() / "generate-kek.toml"
    result = room_run(
        room,
        *["ceremony", "run", str(path), "--profile", "rehearsal", "--workdir", str(tmp_path)],
        stdin="YES\n\n",
        expect=1,
    )
    assert "KS-CEREMONY-QUORUM" in result.stderr
    listed = room.json("ceremony", "list")
    assert [c["state"] for c in listed] == ["abandoned"], listed


def test_validate_applies_the_runs_checks_and_the_run_refuses_the_same(
    room: Cli, tmp_path: Path
) -> None:
    """Issue (outside testers): validate accepted DES, a control character in a key name, a
    '../' output and a key name already on the workstation, which the run then refused. Each is
    refused by validate naming the step and field, and by run before anyone registers."""
    bad = tmp_path / "bad.toml"
    generate = (template_dir() / "generate-kek.toml").read_text()
    root = (template_dir() / "root-ca.toml").read_text()
    cases: list[tuple[str, str]] = [
        (generate.replace('algorithm = "AES-256"', 'algorithm = "DES"'), "'algorithm'"),
        (generate.replace('name = "kek-2026"', 'name = "kek\\u202e2026"'), "'name'"),
        (generate.replace('name = "kek-2026"', 'name = "kek\\u00072026"'), "'name'"),
        (generate.replace('purpose = "key-wrapping"', 'purpose = "signing"'), "'purpose'"),
        (root.replace('out = "root-ca.pem"', 'out = "../root-ca.pem"'), "'out'"),
        (root.replace('out = "root-ca.pem"', 'out = "/tmp/root-ca.pem"'), "'out'"),
    ]
    for text, field in cases:
        bad.write_text(text)
        refusal = room.error("ceremony", "validate", str(bad))
        assert "step '" in refusal and f"parameter {field}" in refusal, refusal
        ran = room.error(
            "ceremony", "run", str(bad), "--profile", "rehearsal", "--workdir", str(tmp_path)
        )
        assert f"parameter {field}" in ran
    assert room.json("ceremony", "list") == []
    # A key name already on this workstation: validate (unlocked, as every command) refuses it;
    # --script-only says it did not look; run refuses before anyone registers (denied entry).
    room.run(
        "keys", "generate", "--token", REHEARSAL, "--algorithm", "AES-256", "--name", "kek-2026"
    )
    refusal = room.error("ceremony", "validate", "generate-kek")
    assert "step 'generate'" in refusal and "parameter 'name'" in refusal
    assert "already exists" in refusal
    offline = room.run("ceremony", "validate", "generate-kek", "--script-only").stdout
    assert "Not checked against a workstation" in offline
    ran = room_run(
        room,
        "ceremony",
        "run",
        "generate-kek",
        "--profile",
        "rehearsal",
        "--workdir",
        str(tmp_path),
        stdin="YES\n",
        expect=1,
    ).stderr
    assert "parameter 'name'" in ran and "already exists" in ran
    assert room.json("ceremony", "list") == []
    # An output file already in the working directory: validate --workdir and run refuse it.
    (tmp_path / "root-ca.pem").write_bytes(b"an earlier certificate")
    refusal = room.error("ceremony", "validate", "root-ca", "--workdir", str(tmp_path))
    assert "parameter 'out'" in refusal and "never writes over a file" in refusal
    assert (tmp_path / "root-ca.pem").read_bytes() == b"an earlier certificate"


def test_input_that_ends_says_what_state_the_ceremony_is_left_in(
    room: Cli, tmp_path: Path
) -> None:
    """New-user trial: "Input ended." alone; runs that ended during registration were
    abandoned and later ones paused, and the room was told neither. And a sign-off asked for
    initials before it said the name typed is not a participant."""
    path = template_dir() / "generate-kek.toml"
    script = scripts.load(path)
    full = answers(script).splitlines()
    run = ["ceremony", "run", str(path), "--profile", "rehearsal", "--workdir", str(tmp_path)]
    # Ends during registration (after the hash is confirmed): abandoned, and said so.
    ended = room_run(room, *run, stdin="\n".join(full[:3]) + "\n", expect=1)
    [line] = [x for x in ended.stderr.splitlines() if x.startswith("keystead: error:")]
    assert "Input ended." in line and "is abandoned" in line
    # Ends at a sign-off, after a name that is not a participant: refused at once (no
    # "Initials:" asked for it), then paused with the command that resumes it.
    assert full[10] == "DONE"
    ended = room_run(room, *run, stdin="\n".join([*full[:11], "nobody-here"]) + "\n", expect=1)
    refused = [x for x in ended.stderr.splitlines() if "refused:" in x]
    assert refused and "'nobody-here' is not a participant" in refused[0]
    assert ended.stdout.count("Initials:") == 0
    [line] = [x for x in ended.stderr.splitlines() if x.startswith("keystead: error:")]
    ident = ceremony_id(ended.stdout)
    assert "is paused" in line and f"keystead ceremony resume {ident}" in line
    assert room.json("ceremony", "show", ident)["ceremony"]["state"] == "paused"
    denied = [
        e
        for e in room.json("audit", "list", "--action", "ceremony.sign-off")
        if e["outcome"] == "denied"
    ]
    assert denied, "the refused sign-off is recorded, as before"


def test_an_operator_who_may_not_run_ceremonies_is_refused_before_the_hash(
    room: Cli, tmp_path: Path
) -> None:
    """F16: an auditor was asked to have the room compare the script hash and type YES, and
    only then refused for the role."""
    aud_pass = "SENTINEL-cli-aud-ceremony-31"
    room.run("operators", "add", "aud", "--role", "auditor", stdin=aud_pass + "\n")
    script = scripts.load(template_dir() / "rotate-key.toml")
    result = room_run(
        room,
        "ceremony",
        "run",
        "rotate-key",
        "--profile",
        "rehearsal",
        "--workdir",
        str(tmp_path),
        stdin=answers(script),
        expect=1,
        KEYSTEAD_OPERATOR="aud",
        KEYSTEAD_PASSPHRASE=aud_pass,
    )
    assert "needs a security officer or a key custodian" in result.stderr
    assert "compare the SHA-256" not in result.stdout and "KEY CEREMONY" not in result.stdout
    assert room.json("ceremony", "list") == []
