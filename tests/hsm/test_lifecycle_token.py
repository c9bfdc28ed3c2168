"""Lifecycle on a real SoftHSM token: flags after each transition (read by pkcs11-tool),
rotation lineage, automatic transitions, refused and failed transitions, non-modifiable keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from pkcs11 import Attribute, KeyType

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState, TokenSync
from app.domain.lifecycle import Action, allowed, next_state
from app.errors import PolicyError, TokenRemoved, ValidationError
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.keys import identity_of
from app.services.lifecycle import WORKSTATION_ACTOR
from app.services.workstation import Workstation
from tests.support import PASS, PIN, Bench, Clock, peer_objects

pytestmark = pytest.mark.hsm

# What pkcs11-tool must print, written out from DESIGN.md independently of the code.
ACTIVE_WORDS = {
    Purpose.ENCRYPTION: {
        "Secret": {"encrypt", "decrypt"},
        "Private": {"decrypt"},
        "Public": {"encrypt"},
    },
    Purpose.KEY_WRAPPING: {"Secret": {"wrap", "unwrap"}, "Private": {"unwrap"}, "Public": {"wrap"}},
    Purpose.SIGNING: {"Private": {"sign"}, "Public": {"verify"}},
    Purpose.MAC: {"Secret": {"sign", "verify"}},
}
KEPT_WHEN_DEACTIVATED = {"decrypt", "verify", "unwrap"}


def EXPECTED_USAGE_WORDS(
    algorithm: Algorithm, purpose: Purpose, state: KeyState
) -> dict[str, set[str]]:
    active = ACTIVE_WORDS[purpose]
    if state in (KeyState.PRE_ACTIVE, KeyState.ACTIVE):
        return active
    if state is KeyState.DEACTIVATED:
        return {kind: flags & KEPT_WHEN_DEACTIVATED for kind, flags in active.items()}
    return {kind: set() for kind in active}


def words(usage: str) -> set[str]:
    return set() if usage == "none" else {w.strip() for w in usage.split(",")}


@pytest.mark.parametrize(
    ("algorithm", "purpose"),
    [
        (Algorithm.AES_256, Purpose.ENCRYPTION),
        (Algorithm.AES_128, Purpose.KEY_WRAPPING),
        (Algorithm.RSA_2048, Purpose.ENCRYPTION),
        (Algorithm.EC_P256, Purpose.SIGNING),
        (Algorithm.ED25519, Purpose.SIGNING),
        (Algorithm.AES_192, Purpose.MAC),
    ],
)
def test_token_flags_follow_each_transition(
    bench: Bench, algorithm: Algorithm, purpose: Purpose
) -> None:
    key = bench(bench.ws.keys.generate, "Life", algorithm, "k", purpose)
    steps = [
        (Action.ACTIVATE, ""),
        (Action.SUSPEND, "hold"),
        (Action.RESUME, ""),
        (Action.DEACTIVATE, "retired"),
        (Action.COMPROMISE, "leaked"),
    ]
    for action, reason in steps:
        key = bench(bench.ws.lifecycle.transition, key.id, action, reason)
        assert key.token_sync is TokenSync.OK
        seen = bench.peer_usage()
        kinds = ["Secret"] if algorithm.symmetric else ["Private", "Public"]
        for kind in kinds:
            expected = EXPECTED_USAGE_WORDS(algorithm, purpose, key.state)[kind]
            if kind == "Secret":
                # pkcs11-tool 0.23 never prints "sign" for secret keys; read it ourselves.
                live = bench(bench.ws.keys.details, key.id).token_attributes["SECRET_KEY"]
                assert live["SIGN"] == ("sign" in expected), action
                expected = expected - {"sign"}
            assert words(seen[(kind, key.cka_id)]) == expected, (action, kind)
    assert key.state is KeyState.COMPROMISED


def test_destroy_needs_typed_name_and_leaves_a_tombstone(bench: Bench) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "to-go")
    with pytest.raises(ValidationError):
        bench(bench.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name="to-g0")
    assert ("Secret", key.cka_id) in bench.peer_usage()
    done = bench(bench.ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name="to-go")
    assert done.state is KeyState.DESTROYED
    assert ("Secret", key.cka_id) not in bench.peer_usage()
    outcomes = [(e.action, e.outcome) for e in bench.events(key.id)]
    assert outcomes == [
        ("key.generate", "success"),
        ("key.destroy", "denied"),
        ("key.destroy", "success"),
    ]
    # The tombstone can still be marked compromised (record only) and nothing else.
    marked = bench(bench.ws.lifecycle.transition, key.id, Action.COMPROMISE, "found in a dump")
    assert marked.state is KeyState.DESTROYED_COMPROMISED


@pytest.mark.parametrize("action", [a for a in Action if not allowed(KeyState.PRE_ACTIVE, a)])
def test_forbidden_transition_is_denied_recorded_and_changes_nothing(
    bench: Bench, action: Action
) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, "fresh")
    before = bench.peer_usage()
    with pytest.raises(PolicyError) as caught:
        bench(bench.ws.lifecycle.transition, key.id, action, "some reason", confirm_name="fresh")
    assert "'fresh'" in caught.value.message and "PRE_ACTIVE" in caught.value.message
    assert bench(bench.ws.keys.resolve, key.id) == key
    assert bench.peer_usage() == before
    last = bench.events(key.id)[-1]
    assert (last.action, last.outcome) == (f"key.{action.value}", "denied")
    assert last.details["rule"] == "KS-LIFECYCLE-TRANSITION"


def test_reason_is_required(bench: Bench) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "r")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    with pytest.raises(ValidationError, match="needs a reason"):
        bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "   ")
    assert bench(bench.ws.keys.resolve, key.id).state is KeyState.ACTIVE
    assert bench.events(key.id)[-1].outcome == "denied"


def test_rotation_links_both_ways_and_activation_swaps_in_one_step(bench: Bench) -> None:
    old = bench(bench.ws.keys.generate, "Life", Algorithm.EC_P384, "signer", Purpose.SIGNING)
    bench(bench.ws.lifecycle.transition, old.id, Action.ACTIVATE)
    new = bench(bench.ws.lifecycle.rotate, old.id)
    assert (new.name, new.state, new.algorithm, new.purpose) == (
        "signer-v2",
        KeyState.PRE_ACTIVE,
        Algorithm.EC_P384,
        Purpose.SIGNING,
    )
    assert new.replaces == old.id
    assert bench(bench.ws.keys.resolve, old.id).replaced_by == new.id
    with pytest.raises(PolicyError):
        bench(bench.ws.lifecycle.rotate, old.id)  # one successor only
    bench(bench.ws.lifecycle.transition, new.id, Action.ACTIVATE)
    old_now = bench(bench.ws.keys.resolve, old.id)
    assert old_now.state is KeyState.DEACTIVATED
    assert words(bench.peer_usage()[("Private", old.cka_id)]) == set()
    assert words(bench.peer_usage()[("Public", old.cka_id)]) == {"verify"}
    assert [k.name for k in bench(bench.ws.lifecycle.lineage, old.id)] == ["signer", "signer-v2"]
    activation = bench.events(new.id)[-1]
    deactivation = bench.events(old.id)[-1]
    assert activation.action == "key.activate" and deactivation.action == "key.deactivate"
    assert activation.ts == deactivation.ts  # the same transaction, the same moment


def test_failed_swap_rolls_back_both_keys(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    old = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "dek")
    bench(bench.ws.lifecycle.transition, old.id, Action.ACTIVATE)
    new = bench(bench.ws.lifecycle.rotate, old.id)
    session = bench.ws.tokens.logged_in()[0]
    real = session.set_usage
    calls = {"n": 0}

    def pulled_on_second(identity: Any, private: Any, public: Any) -> bool:
        calls["n"] += 1
        if identity.cka_id == old.cka_id:  # the predecessor's deactivation: the token goes away
            raise TokenRemoved("The token was removed while changing usage flags.")
        return real(identity, private, public)

    monkeypatch.setattr(session, "set_usage", pulled_on_second)
    with pytest.raises(TokenRemoved):
        bench(bench.ws.lifecycle.transition, new.id, Action.ACTIVATE)
    monkeypatch.undo()
    assert bench(bench.ws.keys.resolve, new.id).state is KeyState.PRE_ACTIVE
    assert bench(bench.ws.keys.resolve, old.id).state is KeyState.ACTIVE
    assert words(bench.peer_usage()[("Secret", old.cka_id)]) == {"encrypt", "decrypt"}
    failed = bench.events(new.id)[-1]
    assert (failed.action, failed.outcome) == ("key.activate", "aborted")  # the token went away
    assert "removed" in failed.details["error"]


def test_token_removed_mid_transition_changes_nothing(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "k")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    session = bench.ws.tokens.logged_in()[0]

    def gone(*_args: Any) -> bool:
        raise TokenRemoved("The token was removed while changing usage flags.")

    monkeypatch.setattr(session, "set_usage", gone)
    with pytest.raises(TokenRemoved):
        bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "maintenance")
    monkeypatch.undo()
    assert bench(bench.ws.keys.resolve, key.id).state is KeyState.ACTIVE
    assert bench.events(key.id)[-1].outcome == "aborted"  # TESTING.md: removal mid-operation


def test_automatic_transitions_with_injected_clock(bench: Bench) -> None:
    clock = bench.clock
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "timed")
    bench(
        bench.ws.lifecycle.edit,
        key.id,
        activation_date=clock.now + timedelta(hours=1),
        deactivation_date=clock.now + timedelta(days=10),
    )
    assert bench(bench.ws.lifecycle.apply_due) == []
    clock.advance(hours=2)
    [activated] = bench(bench.ws.lifecycle.apply_due)
    assert activated.state is KeyState.ACTIVE
    assert activated.activation_date == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    event = bench.events(key.id)[-1]
    assert (event.action, event.operators) == ("key.activate", (WORKSTATION_ACTOR,))
    assert [k.id for k in bench(bench.ws.lifecycle.due, 30)] == [key.id]
    assert bench(bench.ws.lifecycle.due, 5) == []

    # The cryptoperiod ends while the workstation is closed. At the next start nothing changes
    # until the audit token is logged in (the change must be sealed); then it is deactivated.
    bench(bench.ws.lock)
    clock.advance(days=11)
    bench.ws = bench(Workstation.unlock, bench.home, "officer", PASS, clock=bench.clock)
    assert bench(bench.ws.keys.resolve, key.id).state is KeyState.ACTIVE
    bench(bench.ws.tokens.login, "Life", PIN)
    closed = bench(bench.ws.keys.resolve, key.id)
    assert closed.state is KeyState.DEACTIVATED and closed.token_sync is TokenSync.OK
    assert words(bench.peer_usage()[("Secret", key.cka_id)]) == {"decrypt"}
    last = bench.events(key.id)[-1]
    assert (last.action, last.operators, last.mac is not None) == (
        "key.deactivate",
        (WORKSTATION_ACTOR,),
        True,
    )


def test_change_while_the_keys_token_is_away_is_applied_at_its_login(bench: Bench) -> None:
    other = bench(bench.ws.tokens.create_soft_token, "Other", "87654321", "2468")
    bench(bench.ws.tokens.login, other.serial, "2468")
    key = bench(bench.ws.keys.generate, other.serial, Algorithm.AES_128, "elsewhere")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    bench(bench.ws.tokens.logout, other.serial)
    suspended = bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "token in a safe")
    assert suspended.state is KeyState.SUSPENDED and suspended.token_sync is TokenSync.PENDING
    bench(bench.ws.tokens.login, other.serial, "2468")
    assert bench(bench.ws.keys.resolve, key.id).token_sync is TokenSync.OK
    seen = {o.cka_id: o.usage for o in peer_objects(bench.home, "Other", pin="2468")}
    assert seen[key.cka_id] == set()
    assert [e.action for e in bench.events(key.id)[-2:]] == ["key.suspend", "key.token-sync"]


def test_a_pending_change_is_applied_only_with_its_audit_entry(bench: Bench) -> None:
    """Issue 9, item 5: a key on a second token is suspended while that token is away. A later
    process logs in to that token only (as ``tokens show`` does) without the audit token: the
    login works, the token is not changed and nothing needs sealing. Logging in to the audit
    token then applies the change together with its entry."""
    other = bench(bench.ws.tokens.create_soft_token, "Other", "87654321", "2468")
    bench(bench.ws.tokens.login, other.serial, "2468")
    key = bench(bench.ws.keys.generate, other.serial, Algorithm.AES_128, "elsewhere")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    bench(bench.ws.tokens.logout, other.serial)
    suspended = bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "token in a safe")
    assert suspended.token_sync is TokenSync.PENDING

    bench.reopen(login=False)  # a new process: the audit token is not logged in
    events = bench.events()
    bench(bench.ws.tokens.login, other.serial, "2468")  # no error: nothing needs sealing
    session = bench(bench.ws.tokens.session, other.serial)
    assert bench(session.usage, identity_of(key)) == {
        "SECRET_KEY": {
            "ENCRYPT": True,
            "DECRYPT": True,
            "SIGN": False,
            "VERIFY": False,
            "WRAP": False,
            "UNWRAP": False,
            "DERIVE": False,
        }
    }  # the token still has the active key's flags: unchanged without its entry
    assert bench(bench.ws.keys.resolve, key.id).token_sync is TokenSync.PENDING
    assert [e.action for e in bench.events()[len(events) :]] == ["token.login"]
    bench(bench.ws.inspect.view, other.serial)  # a read-only look at the token works too

    bench(bench.ws.tokens.login, "Life", PIN)  # the audit token: now it can be recorded
    assert bench(bench.ws.keys.resolve, key.id).token_sync is TokenSync.OK
    seen = {o.cka_id: o.usage for o in peer_objects(bench.home, "Other", pin="2468")}
    assert seen[key.cka_id] == set()
    [synced] = [e for e in bench.events(key.id) if e.action == "key.token-sync"]
    assert synced.mac is not None and synced.details["token_sync"] == "ok"


def test_activation_sets_cryptoperiod_from_policy(bench: Bench) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, "sig")
    active = bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    assert active.activation_date == bench.clock.now
    assert active.deactivation_date == bench.clock.now + timedelta(days=1095)


def test_edit_refuses_deactivation_before_activation(bench: Bench) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "e")
    with pytest.raises(ValidationError, match="after the activation"):
        bench(
            bench.ws.lifecycle.edit,
            key.id,
            activation_date=bench.clock.now + timedelta(days=2),
            deactivation_date=bench.clock.now + timedelta(days=1),
        )
    assert bench(bench.ws.keys.resolve, key.id) == key


def test_non_modifiable_key_is_marked_not_enforcing(bench: Bench) -> None:
    session = bench.ws.tokens.logged_in()[0]

    def make_fixed_key() -> None:
        raw = session._session  # the real python-pkcs11 session: a key Keystead did not make
        raw.generate_key(
            KeyType.AES,
            256,
            id=b"\x0f\xee",
            label="fixed",
            store=True,
            template={
                Attribute.MODIFIABLE: False,
                Attribute.SENSITIVE: True,
                Attribute.PRIVATE: True,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
            },
        )

    bench(make_fixed_key)
    key = bench(bench.ws.keys.adopt, "Life", "0fee")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    suspended = bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "test")
    assert suspended.state is KeyState.SUSPENDED
    assert suspended.token_sync is TokenSync.REFUSED
    assert words(bench.peer_usage()[("Secret", "0fee")]) == {"encrypt", "decrypt"}
    assert bench.events(key.id)[-1].details["token_sync"] == "refused"


class LifecycleMachine(RuleBasedStateMachine):
    """Random actions against the real service never leave the table."""

    def __init__(self) -> None:
        super().__init__()
        self.bench: Bench | None = None

    @initialize()
    def start(self) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.core = CoreExecutor()
        self.bench = Bench(Home(Path(self.tmp.name) / "h"), self.core, Clock())
        self.key = self.bench(self.bench.ws.keys.generate, "Life", Algorithm.AES_128, "m")
        self.state = KeyState.PRE_ACTIVE

    @rule(action=st.sampled_from(list(Action)))
    def act(self, action: Action) -> None:
        bench = self.bench
        assert bench is not None
        try:
            key = bench(
                bench.ws.lifecycle.transition, self.key.id, action, "because", confirm_name="m"
            )
        except PolicyError:
            assert not allowed(self.state, action)
            return
        assert key.state is next_state(self.state, action)
        self.state = key.state

    @invariant()
    def database_matches_model(self) -> None:
        if self.bench is not None:
            assert self.bench(self.bench.ws.keys.resolve, self.key.id).state is self.state

    def teardown(self) -> None:
        if self.bench is not None:
            self.core.call(self.bench.ws.lock)
            self.core.shutdown()
            self.tmp.cleanup()


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(
    max_examples=8,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
