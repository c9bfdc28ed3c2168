"""The lifecycle table: every allowed transition, every forbidden one, usage per state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.algorithms import Algorithm, Purpose, Usage, allowed_purposes, usage_for
from app.domain.keys import KeyState
from app.domain.lifecycle import (
    TRANSITIONS,
    Action,
    allowed,
    allowed_actions,
    next_state,
    refusal,
    rotation_refusal,
    usage_in_state,
)
from app.errors import PolicyError

S = KeyState
A = Action

# The contract from DESIGN.md, written out independently of the implementation's table.
EXPECTED = {
    (S.PRE_ACTIVE, A.ACTIVATE): S.ACTIVE,
    (S.ACTIVE, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.RESUME): S.ACTIVE,
    (S.ACTIVE, A.DEACTIVATE): S.DEACTIVATED,
    (S.SUSPENDED, A.DEACTIVATE): S.DEACTIVATED,
    (S.PRE_ACTIVE, A.COMPROMISE): S.COMPROMISED,
    (S.ACTIVE, A.COMPROMISE): S.COMPROMISED,
    (S.SUSPENDED, A.COMPROMISE): S.COMPROMISED,
    (S.DEACTIVATED, A.COMPROMISE): S.COMPROMISED,
    (S.PRE_ACTIVE, A.DESTROY): S.DESTROYED,
    (S.DEACTIVATED, A.DESTROY): S.DESTROYED,
    (S.COMPROMISED, A.DESTROY): S.DESTROYED_COMPROMISED,
    (S.DESTROYED, A.COMPROMISE): S.DESTROYED_COMPROMISED,
}
ALL_PAIRS = [(state, action) for state in KeyState for action in Action]


def test_table_is_exactly_the_contract() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("state", "action"), list(EXPECTED))
def test_allowed_transition(state: KeyState, action: Action) -> None:
    assert allowed(state, action)
    assert next_state(state, action) is EXPECTED[(state, action)]


@pytest.mark.parametrize(("state", "action"), [p for p in ALL_PAIRS if p not in EXPECTED])
def test_forbidden_transition(state: KeyState, action: Action) -> None:
    assert not allowed(state, action)
    with pytest.raises(PolicyError) as caught:
        next_state(state, action)
    assert caught.value.rule == "KS-LIFECYCLE-TRANSITION"
    assert state.title.lower() in caught.value.message.lower()


def test_final_states_allow_nothing_but_the_record_of_compromise() -> None:
    assert allowed_actions(S.DESTROYED_COMPROMISED) == []
    assert allowed_actions(S.DESTROYED) == [A.COMPROMISE]
    assert "final" in refusal(S.DESTROYED_COMPROMISED, A.ACTIVATE)


def test_refusal_uses_the_right_article() -> None:
    assert refusal(S.ACTIVE, A.DESTROY).startswith("An active key cannot be destroyed.")
    assert refusal(S.SUSPENDED, A.ACTIVATE).startswith("A suspended key cannot be activated.")


@given(st.lists(st.sampled_from(list(Action)), max_size=40))
def test_random_action_sequences_never_leave_the_table(actions: list[Action]) -> None:
    state = S.PRE_ACTIVE
    for action in actions:
        if allowed(state, action):
            new = next_state(state, action)
            assert (state, action) in EXPECTED and EXPECTED[(state, action)] is new
            state = new
        else:
            with pytest.raises(PolicyError):
                next_state(state, action)
    assert state in KeyState


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_usage_per_state(algorithm: Algorithm) -> None:
    for purpose in allowed_purposes(algorithm):
        plan = usage_for(algorithm, purpose)
        assert usage_in_state(algorithm, purpose, S.ACTIVE) == (plan.private, plan.public)
        assert usage_in_state(algorithm, purpose, S.SUSPENDED) == (frozenset(), frozenset())
        assert usage_in_state(algorithm, purpose, S.COMPROMISED) == (frozenset(), frozenset())
        private, public = usage_in_state(algorithm, purpose, S.DEACTIVATED)
        kept = private | public
        assert not kept & {Usage.ENCRYPT, Usage.SIGN, Usage.WRAP, Usage.DERIVE}
        assert kept == (plan.private | plan.public) & {Usage.DECRYPT, Usage.VERIFY, Usage.UNWRAP}


def test_deactivated_keys_keep_processing_flags() -> None:
    private, public = usage_in_state(Algorithm.RSA_2048, Purpose.ENCRYPTION, S.DEACTIVATED)
    assert private == {Usage.DECRYPT} and public == frozenset()
    private, public = usage_in_state(Algorithm.EC_P256, Purpose.SIGNING, S.DEACTIVATED)
    assert private == frozenset() and public == {Usage.VERIFY}
    private, public = usage_in_state(Algorithm.AES_256, Purpose.KEY_WRAPPING, S.DEACTIVATED)
    assert private | public == {Usage.UNWRAP}


@pytest.mark.parametrize("state", list(KeyState))
def test_rotation_only_from_live_use_states(state: KeyState) -> None:
    refused = rotation_refusal(state, None)
    assert (refused is None) == (state in (S.ACTIVE, S.SUSPENDED, S.COMPROMISED))
    assert rotation_refusal(S.ACTIVE, "successor-id") is not None
