"""A ceremony step interrupted between its recorded start and its recorded outputs (a kill,
a power cut right after the step's action committed) is settled at resume, never done twice:
for every step type of the shipped templates, the action is carried out exactly as ``perform``
does it, the session is dropped (nothing after the action ran), and the resumed ceremony
takes up what the action left — the same outputs, nothing made a second time — and runs to
its end with token and database in agreement. A step type that cannot tell (token.init) is
refused with what to check, and nothing is done. The real SIGKILL is in
``tests/e2e/test_ceremony_interrupted.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ceremony.runner import Ceremonies, CeremonyRun, Phase, State
from app.errors import CeremonyError
from tests.hsm.ceremony_kit import (
    ScriptedDesk,
    begin,
    register_all,
    rehearsal_bench,
    run_to_end,
    sign_now,
    template,
    write_csr,
)
from tests.hsm.test_ceremony_runner import _consistent
from tests.support import PIN, Bench

pytestmark = pytest.mark.hsm


@pytest.fixture
def rb(bench: Bench) -> Bench:
    return rehearsal_bench(bench)


def _interrupt_at(rb: Bench, run: CeremonyRun, position: int, desk: ScriptedDesk) -> object:
    """Drive to ``position``, then do what ``perform`` does up to its action and stop there:
    the step's start recorded, its action carried out (committed by its service), nothing
    after. Returns what the action returned (or the error it raised)."""

    def drive() -> object:
        run.start()
        for _ in range(position):
            run.perform(desk)
            sign_now(run)
        step = run.script.steps[position]
        run._begin_step(position, step)
        return step.spec.run(run._context(position, desk), step.params)

    return rb(drive)


def _resumed(rb: Bench, run: CeremonyRun) -> CeremonyRun:
    rb.reopen()  # the process that ran the step is gone; a new session unlocks
    rb(rb.ws.tokens.login, "Rehearsal", PIN)
    again: CeremonyRun = rb(Ceremonies(rb.ws).get, run.id)
    assert rb(lambda: again.state) is State.RUNNING
    assert rb(lambda: again.interrupted)
    rb(again.resume)
    return again


def _prepare(rb: Bench, name: str, tmp_path: Path) -> None:
    """What a template needs before it starts: a CSR for root-ca; the KEK for rotate-key and
    destroy-key (generate-kek run first; destroy-key also needs it retired first)."""
    if name == "root-ca":
        write_csr(tmp_path)
    if name in {"rotate-key", "destroy-key", "backup"}:
        script = template("generate-kek")
        first = begin(rb, script, tmp_path)
        register_all(rb, first, script)
        run_to_end(rb, first, ScriptedDesk())
    if name == "destroy-key":
        from app.domain.lifecycle import Action

        key = rb(rb.ws.keys.resolve, "kek-2026")
        rb(rb.ws.lifecycle.transition, key.id, Action.DEACTIVATE, reason="retired")


CASES = [
    ("root-ca", 0),  # token.check: runs again
    ("root-ca", 1),  # key.generate
    ("root-ca", 2),  # key.activate
    ("root-ca", 3),  # cert.self-sign
    ("root-ca", 4),  # cert.sign-csr
    ("root-ca", 5),  # audit.checkpoint: runs again
    ("rotate-key", 1),  # key.rotate
    ("destroy-key", 1),  # key.destroy
    ("backup", 1),  # backup.create
]


@pytest.mark.parametrize(("name", "position"), CASES)
def test_an_interrupted_step_is_taken_up_not_done_again(
    rb: Bench, tmp_path: Path, name: str, position: int
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _prepare(rb, name, work)
    script = template(name)
    run = begin(rb, script, work)
    register_all(rb, run, script)
    desk = ScriptedDesk()
    first = _interrupt_at(rb, run, position, desk)
    keys_before = sorted(k.id for k in rb(rb.ws.keys.repo.all))
    files_before = sorted(p.name for p in work.rglob("*"))
    backups_before = [b.id for b in rb(rb.ws.backup.backups)]
    again = _resumed(rb, run)
    outputs = rb(again.perform, desk)
    varying_read_again = script.steps[position].type in {
        "token.check",
        "audit.checkpoint",
    }
    if varying_read_again:
        assert not again.settled_step
    else:
        assert again.settled_step and outputs == first
        assert sorted(k.id for k in rb(rb.ws.keys.repo.all)) == keys_before
        assert sorted(p.name for p in work.rglob("*")) == files_before
        assert [b.id for b in rb(rb.ws.backup.backups)] == backups_before
    assert rb(lambda: again.phase) is Phase.SIGN_OFF

    def finish() -> None:
        sign_now(again)
        while again.current is not None:
            again.perform(desk)
            sign_now(again)

    rb(finish)
    assert rb(lambda: again.state) is State.COMPLETED
    _consistent(rb)
    settled = [
        e for e in rb.events() if e.action == "ceremony.step" and "settled" in e.details_json
    ]
    assert len(settled) == (0 if varying_read_again else 1)


def test_an_interrupted_step_whose_action_did_not_run_runs_now(rb: Bench, tmp_path: Path) -> None:
    """The start was recorded but the process died before the action: nothing to take up,
    so the step is carried out once, now."""
    write_csr(tmp_path)
    script = template("root-ca")
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    desk = ScriptedDesk()

    def drive() -> None:
        run.start()
        run.perform(desk)
        sign_now(run)
        run._begin_step(1, run.script.steps[1])

    rb(drive)
    again = _resumed(rb, run)
    outputs = rb(again.perform, desk)
    assert not again.settled_step
    assert rb(rb.ws.keys.resolve, outputs["key_id"]).name == outputs["name"]


def test_an_interrupted_token_init_is_refused_with_what_to_check(
    rb: Bench, tmp_path: Path
) -> None:
    """token.init erases a token: Keystead cannot tell from its records whether it ran, so
    resume refuses it (denied entry) and changes nothing; the administrator abandons."""
    script = template("init-token")
    run = begin(rb, script, tmp_path)
    register_all(rb, run, script)
    desk = ScriptedDesk()

    def drive() -> None:
        run.start()
        for _ in range(2):
            run.perform(desk)
            sign_now(run)
        run._begin_step(2, run.script.steps[2])

    rb(drive)
    again = _resumed(rb, run)
    before = len(rb.events())
    with pytest.raises(CeremonyError, match="cannot tell") as refused:
        rb(again.perform, desk)
    assert "INTERRUPTED" in refused.value.rule
    assert desk.asked == []  # no PIN asked: nothing was tried
    denied = rb.events()[before:]
    assert [(e.action, e.outcome) for e in denied] == [("ceremony.step", "denied")]
    assert rb(lambda: again.state) is State.RUNNING and rb(lambda: again.interrupted)
    rb(again.abandon, "interrupted token initialisation; token checked by hand")
    assert rb(lambda: again.state) is State.ABANDONED
