"""The air-gap guard's look at the machine: interfaces up with an address and unblocked radios,
from fake lists, from a fake rfkill tree, from this machine (against ``ip -j addr`` as the
independent peer) and from a real empty network namespace (``unshare -n``: only ``lo``)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from app.domain.airgap import AirGapReport, LiveInterface, LiveRadio
from app.services.airgap import live_interfaces, live_radios, look

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AF_LINK = psutil.AF_LINK


def addr(family: int, address: str) -> SimpleNamespace:
    return SimpleNamespace(family=family, address=address)


def stats(up: bool) -> SimpleNamespace:
    return SimpleNamespace(isup=up)


def test_interfaces_up_with_a_non_loopback_address_are_named() -> None:
    found = live_interfaces(
        stats={
            "lo": stats(True),
            "eth0": stats(True),
            "eth1": stats(False),  # down, though configured
            "wlan0": stats(True),
            "dummy0": stats(True),  # up, no IP address
            "tun0": stats(True),
        },
        addrs={
            "lo": [addr(socket.AF_INET, "127.0.0.1"), addr(socket.AF_INET6, "::1")],
            "eth0": [addr(AF_LINK, "52:54:00:12:34:56"), addr(socket.AF_INET, "192.0.2.7")],
            "eth1": [addr(socket.AF_INET, "198.51.100.2")],
            "wlan0": [addr(socket.AF_INET6, "fe80::1%wlan0")],
            "dummy0": [addr(AF_LINK, "aa:bb:cc:dd:ee:ff")],
            "tun0": [addr(socket.AF_INET, "127.0.0.2"), addr(socket.AF_INET, "10.8.0.1")],
        },
    )
    assert found == (
        LiveInterface("eth0", ("192.0.2.7",)),
        LiveInterface("tun0", ("10.8.0.1",)),
        LiveInterface("wlan0", ("fe80::1%wlan0",)),
    )


def test_only_loopback_is_air_gapped() -> None:
    only_lo = live_interfaces(
        stats={"lo": stats(True)}, addrs={"lo": [addr(socket.AF_INET, "127.0.0.1")]}
    )
    assert only_lo == ()
    assert AirGapReport(NOW, only_lo, ()).air_gapped


def rfkill(root: Path, index: int, kind: str, name: str, soft: str, hard: str) -> None:
    entry = root / f"rfkill{index}"
    entry.mkdir(parents=True)
    for field, value in (("type", kind), ("name", name), ("soft", soft), ("hard", hard)):
        (entry / field).write_text(value + "\n")


def test_radios_not_blocked_are_named(tmp_path: Path) -> None:
    rfkill(tmp_path, 0, "wlan", "phy0", "0", "0")
    rfkill(tmp_path, 1, "bluetooth", "hci0", "1", "0")  # soft-blocked
    rfkill(tmp_path, 2, "wwan", "wwan0", "0", "1")  # hard switch
    rfkill(tmp_path, 10, "bluetooth", "hci1", "0", "0")
    assert live_radios(tmp_path) == (LiveRadio("phy0", "wlan"), LiveRadio("hci1", "bluetooth"))


def test_unreadable_radio_state_counts_as_not_blocked(tmp_path: Path) -> None:
    (tmp_path / "rfkill0").mkdir()
    (tmp_path / "rfkill0" / "type").write_text("wlan\n")
    assert live_radios(tmp_path) == (LiveRadio("rfkill0", "wlan"),)


def test_old_kernels_state_file(tmp_path: Path) -> None:
    for index, state in enumerate(("0", "1", "2")):  # soft-blocked, unblocked, hard-blocked
        entry = tmp_path / f"rfkill{index}"
        entry.mkdir()
        (entry / "type").write_text("bluetooth\n")
        (entry / "name").write_text(f"hci{index}\n")
        (entry / "state").write_text(state + "\n")
    assert live_radios(tmp_path) == (LiveRadio("hci1", "bluetooth"),)


def test_no_rfkill_class_means_no_radio(tmp_path: Path) -> None:
    assert live_radios(tmp_path / "absent") == ()


def test_a_failed_look_is_not_air_gapped() -> None:
    def broken() -> tuple[LiveInterface, ...]:
        raise OSError(24, "Too many open files")

    report = look(lambda: NOW, interfaces=broken, radios=lambda: ())
    assert not report.air_gapped
    assert report.describe().startswith("air gap unknown: the network interfaces could not")


def test_report_names_everything_found() -> None:
    report = AirGapReport(
        NOW, (LiveInterface("eth0", ("192.0.2.7", "fe80::1")),), (LiveRadio("phy0", "wlan"),)
    )
    assert not report.air_gapped
    assert report.describe() == "network up: eth0 (192.0.2.7, fe80::1); wlan radio phy0 not blocked"
    assert AirGapReport(NOW).describe() == "air-gapped"


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2's ip is not installed")
def test_this_machine_agrees_with_ip_addr() -> None:
    """psutil's answer against iproute2's (``ip -j addr``) on the real machine."""
    shown = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, check=True).stdout)
    expected = {
        link["ifname"]
        for link in shown
        if "UP" in link.get("flags", [])
        and "LOOPBACK" not in link.get("flags", [])
        and any(a.get("family") in ("inet", "inet6") for a in link.get("addr_info", []))
    }
    assert {i.name for i in live_interfaces()} == expected


PROBE = (
    "import json; from app.services.airgap import live_interfaces; "
    "print(json.dumps([i.name for i in live_interfaces()]))"
)


def test_an_empty_network_namespace_has_nothing_up() -> None:
    """``unshare -n`` gives a namespace with only ``lo`` (down): nothing is found there."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0 and "Operation not permitted" in probe.stderr:
        pytest.skip("creating a network namespace needs root or user namespaces")
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == []
    seen = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-c",
            "import psutil; print(sorted(psutil.net_if_stats()))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert seen.stdout.strip() == "['lo']"
