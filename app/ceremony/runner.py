"""The ceremony state machine. The CLI and the Qt page only render it and pass on what people do.

States: ``registering`` (participants join) → ``running`` (step by step) ⇄ ``paused`` → one of
``completed``, ``failed``, ``abandoned``. In ``running`` the current step is either waiting
for the administrator's *done* (``perform``: the step's action runs, its outputs are compared
with the script's expectations) or for the witnesses' sign-offs (``sign_off``: as many distinct
participants of the step's signer roles as its quorum; never the administrator).

Every change is one transaction with its audit entry (subject ``ceremony:<id>``); refusals are
``denied`` entries and change nothing. A checkpoint is signed on the audit token when the
ceremony starts and when it ends; at the end the transcript (``app.ceremony.transcript``) is
built from the records and its SHA-256 written into the chain. A failed step stops the
ceremony with the reason; what the step's service already committed stays committed and
consistent with the token (each service keeps its own write-ahead intent), and the transcript
says so. A step's start is recorded before its action, so a step interrupted by a kill is
settled at resume from what its action left, never carried out twice (``perform``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from app.ceremony import script as scripts
from app.ceremony import transcript
from app.ceremony.context import CeremonyDesk, StepContext
from app.ceremony.registry import Preflight
from app.domain.names import mixed_script, name_skeleton
from app.domain.roles import Role
from app.errors import CeremonyError, KeysteadError, TokenNotLoggedIn
from app.services.audit import Outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.storage.ceremonies import CeremonyRepository, CeremonyRow, ParticipantRow, StepRow
from app.storage.events import events_after, list_events
from app.storage.repository import utc_text

if TYPE_CHECKING:
    from app.hsm.module import TokenInfo
    from app.services.workstation import Workstation

RULE_TOKEN = "KS-CEREMONY-TOKEN"  # noqa: S105 (a rule id)
RULE_STATE = "KS-CEREMONY-STATE"
RULE_PARTICIPANT = "KS-CEREMONY-PARTICIPANT"
RULE_ROLE = "KS-CEREMONY-ROLE"
RULE_WITNESS_IS_ADMIN = "KS-CEREMONY-WITNESS-IS-ADMINISTRATOR"
RULE_SIGNOFF = "KS-CEREMONY-SIGNOFF"
RULE_QUORUM = "KS-CEREMONY-QUORUM"
RULE_OUTPUT = "KS-CEREMONY-OUTPUT-MISMATCH"
RULE_RESUME = "KS-CEREMONY-RESUME"
RULE_INTERRUPTED = "KS-CEREMONY-INTERRUPTED"
# A step whose start is recorded (``ceremony.step-begin``) and whose outputs are not yet: its
# action may have run before a kill or power cut. Resume settles it before anything else.
BEGUN = "begun"

ADMINISTRATOR = "administrator"
# Which operator roles a participant role needs (an external person has none to show).
OPERATOR_ROLE_FOR: dict[str, frozenset[Role] | None] = {
    "witness": None,  # any enabled operator
    "custodian": frozenset({Role.KEY_CUSTODIAN}),
    "auditor": frozenset({Role.AUDITOR}),
}
EXTERNAL_ROLES = frozenset({"witness", "auditor"})


class State(Enum):
    REGISTERING = "registering"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"

    @property
    def ended(self) -> bool:
        return self in {State.COMPLETED, State.FAILED, State.ABANDONED}


class Phase(Enum):
    PERFORM = "perform"  # waiting for the administrator's "done"
    SIGN_OFF = "sign-off"  # waiting for witnesses
    NONE = "none"  # not running


@dataclass(frozen=True)
class Participant:
    name: str
    role: str
    kind: str  # operator | external
    organisation: str = ""


class Ceremonies:
    """Begin, find and list ceremonies of one unlocked workstation."""

    def __init__(self, ws: Workstation) -> None:
        self.ws = ws
        self.repo = CeremonyRepository(ws.db)

    def begin(self, script: scripts.Script, profile: str, workdir: Path) -> CeremonyRun:
        """A new ceremony in ``registering``: the operator who unlocked is its administrator.
        Refused (denied entry) unless they may run ceremonies, the profile's token is present,
        logged in and is the one the profile names, and ``workdir`` is a directory."""
        assert_core_thread()
        ws = self.ws
        subject = f"ceremony-script:{script.sha256_hex}"
        ws.approvals.check_initiator("ceremony.run", subject)
        details = {"script": script.name, "script_sha256": script.sha256_hex, "profile": profile}
        try:
            info = self._token(script, profile)
            if not workdir.is_dir():
                raise CeremonyError(
                    f"{workdir} is not a directory; give the ceremony's working directory.",
                    "KS-CEREMONY-FILE",
                )
            # The steps' own rules against this workstation before anyone registers: a key
            # name already taken, an output file already in the working directory.
            scripts.check_values(script, self.preflight(workdir))
        except KeysteadError as exc:
            record_alone(
                ws.db,
                when=ws.clock(),
                operators=(ws.operator,),
                action="ceremony.begin",
                subject=subject,
                outcome=Outcome.DENIED,
                details={**details, "refusal": exc.message},
            )
            raise
        now = utc_text(ws.clock())
        row = CeremonyRow(
            id=str(uuid.uuid4()),
            name=script.name,
            title=script.title,
            script=script.text,
            script_sha256=script.sha256_hex,
            profile=profile,
            token_serial=info.serial,
            token_label=info.label,
            workdir=str(workdir.resolve()),
            administrator=ws.operator,
            state=State.REGISTERING.value,
            step_index=0,
            created_at=now,
            started_at=None,
            ended_at=None,
            reason="",
            checkpoint_before=None,
            checkpoint_after=None,
            transcript_sha256=None,
        )
        with ws.db.transaction():
            self.repo.insert(row)
            for index, step in enumerate(script.steps):
                self.repo.add_step(row.id, index, step.id)
            self.repo.add_participant(
                row.id, ParticipantRow(0, ws.operator, ADMINISTRATOR, "operator", "", now)
            )
            record(
                ws.db,
                when=ws.clock(),
                operators=(ws.operator,),
                action="ceremony.begin",
                subject=f"ceremony:{row.id}",
                outcome=Outcome.SUCCESS,
                details={
                    **details,
                    "token": info.serial,
                    "token_label": info.label,
                    "title": script.title,
                },
            )
        return CeremonyRun(ws, row.id)

    def preflight(self, workdir: Path | None) -> Preflight:
        """What the steps' parameter checks consult on this workstation."""
        return Preflight(free_name=self.ws.keys.free_name, workdir=workdir)

    def _token(self, script: scripts.Script, profile: str) -> TokenInfo:
        key, wanted = script.selector(profile)
        present = self.ws.tokens.present()
        if key == "token_label":
            found = [t for t in present if t.label == wanted]
        else:
            found = [t for t in present if wanted in {t.serial, t.reported_serial}]
        what = f"labelled '{wanted}'" if key == "token_label" else f"with serial '{wanted}'"
        if not found:
            seen = ", ".join(f"'{t.label}' ({t.serial})" for t in present) or "none"
            raise CeremonyError(
                f"The {profile} profile needs the token {what}; it is not present (present: "
                f"{seen}). Nothing was started."
                + (
                    f" Make the rehearsal token with: keystead tokens create-soft --label "
                    f"'{wanted}'."
                    if key == "token_label"
                    else " Insert the production token."
                ),
                RULE_TOKEN,
            )
        if len(found) > 1:
            raise CeremonyError(
                f"Several tokens are {what}; remove all but the ceremony's token.", RULE_TOKEN
            )
        info = found[0]
        if profile == "rehearsal" and "softhsm" not in info.model.lower():
            raise CeremonyError(
                f"Rehearsals run on a SoftHSM token; '{info.label}' is a {info.model} "
                f"({info.manufacturer}). Use the production profile for a real token.",
                RULE_TOKEN,
            )
        if not any(s.info.serial == info.serial for s in self.ws.tokens.logged_in()):
            raise TokenNotLoggedIn(f"Log in to token '{info.label}' first; nothing was started.")
        return info

    def get(self, ref: str) -> CeremonyRun:
        found = self.repo.find(ref.strip()) if ref.strip() else []
        if not found:
            raise CeremonyError(f"No ceremony with id '{ref}'.", "KS-CEREMONY-UNKNOWN")
        if len(found) > 1:
            raise CeremonyError(
                f"'{ref}' starts {len(found)} ceremony ids; type more of it.",
                "KS-CEREMONY-UNKNOWN",
            )
        return CeremonyRun(self.ws, found[0].id)

    def listing(self) -> list[CeremonyRow]:
        return self.repo.all()


class CeremonyRun:
    """One ceremony, read from its records each time (so two views never disagree)."""

    def __init__(self, ws: Workstation, ceremony_id: str) -> None:
        self.ws = ws
        self.id = ceremony_id
        self.repo = CeremonyRepository(ws.db)
        self.script = scripts.parse(self.row.script)
        # Whether the last ``perform`` took up what an interrupted start had completed.
        self.settled_step = False

    # --- reading ---------------------------------------------------------------------------

    @property
    def row(self) -> CeremonyRow:
        found = self.repo.get(self.id)
        if found is None:
            raise CeremonyError(f"No ceremony with id '{self.id}'.", "KS-CEREMONY-UNKNOWN")
        return found

    @property
    def state(self) -> State:
        return State(self.row.state)

    @property
    def administrator(self) -> str:
        return self.row.administrator

    def participants(self) -> list[Participant]:
        return [
            Participant(p.name, p.role, p.kind, p.organisation)
            for p in self.repo.participants(self.id)
        ]

    def step_rows(self) -> list[StepRow]:
        return self.repo.steps(self.id)

    @property
    def index(self) -> int:
        return self.row.step_index

    @property
    def current(self) -> scripts.Step | None:
        row = self.row
        if State(row.state) not in {State.RUNNING, State.PAUSED}:
            return None
        return (
            self.script.steps[row.step_index] if row.step_index < len(self.script.steps) else None
        )

    @property
    def phase(self) -> Phase:
        row = self.row
        if State(row.state) is not State.RUNNING or row.step_index >= len(self.script.steps):
            return Phase.NONE
        step = self.repo.steps(self.id)[row.step_index]
        return Phase.SIGN_OFF if step.state == "performed" else Phase.PERFORM

    def outputs(self, position: int) -> dict[str, str]:
        return dict(self.repo.steps(self.id)[position].outputs)

    def signoffs(self, position: int) -> list[dict[str, str]]:
        return list(self.repo.steps(self.id)[position].signoffs)

    def eligible_signers(self, step: scripts.Step) -> list[Participant]:
        return [p for p in self.participants() if p.role in step.signers]

    def transcript_document(self) -> dict[str, Any]:
        return transcript.document(self.ws, self.row, self.script)

    def transcript_bytes(self) -> bytes:
        return transcript.encode(self.transcript_document())

    # --- registering -----------------------------------------------------------------------

    def register_operator(self, name: str, role: str, passphrase: str) -> Participant:
        """An operator joins in ``role`` (witness, custodian, auditor), proving it with their
        own passphrase; their operator roles must allow the ceremony role."""
        assert_core_thread()
        name = name.strip()
        self._require(State.REGISTERING, "register participants")
        self._check_newcomer(name, role, "operator")
        needed = OPERATOR_ROLE_FOR[role]
        held = self.ws.approvals.roles_of(name)
        if not held:
            self._refuse(
                "ceremony.register",
                f"'{name}' is not an enabled operator of this workstation; an outside witness "
                "is registered as external (name and organisation).",
                RULE_PARTICIPANT,
                participant=name,
            )
        if needed is not None and not held & needed:
            self._refuse(
                "ceremony.register",
                f"'{name}' cannot take part as {role}: that needs the operator role "
                f"{', '.join(r.value for r in needed)}; '{name}' holds "
                f"{', '.join(sorted(r.value for r in held))}.",
                RULE_ROLE,
                participant=name,
            )
        self._authenticate("ceremony.register", name, passphrase)
        return self._add(Participant(name, role, "operator"))

    def register_external(self, name: str, organisation: str, role: str) -> Participant:
        """Someone from outside (an external witness or auditor), recorded by name and
        organisation; they sign off by typing their name."""
        assert_core_thread()
        name, organisation = name.strip(), organisation.strip()
        self._require(State.REGISTERING, "register participants")
        if role not in EXTERNAL_ROLES:
            self._refuse(
                "ceremony.register",
                f"A {role} must be an operator of this workstation (custodians hold shares and "
                "keys); only witnesses and auditors can be external.",
                RULE_ROLE,
                participant=name,
            )
        if not organisation or len(organisation) > 128:
            self._refuse(
                "ceremony.register",
                "An external participant is recorded with their organisation; give it.",
                RULE_PARTICIPANT,
                participant=name,
            )
        self._check_newcomer(name, role, "external")
        return self._add(Participant(name, role, "external", organisation))

    def _check_newcomer(self, name: str, role: str, kind: str) -> None:
        if mixed_script(name):
            self._refuse(
                "ceremony.register",
                f"'{name}' mixes Latin, Cyrillic or Greek letters, which look alike; type the "
                "name in one script.",
                RULE_PARTICIPANT,
                participant=name,
            )
        if role not in OPERATOR_ROLE_FOR:
            self._refuse(
                "ceremony.register",
                f"Unknown participant role '{role}'; use witness, custodian or auditor.",
                RULE_ROLE,
                participant=name,
            )
        if not name or len(name) > 128 or not name.isprintable():
            self._refuse(
                "ceremony.register",
                "A participant needs a printable name of at most 128 characters.",
                RULE_PARTICIPANT,
                participant=name,
            )
        if _same_person(name, self.administrator):
            self._refuse(
                "ceremony.register",
                f"'{name}' is the ceremony's administrator and cannot also be its {role}: "
                "another person must witness.",
                RULE_WITNESS_IS_ADMIN,
                participant=name,
            )
        if kind == "external" and any(
            _same_person(name, o.name) for o in self.ws.approvals.operators.all(True)
        ):
            self._refuse(
                "ceremony.register",
                f"'{name}' is the name of an operator of this workstation; an operator takes "
                "part as an operator (with their passphrase), not as an external person.",
                RULE_PARTICIPANT,
                participant=name,
            )
        if any(_same_person(p.name, name) for p in self.participants()):
            self._refuse(
                "ceremony.register",
                f"'{name}' is registered already; one person takes one part.",
                RULE_PARTICIPANT,
                participant=name,
            )

    def _add(self, participant: Participant) -> Participant:
        ws = self.ws
        position = len(self.repo.participants(self.id))
        with ws.db.transaction():
            self.repo.add_participant(
                self.id,
                ParticipantRow(
                    position,
                    participant.name,
                    participant.role,
                    participant.kind,
                    participant.organisation,
                    utc_text(ws.clock()),
                ),
            )
            record(
                ws.db,
                when=ws.clock(),
                operators=self._operators(participant),
                action="ceremony.register",
                subject=f"ceremony:{self.id}",
                outcome=Outcome.SUCCESS,
                details={
                    "participant": participant.name,
                    "role": participant.role,
                    "kind": participant.kind,
                    "organisation": participant.organisation,
                },
            )
        return participant

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Check the participants against the script, sign the checkpoint before, run."""
        assert_core_thread()
        self._require(State.REGISTERING, "start")
        people = self.participants()
        script = self.script
        counts = {
            role: sum(1 for p in people if p.role == role)
            for role in ("witness", "custodian", "auditor")
        }
        short = []
        if counts["witness"] < script.witnesses:
            short.append(f"{script.witnesses} witness(es) needed, {counts['witness']} registered")
        if counts["custodian"] < script.custodians:
            short.append(
                f"{script.custodians} custodian(s) needed, {counts['custodian']} registered"
            )
        if script.auditor and counts["auditor"] < 1:
            short.append("an auditor needed, none registered")
        for step in script.steps:
            able = len(self.eligible_signers(step))
            if able < step.quorum:
                short.append(
                    f"step '{step.id}' needs {step.quorum} sign-off(s) by "
                    f"{'/'.join(step.signers)}, {able} registered"
                )
        if short:
            self._refuse(
                "ceremony.start",
                "Too few participants to start: " + "; ".join(short) + ". Register them; "
                "nothing was started.",
                RULE_QUORUM,
            )
        self._token_ready()
        made = self.ws.audit.checkpoint("ceremony start")
        checkpoint = {"seq": made.seq, "head": made.head.hex(), "time": made.time}
        self._change(
            "ceremony.start",
            {
                "state": State.RUNNING.value,
                "started_at": utc_text(self.ws.clock()),
                "checkpoint_before": checkpoint,
            },
            {"checkpoint": checkpoint, "participants": [f"{p.role}:{p.name}" for p in people]},
        )

    def perform(self, desk: CeremonyDesk) -> dict[str, str]:
        """The administrator's "done" for the current step: run its action, compare outputs
        with the script's expectations, record them. Any failure stops the ceremony (state
        ``failed``, the reason recorded) and is raised again.

        The step's start is recorded before its action (``ceremony.step-begin``). A step whose
        start is recorded but not its outputs (the process was killed, the power went) is
        settled first, never done twice: its type reads what the action completed from the
        entries written since (the key generated, the backup written) and those are its
        outputs; if the action did not complete it runs now; if the type cannot tell, refused
        (KS-CEREMONY-INTERRUPTED, denied entry) with what to check."""
        assert_core_thread()
        self._require(State.RUNNING, "carry out a step")
        if self.phase is not Phase.PERFORM:
            self._refuse(
                "ceremony.step",
                "This step was carried out; it waits for the witnesses' sign-off.",
                RULE_STATE,
            )
        position = self.index
        step = self.script.steps[position]
        expect = self._resolved(step)
        self._token_ready()
        context = self._context(position, desk)
        settled = self._settled(position, step, context) if self.interrupted else None
        if settled is not None:
            outputs = settled
        else:
            self._begin_step(position, step)
            try:
                scripts.check_step(step, Ceremonies(self.ws).preflight(Path(self.row.workdir)))
                outputs = step.spec.run(context, step.params)
            except KeysteadError as exc:
                self._fail(position, f"step '{step.id}' failed: {exc.message}")
                raise
        mismatches = [
            f"{name}: expected {wanted}, got {outputs.get(name, '(none)')}"
            for name, wanted in expect.items()
            if name not in step.spec.prechecked
            and outputs.get(name, "").strip().lower() != wanted.strip().lower()
        ]
        if mismatches:
            reason = f"step '{step.id}' output does not match the script: " + "; ".join(mismatches)
            self._fail(position, reason, outputs)
            raise CeremonyError(reason, RULE_OUTPUT)
        ws = self.ws
        with ws.db.transaction():
            self.repo.put_step(
                self.id,
                StepRow(
                    position,
                    step.id,
                    "performed",
                    ws.operator,
                    utc_text(ws.clock()),
                    outputs,
                    [],
                    "",
                ),
            )
            record(
                ws.db,
                when=ws.clock(),
                operators=(ws.operator,),
                action="ceremony.step",
                subject=f"ceremony:{self.id}",
                outcome=Outcome.SUCCESS,
                details={
                    "step": step.id,
                    "type": step.type,
                    "position": position,
                    "outputs": outputs,
                    **({"settled": "completed before the interruption"} if settled else {}),
                },
            )
        self.settled_step = settled is not None
        return outputs

    @property
    def interrupted(self) -> bool:
        """The current step was begun and its outputs never recorded (a kill, a power cut):
        its action may have completed. ``perform`` settles it first, never doing it twice."""
        row = self.row
        if State(row.state) not in {State.RUNNING, State.PAUSED}:
            return False
        if row.step_index >= len(self.script.steps):
            return False
        return self.repo.steps(self.id)[row.step_index].state == BEGUN

    def _context(self, position: int, desk: CeremonyDesk) -> StepContext:
        """What the step at ``position`` acts with: its prechecked expectations (resolved)
        and the outputs of the steps before it."""
        step = self.script.steps[position]
        expect = self._resolved(step)
        return StepContext(
            self.ws,
            self.row.token_serial,
            Path(self.row.workdir),
            desk,
            {k: v for k, v in expect.items() if k in step.spec.prechecked},
            {s.step_id: s.outputs for s in self.repo.steps(self.id)[:position]},
        )

    def _begin_step(self, position: int, step: scripts.Step) -> None:
        """Record the step's start (its intent) before its action: the step row ``begun``
        and a ``ceremony.step-begin`` entry, whose sequence number marks what came after."""
        ws = self.ws
        with ws.db.transaction():
            self.repo.put_step(
                self.id,
                StepRow(position, step.id, BEGUN, ws.operator, utc_text(ws.clock()), {}, [], ""),
            )
            record(
                ws.db,
                when=ws.clock(),
                operators=(ws.operator,),
                action="ceremony.step-begin",
                subject=f"ceremony:{self.id}",
                outcome=Outcome.SUCCESS,
                details={"step": step.id, "type": step.type, "position": position},
            )

    def _settled(
        self, position: int, step: scripts.Step, context: StepContext
    ) -> dict[str, str] | None:
        """The outputs of an interrupted step's action if it completed (read from the records
        written since its ``ceremony.step-begin``), None if it did not (it runs now). When the
        step type cannot tell, refused (denied entry): nothing is done twice."""
        began = [
            e.seq
            for e in list_events(self.ws.db, f"ceremony:{self.id}")
            if e.action == "ceremony.step-begin"
            and json.loads(e.details_json).get("position") == position
        ]
        since = events_after(self.ws.db, began[-1]) if began else []
        try:
            return step.spec.settle(context, step.params, since)
        except KeysteadError as exc:
            self._refuse(
                "ceremony.step",
                f"Step '{step.id}' was begun before the ceremony was interrupted. "
                f"{exc.message}",
                RULE_INTERRUPTED,
                cause=exc,
            )

    def signer(self, name: str) -> Participant:
        """The participant ``name`` if they may sign the current step now (a participant in a
        signing role, not its administrator, not signed yet); else refused and recorded
        (``CeremonyError``). Asked before initials or a passphrase are, and by ``sign_off``."""
        assert_core_thread()
        self._require(State.RUNNING, "sign off")
        if self.phase is not Phase.SIGN_OFF:
            self._refuse(
                "ceremony.sign-off",
                "The administrator has not carried out this step yet; nothing to sign.",
                RULE_STATE,
            )
        position = self.index
        step = self.script.steps[position]
        row = self.repo.steps(self.id)[position]
        if name == self.administrator:
            self._refuse(
                "ceremony.sign-off",
                f"'{name}' carried out step '{step.id}' as administrator and cannot also "
                "witness it; another participant signs.",
                RULE_WITNESS_IS_ADMIN,
                participant=name,
            )
        who = next((p for p in self.participants() if p.name == name), None)
        if who is None:
            self._refuse(
                "ceremony.sign-off",
                f"'{name}' is not a participant of this ceremony.",
                RULE_PARTICIPANT,
                participant=name,
            )
        if who.role not in step.signers:
            self._refuse(
                "ceremony.sign-off",
                f"Step '{step.id}' is signed by {'/'.join(step.signers)}; '{name}' takes part "
                f"as {who.role}.",
                RULE_ROLE,
                participant=name,
            )
        if any(s["name"] == name for s in row.signoffs):
            self._refuse(
                "ceremony.sign-off",
                f"'{name}' has signed this step already; each person counts once.",
                RULE_SIGNOFF,
                participant=name,
            )
        return who

    def sign_off(self, name: str, initials: str, passphrase: str | None) -> bool:
        """A witness signs the current step: an operator with initials and their passphrase,
        an external participant by typing their registered name as ``initials``. True when
        the quorum is reached (the ceremony moves on, or completes after the last step)."""
        assert_core_thread()
        name = name.strip()
        who = self.signer(name)
        position = self.index
        step = self.script.steps[position]
        row = self.repo.steps(self.id)[position]
        typed = initials.strip()
        if who.kind == "external":
            if typed != who.name:
                self._refuse(
                    "ceremony.sign-off",
                    f"An external participant signs by typing their registered name "
                    f"('{who.name}') exactly.",
                    RULE_SIGNOFF,
                    participant=name,
                )
        else:
            if not typed or len(typed) > 8 or not typed.replace(".", "").isalpha():
                self._refuse(
                    "ceremony.sign-off",
                    "Type your initials (letters, at most 8).",
                    RULE_SIGNOFF,
                    participant=name,
                )
            self._authenticate("ceremony.sign-off", name, passphrase or "")
        ws = self.ws
        signoffs = [
            *row.signoffs,
            {
                "name": name,
                "role": who.role,
                "kind": who.kind,
                "initials": typed,
                "at": utc_text(ws.clock()),
            },
        ]
        done = len(signoffs) >= step.quorum
        with ws.db.transaction():
            self.repo.put_step(
                self.id,
                StepRow(
                    position,
                    row.step_id,
                    "signed" if done else "performed",
                    row.performed_by,
                    row.performed_at,
                    row.outputs,
                    signoffs,
                    "",
                ),
            )
            if done:
                self.repo.update(self.id, step_index=position + 1)
            record(
                ws.db,
                when=ws.clock(),
                operators=self._operators(who),
                action="ceremony.sign-off",
                subject=f"ceremony:{self.id}",
                outcome=Outcome.SUCCESS,
                details={
                    "step": step.id,
                    "position": position,
                    "participant": name,
                    "kind": who.kind,
                    "signed": len(signoffs),
                    "quorum": step.quorum,
                },
            )
        if done and position + 1 >= len(self.script.steps):
            self._complete()
        return done

    def pause(self, reason: str = "") -> None:
        """Lock the ceremony; only its administrator resumes it."""
        assert_core_thread()
        self._require(State.RUNNING, "pause")
        self._change("ceremony.pause", {"state": State.PAUSED.value}, {"reason": reason})

    def resume(self) -> None:
        """Continue a paused ceremony, or one left ``running`` by a process that ended
        (killed, power lost: one process changes a workstation at a time, so no other is
        running it); the step it was on is taken up again. Only its administrator."""
        assert_core_thread()
        interrupted = self.state is State.RUNNING
        if not interrupted:
            self._require(State.PAUSED, "resume")
        self._administrator_only("ceremony.resume", "resumes")
        self._token_ready()
        self._change(
            "ceremony.resume", {"state": State.RUNNING.value}, {"interrupted": interrupted}
        )

    def abandon(self, reason: str) -> None:
        """Give the ceremony up (recorded, with a checkpoint if it had started). Only its
        administrator, as for resume: a paused ceremony is theirs to end."""
        assert_core_thread()
        self._administrator_only("ceremony.abandon", "abandons")
        if self.state.ended:
            self._refuse(
                "ceremony.abandon", f"The ceremony is {self.state.value} already.", RULE_STATE
            )
        if not reason.strip():
            raise CeremonyError("Say why the ceremony is abandoned.", RULE_STATE)
        self._end(State.ABANDONED, "ceremony.abandon", reason.strip(), Outcome.ABORTED)

    # --- helpers ---------------------------------------------------------------------------

    def _administrator_only(self, action: str, verb: str) -> None:
        """The one rule for taking up or ending a ceremony that was begun: the unlocked
        operator still holds a role that may run ceremonies (``ceremony.run``; PolicyError,
        KS-ROLE-REQUIRED) and is the ceremony's administrator (CeremonyError,
        KS-CEREMONY-RESUME). Each refusal is a denied entry."""
        self.ws.approvals.check_initiator("ceremony.run", f"ceremony:{self.id}")
        if self.ws.operator != self.administrator:
            self._refuse(
                action,
                f"Only the ceremony's administrator '{self.administrator}' {verb} it; "
                f"'{self.ws.operator}' is unlocked. Nothing was changed.",
                RULE_RESUME,
            )

    def _resolved(self, step: scripts.Step) -> dict[str, str]:
        return self.expected_outputs(step)

    def expected_outputs(self, step: scripts.Step) -> dict[str, str]:
        """``step``'s expected outputs with each ``@step.output`` reference replaced by the
        value that step recorded (what the room is shown and the output is checked against);
        "(not yet recorded)" while the referenced step has not run."""
        rows = {s.step_id: s.outputs for s in self.repo.steps(self.id)}
        found = {}
        for name, value in step.expect.items():
            if value.startswith("@"):
                ref_step, _, ref_output = value[1:].partition(".")
                found[name] = rows.get(ref_step, {}).get(ref_output, "(not yet recorded)")
            else:
                found[name] = value
        return found

    def _token_ready(self) -> None:
        serial = self.row.token_serial
        if not any(s.info.serial == serial for s in self.ws.tokens.logged_in()):
            raise TokenNotLoggedIn(
                f"Log in to the ceremony's token ({self.row.token_label}, {serial}) first."
            )

    def _fail(self, position: int, reason: str, outputs: Mapping[str, str] | None = None) -> None:
        row = self.repo.steps(self.id)[position]
        with self.ws.db.transaction():
            self.repo.put_step(
                self.id,
                StepRow(
                    position,
                    row.step_id,
                    "failed",
                    self.ws.operator,
                    utc_text(self.ws.clock()),
                    dict(outputs or {}),
                    [],
                    reason,
                ),
            )
        self._end(State.FAILED, "ceremony.fail", reason, Outcome.FAILED)

    def _complete(self) -> None:
        self._end(State.COMPLETED, "ceremony.complete", "", Outcome.SUCCESS)

    def _end(self, state: State, action: str, reason: str, outcome: Outcome) -> None:
        """Checkpoint after (when it had started and the audit token is there), then the
        final state and the transcript's SHA-256 in one entry."""
        ws = self.ws
        checkpoint: dict[str, Any] | None = None
        note = ""
        if self.row.started_at is not None:
            try:
                made = ws.audit.checkpoint(f"ceremony {state.value}")
                checkpoint = {"seq": made.seq, "head": made.head.hex(), "time": made.time}
            except KeysteadError as exc:
                if state is State.COMPLETED:
                    raise
                note = f"no checkpoint after: {exc.message}"
        with ws.db.transaction():
            self.repo.update(
                self.id,
                state=state.value,
                ended_at=utc_text(ws.clock()),
                reason=reason,
                checkpoint_after=checkpoint,
            )
            digest = transcript.sha256(self.transcript_bytes())
            self.repo.update(self.id, transcript_sha256=digest)
            record(
                ws.db,
                when=ws.clock(),
                operators=(ws.operator,),
                action=action,
                subject=f"ceremony:{self.id}",
                outcome=outcome,
                details={
                    "transcript_sha256": digest,
                    "reason": reason,
                    "checkpoint": checkpoint,
                    **({"note": note} if note else {}),
                },
            )

    def _change(self, action: str, values: dict[str, Any], details: dict[str, Any]) -> None:
        ws = self.ws
        with ws.db.transaction():
            self.repo.update(self.id, **values)
            record(
                ws.db,
                when=ws.clock(),
                operators=(ws.operator,),
                action=action,
                subject=f"ceremony:{self.id}",
                outcome=Outcome.SUCCESS,
                details=details,
            )

    def _authenticate(self, action: str, name: str, passphrase: str) -> None:
        try:
            self.ws.approvals.check_passphrase(name, passphrase)
        except KeysteadError as exc:
            self._refuse(action, exc.message, "KS-CEREMONY-PASSPHRASE", participant=name, cause=exc)

    def _operators(self, participant: Participant) -> tuple[str, ...]:
        if participant.kind == "operator" and participant.name != self.ws.operator:
            return (self.ws.operator, participant.name)
        return (self.ws.operator,)

    def _require(self, state: State, what: str) -> None:
        current = self.state
        if current is not state:
            self._refuse(
                f"ceremony.{what.split()[0]}",
                f"Cannot {what}: the ceremony is {current.value}.",
                RULE_STATE,
            )

    def _refuse(
        self,
        action: str,
        message: str,
        rule: str,
        participant: str | None = None,
        cause: BaseException | None = None,
    ) -> NoReturn:
        details: dict[str, Any] = {"refusal": message, "rule": rule}
        if participant is not None:
            details["participant"] = participant
        current = self.current
        if current is not None:
            details["step"] = current.id
        record_alone(
            self.ws.db,
            when=self.ws.clock(),
            operators=(self.ws.operator,),
            action=action,
            subject=f"ceremony:{self.id}",
            outcome=Outcome.DENIED,
            details=details,
        )
        raise CeremonyError(message, rule) from cause


def _same_person(a: str, b: str) -> bool:
    """Names compared the way people read them (``app.domain.names.name_skeleton``: NFKC,
    case-folded), so 'Officer' is the administrator 'officer'; look-alike letters of another
    script are refused by ``mixed_script``."""
    return name_skeleton(a) == name_skeleton(b)
