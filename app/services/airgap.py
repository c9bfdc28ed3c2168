"""The air-gap guard: looks for ways off the machine, and the policy that blocks sensitive
actions while any is open.

Interfaces come from psutil (``net_if_stats`` + ``net_if_addrs``: getifaddrs and the SIOCGIFFLAGS
ioctl, no parsing of ``ip`` output); radios from the kernel's rfkill class
(``/sys/class/rfkill/rfkill*/{name,type,soft,hard}``, Documentation/ABI/stable/sysfs-class-rfkill).
Nothing here opens a socket.

The policy ``airgap.block_sensitive`` lives in the database (``meta``), is changed only by a
security officer and every change is an audit entry. While it is on, ``require_air_gap`` looks
again at the moment of a sensitive action and refuses it (rule ``KS-AIRGAP``, recorded as denied)
when anything is open or the look failed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from app.domain.airgap import AirGapReport, LiveInterface, LiveRadio
from app.errors import PolicyError
from app.services.audit import Outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.storage.database import Database
from app.storage.repository import SettingsRepository

log = logging.getLogger(__name__)

RULE = "KS-AIRGAP"
POLICY_KEY = "airgap.block_sensitive"
RFKILL = Path("/sys/class/rfkill")
CHECK_INTERVAL_S = 60


class _Stats(Protocol):
    isup: bool


class _Addr(Protocol):
    family: Any
    address: str


def live_interfaces(
    stats: Mapping[str, _Stats] | None = None,
    addrs: Mapping[str, Sequence[_Addr]] | None = None,
) -> tuple[LiveInterface, ...]:
    """Interfaces that are up and hold a non-loopback IPv4/IPv6 address, sorted by name.

    ``stats``/``addrs`` default to ``psutil.net_if_stats()``/``psutil.net_if_addrs()`` (tests
    pass their own). An interface only in one of the two is skipped. Raises ``OSError`` or
    ``psutil.Error`` when the system cannot be asked.
    """
    import socket  # (as psutil: on first look, not loaded by every command)

    import psutil  # on first look, not at import: most commands never look

    stats = psutil.net_if_stats() if stats is None else stats
    addrs = psutil.net_if_addrs() if addrs is None else addrs
    found = []
    for name in sorted(stats):
        if not stats[name].isup:
            continue
        ips = []
        for entry in addrs.get(name, ()):
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(entry.address.split("%")[0])
            except ValueError:
                ips.append(entry.address)  # unusual, but an address all the same
                continue
            if not ip.is_loopback:
                ips.append(entry.address)
        if ips:
            found.append(LiveInterface(name, tuple(ips)))
    return tuple(found)


def live_radios(root: Path = RFKILL) -> tuple[LiveRadio, ...]:
    """Radios whose rfkill ``soft`` and ``hard`` are both 0, sorted by rfkill index.

    No ``root`` directory means no rfkill-capable radio (or no rfkill driver): nothing found.
    A radio whose state cannot be read counts as not blocked (fail closed).
    """
    if not root.is_dir():
        return ()
    found = []
    for entry in sorted(root.glob("rfkill*"), key=lambda p: int(p.name[6:] or 0)):
        if not _blocked(entry):
            found.append(
                LiveRadio(_read(entry / "name") or entry.name, _read(entry / "type") or "?")
            )
    return tuple(found)


def _blocked(entry: Path) -> bool:
    """``soft``/``hard`` (1 = blocked); kernels without them have ``state`` (1 = unblocked)."""
    soft, hard = _read(entry / "soft"), _read(entry / "hard")
    if soft is not None or hard is not None:
        return soft == "1" or hard == "1"
    state = _read(entry / "state")
    return state in ("0", "2")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def look(
    clock: Callable[[], datetime],
    interfaces: Callable[[], tuple[LiveInterface, ...]] = live_interfaces,
    radios: Callable[[], tuple[LiveRadio, ...]] = live_radios,
) -> AirGapReport:
    """One look at the machine; a failure to look is a report with ``problem`` set."""
    import psutil

    now = clock()
    try:
        return AirGapReport(now, interfaces(), radios())
    except (OSError, psutil.Error) as exc:
        log.warning("air-gap check failed: %s", exc)
        return AirGapReport(now, problem=f"the network interfaces could not be listed ({exc})")


class AirGapGuard:
    """The policy and the check before sensitive actions, for one unlocked workstation."""

    def __init__(
        self,
        db: Database,
        operator: str,
        clock: Callable[[], datetime],
        probe: Callable[[], AirGapReport] | None = None,
    ) -> None:
        self.db = db
        self.operator = operator
        self.clock = clock
        self.settings = SettingsRepository(db)
        self.probe = probe or (lambda: look(clock))
        # Dual control for turning the policy off (``ApprovalService.obtain``, wired by the
        # workstation); a guard built alone (tools, benchmarks) has only its own operator.
        self.approve: Callable[[str, str, Mapping[str, object]], tuple[str, ...]] = (
            lambda _action, _subject, _parameters: (self.operator,)
        )

    def blocking(self) -> bool:
        """Whether the policy blocks sensitive actions while the machine is not air-gapped."""
        return self.settings.get(POLICY_KEY) == "on"

    def set_blocking(self, on: bool) -> None:
        """Change the policy (security officers only); recorded as ``policy.airgap`` with the
        setting before and after.

        Turning it off weakens a control, so it takes the approvals of ``policy.set`` (one
        other officer by default, README "Dual control"); turning it on restricts and never
        waits for a quorum. Raises ``PolicyError`` (``KS-ROLE``, recorded as denied) for
        another role, and whatever ``ApprovalService.obtain`` raises (recorded there) when
        the approvals are not given.
        """
        assert_core_thread()
        from app.services.workstation import ROLE_SECURITY_OFFICER  # imported late: a cycle

        details = {"setting": POLICY_KEY, "value": "on" if on else "off"}
        role = self.settings.operator_role(self.operator)
        if role != ROLE_SECURITY_OFFICER:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="policy.airgap",
                subject="policy:airgap",
                outcome=Outcome.DENIED,
                details={**details, "rule": "KS-ROLE", "role": role},
            )
            raise PolicyError("Only a security officer may change the air-gap policy.", "KS-ROLE")
        who: tuple[str, ...] = (self.operator,)  # an Authorisation when approved
        if not on and self.blocking():
            # What the approvers read: the policy by name, its value now and after, the effect
            # (the outside tester saw only "airgap.block_sensitive: off").
            who = self.approve(
                "policy.set",
                "policy:airgap",
                {
                    "setting": "air-gap policy (refuse key generation while not air-gapped)",
                    "current": "on",
                    "value": "off: key generation is allowed while the machine is connected",
                },
            )
        with self.db.transaction():
            details["previous"] = "on" if self.blocking() else "off"
            self.settings.put(POLICY_KEY, details["value"])
            record(
                self.db,
                when=self.clock(),
                operators=who,
                action="policy.airgap",
                subject="policy:airgap",
                outcome=Outcome.SUCCESS,
                details=details,
            )

    def require_air_gap(self, action: str, subject: str) -> None:
        """Before a sensitive action: with the policy on, look again and refuse (``KS-AIRGAP``,
        recorded as denied with what was found) unless the machine is air-gapped."""
        assert_core_thread()
        if not self.blocking():
            return
        report = self.probe()
        if report.air_gapped:
            return
        record_alone(
            self.db,
            when=self.clock(),
            operators=(self.operator,),
            action=action,
            subject=subject,
            outcome=Outcome.DENIED,
            details={"rule": RULE, "found": report.describe()},
        )
        raise PolicyError(
            f"Refused while the workstation is not air-gapped ({report.describe()}); "
            "disconnect it or ask a security officer",
            RULE,
        )
