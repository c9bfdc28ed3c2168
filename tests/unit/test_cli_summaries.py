"""What the CLI's audit table and operator messages say in words."""

from __future__ import annotations

from app.cli.operators import roles_list
from app.cli.output import event_summary
from app.domain.roles import AU, KC, SO


def test_the_approvers_of_an_entry_are_named_in_the_table() -> None:
    row = {"details": {"approval": {"policy": "key.destroy", "approvers": ["bob", "carol"]}}}
    assert event_summary(row) == "approved by: bob, carol"


def test_the_sole_operator_bootstrap_is_visible_without_json() -> None:
    row = {
        "details": {
            "roles": "key-custodian,security-officer",
            "approval": {"policy": "operator.add (bootstrap: sole operator)", "approvers": []},
        }
    }
    assert "sole operator" in event_summary(row)


def test_an_entry_without_approval_says_nothing_about_it() -> None:
    assert event_summary({"details": {"reason": "lock"}}) == "reason: lock"


def test_roles_are_listed_with_and_not_or() -> None:
    assert roles_list(frozenset({SO, KC})) == "security officer and key custodian"
    assert roles_list(frozenset({AU})) == "auditor"
