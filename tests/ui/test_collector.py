"""Python's cyclic collector never runs on the core thread while the GUI's bridge is open
(ui/collector.py): a collection there frees whatever unreachable cycle it finds, Qt objects owned
by Python included, off their thread (issue 17's crash). Garbage the core thread makes is still
collected, on the GUI thread."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.ui


class Node:
    """A cycle of these is garbage only the cyclic collector frees."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collections() -> Iterator[list[str]]:
    """The thread each collection started on."""
    seen: list[str] = []

    def record(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(threading.current_thread().name)

    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)


def test_core_garbage_is_collected_on_the_gui_thread_only(qtbot, bridge, collections):  # type: ignore[no-untyped-def]
    def churn() -> weakref.ref[Node]:
        for _ in range(200_000):  # crosses every generation's threshold many times
            Node()
        return weakref.ref(Node())

    last = bridge.executor.call(churn)
    assert [name for name in collections if name != threading.current_thread().name] == []
    assert last() is not None  # not collected yet: nothing ran on the core thread
    qtbot.waitUntil(lambda: last() is None, timeout=10000)  # the GUI thread's timer did
    assert threading.current_thread().name in collections


def test_closing_the_bridge_gives_collection_back(qapp):  # type: ignore[no-untyped-def]
    from ui.workers import CoreBridge

    assert gc.isenabled()
    core = CoreBridge()
    assert not gc.isenabled()
    core.shutdown()
    assert gc.isenabled()
