"""The step types a ceremony script may name, each one registered function with its parameters.

A step type is declared once with ``@step_type(...)`` (in ``app.ceremony.steps``): the
parameters it takes (name → kind), which are required, the outputs it produces and which of
those are expected to differ between a rehearsal and the real run (serials, key identifiers,
check values). The parser validates scripts against these declarations before anything runs;
the runner calls the function. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.ceremony.context import StepContext


class Kind(Enum):
    """What a parameter value must be in the TOML."""

    TEXT = "text"
    INT = "integer"
    BOOL = "true/false"
    NAMES = "list of names"


Outputs = dict[str, str]
StepFunction = Callable[["StepContext", Mapping[str, Any]], Outputs]


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
        )
        return fn

    return register


def spec(name: str) -> StepSpec | None:
    from app.ceremony import steps  # noqa: F401 (registers the step types)

    return REGISTRY.get(name)


def all_specs() -> list[StepSpec]:
    from app.ceremony import steps  # noqa: F401 (registers the step types)

    return sorted(REGISTRY.values(), key=lambda s: s.name)
