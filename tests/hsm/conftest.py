"""Fixtures for tests on a real SoftHSM token and a real SQLCipher file, each in its own home."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.paths import Home
from app.services.executor import CoreExecutor
from tests.hsm.kit import Clock, Station
from tests.support import Bench
from tests.support import Clock as BenchClock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def bare_station(home: Home, core: CoreExecutor, clock: Clock) -> Iterator[Station]:
    """A harness with nothing initialised yet; whatever the test opens is locked afterwards."""
    station = Station(home, core, clock)
    try:
        yield station
    finally:
        station.close()


@pytest.fixture
def station(bare_station: Station) -> Station:
    """A new workstation with an embedded SoftHSM token, logged in; locked after the test."""
    bare_station.initialize()
    return bare_station


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """The lifecycle tests' harness (tests/support.py): a workstation and embedded token per
    test, locked (C_Finalize) afterwards."""
    core = CoreExecutor()
    bench = Bench(Home(tmp_path / "home"), core, BenchClock())
    yield bench
    try:
        with contextlib.suppress(Exception):  # a test may have locked it already
            core.call(bench.ws.lock)
    finally:
        core.shutdown()
