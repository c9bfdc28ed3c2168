"""A ceremony as one immutable snapshot for a front end to render (read on the core thread,
shown on the GUI thread): no live objects cross the thread boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.ceremony.runner import Ceremonies, CeremonyRun, Participant, Phase, State


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
            expect=tuple(run.expected_outputs(step).items()),  # references resolved
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


@dataclass(frozen=True)
class CeremonySummary:
    """One ceremony of this workstation as the Ceremony page lists it (``ceremony list``'s
    facts, with its administrator and times). Times are the stored UTC ISO 8601 texts."""

    id: str
    name: str
    title: str
    profile: str
    state: State
    administrator: str
    token_label: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    step: int  # the step it is on (0-based), or the number done when it ended
    steps: int

    @property
    def resumable(self) -> bool:
        """Paused, or left running by a process that ended (``CeremonyRun.resume``)."""
        return self.state in {State.PAUSED, State.RUNNING}


def summaries(ceremonies: Ceremonies) -> list[CeremonySummary]:
    """(Core thread.) Every ceremony of the workstation, newest first."""
    rows = ceremonies.listing()
    return [
        CeremonySummary(
            id=row.id,
            name=row.name,
            title=row.title,
            profile=row.profile,
            state=State(row.state),
            administrator=row.administrator,
            token_label=row.token_label,
            created_at=row.created_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
            step=row.step_index,
            steps=len(ceremonies.repo.steps(row.id)),
        )
        for row in reversed(rows)
    ]
