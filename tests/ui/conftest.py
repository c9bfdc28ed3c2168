"""Fixtures for the GUI tests: Qt offscreen, a real workstation on a real SoftHSM token."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.paths import Home
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.keyslots import KdfCost
from tests.support import with_witness

PASSPHRASE = "ui-test passphrase 1"
PIN = "246810"
SO_PIN = "13579135"
FAST = KdfCost(1024, 1, 1)


@pytest.fixture
def ui_home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def bridge(qapp):  # type: ignore[no-untyped-def]
    from ui.workers import CoreBridge

    core = CoreBridge()
    yield core
    core.shutdown()


@pytest.fixture
def workstation(bridge, ui_home: Home) -> Iterator[Workstation]:  # type: ignore[no-untyped-def]
    """An initialised workstation with a logged-in embedded token, owned by the core thread."""

    def make() -> Workstation:
        ws = Workstation.initialize(
            ui_home,
            "officer",
            PASSPHRASE,
            PASSPHRASE,
            SoftTokenRequest("UiToken", SO_PIN, PIN),
            cost=FAST,
        )
        ws.tokens.login("UiToken", PIN)
        return with_witness(ws)  # dual control's second person, when an action asks

    ws = bridge.executor.call(make)
    yield ws
    with contextlib.suppress(Exception):  # a test may have locked it already
        bridge.executor.call(ws.lock)


@pytest.fixture
def gui_session(bridge, workstation):  # type: ignore[no-untyped-def]
    from ui.session import GuiSession

    return GuiSession(bridge, workstation)
