"""The step types a ceremony script may name, each one registered function with its parameters.

A step type is declared once with ``@step_type(...)`` (in ``app.ceremony.steps``): the
parameters it takes (name → kind), which are required, the outputs it produces and which of
those are expected to differ between a rehearsal and the real run (serials, key identifiers,
check values). The parser validates scripts against these declarations before anything runs;
the runner calls the function. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import CeremonyError, ValidationError

if TYPE_CHECKING:
    from app.ceremony.context import StepContext
    from app.domain.audit import AuditEntry


class Kind(Enum):
    """What a parameter value must be in the TOML."""

    TEXT = "text"
    INT = "integer"
    BOOL = "true/false"
    NAMES = "list of names"


Outputs = dict[str, str]
StepFunction = Callable[["StepContext", Mapping[str, Any]], Outputs]
# After an interruption (a kill, a power cut) between a step's recorded start and its recorded
# outputs: given the audit entries written since the start, the outputs of the action that
# completed then, or None when it did not (run it); raises CeremonyError when it cannot tell.
StepSettle = Callable[["StepContext", Mapping[str, Any], Sequence["AuditEntry"]], Outputs | None]


def cannot_tell(ctx: StepContext, params: Mapping[str, Any], since: Sequence[AuditEntry]) -> None:
    """The default for a step type that does not say how to settle it: refuse (fail closed)."""
    raise CeremonyError(
        "Keystead cannot tell from its records whether this step's action completed before "
        "the interruption, so it is not done a second time. Check the token (keystead tokens "
        "list, keystead keys list) and the audit history (keystead audit list), then abandon "
        "the ceremony (keystead ceremony abandon ID --reason TEXT) and begin it again.",
        "KS-CEREMONY-INTERRUPTED",
    )


@dataclass(frozen=True)
class Preflight:
    """What a step's parameter check may consult beyond the script. Validation without a
    workstation leaves both None (only the script's own values are checked); ``ceremony run``
    (and ``validate`` on an unlocked workstation) gives them, so a key name already taken or an
    output file already in the working directory is refused before anyone registers.

    ``free_name(name)``: the key service's own rule (valid and unused), returns the name;
    ``workdir``: the ceremony's working directory."""

    free_name: Callable[[str], str] | None = None
    workdir: Path | None = None


StepCheck = Callable[[Mapping[str, Any], Preflight], None]


class ParamRefused(ValidationError):
    """A step's parameter ``field`` has a value the step would refuse when run."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _no_check(params: Mapping[str, Any], preflight: Preflight) -> None:
    """A step type whose parameters need nothing beyond their declared kinds."""


@dataclass(frozen=True)
class StepSpec:
    name: str
    title: str
    params: Mapping[str, Kind]
    required: frozenset[str]
    outputs: tuple[str, ...]
    varying: frozenset[str]  # outputs expected to differ between two runs of the script
    run: StepFunction
    # Expectations checked before the action (the function itself compares them): e.g. the
    # SHA-256 of the CSR to sign, the fingerprint of the key to destroy.
    prechecked: frozenset[str] = field(default_factory=frozenset)
    # The values the step would refuse when run, refused by validation with the same rules
    # (the step function calls it first, so there is one place per decision).
    check: StepCheck = _no_check
    # Parameters naming what the step creates: two steps of one script may not name the same.
    new_keys: tuple[str, ...] = ()
    new_files: tuple[str, ...] = ()
    # What an interrupted start of this step left behind (see ``StepSettle``).
    settle: StepSettle = cannot_tell


REGISTRY: dict[str, StepSpec] = {}


def step_type(
    name: str,
    title: str,
    *,
    params: Mapping[str, Kind],
    required: tuple[str, ...] = (),
    outputs: tuple[str, ...] = (),
    varying: tuple[str, ...] = (),
    prechecked: tuple[str, ...] = (),
    check: StepCheck = _no_check,
    new_keys: tuple[str, ...] = (),
    new_files: tuple[str, ...] = (),
    settle: StepSettle = cannot_tell,
) -> Callable[[StepFunction], StepFunction]:
    """Register ``fn`` as the step type ``name``."""

    def register(fn: StepFunction) -> StepFunction:
        if name in REGISTRY:
            raise RuntimeError(f"step type {name} registered twice")
        REGISTRY[name] = StepSpec(
            name,
            title,
            dict(params),
            frozenset(required),
            outputs,
            frozenset(varying),
            fn,
            frozenset(prechecked),
            check,
            new_keys,
            new_files,
            settle,
        )
        return fn

    return register


def spec(name: str) -> StepSpec | None:
    from app.ceremony import steps  # noqa: F401 (registers the step types)

    return REGISTRY.get(name)


def all_specs() -> list[StepSpec]:
    from app.ceremony import steps  # noqa: F401 (registers the step types)

    return sorted(REGISTRY.values(), key=lambda s: s.name)
