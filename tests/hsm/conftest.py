"""Fixtures for tests on a real SoftHSM token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.paths import Home
from app.services.executor import CoreExecutor
from tests.support import Bench, Clock


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A fresh workstation and embedded token per test, locked (C_Finalize) afterwards."""
    core = CoreExecutor()
    bench = Bench(Home(tmp_path / "home"), core, Clock())
    yield bench
    try:
        with contextlib.suppress(Exception):  # a test may have locked it already
            core.call(bench.ws.lock)
    finally:
        core.shutdown()
