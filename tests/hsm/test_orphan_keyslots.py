"""Keyslots no active operator record vouches for — what ``operators add`` or ``operators
enable`` leave when killed after keyslots.json was saved and before the record committed (the
real SIGKILL is in ``tests/e2e/test_operator_interrupted.py``) — are removed at the next
unlock, each with an ``operator.keyslot-orphan`` entry; the operators that have records keep
theirs, and the orphan's passphrase opens nothing, before and after."""

from __future__ import annotations

import json

import pytest

from app.domain.roles import Role
from app.errors import KeysteadError
from app.services.workstation import Workstation
from app.storage.keyslots import KeySlotFile
from tests.support import FAST_KDF, OPERATOR, PASS, PIN, TOKEN, WITNESS, Bench, enrol_witness

pytestmark = pytest.mark.hsm

GHOST_PASS = "SENTINEL-ghost-pass-1a1a"
DAVE_PASS = "SENTINEL-dave-pass-2b2b"


def _slip_in(bench: Bench, name: str, passphrase: str) -> None:
    """What a kill right after ``slots.save()`` inside an add/enable leaves: the slot, no
    (active) record."""
    slots = KeySlotFile.load(bench.home.keyslots)
    slots.add(name, passphrase, bench.ws._database_key, FAST_KDF)
    slots.save()


def test_orphan_keyslots_are_removed_and_recorded_at_the_next_unlock(bench: Bench) -> None:
    def people() -> None:
        enrol_witness(bench.ws)
        bench.ws.roster.add("dave", frozenset({Role.AUDITOR}), DAVE_PASS, DAVE_PASS)
        bench.ws.roster.disable("dave")

    bench(people)
    _slip_in(bench, "ghost", GHOST_PASS)  # an add cut short: no record at all
    _slip_in(bench, "dave", DAVE_PASS)  # an enable cut short: the record still disabled
    assert {"ghost", "dave"} <= set(KeySlotFile.load(bench.home.keyslots).operators())
    bench(bench.ws.lock)
    for name, passphrase, said in (
        ("ghost", GHOST_PASS, "no operator record"),
        ("dave", DAVE_PASS, "disabled or removed"),
    ):
        with pytest.raises(KeysteadError, match=said):
            bench(Workstation.unlock, bench.home, name, passphrase, clock=bench.clock)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    assert sorted(KeySlotFile.load(bench.home.keyslots).operators()) == [OPERATOR, WITNESS]
    entries = [e for e in bench.events() if e.action == "operator.keyslot-orphan"]
    assert sorted(e.subject for e in entries) == ["operator:dave", "operator:ghost"]
    reasons = {e.subject: json.loads(e.details_json)["reason"] for e in entries}
    assert "no operator record" in reasons["operator:ghost"]
    assert "disabled" in reasons["operator:dave"]
    bench(bench.ws.tokens.login, TOKEN, PIN)
    assert bench(bench.ws.audit.verify).ok
    # Settled once: the next unlock finds nothing to remove.
    bench.reopen()
    assert len([e for e in bench.events() if e.action == "operator.keyslot-orphan"]) == 2
    bench(bench.ws.lock)
    with pytest.raises(KeysteadError, match="no operator named 'ghost'"):
        bench(Workstation.unlock, bench.home, "ghost", GHOST_PASS, clock=bench.clock)
