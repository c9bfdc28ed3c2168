"""unlock-failures.json deleted between two unlocks (wrong passphrases and a lock-out then
vanish): the next unlock records that the record was missing (outside testers, F17: the
failures were erased and nothing said so). Once, and never when the file is there."""

from __future__ import annotations

import json

import pytest

from app.errors import KeysteadError
from app.services.workstation import Workstation
from tests.support import OPERATOR, PASS, Bench

pytestmark = pytest.mark.hsm

MISSING = "workstation.unlock-failures-missing"


def _missing(bench: Bench) -> list[object]:
    return [e for e in bench.events() if e.action == MISSING]


def _wrong_twice(bench: Bench) -> None:
    bench(bench.ws.lock)
    for _ in range(2):
        with pytest.raises(KeysteadError, match="wrong"):
            bench(Workstation.unlock, bench.home, OPERATOR, "not the passphrase", clock=bench.clock)
        bench.clock.advance(minutes=5)  # past the back-off


def test_a_deleted_failure_record_is_noted_at_the_next_unlock(bench: Bench) -> None:
    bench.reopen()  # an unlock has seen the record
    _wrong_twice(bench)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    assert _missing(bench) == []  # the file was there: its failures are sealed, nothing missing
    sealed = [
        e for e in bench.events() if e.action == "workstation.unlock" and e.outcome == "failed"
    ]
    assert len(sealed) == 2
    _wrong_twice(bench)
    bench.home.unlock_failures.unlink()  # the two new failures vanish with it
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS, clock=bench.clock)
    (noted,) = _missing(bench)
    assert "may have been erased" in json.loads(noted.details_json)["note"]  # type: ignore[attr-defined]
    failed = [
        e for e in bench.events() if e.action == "workstation.unlock" and e.outcome == "failed"
    ]
    assert len(failed) == 2  # the erased ones are gone; the entry says so
    bench.reopen()
    assert len(_missing(bench)) == 1  # noted once
