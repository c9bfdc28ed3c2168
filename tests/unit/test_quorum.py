"""Whether a policy rule can still be met by the enabled operators (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.domain.approval import DEFAULT_POLICY, PolicyRule, meetable, quorum_lost
from app.domain.roles import AU, KC, SO, Role

DESTROY = DEFAULT_POLICY["key.destroy"]  # 1 approver, SO or KC; started by a KC


def test_one_custodian_alone_cannot_destroy() -> None:
    assert not meetable(DESTROY, {"alice": frozenset({SO, KC})})


def test_a_second_officer_makes_the_quorum() -> None:
    assert meetable(DESTROY, {"alice": frozenset({KC}), "bob": frozenset({SO})})


def test_the_initiator_never_counts_as_their_own_approver() -> None:
    rule = PolicyRule("key.destroy", 2, frozenset({SO, KC}))
    assert not meetable(rule, {"a": frozenset({KC}), "b": frozenset({SO})})
    assert meetable(rule, {"a": frozenset({KC}), "b": frozenset({SO}), "c": frozenset({SO})})


def test_an_auditor_is_no_approver_and_no_initiator() -> None:
    assert not meetable(DESTROY, {"a": frozenset({KC}), "au": frozenset({AU})})
    assert not meetable(DESTROY, {"so1": frozenset({SO}), "so2": frozenset({SO})})  # no KC


def test_no_approver_needed_is_always_meetable() -> None:
    assert meetable(DEFAULT_POLICY["key.suspend"], {})


def test_only_what_the_change_breaks_is_reported() -> None:
    before = {"a": frozenset({SO, KC}), "b": frozenset({SO, KC})}
    after = {"a": frozenset({SO, KC})}
    lost = quorum_lost(DEFAULT_POLICY.values(), before, after)
    assert DESTROY in lost
    assert all(r.approvals > 0 for r in lost)
    assert quorum_lost(DEFAULT_POLICY.values(), after, after) == []


roles = st.frozensets(st.sampled_from(list(Role)), min_size=1)
teams = st.dictionaries(st.sampled_from("abcdefg"), roles, max_size=7)


@given(teams, st.sampled_from(sorted(DEFAULT_POLICY)), st.data())
def test_more_operators_never_break_a_quorum(team, action, data) -> None:  # type: ignore[no-untyped-def]
    rule = DEFAULT_POLICY[action]
    extra = data.draw(st.dictionaries(st.sampled_from("hijk"), roles, max_size=3))
    if meetable(rule, team):
        assert meetable(rule, {**team, **extra})
