"""The policy "no activation before a verified backup" per purpose (OpenDNSSEC's rule), on a
real SoftHSM token: set through the approval service, enforced in the core for manual and
automatic activations, with a message naming the fix and a denied entry for a manual refusal."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from app.errors import PolicyError, ValidationError
from app.services.backup_policy import RULE
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Station

pytestmark = pytest.mark.hsm


def backup(station: Station, target: Path, *names: str) -> None:
    station(
        station.ws.backup.create,
        target,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob"),
        chosen=set(names),
        deliver=lambda card: None,
    )


def test_activation_waits_for_a_verified_backup(station: Station, tmp_path: Path) -> None:
    ws = station.ws
    gen = ws.keys.generate
    assert station(ws.backup_before_activation) == frozenset()
    covered = station(ws.set_backup_before_activation, Purpose.KEY_WRAPPING, True)
    assert covered == {Purpose.KEY_WRAPPING}
    entry = station.events("policy.set")[-1]
    assert entry.details["purposes"] == ["key-wrapping"] and entry.outcome == "success"
    assert len(entry.operators) == 2  # the witness approved the policy change
    with pytest.raises(ValidationError):  # already on: nothing to change
        station(ws.set_backup_before_activation, Purpose.KEY_WRAPPING, True)

    kek = station(gen, TOKEN, Algorithm.AES_256, "kek", Purpose.KEY_WRAPPING, True)
    with pytest.raises(PolicyError) as refused:
        station(ws.lifecycle.transition, kek.id, Action.ACTIVATE)
    assert refused.value.rule == RULE
    assert "Back it up first" in refused.value.message and "kek" in refused.value.message
    denied = station.events("key.activate")[-1]
    assert denied.outcome == "denied" and denied.details["rule"] == RULE
    assert station(ws.keys.resolve, kek.id).state is KeyState.PRE_ACTIVE

    # Another purpose is not covered; a non-backup-able key of a covered purpose never can be.
    data = station(gen, TOKEN, Algorithm.AES_256, "data", Purpose.ENCRYPTION, True)
    station(ws.lifecycle.transition, data.id, Action.ACTIVATE)
    stuck = station(gen, TOKEN, Algorithm.AES_256, "stuck", Purpose.KEY_WRAPPING, False)
    with pytest.raises(PolicyError) as never:
        station(ws.lifecycle.transition, stuck.id, Action.ACTIVATE)
    assert "not backup-able" in never.value.message and "--off" in never.value.message

    # Once in a verified backup it activates.
    backup(station, tmp_path, "kek")
    activated = station(ws.lifecycle.transition, kek.id, Action.ACTIVATE)
    assert activated.state is KeyState.ACTIVE

    # Turning the rule off lets the non-backup-able key through.
    assert station(ws.set_backup_before_activation, Purpose.KEY_WRAPPING, False) == frozenset()
    assert station(ws.lifecycle.transition, stuck.id, Action.ACTIVATE).state is KeyState.ACTIVE


def test_planned_activation_waits_too(station: Station, tmp_path: Path) -> None:
    """An activation date that arrives does not activate a key the policy holds back; the
    key activates at the first check after its backup."""
    ws = station.ws
    station(ws.set_backup_before_activation, Purpose.KEY_WRAPPING, True)
    kek = station(ws.keys.generate, TOKEN, Algorithm.AES_256, "kek", Purpose.KEY_WRAPPING, True)
    station(
        ws.lifecycle.edit, kek.id, activation_date=station.clock.now + timedelta(minutes=5)
    )
    station.clock.advance(minutes=10)
    assert station(ws.lifecycle.apply_due) == []
    assert station(ws.keys.resolve, kek.id).state is KeyState.PRE_ACTIVE
    backup(station, tmp_path, "kek")
    assert [k.id for k in station(ws.lifecycle.apply_due)] == [kek.id]
    assert station(ws.keys.resolve, kek.id).state is KeyState.ACTIVE
