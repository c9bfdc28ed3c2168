"""Fixtures for the ``tpm`` set: a TPM 2.0 simulated by swtpm, reached through tpm2-pkcs11.

``tpm`` (session scope) starts a private D-Bus session bus, swtpm on 127.0.0.1 (free ports, a
temporary state directory) and tpm2-abrmd in front of it, points tpm2-pkcs11 at them with
``TPM2_PKCS11_TCTI`` and at a temporary object store with ``TPM2_PKCS11_STORE``, and
initialises token ``tpm1`` through Keystead's own C_InitToken (the module's function list) and
C_InitPIN. Everything is stopped by PID at the end of the session.

Transient objects: the resource manager flushes a client's objects when it disconnects (each
workstation lock finalises the module, which disconnects), so a failed generation cannot leave
the TPM full for the next test. No test calls ``tpm2_flushcontext``; see ``swtpm.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.hsm.module import Pkcs11Module
from app.paths import Home
from app.services.executor import CoreExecutor
from tests.hsm.kit import Clock, Station
from tests.tpm.swtpm import MODULE, Bus, SwTpm, missing

TPM_LABEL = "tpm1"
TPM_PIN = "SENTINEL-tpmpin-51a0"
TPM_SO_PIN = "SENTINEL-tpmsopin-77b2"


def _init_token(module: Pkcs11Module, slot_id: int, label: str) -> None:
    module.init_token(slot_id, TPM_SO_PIN, label)
    created = next(t for t in module.tokens() if t.label == label)
    module.init_user_pin(created.serial, TPM_SO_PIN, TPM_PIN)


def blank_slot(module: Pkcs11Module) -> int:
    """The slot id tpm2-pkcs11 offers for a new token (it always keeps one blank slot)."""
    return next(t.slot_id for t in module.tokens(include_uninitialized=True) if not t.initialized)


@pytest.fixture(scope="session")
def tpm_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    absent = missing()
    if absent:
        pytest.fail(f"the TPM tests need {', '.join(absent)}: run scripts/setup.sh")
    bus = Bus(tmp_path_factory.mktemp("dbus")).start()
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture(scope="session")
def tpm(tpm_bus: Bus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwTpm]:
    """The shared simulated TPM with token ``tpm1`` (user PIN ``TPM_PIN``)."""
    device = SwTpm(tmp_path_factory.mktemp("swtpm"), tpm_bus, "main").start()
    saved = {name: os.environ.get(name) for name in device.env}
    os.environ.update(device.env)
    try:
        core = CoreExecutor()
        try:

            def setup() -> None:
                module = Pkcs11Module(MODULE)
                try:
                    _init_token(module, blank_slot(module), TPM_LABEL)
                finally:
                    module.close()

            core.call(setup)
        finally:
            core.shutdown()
        yield device
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        device.stop()


@pytest.fixture
def use_tpm(tpm: SwTpm) -> Iterator[SwTpm]:
    """The shared TPM's environment for this test (a test that switched to its own TPM has
    it put back afterwards)."""
    os.environ.update(tpm.env)
    yield tpm
    os.environ.update(tpm.env)


@pytest.fixture
def own_tpm(use_tpm: SwTpm, tpm_bus: Bus, tmp_path: Path) -> Iterator[SwTpm]:
    """A second simulated TPM for this test only, with token ``tpm1`` (same PINs), made the
    one tpm2-pkcs11 reaches; stopped afterwards and the shared TPM's environment put back
    (by ``use_tpm``). For tests that kill the device or add tokens."""
    device = SwTpm(tmp_path / "own", tpm_bus, f"own{os.getpid()}{id(tmp_path) % 100000}")
    device.root.mkdir()
    device.start()
    try:
        os.environ.update(device.env)
        core = CoreExecutor()
        try:

            def setup() -> None:
                module = Pkcs11Module(MODULE)
                try:
                    _init_token(module, blank_slot(module), TPM_LABEL)
                finally:
                    module.close()

            core.call(setup)
        finally:
            core.shutdown()
        yield device
    finally:
        device.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def station(use_tpm: SwTpm, home: Home, core: CoreExecutor, clock: Clock) -> Iterator[Station]:
    yield from _station(home, core, clock)


@pytest.fixture
def own_station(own_tpm: SwTpm, home: Home, core: CoreExecutor, clock: Clock) -> Iterator[Station]:
    """``station`` on this test's own TPM (``own_tpm``)."""
    yield from _station(home, core, clock)


def _station(home: Home, core: CoreExecutor, clock: Clock) -> Iterator[Station]:
    """A new workstation: the embedded SoftHSM token (the audit token) logged in, and the TPM
    module added and ``tpm1`` logged in. Locked after the test."""
    station = Station(home, core, clock)
    try:
        station.initialize()
        station(station.ws.tokens.add_module, MODULE)
        station(station.ws.tokens.login, TPM_LABEL, TPM_PIN)
        yield station
    finally:
        station.close()
