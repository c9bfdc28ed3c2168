"""Roles and dual control at the service level, on a real token and database.

Every rule of the issue's bad-input list: refused with a message naming the rule, nothing
changed, one denied audit entry. The default policy is the shipped one throughout.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.domain import approval as rules
from app.domain.algorithms import Algorithm, Purpose
from app.domain.approval import Credential
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from app.domain.roles import AU, KC, RULE_ROLE
from app.errors import NotFoundError, PolicyError, ValidationError
from app.services.approvals import ScriptedApprovers
from app.services.operators import RULE_LAST_OFFICER
from app.services.workstation import Workstation
from app.storage.unlock_failures import UnlockFailures
from tests.hsm.kit import OPERATOR, PASSPHRASE, TOKEN, Station
from tests.support import WITNESS, WITNESS_PASS, enrol_witness

pytestmark = pytest.mark.hsm

CUSTODIAN = "custodian"
CUSTODIAN_PASS = "SENTINEL-custodian-pass-22"
AUDITOR = "auditor"
AUDITOR_PASS = "SENTINEL-auditor-pass-7733"


def approvers(station: Station, *credentials: tuple[str, str]) -> ScriptedApprovers:
    source = ScriptedApprovers([Credential(n, p) for n, p in credentials])
    station.ws.approvals.source = source
    return source


def team(station: Station) -> None:
    """officer (SO+KC), witness (SO+KC), custodian (KC), auditor (AU)."""
    ws = station.ws
    station(enrol_witness, ws)
    approvers(station, (WITNESS, WITNESS_PASS))
    station(ws.roster.add, CUSTODIAN, frozenset({KC}), CUSTODIAN_PASS, CUSTODIAN_PASS)
    station(ws.roster.add, AUDITOR, frozenset({AU}), AUDITOR_PASS, AUDITOR_PASS)


def new_key(station: Station, name: str = "k1", purpose: Purpose | None = None) -> str:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, name, purpose)
    return str(key.id)


def destroy(station: Station, key_id: str, name: str = "k1") -> object:
    return station(station.ws.lifecycle.transition, key_id, Action.DESTROY, confirm_name=name)


def denied(station: Station, action: str) -> list[dict[str, object]]:
    return [json.loads(e.details_json) for e in station.events(action) if e.outcome == "denied"]


def state(station: Station, key_id: str) -> KeyState:
    return station(station.ws.keys.resolve, key_id).state  # type: ignore[no-any-return]


# --- the happy path --------------------------------------------------------------------------


def test_destroy_needs_and_names_the_approver(station: Station) -> None:
    team(station)
    key_id = new_key(station)
    source = approvers(station, (CUSTODIAN, CUSTODIAN_PASS))
    destroy(station, key_id)
    assert state(station, key_id) is KeyState.DESTROYED
    [request] = source.asked
    assert request.action == "key.destroy" and dict(request.parameters)["key"] == "k1"
    assert len(request.words) == 32  # the whole SHA-256, read aloud
    [entry] = [e for e in station.events("key.destroy") if e.outcome == "success"]
    assert entry.operators == (OPERATOR, CUSTODIAN)
    details = json.loads(entry.details_json)
    assert details["approval"]["request_sha256"] == request.digest_hex
    assert details["approval"]["approvers"] == [CUSTODIAN]


def test_activating_a_successor_names_the_predecessor_it_deactivates(station: Station) -> None:
    # New-user trial: the approval dialog for a successor's activation said nothing of the
    # active predecessor the same change deactivates, which the approver also signs for.
    team(station)
    old = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "signer", Purpose.SIGNING)
    source = approvers(station, (CUSTODIAN, CUSTODIAN_PASS))
    station(station.ws.lifecycle.transition, old.id, Action.ACTIVATE)
    new = station(station.ws.lifecycle.rotate, old.id)
    source = approvers(station, (CUSTODIAN, CUSTODIAN_PASS))
    station(station.ws.lifecycle.transition, new.id, Action.ACTIVATE)
    [request] = [r for r in source.asked if r.action == "key.activate"]
    also = dict(request.parameters)["also_changes"]
    assert "'signer'" in also and "DEACTIVATED" in also
    assert state(station, old.id) is KeyState.DEACTIVATED
    # Without a predecessor to change, the request carries no such line.
    first = station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "lone", Purpose.SIGNING)
    source = approvers(station, (CUSTODIAN, CUSTODIAN_PASS))
    station(station.ws.lifecycle.transition, first.id, Action.ACTIVATE)
    assert "also_changes" not in dict(source.asked[0].parameters)


def test_restricting_use_never_waits_for_a_quorum(station: Station) -> None:
    key_id = new_key(station)
    station(station.ws.lifecycle.transition, key_id, Action.ACTIVATE)  # AES encryption: single
    station.ws.approvals.source = None  # nobody else is here
    station(station.ws.lifecycle.transition, key_id, Action.SUSPEND, "hold")
    station(station.ws.lifecycle.transition, key_id, Action.COMPROMISE, "leak")
    assert state(station, key_id) is KeyState.COMPROMISED


def test_with_an_approver_enrolled_the_refusal_does_not_ask_to_enrol_one(
    station: Station,
) -> None:
    team(station)
    key_id = new_key(station)
    station.ws.approvals.source = None  # the approver is enrolled but did not approve
    with pytest.raises(PolicyError, match=rules.RULE_NO_APPROVER) as caught:
        destroy(station, key_id)
    assert "enrol" not in caught.value.message


def test_activating_a_signing_or_wrapping_key_is_dual(station: Station) -> None:
    key_id = new_key(station, "kek", Purpose.KEY_WRAPPING)
    station.ws.approvals.source = None
    with pytest.raises(PolicyError, match=rules.RULE_NO_APPROVER):
        station(station.ws.lifecycle.transition, key_id, Action.ACTIVATE)
    assert state(station, key_id) is KeyState.PRE_ACTIVE


# --- the bad-input list ----------------------------------------------------------------------


def test_no_approver_is_refused_and_recorded(station: Station) -> None:
    key_id = new_key(station)
    station.ws.approvals.source = None
    with pytest.raises(PolicyError, match=rules.RULE_NO_APPROVER) as caught:
        destroy(station, key_id)
    assert "needs 1 approver" in caught.value.message
    # A new workstation has one operator: the refusal says nobody here could approve, and
    # what to do (the new-user trial got only "set KEYSTEAD_APPROVER").
    assert "no other operator who may approve it: enrol another" in caught.value.message
    assert state(station, key_id) is KeyState.PRE_ACTIVE
    [refusal] = denied(station, "key.destroy")
    assert refusal["rule"] == rules.RULE_NO_APPROVER and "request_sha256" in refusal


@pytest.mark.parametrize(
    ("who", "rule"),
    [
        ((OPERATOR, PASSPHRASE), rules.RULE_SELF_APPROVAL),
        ((AUDITOR, AUDITOR_PASS), rules.RULE_APPROVER_ROLE),
        (("nobody", "whatever-passphrase"), rules.RULE_APPROVER_UNKNOWN),
        (("", "whatever-passphrase"), rules.RULE_APPROVER_UNKNOWN),
        ((CUSTODIAN, "SENTINEL-wrong-approver-pass"), rules.RULE_APPROVER_PASSPHRASE),
    ],
)
def test_a_bad_approver_is_refused(station: Station, who: tuple[str, str], rule: str) -> None:
    team(station)
    key_id = new_key(station)
    approvers(station, who)
    with pytest.raises(PolicyError, match=rule):
        destroy(station, key_id)
    assert state(station, key_id) is KeyState.PRE_ACTIVE
    assert [d["rule"] for d in denied(station, "key.destroy")] == [rule]


def test_a_wrong_approver_passphrase_counts_toward_their_back_off(station: Station) -> None:
    team(station)
    key_id = new_key(station)
    approvers(station, (CUSTODIAN, "SENTINEL-wrong-approver-pass"))
    with pytest.raises(PolicyError, match=rules.RULE_APPROVER_PASSPHRASE):
        destroy(station, key_id)
    failures = UnlockFailures(station.home.unlock_failures)
    assert failures.state(CUSTODIAN).consecutive == 1
    assert failures.unsealed() == []  # already recorded in the open database


def test_the_same_approver_twice_is_refused(station: Station) -> None:
    team(station)
    approvers(station, (WITNESS, WITNESS_PASS))
    station(station.ws.approvals.set_rule, "key.destroy", 2)
    key_id = new_key(station)
    approvers(station, (CUSTODIAN, CUSTODIAN_PASS), (CUSTODIAN, CUSTODIAN_PASS))
    with pytest.raises(PolicyError, match=rules.RULE_DUPLICATE_APPROVER):
        destroy(station, key_id)
    approvers(station, (CUSTODIAN, CUSTODIAN_PASS), (WITNESS, WITNESS_PASS))
    destroy(station, key_id)
    [entry] = [e for e in station.events("key.destroy") if e.outcome == "success"]
    assert entry.operators == (OPERATOR, CUSTODIAN, WITNESS)


def test_disabled_and_removed_approvers_are_refused(station: Station) -> None:
    team(station)
    ws = station.ws
    approvers(station, (WITNESS, WITNESS_PASS))
    station(ws.roster.disable, CUSTODIAN)
    key_id = new_key(station)
    approvers(station, (CUSTODIAN, CUSTODIAN_PASS))
    with pytest.raises(PolicyError, match=rules.RULE_APPROVER_DISABLED):
        destroy(station, key_id)
    approvers(station, (WITNESS, WITNESS_PASS))
    station(ws.roster.remove, AUDITOR)
    approvers(station, (AUDITOR, AUDITOR_PASS))
    with pytest.raises(PolicyError, match=rules.RULE_APPROVER_UNKNOWN):
        destroy(station, key_id)
    assert state(station, key_id) is KeyState.PRE_ACTIVE


def _prepared(station: Station, key_id: str) -> tuple[object, object]:
    approvals = station.ws.approvals
    request = station(approvals.prepare, "key.destroy", f"key:{key_id}", {"key": key_id})
    approval = station(approvals.approve, request, Credential(CUSTODIAN, CUSTODIAN_PASS))
    return request, approval


def test_an_expired_approval_is_refused(station: Station) -> None:
    team(station)
    key_id = new_key(station)
    request, approval = _prepared(station, key_id)
    station.clock.advance(minutes=5, seconds=1)
    with pytest.raises(PolicyError, match=rules.RULE_EXPIRED):
        station(station.ws.approvals.authorise, request, [approval])


def test_an_approval_for_other_parameters_or_another_key_is_refused(station: Station) -> None:
    team(station)
    key_id = new_key(station)
    other_id = new_key(station, "k2")
    approvals = station.ws.approvals
    request, approval = _prepared(station, key_id)
    changed = replace(request, parameters=(("key", key_id), ("reason", "other")))  # type: ignore[type-var]
    with pytest.raises(PolicyError, match=rules.RULE_OTHER_REQUEST):
        station(approvals.authorise, changed, [approval])
    for_other = station(approvals.prepare, "key.destroy", f"key:{other_id}", {"key": other_id})
    with pytest.raises(PolicyError, match=rules.RULE_OTHER_REQUEST):
        station(approvals.authorise, for_other, [approval])
    # Still good for its own request, once.
    assert station(approvals.authorise, request, [approval]) == (OPERATOR, CUSTODIAN)


def test_an_approval_is_used_once(station: Station) -> None:
    team(station)
    key_id = new_key(station)
    approvals = station.ws.approvals
    request, approval = _prepared(station, key_id)
    station(approvals.authorise, request, [approval])
    with pytest.raises(PolicyError, match=rules.RULE_REPLAY):
        station(approvals.authorise, request, [approval])
    forged = replace(approval, id="00" * 16)  # type: ignore[type-var]
    again = station(approvals.prepare, "key.destroy", f"key:{key_id}", {"key": key_id})
    with pytest.raises(PolicyError, match=rules.RULE_REPLAY):
        station(approvals.authorise, again, [forged])


def test_the_last_enabled_security_officer_stays(station: Station) -> None:
    team(station)
    ws = station.ws
    approvers(station, (WITNESS, WITNESS_PASS))
    station(ws.roster.set_roles, WITNESS, frozenset({KC}))  # officer is the only SO now
    approvers(station, (WITNESS, WITNESS_PASS))
    for change in (ws.roster.disable, ws.roster.remove):
        with pytest.raises(PolicyError, match=RULE_LAST_OFFICER):
            station(change, OPERATOR)
    with pytest.raises(PolicyError, match=RULE_LAST_OFFICER):
        station(ws.roster.set_roles, OPERATOR, frozenset({KC}))
    assert station(ws.roster.get, OPERATOR).active


def test_the_policy_has_a_floor_and_needs_its_own_approval(station: Station) -> None:
    team(station)
    approvals = station.ws.approvals
    approvers(station, (WITNESS, WITNESS_PASS))
    for action in ("key.destroy", "key.export", "backup.restore"):
        with pytest.raises(PolicyError, match=rules.RULE_POLICY_FLOOR):
            station(approvals.set_rule, action, 0)
    with pytest.raises(PolicyError, match=rules.RULE_POLICY_RANGE):
        station(approvals.set_rule, "key.resume", 1, frozenset({AU}))
    station.ws.approvals.source = None
    with pytest.raises(PolicyError, match=rules.RULE_NO_APPROVER):
        station(approvals.set_rule, "key.resume", 2)
    assert station(approvals.rule, "key.resume").approvals == 1
    assert len(denied(station, "policy.set")) == 5


@pytest.mark.parametrize(
    ("passphrase", "message"),
    [("short-one", "at least 12"), (CUSTODIAN, "name"), ("CUSTODIAN", "name")],
)
def test_a_weak_new_passphrase_is_refused(station: Station, passphrase: str, message: str) -> None:
    team(station)
    approvers(station, (WITNESS, WITNESS_PASS))
    with pytest.raises(ValidationError, match=message):
        station(station.ws.roster.reset_passphrase, CUSTODIAN, passphrase, passphrase)
    assert len(denied(station, "operator.reset-passphrase")) == 1


def test_an_operator_without_the_role_changes_nothing(station: Station) -> None:
    team(station)
    key_id = new_key(station)
    station.lock()
    ws = station.unlock(AUDITOR, AUDITOR_PASS)
    approvers(station, (WITNESS, WITNESS_PASS))
    attempts = [
        ("key.generate", lambda: ws.keys.generate(TOKEN, Algorithm.AES_128, "nope")),
        ("key.destroy", lambda: ws.lifecycle.transition(key_id, Action.DESTROY, confirm_name="k1")),
        ("key.suspend", lambda: ws.lifecycle.transition(key_id, Action.SUSPEND, "x")),
        ("key.edit", lambda: ws.lifecycle.edit(key_id, notes="changed")),
        ("operator.add", lambda: ws.roster.add("x1", frozenset({AU}), "x" * 14, "x" * 14)),
        ("operator.disable", lambda: ws.roster.disable(CUSTODIAN)),
        ("policy.set", lambda: ws.approvals.set_rule("key.resume", 2)),
        ("token.init-pin", lambda: ws.admin.init_pin(TOKEN, "x" * 8, "y" * 8)),
        # (built on first use: the role check is wired then, issue 17)
        ("key.rebind", lambda: ws.rebind.rebind("k1", TOKEN)),
    ]
    for action, attempt in attempts:
        with pytest.raises(PolicyError, match=RULE_ROLE) as caught:
            station(attempt)
        assert "auditor" in caught.value.message
        assert [d["rule"] for d in denied(station, action)][-1] == RULE_ROLE, action
    assert state(station, key_id) is KeyState.PRE_ACTIVE
    # Reading and verifying stay open to the auditor.
    assert station(ws.audit.verify).ok


def test_a_disabled_operator_cannot_unlock(station: Station) -> None:
    team(station)
    approvers(station, (WITNESS, WITNESS_PASS))
    station(station.ws.roster.disable, CUSTODIAN)
    station.lock()
    with pytest.raises(Exception, match="no operator named"):
        station(Workstation.unlock, station.home, CUSTODIAN, CUSTODIAN_PASS)
    station.unlock()
    approvers(station, (WITNESS, WITNESS_PASS))
    new = "SENTINEL-custodian-new-pass-9"
    station(station.ws.roster.enable, CUSTODIAN, new, new)
    station.unlock(CUSTODIAN, new)


def test_own_passphrase_change_rewraps_only_that_keyslot(station: Station) -> None:
    team(station)
    station.lock()
    ws = station.unlock(CUSTODIAN, CUSTODIAN_PASS)
    new = "SENTINEL-custodian-changed-1"
    with pytest.raises(Exception, match="wrong"):
        station(ws.roster.change_own_passphrase, "SENTINEL-not-it-at-all", new, new)
    station(ws.roster.change_own_passphrase, CUSTODIAN_PASS, new, new)
    station.unlock(CUSTODIAN, new)
    station.unlock(OPERATOR, PASSPHRASE)  # the others' keyslots are untouched
    with pytest.raises(NotFoundError):
        station(station.ws.roster.get, "nobody")


def test_an_auditor_checks_signatures_but_never_uses_a_key(station: Station, tmp_path) -> None:
    """Key use is a change of the world (a signature, a ciphertext, a plaintext): an auditor is
    refused before the token is touched, with a denied entry; verifying stays open."""
    team(station)
    ws = station.ws
    signer = station(ws.keys.generate, TOKEN, Algorithm.EC_P256, "signer", Purpose.SIGNING)
    station(ws.lifecycle.transition, str(signer.id), Action.ACTIVATE)
    data = tmp_path / "release.tar"
    data.write_bytes(b"the release" * 100)
    signature = tmp_path / "release.sig"
    station(ws.use.sign_file, "signer", data, signature)
    station.lock()
    ws = station.unlock(AUDITOR, AUDITOR_PASS)
    forged = tmp_path / "forged.sig"
    with pytest.raises(PolicyError, match=RULE_ROLE) as caught:
        station(ws.use.sign_file, "signer", data, forged)
    assert "auditor" in caught.value.message
    assert not forged.exists()
    assert [d["rule"] for d in denied(station, "key.sign")][-1] == RULE_ROLE
    assert station(ws.use.verify_file, "signer", data, signature) is not None


def test_no_change_leaves_an_action_that_nobody_can_perform(station: Station) -> None:
    """Removing, disabling or demoting the only other approver, or a policy asking for more
    approvers than the enrolled operators can give, is refused before anything changes."""
    ws = station.ws
    station(enrol_witness, ws)  # officer (SO+KC) and witness (SO+KC): one approver each way
    approvers(station, (WITNESS, WITNESS_PASS))
    for change, args in (
        (ws.roster.remove, (WITNESS,)),
        (ws.roster.disable, (WITNESS,)),
        (ws.roster.set_roles, (WITNESS, frozenset({AU}))),
    ):
        with pytest.raises(PolicyError, match=rules.RULE_QUORUM):
            station(change, *args)
    assert station(ws.roster.get, WITNESS).active
    with pytest.raises(PolicyError, match=rules.RULE_QUORUM):
        station(ws.approvals.set_rule, "key.destroy", 5)
    assert station(ws.approvals.rule, "key.destroy").approvals == 1
    refusals = [
        d["rule"]
        for a in ("operator.remove", "operator.disable", "operator.roles", "policy.set")
        for d in denied(station, a)
    ]
    assert refusals == [rules.RULE_QUORUM] * 4
    # With a third eligible operator the same removal goes through.
    station(ws.roster.add, CUSTODIAN, frozenset({KC}), CUSTODIAN_PASS, CUSTODIAN_PASS)
    station(ws.roster.remove, WITNESS)
    assert station(ws.roster.get, OPERATOR).active
