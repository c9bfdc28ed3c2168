"""The ceremony state machine on a real SoftHSM token and SQLCipher file: a template to the
end, its evidence in the audit chain, and every refusal the issue names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from app.ceremony import transcript
from app.ceremony.runner import Ceremonies, Phase, State
from app.errors import AuditIntegrityError, CeremonyError, TokenNotLoggedIn
from tests.hsm.ceremony_kit import (
    EXTERNAL,
    ScriptedDesk,
    begin,
    register_all,
    rehearsal_bench,
    run_to_end,
    sign,
    template,
    write_csr,
)
from tests.support import OPERATOR, PASS, PIN, WITNESS, WITNESS_PASS, Bench

pytestmark = pytest.mark.hsm
AUDITOR_PASS = "SENTINEL-auditor-pass-7a7a"


@pytest.fixture
def rb(bench: Bench) -> Bench:
    return rehearsal_bench(bench)


def test_root_ca_runs_to_the_end_with_its_evidence(rb: Bench, tmp_path: Path) -> None:
    script = template("root-ca")
    write_csr(tmp_path)
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    run_to_end(rb, run, ScriptedDesk())
    assert rb(lambda: run.state) is State.COMPLETED
    root = x509.load_pem_x509_certificate((tmp_path / "root-ca.pem").read_bytes())
    inter = x509.load_pem_x509_certificate((tmp_path / "intermediate-ca.pem").read_bytes())
    inter.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    key = rb(rb.ws.keys.resolve, "root-ca-2026")
    assert key.state.value == "ACTIVE" and key.token_label == "Rehearsal"
    doc = rb(run.transcript_document)
    assert [s["state"] for s in doc["steps"]] == ["signed"] * 6
    assert doc["checkpoints"]["before"] and doc["checkpoints"]["after"]
    assert doc["steps"][1]["outputs"]["fingerprint"] == key.fingerprint
    # The transcript's hash is in the chain; the chain verifies; a changed copy fails.
    data = rb(run.transcript_bytes)
    checked = rb(transcript.verify, rb.ws, data)
    assert checked.action == "ceremony.complete"
    assert rb(rb.ws.audit.verify).ok
    changed = data.replace(b"Rehearsal", b"Rehearsel", 1)
    with pytest.raises(AuditIntegrityError, match="changed"):
        rb(transcript.verify, rb.ws, changed)
    events = [e.action for e in rb.events()]
    assert events.count("audit.checkpoint") >= 3  # before, the step, after


def test_a_witness_cannot_be_the_administrator(rb: Bench, tmp_path: Path) -> None:
    script = template("rotate-key")
    run = begin(rb, script, tmp_path)
    with pytest.raises(CeremonyError, match="ADMINISTRATOR"):
        rb(run.register_operator, OPERATOR, "witness", PASS)
    register_all(rb, run, script)
    rb(run.start)
    rb(run.perform, ScriptedDesk())
    with pytest.raises(CeremonyError, match="ADMINISTRATOR"):
        rb(run.sign_off, OPERATOR, "OF", PASS)
    assert rb(lambda: run.phase) is Phase.SIGN_OFF
    denied = [e for e in rb.events() if e.action == "ceremony.sign-off" and e.outcome == "denied"]
    assert denied and "ADMINISTRATOR" in denied[-1].details_json


def test_look_alike_and_operator_names_cannot_stand_in_as_external_witnesses(
    rb: Bench, tmp_path: Path
) -> None:
    """The administrator cannot come back as an outsider under another case, a Cyrillic
    look-alike letter or another operator's name (who must sign with their passphrase)."""
    script = template("rotate-key")
    run = begin(rb, script, tmp_path)
    for name, rule in (
        (OPERATOR.capitalize(), "ADMINISTRATOR"),  # 'Officer'
        ("\u043e" + OPERATOR[1:], "PARTICIPANT"),  # Cyrillic 'о' + 'fficer'
        (WITNESS.upper(), "PARTICIPANT"),  # an operator, typed in capitals
    ):
        with pytest.raises(CeremonyError, match=rule):
            rb(run.register_external, name, "Outside Ltd", "witness")
    assert rb(lambda: [p.name for p in run.participants()]) == [OPERATOR]
    denied = [e for e in rb.events() if e.action == "ceremony.register" and e.outcome == "denied"]
    assert len(denied) == 3


def test_refusals_change_nothing(rb: Bench, tmp_path: Path) -> None:
    script = template("generate-kek")
    run = begin(rb, script, tmp_path)
    # A participant who lacks the role: an auditor-only operator cannot be a custodian, and
    # an outsider cannot be one at all.
    from app.domain.roles import Role

    rb(rb.ws.roster.add, "auditor", frozenset({Role.AUDITOR}), AUDITOR_PASS, AUDITOR_PASS)
    with pytest.raises(CeremonyError, match="ROLE"):
        rb(run.register_operator, "auditor", "custodian", AUDITOR_PASS)
    with pytest.raises(CeremonyError, match="custodian"):
        rb(run.register_external, "Mallory", "Outside Ltd", "custodian")
    with pytest.raises(CeremonyError, match="PASSPHRASE"):
        rb(run.register_operator, WITNESS, "custodian", "not the passphrase")
    with pytest.raises(CeremonyError, match="QUORUM"):
        rb(run.start)  # nobody registered yet
    register_all(rb, run, script)
    rb(run.start)
    with pytest.raises(CeremonyError, match="not carried out"):
        rb(run.sign_off, WITNESS, "WI", WITNESS_PASS)
    rb(run.perform, ScriptedDesk())
    with pytest.raises(CeremonyError, match="registered name"):
        rb(run.sign_off, EXTERNAL[0], "EE", None)
    with pytest.raises(CeremonyError, match="not a participant"):
        rb(run.sign_off, "nobody", "NB", None)
    denied = [e for e in rb.events() if e.action.startswith("ceremony.") and e.outcome == "denied"]
    assert len(denied) >= 7  # every refusal above is recorded
    assert rb(lambda: [p.name for p in run.participants()]) == ["officer", WITNESS, EXTERNAL[0]]
    sign(rb, run)
    assert rb(lambda: run.index) == 1


def test_a_token_that_does_not_match_the_profile_is_refused(rb: Bench, tmp_path: Path) -> None:
    script = template("root-ca")
    with pytest.raises(CeremonyError, match="serial 'REPLACE"):
        begin(rb, script, tmp_path, profile="production")
    serial = rb(rb.ws.tokens.find, "Rehearsal").serial
    text = script.text.replace(b"REPLACE-WITH-THE-TOKEN-SERIAL", serial.encode())
    from app.ceremony.script import parse

    real = parse(text)
    run = begin(rb, real, tmp_path, profile="production")
    assert rb(lambda: run.row.token_serial) == serial
    rb(rb.ws.tokens.logout, serial)
    with pytest.raises(TokenNotLoggedIn):
        begin(rb, real, tmp_path, profile="production")
    denied = [e for e in rb.events() if e.action == "ceremony.begin" and e.outcome == "denied"]
    assert len(denied) == 2


def test_an_output_that_does_not_match_stops_the_ceremony(rb: Bench, tmp_path: Path) -> None:
    from app.ceremony.script import parse

    text = template("generate-kek").text.replace(b'kcv = "@generate.kcv"', b'kcv = "000000"')
    script = parse(text)
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    desk = ScriptedDesk()
    rb(run.start)
    for _ in ("check-token", "generate"):
        rb(run.perform, desk)
        sign(rb, run)
    with pytest.raises(CeremonyError, match="EXPECTATION"):
        rb(run.perform, desk)
    assert rb(lambda: run.state) is State.FAILED
    row = rb(lambda: run.row)
    assert "000000" in row.reason and row.transcript_sha256
    # Prechecked: nothing was activated.
    assert rb(rb.ws.keys.resolve, "kek-2026").state.value == "PRE_ACTIVE"
    rb(transcript.verify, rb.ws, rb(run.transcript_bytes))
    with pytest.raises(CeremonyError, match="failed"):
        rb(run.perform, desk)


def test_pause_resume_and_abandon(rb: Bench, tmp_path: Path) -> None:
    script = template("rotate-key")
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    rb(run.start)
    rb(run.pause, "lunch")
    with pytest.raises(CeremonyError, match="paused"):
        rb(run.perform, ScriptedDesk())
    rb.reopen()
    again = rb(Ceremonies(rb.ws).get, run.id[:8])
    with pytest.raises(TokenNotLoggedIn):
        rb(again.resume)
    rb(rb.ws.tokens.login, "Rehearsal", PIN)
    rb(again.resume)
    rb(again.perform, ScriptedDesk())  # token.check
    rb(again.abandon, "the room was interrupted")
    assert rb(lambda: again.state) is State.ABANDONED
    doc = json.loads(rb(again.transcript_bytes))
    assert doc["ceremony"]["reason"] == "the room was interrupted"
    assert [s["state"] for s in doc["steps"]][:2] == ["performed", "pending"]
    rb(transcript.verify, rb.ws, rb(again.transcript_bytes))


def test_a_ceremony_a_killed_process_left_running_is_resumed(rb: Bench, tmp_path: Path) -> None:
    """No pause was recorded (the process was killed): the next session's administrator takes
    it up again at the step it was on, and the resume entry says it was interrupted."""
    script = template("rotate-key")
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    rb(run.start)
    rb.reopen()  # as after a kill: the state is still 'running'
    again = rb(Ceremonies(rb.ws).get, run.id)
    assert rb(lambda: again.state) is State.RUNNING
    rb(rb.ws.tokens.login, "Rehearsal", PIN)
    rb(again.resume)
    resumed = [e for e in rb.events() if e.action == "ceremony.resume"]
    assert resumed and json.loads(resumed[-1].details_json)["interrupted"] is True
    rb(again.perform, ScriptedDesk())
    assert rb(lambda: again.phase) is Phase.SIGN_OFF


def _consistent(rb: Bench) -> None:
    """Token and database agree: every live key recorded on the Rehearsal token is there
    (pkcs11-tool's view), every key object there is recorded, nothing is pending."""
    from tests.support import peer_objects

    keys = [k for k in rb(rb.ws.keys.repo.all) if k.token_label == "Rehearsal"]
    live = {k.cka_id for k in keys if not k.state.value.startswith("DESTROYED")}
    on_token = {o.cka_id for o in peer_objects(rb.home, token="Rehearsal")}
    assert on_token == live
    assert rb(rb.ws.tokens.intents.pending) == []
    assert rb(rb.ws.audit.verify).ok


@pytest.mark.parametrize("stop", range(12))
def test_a_ceremony_stopped_at_any_step_leaves_token_and_database_consistent(
    rb: Bench, tmp_path: Path, stop: int
) -> None:
    """root-ca stopped (abandoned) before or after each of its six steps' actions: the token
    and the database agree afterwards, and the transcript verifies."""
    from tests.hsm.ceremony_kit import sign_now

    script = template("root-ca")
    write_csr(tmp_path)
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    position, after_action = divmod(stop, 2)
    desk = ScriptedDesk()

    def drive() -> None:
        run.start()
        for _ in range(position):
            run.perform(desk)
            sign_now(run)
        if after_action:
            run.perform(desk)

    rb(drive)
    if not rb(lambda: run.state.ended):
        rb(run.abandon, f"stopped at {stop}")
    assert rb(lambda: run.state) in {State.ABANDONED, State.FAILED}
    rb(transcript.verify, rb.ws, rb(run.transcript_bytes))
    _consistent(rb)


def test_a_failing_step_leaves_token_and_database_consistent(rb: Bench, tmp_path: Path) -> None:
    """The intermediate's request is missing when its step comes: the step fails, the
    ceremony stops with the reason, the root key and certificate made before stay recorded
    and on the token, nothing else is left."""
    from tests.hsm.ceremony_kit import sign_now

    script = template("root-ca")
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    desk = ScriptedDesk()

    def drive() -> None:
        run.start()
        for _ in range(4):
            run.perform(desk)
            sign_now(run)
        run.perform(desk)

    with pytest.raises(CeremonyError, match=r"intermediate\.csr"):
        rb(drive)
    assert rb(lambda: run.state) is State.FAILED
    assert "intermediate.csr" in rb(lambda: run.row.reason)
    assert not (tmp_path / "intermediate-ca.pem").exists()
    _consistent(rb)


@pytest.mark.parametrize("who", ["auditor", "other-officer"])
def test_only_the_administrator_abandons_or_resumes_a_ceremony(
    rb: Bench, tmp_path: Path, who: str
) -> None:
    """Outside testers: an auditor ended another administrator's paused ceremony for good.
    Abandon now applies resume's rule (one place): an auditor is refused for the role, another
    officer for not being the administrator; each refusal is a denied entry and the ceremony
    stays paused, for its administrator to resume or abandon."""
    from app.domain.roles import Role
    from app.errors import KeysteadError, PolicyError
    from app.services.workstation import Workstation

    script = template("rotate-key")
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    rb(run.start)
    rb(run.pause, "lunch")
    roles = frozenset({Role.AUDITOR}) if who == "auditor" else frozenset({Role.SECURITY_OFFICER})
    rb(rb.ws.roster.add, who, roles, AUDITOR_PASS, AUDITOR_PASS)
    rb(rb.ws.lock)
    rb.ws = rb(Workstation.unlock, rb.home, who, AUDITOR_PASS, clock=rb.clock)
    other = rb(Ceremonies(rb.ws).get, run.id)
    expected: type[KeysteadError] = PolicyError if who == "auditor" else CeremonyError
    with pytest.raises(expected) as refused:
        rb(other.abandon, "nope")
    assert "Nothing was changed" in refused.value.message
    with pytest.raises(expected):
        rb(other.resume)
    assert rb(lambda: other.state) is State.PAUSED
    denied = [e for e in rb.events() if e.outcome == "denied" and run.id in e.subject]
    assert len(denied) == 2
    rb.reopen()  # the administrator
    again = rb(Ceremonies(rb.ws).get, run.id)
    rb(rb.ws.tokens.login, "Rehearsal", PIN)
    rb(again.abandon, "the room was interrupted")
    assert rb(lambda: again.state) is State.ABANDONED
