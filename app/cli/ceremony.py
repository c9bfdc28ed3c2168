"""``keystead ceremony``: list, validate, run, resume, show, print and compare key ceremonies.

``run`` is the room's terminal: it shows the script's SHA-256 with its PGP words, registers
the participants, and for each step prints the instruction and expected outputs, waits for
the administrator's ``DONE``, prints the outputs (hex identifiers also as PGP words) and
collects the sign-offs. Everything people type comes from the terminal, or — for automation
and tests — one line per answer on standard input; passphrases are read without echo at a
terminal, from a line of standard input otherwise, never from argv. PINs come from the usual
variables (``KEYSTEAD_PIN``, ``KEYSTEAD_SO_PIN``, ``KEYSTEAD_NEW_PIN``) or prompts; approvers
for dual-controlled steps as in every other command.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.secrets import ask_secret, interactive
from app.errors import KeysteadError, OperationCancelled, ValidationError
from app.services.prompter import SecretKind

if TYPE_CHECKING:  # keystead --help must not import the service layer (issue 17)
    from app.services.workstation import Workstation

RULE = "=" * 72
MAX_TRANSCRIPT_BYTES = 16 << 20  # a transcript of hundreds of steps is well under 1 MiB
MAX_REFUSALS = 5  # refused answers in a row before the room is stopped (paused, not lost)


def register(sub: Any) -> None:
    ceremony = sub.add_parser("ceremony", help="scripted, witnessed key ceremonies").add_subparsers(
        dest="action", required=True
    )
    ceremony.add_parser("list-templates", help="the shipped ceremony scripts").set_defaults(
        run=cmd_list_templates
    )
    validate = ceremony.add_parser("validate", help="check a script without running it")
    validate.add_argument("file", help="a script file, or a template name")
    validate.add_argument(
        "--workdir",
        type=Path,
        help="also refuse output files already in this working directory",
    )
    validate.add_argument(
        "--script-only",
        action="store_true",
        help="do not unlock the workstation (key names are then not checked against its keys)",
    )
    validate.set_defaults(run=cmd_validate)
    run = ceremony.add_parser("run", help="run a ceremony (prompts for each step and sign-off)")
    run.add_argument("file", help="a script file, or a template name")
    run.add_argument("--profile", required=True, choices=["rehearsal", "production"])
    run.add_argument(
        "--workdir",
        type=Path,
        help="where the ceremony reads inputs (a CSR) and writes outputs (default: here)",
    )
    _share_options(run)
    run.set_defaults(run=cmd_run)
    resume = ceremony.add_parser("resume", help="continue a paused ceremony")
    resume.add_argument("id", help="ceremony id (a unique prefix is enough)")
    _share_options(resume)
    resume.set_defaults(run=cmd_resume)
    abandon = ceremony.add_parser("abandon", help="give up a ceremony that has not ended")
    abandon.add_argument("id", help="ceremony id (a unique prefix is enough)")
    abandon.add_argument("--reason", required=True, help="why, for the record")
    abandon.set_defaults(run=cmd_abandon)
    ceremony.add_parser("list", help="ceremonies of this workstation").set_defaults(run=cmd_list)
    show = ceremony.add_parser("show", help="one ceremony: participants, steps, outputs")
    show.add_argument("id")
    show.set_defaults(run=cmd_show)
    out = ceremony.add_parser("transcript", help="write the transcript (JSON or PDF)")
    out.add_argument("id")
    out.add_argument("--out", required=True, type=Path, help="FILE.json or FILE.pdf (new file)")
    out.set_defaults(run=cmd_transcript)
    verify = ceremony.add_parser("verify", help="check a JSON transcript against the audit chain")
    verify.add_argument("file", type=Path)
    verify.set_defaults(run=cmd_verify)
    diff = ceremony.add_parser("diff", help="compare two ceremonies' transcripts step by step")
    diff.add_argument("first", help="ceremony id, or a JSON transcript file (e.g. the rehearsal)")
    diff.add_argument("second", help="ceremony id, or a JSON transcript file")
    diff.set_defaults(run=cmd_diff)


def _share_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shares-out", type=Path, help="automation only: write backup shares to this new file"
    )
    parser.add_argument(
        "--shares-in", type=Path, help="automation only: read shares for a drill from this file"
    )


# --- reading the room ------------------------------------------------------------------------


def ask(prompt: str) -> str:
    """One answer: a line typed at the terminal or read from standard input."""
    try:
        if interactive():
            return input(f"{prompt} ").strip()
        print(prompt, flush=True)
        line = sys.stdin.readline()
    except (EOFError, KeyboardInterrupt) as exc:
        raise OperationCancelled("Input ended.") from exc
    if not line:
        raise OperationCancelled("Input ended.")
    return line.rstrip("\r\n").strip()


def ask_hidden(prompt: str) -> str:
    """A passphrase: without echo at a terminal, else one line of standard input."""
    try:
        if interactive():
            return getpass.getpass(f"{prompt}: ")
        line = sys.stdin.readline()
    except (EOFError, KeyboardInterrupt) as exc:
        raise OperationCancelled("Input ended.") from exc
    if not line:
        raise OperationCancelled("Input ended.")
    return line.rstrip("\r\n")


class CliDesk:
    """The ceremony desk at a terminal: PINs as every command reads them; backup shares shown
    one custodian at a time (or, for automation, to ``--shares-out``); shares for a drill
    typed (or from ``--shares-in``)."""

    def __init__(self, shares_out: Path | None, shares_in: Path | None) -> None:
        self.shares_out = shares_out
        self.shares_in = shares_in
        self.wrote: Path | None = None

    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        return ask_secret(kind, prompt)

    def deliver_shares(self, card: Any) -> None:
        from app.cli.backup import _show_shares, _write_shares

        if self.shares_out is not None:
            _write_shares(self.shares_out, card)
            self.wrote = self.shares_out
        elif interactive():
            _show_shares(card)
        else:
            raise ValidationError(
                "Shares are shown at a terminal, one custodian at a time; for automation give "
                "--shares-out FILE."
            )

    def collect_shares(self, needed: int | None) -> tuple[str, ...]:
        from app.cli.backup import _read_shares

        return _read_shares(self.shares_in, needed)


# --- commands --------------------------------------------------------------------------------


def cmd_list_templates(args: argparse.Namespace) -> int:
    from app.ceremony.templates import templates

    rows = [
        {
            "name": t.name,
            "title": t.script.title,
            "steps": len(t.script.steps),
            "sha256": t.script.sha256_hex,
            "file": str(t.path),
        }
        for t in templates()
    ]
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(rows, [("name", "TEMPLATE"), ("steps", "STEPS"), ("title", "TITLE")])
    return 0


def _load(ref: str) -> Any:
    from app.ceremony import script as scripts
    from app.ceremony.templates import resolve

    return scripts.load(resolve(ref))


def cmd_validate(args: argparse.Namespace) -> int:
    """The script's own checks (every step's parameter values by the rules its run applies);
    then, on an initialised workstation (unlocked as every command), the key names against
    its keys and, with ``--workdir``, the output files against that directory."""
    from app.ceremony import script as scripts
    from app.ceremony.registry import Preflight

    script = _load(args.file)
    workdir = args.workdir.resolve() if args.workdir else None
    if workdir is not None and not workdir.is_dir():
        raise ValidationError(f"{workdir} is not a directory; give the ceremony's working one.")
    against = not args.script_only and args.home_dir.exists()
    if against:
        from app.cli.session import _with_workstation

        def body(ws: Workstation) -> None:
            from app.ceremony.runner import Ceremonies

            scripts.check_values(script, Ceremonies(ws).preflight(workdir))

        _with_workstation(args, body)
    elif workdir is not None:
        scripts.check_values(script, Preflight(workdir=workdir))
    if args.json:
        output.print_json(
            {
                "name": script.name,
                "title": script.title,
                "sha256": script.sha256_hex,
                "pgp_words": script.words,
                "steps": [{"id": s.id, "type": s.type} for s in script.steps],
                "profiles": script.profiles,
                "checked_against_workstation": against,
                "checked_workdir": str(workdir) if workdir is not None else None,
            }
        )
        return 0
    print(f"{script.title} ({script.name}): valid, {len(script.steps)} steps.")
    for index, step in enumerate(script.steps, 1):
        print(f"  {index:>2}. {step.id} [{step.type}]")
    if not against:
        print(
            "Not checked against a workstation: 'ceremony run' also refuses key names already "
            "in use there."
        )
    _print_hash(script)
    return 0


def _print_hash(script: Any) -> None:
    from app.ceremony.words import grouped

    words = script.words
    print(f"Script SHA-256 {grouped(script.sha256_hex)}")
    for start in range(0, 32, 8):
        print("  " + " ".join(words[start : start + 8]))


def cmd_run(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation

    script = _load(args.file)  # refused before anyone unlocks anything
    workdir = (args.workdir or Path.cwd()).resolve()
    _check_shares_out(args)
    desk = CliDesk(args.shares_out, args.shares_in)

    def body(ws: Workstation) -> int:
        from app.ceremony.runner import Ceremonies

        # The role first: an operator who may not run ceremonies is refused before any token
        # login and before the room is asked to compare the script's hash (F16).
        ws.approvals.check_initiator("ceremony.run", f"ceremony-script:{script.sha256_hex}")
        _login_for(ws, script, args.profile)
        print(RULE)
        print(f"KEY CEREMONY: {script.title}")
        print(f"profile {args.profile}; administrator {ws.operator}; working directory {workdir}")
        _print_hash(script)
        print(RULE)
        if (
            ask(
                "Witnesses: compare the SHA-256 with the reviewed paper copy. Type YES if it is "
                "the same:"
            )
            != "YES"
        ):
            raise OperationCancelled("The script hash was not confirmed; nothing was started.")
        run = Ceremonies(ws).begin(script, args.profile, workdir)
        print(f"Ceremony {run.id} begun.")
        try:
            _register(run)
            run.start()
            print("Participants registered; checkpoint signed. The ceremony starts.")
        except OperationCancelled as exc:
            run.abandon("input ended during registration")
            raise OperationCancelled(
                f"{exc.message} Ceremony {run.id} is abandoned (nothing had run); begin it "
                "again."
            ) from exc
        except KeysteadError as exc:
            # Registration ended short (or the token is not the profile's): nothing ran, so
            # the ceremony is closed as abandoned rather than left registering for ever.
            run.abandon(f"not started: {exc.message}")
            raise
        return _steps(run, desk)

    code: int = _with_workstation(args, body)
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    from app.cli.session import _login, _login_audit_token, _with_workstation

    _check_shares_out(args)
    desk = CliDesk(args.shares_out, args.shares_in)

    def body(ws: Workstation) -> int:
        from app.ceremony.runner import Ceremonies

        run = Ceremonies(ws).get(args.id)
        _login_audit_token(ws, required=True, names=run.row.token_serial)
        _login(ws, run.row.token_serial)
        run.resume()
        print(f"Ceremony {run.id} resumed at step {run.index + 1}.")
        return _steps(run, desk)

    code: int = _with_workstation(args, body)
    return code


def cmd_abandon(args: argparse.Namespace) -> int:
    from app.cli.session import _login_audit_token, _with_workstation

    def body(ws: Workstation) -> str:
        from app.ceremony.runner import Ceremonies

        _login_audit_token(ws, required=True)
        run = Ceremonies(ws).get(args.id)
        run.abandon(args.reason)
        return str(run.id)

    ceremony_id = _with_workstation(args, body)
    print(f"Ceremony {ceremony_id} abandoned; the reason is recorded.")
    return 0


def _check_shares_out(args: argparse.Namespace) -> None:
    if args.shares_out is not None and args.shares_out.exists():
        raise ValidationError(f"{args.shares_out} exists; shares are never written over a file.")


def _login_for(ws: Workstation, script: Any, profile: str) -> None:
    """Log in to the audit token and to the profile's token (when it is present: the
    ceremony itself refuses a token that is absent or does not match, and records it)."""
    from app.cli.session import _login, _login_audit_token

    key, wanted = script.selector(profile)
    for info in ws.tokens.present():
        if (key == "token_label" and info.label == wanted) or (
            key == "token_serial" and wanted in {info.serial, info.reported_serial}
        ):
            _login_audit_token(ws, required=True, names=info.serial)
            _login(ws, info.serial)
            return
    _login_audit_token(ws, required=True)


def _register(run: Any) -> None:
    script = run.script
    print(
        f"Register the participants: at least {script.witnesses} witness(es)"
        + (f", {script.custodians} custodian(s)" if script.custodians else "")
        + (", an auditor" if script.auditor else "")
        + "."
    )
    refusals = 0
    while True:
        if refusals >= MAX_REFUSALS:
            raise OperationCancelled(f"{refusals} registrations in a row were refused.")
        role = ask("Participant role (witness, custodian, auditor; empty when everyone is in):")
        if not role:
            return
        name = ask("Name:")
        kind = ask("Operator of this workstation or external? (operator/external):").lower()
        try:
            if kind == "external":
                organisation = ask("Organisation:")
                run.register_external(name, organisation, role)
            elif kind == "operator":
                run.register_operator(name, role, ask_hidden(f"Passphrase of {name}"))
            else:
                print("keystead: answer operator or external.", file=sys.stderr)
                continue
        except OperationCancelled:
            raise
        except KeysteadError as exc:
            refusals += 1
            print(f"keystead: refused: {output.one_line(exc.message)}", file=sys.stderr)
            continue
        refusals = 0
        print(f"Registered {name} as {role} ({kind}).")


def _steps(run: Any, desk: CliDesk) -> int:
    from app.ceremony.runner import Phase, State

    total = len(run.script.steps)
    while True:
        step = run.current
        if step is None:
            break
        if run.phase is Phase.PERFORM:
            _show_step(run, step, total)
            answer = ask("Administrator: type DONE to carry out this step (or PAUSE, ABANDON):")
            try:
                if answer.upper() == "PAUSE":
                    run.pause("paused at the terminal")
                    print(f"Paused. Resume with: keystead ceremony resume {run.id}")
                    return 0
                if answer.upper() == "ABANDON":
                    reason = ask("Reason for abandoning:") or "abandoned at the terminal"
                    run.abandon(reason)
                    print(f"Ceremony abandoned: {reason}.")
                    _print_end(run)
                    return 1
                if answer.upper() != "DONE":
                    continue
            except OperationCancelled as exc:
                run.pause("input ended")
                raise _paused(run, exc) from exc
            outputs = run.perform(desk)
            if run.settled_step:
                print(
                    "This step's action had completed before the interruption; its outputs "
                    "are read back from the records (nothing was done twice)."
                )
            _show_outputs(outputs)
        try:
            _collect_signoffs(run, step)
        except OperationCancelled as exc:
            run.pause("input ended during the sign-off")
            raise _paused(run, exc) from exc
    state = run.state
    _print_end(run)
    return 0 if state is State.COMPLETED else 1


def _paused(run: Any, cause: OperationCancelled) -> OperationCancelled:
    """The error when input ends mid-ceremony: what ended, and that the ceremony is paused
    (the new-user trial was told only "Input ended." and had to find out which state it was
    left in)."""
    return OperationCancelled(
        f"{cause.message} Ceremony {run.id} is paused; resume it with: keystead ceremony "
        f"resume {run.id}"
    )


def _show_step(run: Any, step: Any, total: int) -> None:
    print(RULE)
    print(f"STEP {run.index + 1} of {total}: {step.spec.title} [{step.id}]")
    print(f"  {step.instruction}")
    for name, value in step.params.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"  {name}: {shown}")
    for name, value in run.expected_outputs(step).items():  # references resolved
        source = step.expect[name]
        by = source[1:].partition(".")[0]
        origin = f" (recorded by step '{by}')" if source[:1] == "@" else ""
        print(f"  expected {name}: {value}{origin}")
    print(f"  signed off by {step.quorum} of: {', '.join(step.signers)}")
    if run.interrupted:
        print(
            "  This step was begun before the ceremony was interrupted: DONE first looks for "
            "what its action completed, and never does it twice."
        )


def _show_outputs(outputs: dict[str, str]) -> None:
    from app.ceremony.words import grouped, spoken

    print("Outputs (read aloud):")
    for name, value in outputs.items():
        print(f"  {name}: {grouped(value)}")
        words = spoken(value)
        if words:
            for start in range(0, len(words), 8):
                print("      " + " ".join(words[start : start + 8]))


def _collect_signoffs(run: Any, step: Any) -> None:
    from app.ceremony.runner import Phase

    refusals = 0
    while run.phase is Phase.SIGN_OFF and run.current is step:
        if refusals >= MAX_REFUSALS:
            raise OperationCancelled(
                f"{refusals} sign-offs in a row were refused; the ceremony is paused. Check "
                "who may sign this step (keystead ceremony show ID) and resume."
            )
        signed = len(run.signoffs(run.index))
        name = ask(f"Sign-off {signed + 1} of {step.quorum} for '{step.id}': participant name:")
        try:
            # Who may sign, before initials and a passphrase are asked for (refused and
            # recorded as the sign-off itself would be).
            person = run.signer(name.strip())
            if person.kind == "external":
                typed = ask(f"{name}: type your full name to sign:")
                run.sign_off(name, typed, None)
            else:
                initials = ask("Initials:")
                run.sign_off(name, initials, ask_hidden(f"Passphrase of {name}"))
        except OperationCancelled:
            raise
        except KeysteadError as exc:
            refusals += 1
            print(f"keystead: refused: {output.one_line(exc.message)}", file=sys.stderr)
            continue
        refusals = 0
        print(f"Signed by {name}.")
        if run.current is not step:
            return


def _print_end(run: Any) -> None:
    row = run.row
    print(RULE)
    print(f"Ceremony {row.id} {row.state}." + (f" Reason: {row.reason}" if row.reason else ""))
    if row.transcript_sha256:
        print(f"Transcript SHA-256 {row.transcript_sha256} (recorded in the audit chain).")
        print(f"Print it with: keystead ceremony transcript {row.id} --out transcript.pdf")


def cmd_list(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation

    def body(ws: Workstation) -> list[dict[str, Any]]:
        from app.ceremony.runner import Ceremonies

        return [
            {
                "id": r.id,
                "name": r.name,
                "profile": r.profile,
                "state": r.state,
                "token": r.token_serial,
                "created_at": r.created_at,
                "transcript_sha256": r.transcript_sha256,
            }
            for r in Ceremonies(ws).listing()
        ]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [
                ("id", "CEREMONY"),
                ("name", "SCRIPT"),
                ("profile", "PROFILE"),
                ("state", "STATE"),
                ("created_at", "BEGUN (UTC)"),
            ],
        )
    return 0


def _document(args: argparse.Namespace, ref: str) -> dict[str, Any]:
    from app.cli.session import _with_workstation

    def body(ws: Workstation) -> dict[str, Any]:
        from app.ceremony.runner import Ceremonies

        return Ceremonies(ws).get(ref).transcript_document()

    doc: dict[str, Any] = _with_workstation(args, body)
    return doc


def cmd_show(args: argparse.Namespace) -> int:
    doc = _document(args, args.id)
    if args.json:
        output.print_json(doc)
        return 0
    c = doc["ceremony"]
    print(
        f"{c['title']} ({c['name']}), {c['profile']}: {c['state']}"
        + (f" — {c['reason']}" if c["reason"] else "")
    )
    print(f"  id {c['id']}; token {c['token']['label']} ({c['token']['serial']})")
    print(f"  script SHA-256 {doc['script']['sha256']}")
    for p in doc["participants"]:
        org = f", {p['organisation']}" if p["organisation"] else ""
        print(f"  {p['role']}: {p['name']} ({p['kind']}{org})")
    for s in doc["steps"]:
        signers = ", ".join(x["name"] for x in s["signoffs"]) or "-"
        print(
            f"  {s['position'] + 1:>2}. {s['id']} [{s['type']}] {s['state']}; signed by {signers}"
        )
        for name, value in s["outputs"].items():
            print(f"        {name}: {value}")
        if s["reason"]:
            print(f"        reason: {s['reason']}")
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation

    target: Path = args.out
    suffix = target.suffix.lower()
    if suffix not in {".json", ".pdf"}:
        raise ValidationError("--out must end in .json or .pdf.")
    if target.exists():
        raise ValidationError(f"{target} exists; a transcript is never written over a file.")

    def body(ws: Workstation) -> tuple[bytes, dict[str, Any], str | None]:
        from app.ceremony.runner import Ceremonies

        run = Ceremonies(ws).get(args.id)
        data = run.transcript_bytes()
        return data, run.transcript_document(), run.row.transcript_sha256

    data, doc, recorded = _with_workstation(args, body)
    from app.ceremony import transcript

    digest = transcript.sha256(data)
    if recorded is not None and recorded != digest:
        raise KeysteadError(
            "The records no longer give the transcript whose SHA-256 the audit chain holds; "
            "run keystead audit verify."
        )
    if suffix == ".json":
        _write_new(target, data)
    else:
        _render_pdf(doc, digest, recorded, target)
    if args.json:
        output.print_json({"file": str(target), "sha256": digest, "recorded": recorded})
    else:
        note = "recorded in the audit chain" if recorded else "ceremony not ended: not recorded"
        print(f"Wrote {target}. Transcript SHA-256 {digest} ({note}).")
    return 0


def _render_pdf(doc: dict[str, Any], digest: str, recorded: str | None, target: Path) -> None:
    """Qt's PDF writer lives in ``ui/`` (``app/`` never imports Qt): run it as its own process,
    offscreen, with the document on standard input. It writes ``target`` exclusively."""
    import json
    import subprocess

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    payload = json.dumps({"document": doc, "sha256": digest, "recorded": recorded is not None})
    result = subprocess.run(  # noqa: S603 (our own interpreter and module, no shell)
        [sys.executable, "-m", "ui.transcript_pdf", "--out", str(target)],
        input=payload.encode("utf-8"),
        env=env,
        capture_output=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        why = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise KeysteadError(
            "The PDF could not be written: " + (why[-1] if why else f"exit {result.returncode}")
        )


def _write_new(target: Path, data: bytes) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def cmd_verify(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation
    from app.storage.files import read_regular

    data = read_regular(args.file, "transcript", MAX_TRANSCRIPT_BYTES)

    def body(ws: Workstation) -> Any:
        from app.ceremony import transcript

        return transcript.verify(ws, data)

    found = _with_workstation(args, body)
    if args.json:
        output.print_json(
            {
                "ok": True,
                "ceremony": found.ceremony_id,
                "sha256": found.sha256,
                "entry": found.entry_seq,
            }
        )
    else:
        print(
            f"Transcript of ceremony {found.ceremony_id} matches the audit chain (entry "
            f"{found.entry_seq}, {found.action}); SHA-256 {found.sha256}."
        )
    return 0


def _transcript_file(ref: str) -> dict[str, Any] | None:
    """A JSON transcript file (e.g. a rehearsal's from the rehearsal workstation), else None."""
    import json

    from app.ceremony import transcript
    from app.storage.files import read_regular

    path = Path(ref)
    if path.suffix.lower() != ".json" or not path.exists():
        return None
    data = read_regular(path, "transcript", MAX_TRANSCRIPT_BYTES)  # FIFO, /dev/zero refused
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != transcript.FORMAT:
            raise ValueError("format")
        if not isinstance(doc["ceremony"]["id"], str) or not isinstance(doc["steps"], list):
            raise ValueError("shape")
    except (
        OSError,
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        RecursionError,
    ) as exc:
        raise ValidationError(f"{path} is not a Keystead ceremony transcript.") from exc
    return doc


def cmd_diff(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation

    files = {ref: _transcript_file(ref) for ref in (args.first, args.second)}

    def body(ws: Workstation) -> tuple[dict[str, Any], dict[str, Any]]:
        from app.ceremony.runner import Ceremonies

        found = Ceremonies(ws)

        def doc(ref: str) -> dict[str, Any]:
            given = files[ref]
            return given if given is not None else found.get(ref).transcript_document()

        return doc(args.first), doc(args.second)

    given_first, given_second = files[args.first], files[args.second]
    if given_first is not None and given_second is not None:
        first, second = given_first, given_second
    else:
        first, second = _with_workstation(args, body)
    from app.ceremony import transcript

    result = transcript.diff(first, second)
    if args.json:
        output.print_json(
            {
                "same_script": first["script"]["sha256"] == second["script"]["sha256"],
                "expected": [d.text() for d in result.expected],
                "unexpected": [d.text() for d in result.unexpected],
            }
        )
    else:
        print(
            f"Comparing {first['ceremony']['id']} ({first['ceremony']['profile']}) with "
            f"{second['ceremony']['id']} ({second['ceremony']['profile']})."
        )
        print(f"Expected differences ({len(result.expected)}):")
        for item in result.expected:
            print(f"  {item.text()}")
        print(f"Unexpected differences ({len(result.unexpected)}):")
        for item in result.unexpected:
            print(f"  {item.text()}")
    if result.unexpected:
        print(
            f"keystead: error: {len(result.unexpected)} unexpected difference(s) between the "
            "two ceremonies.",
            file=sys.stderr,
        )
        return 1
    return 0
