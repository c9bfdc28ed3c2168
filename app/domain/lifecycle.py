"""The key lifecycle: NIST SP 800-57 states, the allowed transitions, and why others are refused.

This table is the contract (../shared/DESIGN.md, Lifecycle). Everything not in it is refused with
a ``PolicyError`` whose rule id appears in errors and in the event record.
"""

from __future__ import annotations

from enum import Enum

from app.domain.algorithms import Algorithm as _Algorithm
from app.domain.algorithms import Purpose, Usage, usage_for
from app.domain.keys import KeyState
from app.errors import PolicyError

RULE_TRANSITION = "KS-LIFECYCLE-TRANSITION"
RULE_ROTATE = "KS-LIFECYCLE-ROTATE"
MAX_REASON_LENGTH = 500


class Action(Enum):
    """What an officer (or the workstation, for cryptoperiods) does to a key."""

    ACTIVATE = "activate"
    SUSPEND = "suspend"
    RESUME = "resume"
    DEACTIVATE = "deactivate"
    COMPROMISE = "compromise"
    DESTROY = "destroy"

    @property
    def title(self) -> str:
        return {
            Action.ACTIVATE: "Activate",
            Action.SUSPEND: "Suspend",
            Action.RESUME: "Resume",
            Action.DEACTIVATE: "Deactivate",
            Action.COMPROMISE: "Mark compromised",
            Action.DESTROY: "Destroy",
        }[self]

    @property
    def needs_reason(self) -> bool:
        return self in (Action.SUSPEND, Action.DEACTIVATE, Action.COMPROMISE)


S = KeyState
LIVE = (S.PRE_ACTIVE, S.ACTIVE, S.SUSPENDED, S.DEACTIVATED)

# (from, action) -> to. Nothing else is allowed.
TRANSITIONS: dict[tuple[KeyState, Action], KeyState] = {
    (S.PRE_ACTIVE, Action.ACTIVATE): S.ACTIVE,
    (S.ACTIVE, Action.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, Action.RESUME): S.ACTIVE,
    (S.ACTIVE, Action.DEACTIVATE): S.DEACTIVATED,
    (S.SUSPENDED, Action.DEACTIVATE): S.DEACTIVATED,
    **{(state, Action.COMPROMISE): S.COMPROMISED for state in LIVE},
    (S.PRE_ACTIVE, Action.DESTROY): S.DESTROYED,
    (S.DEACTIVATED, Action.DESTROY): S.DESTROYED,
    (S.COMPROMISED, Action.DESTROY): S.DESTROYED_COMPROMISED,
    (S.DESTROYED, Action.COMPROMISE): S.DESTROYED_COMPROMISED,
}

# States from which a successor may be generated (re-key).
ROTATABLE = (S.ACTIVE, S.SUSPENDED, S.COMPROMISED)

# States in which the token object must still exist.
ON_TOKEN = (S.PRE_ACTIVE, S.ACTIVE, S.SUSPENDED, S.DEACTIVATED, S.COMPROMISED)


def next_state(state: KeyState, action: Action) -> KeyState:
    """The state ``action`` leads to from ``state``; PolicyError if the table forbids it."""
    target = TRANSITIONS.get((state, action))
    if target is None:
        raise PolicyError(refusal(state, action), RULE_TRANSITION)
    return target


def allowed(state: KeyState, action: Action) -> bool:
    return (state, action) in TRANSITIONS


def allowed_actions(state: KeyState) -> list[Action]:
    return [action for action in Action if allowed(state, action)]


def refusal(state: KeyState, action: Action) -> str:
    """Why ``action`` is not possible in ``state``, in words (tooltips, errors)."""
    possible = [a.title.lower() for a in allowed_actions(state)]
    also = (
        f" From {state.title} a key can only be: {', '.join(possible)}."
        if possible
        else (" It is final; nothing more can be done with it.")
    )
    return f"{_article(state.title)} {state.title.lower()} key cannot be {_past(action)}.{also}"


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def _past(action: Action) -> str:
    return {
        Action.ACTIVATE: "activated",
        Action.SUSPEND: "suspended",
        Action.RESUME: "resumed",
        Action.DEACTIVATE: "deactivated",
        Action.COMPROMISE: "marked compromised",
        Action.DESTROY: "destroyed",
    }[action]


def rotation_refusal(state: KeyState, replaced_by: str | None) -> str | None:
    """None if the key may be re-keyed, else why not."""
    if replaced_by:
        return "The key already has a successor; rotate the successor instead."
    if state not in ROTATABLE:
        return (
            f"{_article(state.title)} {state.title.lower()} key cannot be rotated; only active, "
            "suspended or compromised keys get a successor."
        )
    return None


def usage_in_state(
    algorithm: _Algorithm, purpose: Purpose, state: KeyState
) -> tuple[frozenset[Usage], frozenset[Usage]]:
    """Usage flags (private or secret, public) the token should carry in ``state``.

    Active and pre-active keys carry their purpose's flags; deactivated keys keep only the
    processing flags (DECRYPT, VERIFY, UNWRAP); suspended and compromised keys carry none.
    For a secret key the two sets are unioned by the caller.
    """
    plan = usage_for(algorithm, purpose)
    if state in (S.PRE_ACTIVE, S.ACTIVE):
        return plan.private, plan.public
    if state is S.DEACTIVATED:
        keep = {Usage.DECRYPT, Usage.VERIFY, Usage.UNWRAP}
        return plan.private & keep, plan.public & keep
    return frozenset(), frozenset()
