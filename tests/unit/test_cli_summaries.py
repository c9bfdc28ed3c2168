"""What the CLI's audit table and operator messages say in words."""

from __future__ import annotations

from app.cli.operators import roles_list
from app.cli.output import event_summary
from app.domain.roles import AU, KC, SO
from app.services.airgap import POLICY_KEY


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


def test_a_policy_switch_says_what_it_was_and_what_it_became() -> None:
    # New-user finding F24: `audit list` showed `policy.airgap` with an empty DETAILS column.
    on = {"details": {"setting": POLICY_KEY, "value": "on", "previous": "off"}}
    off = {"details": {"setting": POLICY_KEY, "value": "off", "previous": "on"}}
    assert event_summary(on) == f"{POLICY_KEY}: off -> on"
    assert event_summary(off) == f"{POLICY_KEY}: on -> off"


def test_a_refusal_names_its_rule() -> None:
    row = {"details": {"rule": "KS-AIRGAP", "found": "eth0 up"}}
    assert event_summary(row) == "rule: KS-AIRGAP"


def test_a_store_repair_says_which_file_what_was_wrong_and_what_was_done() -> None:
    # Outside tester (attack2 A3): token.store-repair rows had an empty DETAILS column.
    row = {
        "details": {
            "token_dir": "3f2a",
            "file": "token.object",
            "repair": "restored",
            "fault": "missing",
            "label": "Main",
        }
    }
    assert event_summary(row) == "3f2a/token.object: missing, restored"


def test_roles_are_listed_with_and_not_or() -> None:
    assert roles_list(frozenset({SO, KC})) == "security officer and key custodian"
    assert roles_list(frozenset({AU})) == "auditor"
