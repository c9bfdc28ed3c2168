"""The air-gap policy: set by a security officer and recorded; while it is on, key generation
is refused (and recorded as denied, naming what was found) whenever the machine is not
air-gapped — including when the look itself fails — and nothing reaches the token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.airgap import AirGapReport, LiveInterface, LiveRadio
from app.domain.algorithms import Algorithm
from app.errors import OperationCancelled, PolicyError
from app.services.airgap import POLICY_KEY
from tests.hsm.kit import TOKEN, WITNESS, Station, peer_keys

pytestmark = pytest.mark.hsm

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CONNECTED = (LiveInterface("eth0", ("192.0.2.7",)),)


def probe_returning(station: Station, report: AirGapReport) -> list[int]:
    calls: list[int] = []

    def probe() -> AirGapReport:
        calls.append(1)
        return report

    station.ws.airgap.probe = probe
    return calls


def test_policy_is_off_by_default_and_generation_does_not_look(station: Station) -> None:
    calls = probe_returning(station, AirGapReport(station.clock(), CONNECTED))
    assert not station(station.ws.airgap.blocking)
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "while-off")
    assert calls == []
    assert station.key_count() == 1


def test_security_officer_sets_the_policy_and_it_is_recorded(station: Station) -> None:
    station(station.ws.airgap.set_blocking, True)
    assert station(station.ws.airgap.blocking)
    station(station.ws.airgap.set_blocking, False)
    entries = station.events("policy.airgap")
    assert [(e.outcome, e.details["value"], e.details["previous"]) for e in entries] == [
        ("success", "on", "off"),
        ("success", "off", "on"),
    ]
    # Turning it on restricts: one officer. Turning it off weakens a control: the approvals of
    # ``policy.set`` (the witness here), named in the entry with the request they approved.
    assert entries[0].operators == ("officer",) and "approval" not in entries[0].details
    assert entries[1].operators == ("officer", WITNESS)
    assert entries[1].details["approval"]["approvers"] == [WITNESS]
    assert entries[1].details["approval"]["policy"] == "policy.set"


class _Refusing:
    """An approval source where nobody approves (the dialog cancelled)."""

    def credentials(self, request: object, rule: object) -> None:
        return None


def test_turning_it_off_without_an_approver_leaves_it_on(station: Station) -> None:
    # New-user finding F24: one officer could switch the air-gap policy off alone, although
    # the README says policy changes need another operator's approval.
    station(station.ws.airgap.set_blocking, True)
    station.ws.approvals.source = _Refusing()
    with pytest.raises(OperationCancelled):
        station(station.ws.airgap.set_blocking, False)
    assert station(station.ws.airgap.blocking)
    assert [e.outcome for e in station.events("policy.airgap")] == ["success"]
    (refused,) = station.events("policy.set")
    assert refused.outcome == "denied" and refused.subject == "policy:airgap"


def test_only_a_security_officer_may_change_it(station: Station) -> None:
    station(station.ws.db.execute, "UPDATE operators SET role = 'auditor'")  # until roles land
    with pytest.raises(PolicyError, match=r"security officer.*\[KS-ROLE\]"):
        station(station.ws.airgap.set_blocking, True)
    assert not station(station.ws.airgap.blocking)
    (denied,) = station.events("policy.airgap")
    assert denied.outcome == "denied"
    assert denied.details["rule"] == "KS-ROLE"


@pytest.mark.parametrize(
    "found",
    [
        AirGapReport(NOW, CONNECTED),
        AirGapReport(NOW, (), (LiveRadio("phy0", "wlan"),)),
        AirGapReport(NOW, problem="the network interfaces could not be listed (EMFILE)"),
    ],
    ids=["interface-up", "radio-on", "look-failed"],
)
def test_generation_is_refused_while_not_air_gapped(station: Station, found: AirGapReport) -> None:
    station(station.ws.airgap.set_blocking, True)
    probe_returning(station, found)
    before = peer_keys(station.home)
    with pytest.raises(PolicyError, match=r"not air-gapped .*\[KS-AIRGAP\]"):
        station(station.ws.keys.generate, TOKEN, Algorithm.EC_P256, "signing-1")
    assert peer_keys(station.home) == before
    assert station.key_count() == 0
    (denied,) = station.events("key.generate")
    assert denied.outcome == "denied"
    assert denied.details == {"rule": "KS-AIRGAP", "found": found.describe()}


def test_generation_goes_ahead_when_air_gapped(station: Station) -> None:
    station(station.ws.airgap.set_blocking, True)
    calls = probe_returning(station, AirGapReport(station.clock()))
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "kek-1")
    assert calls == [1]  # looked again at the moment of the action
    assert station.key_count() == 1


def test_policy_survives_lock_and_unlock(station: Station) -> None:
    station(station.ws.airgap.set_blocking, True)
    station.unlock()
    assert station(station.ws.settings.get, POLICY_KEY) == "on"
    probe_returning(station, AirGapReport(station.clock(), CONNECTED))
    with pytest.raises(PolicyError):
        station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "after-unlock")
