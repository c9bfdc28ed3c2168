"""What the air-gap guard found: network interfaces that are up with an address, and radios
(wireless LAN, Bluetooth, mobile broadband...) that are not blocked. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LiveInterface:
    """A non-loopback network interface that is up and has at least one IP address."""

    name: str
    addresses: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.name} ({', '.join(self.addresses)})"


@dataclass(frozen=True)
class LiveRadio:
    """A radio that rfkill does not block (neither soft nor hard). ``kind`` is rfkill's type:
    ``wlan``, ``bluetooth``, ``wwan``, ``nfc``, ``gps``, ``uwb``, ``wimax``, ``fm``."""

    name: str
    kind: str

    def describe(self) -> str:
        return f"{self.kind} radio {self.name}"


@dataclass(frozen=True)
class AirGapReport:
    """One look at the machine. ``problem`` is set when the look itself failed: then the gap is
    unknown, which counts as not air-gapped (fail closed)."""

    checked_at: datetime
    interfaces: tuple[LiveInterface, ...] = ()
    radios: tuple[LiveRadio, ...] = ()
    problem: str | None = None

    @property
    def air_gapped(self) -> bool:
        return self.problem is None and not self.interfaces and not self.radios

    def names(self) -> str:
        """What is open, by name only (``eth0, wlan radio phy0``); empty when nothing is."""
        if self.problem is not None:
            return "unknown"
        return ", ".join([i.name for i in self.interfaces] + [r.describe() for r in self.radios])

    def describe(self) -> str:
        """One line naming everything found, e.g. ``network up: eth0 (192.0.2.7); wlan radio
        phy0 not blocked``; ``air-gapped`` when nothing was."""
        if self.problem is not None:
            return f"air gap unknown: {self.problem}"
        parts = []
        if self.interfaces:
            parts.append("network up: " + ", ".join(i.describe() for i in self.interfaces))
        if self.radios:
            parts.append(", ".join(r.describe() for r in self.radios) + " not blocked")
        return "; ".join(parts) if parts else "air-gapped"
