"""One process changes a workstation at a time (DESIGN.md "Storage"): an advisory lock on the
home, held from unlock to lock, released by the kernel when a process dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from app.errors import WorkstationInUse
from app.services.workstation import Workstation
from tests.hsm.kit import OPERATOR, PASSPHRASE, Station

pytestmark = pytest.mark.hsm


def test_a_second_opening_is_refused_naming_the_holder(station: Station) -> None:
    before = station.events()
    with pytest.raises(WorkstationInUse) as refused:
        station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE, wait=0)
    assert f"in use by process {os.getpid()} (" in refused.value.message
    assert refused.value.holder.startswith(f"process {os.getpid()} ")
    assert station.events() == before  # the refused opening wrote nothing
    station.lock()
    station.unlock()  # free again once the first one locked


def test_the_holder_program_is_named(station: Station) -> None:
    station.lock()
    ws = station(
        Workstation.unlock, station.home, OPERATOR, PASSPHRASE, wait=0, program="keystead-gui"
    )
    try:
        with pytest.raises(WorkstationInUse, match=r"process \d+ \(keystead-gui\)"):
            station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE, wait=0.3)
    finally:
        station(ws.lock)


def test_a_killed_holder_leaves_no_stale_lock(station: Station) -> None:
    """SIGKILL of the process that has the workstation: the kernel releases the lock."""
    station.lock()
    code = (
        "import sys, time\n"
        "from app.storage.home_lock import HomeLock\n"
        "from pathlib import Path\n"
        "HomeLock.acquire(Path(sys.argv[1]), 'holder')\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(station.home.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkstationInUse, match=rf"process {holder.pid} \(holder\)"):
            station(Workstation.unlock, station.home, OPERATOR, PASSPHRASE, wait=0)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    station.unlock()
    assert station.is_open
