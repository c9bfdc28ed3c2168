"""Fixtures for every test directory: the core thread, and a guard that no test leaves a
PKCS#11 module initialised.

Everything that touches PKCS#11 or the database runs on the one core thread
(``app.services.executor.CoreExecutor``). ``core`` is a fresh executor per test, shut down after
it; ``on_core(fn, *args)`` runs ``fn`` there and returns its result (or raises its error).

The python-pkcs11 library object of a module path lives for the whole process and is only
finalised when a workstation is locked. A workstation left unlocked keeps it initialised, and
the next test's C_Initialize is then skipped: SoftHSM would keep serving the previous test's
token directory. ``_pkcs11_finalised`` finalises any such leak after each test and fails the test
that caused it (outside ``tests/ui``, which has its own fixtures).

No test touches the network: ``tests/netguard/network_guard.py`` installs an audit hook that
refuses socket connections and name lookups beyond Unix sockets and numeric loopback, in this
process and (through ``PYTHONPATH``) in Python subprocesses; ``_no_network`` fails a test that
tried, even if the refusal was caught.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.hsm import module as hsm_module
from app.services.executor import CoreExecutor

NETGUARD = Path(__file__).resolve().parent / "netguard"
sys.path.insert(0, str(NETGUARD))
import network_guard  # noqa: E402

network_guard.install()
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(NETGUARD), os.environ.get("PYTHONPATH", "")) if p
)

OnCore = Callable[..., Any]


@pytest.fixture
def core() -> Iterator[CoreExecutor]:
    """A core executor for this test only; shut down (after its jobs) when the test ends."""
    executor = CoreExecutor()
    try:
        yield executor
    finally:
        executor.shutdown()


@pytest.fixture
def on_core(core: CoreExecutor) -> OnCore:
    """``on_core(fn, *args, **kwargs)``: run ``fn`` on the core thread and wait for it."""

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return core.call(fn, *args, **kwargs)

    return run


def leaked_modules() -> list[str]:
    """Module paths whose python-pkcs11 library is still initialised."""
    return [path for path, lib in hsm_module._LIBRARIES.items() if lib.initialized]


@pytest.fixture(autouse=True)
def _pkcs11_finalised(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test (and its fixtures): no PKCS#11 module may be left initialised."""
    yield
    leaked = leaked_modules()
    for path in leaked:
        hsm_module._LIBRARIES[path].finalize()  # repair, so the next test starts clean
    if leaked and "tests/ui/" not in request.node.nodeid:
        pytest.fail(f"the test left PKCS#11 module(s) initialised (not locked): {leaked}")


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Fail the test during which anything tried to reach the network (even if it was caught)."""
    before = len(network_guard.VIOLATIONS)
    yield
    tried = network_guard.VIOLATIONS[before:]
    if tried:
        pytest.fail("network use refused during the test: " + "; ".join(tried))
