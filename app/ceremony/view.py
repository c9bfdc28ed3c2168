"""A ceremony as one immutable snapshot for a front end to render (read on the core thread,
shown on the GUI thread): no live objects cross the thread boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.ceremony.runner import CeremonyRun, Participant, Phase, State


@dataclass(frozen=True)
class StepView:
    position: int
    id: str
    type: str
    title: str
    instruction: str
    params: tuple[tuple[str, str], ...]
    expect: tuple[tuple[str, str], ...]
    signers: tuple[str, ...]
    quorum: int
    state: str
    outputs: tuple[tuple[str, str], ...] = ()
    signed_by: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class CeremonyView:
    id: str
    title: str
    script_name: str
    script_sha256: str
    script_words: tuple[str, ...]
    profile: str
    token: str
    administrator: str
    state: State
    phase: Phase
    index: int
    steps: tuple[StepView, ...]
    participants: tuple[Participant, ...]
    reason: str = ""
    transcript_sha256: str | None = None
    witnesses_needed: int = 1
    custodians_needed: int = 0
    auditor_needed: bool = False
    eligible: tuple[str, ...] = field(default_factory=tuple)  # may sign the current step

    @property
    def current(self) -> StepView | None:
        if self.state not in {State.RUNNING, State.PAUSED} or self.index >= len(self.steps):
            return None
        return self.steps[self.index]


def _text(value: object) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def snapshot(run: CeremonyRun) -> CeremonyView:
    """(Core thread.) Everything the page shows, read once."""
    row = run.row
    script = run.script
    rows = run.step_rows()
    steps = tuple(
        StepView(
            position=r.position,
            id=step.id,
            type=step.type,
            title=step.spec.title,
            instruction=step.instruction,
            params=tuple((k, _text(v)) for k, v in step.params.items()),
            expect=tuple(step.expect.items()),
            signers=step.signers,
            quorum=step.quorum,
            state=r.state,
            outputs=tuple(r.outputs.items()),
            signed_by=tuple(s["name"] for s in r.signoffs),
            reason=r.reason,
        )
        for r, step in zip(rows, script.steps, strict=True)
    )
    state = State(row.state)
    current = run.current
    eligible = tuple(p.name for p in run.eligible_signers(current)) if current is not None else ()
    return CeremonyView(
        id=row.id,
        title=row.title,
        script_name=row.name,
        script_sha256=row.script_sha256,
        script_words=tuple(script.words),
        profile=row.profile,
        token=f"{row.token_label} ({row.token_serial})",
        administrator=row.administrator,
        state=state,
        phase=run.phase,
        index=row.step_index,
        steps=steps,
        participants=tuple(run.participants()),
        reason=row.reason,
        transcript_sha256=row.transcript_sha256,
        witnesses_needed=script.witnesses,
        custodians_needed=script.custodians,
        auditor_needed=script.auditor,
        eligible=eligible,
    )
