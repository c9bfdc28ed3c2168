"""Backup and restore go through the one approval service (DESIGN.md "Roles and dual
control"): with the shipped policy a backup needs a second person, the approver is named in
the audit entry, and without one nothing is written and a denied entry says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.errors import KeysteadError
from tests.hsm.kit import OPERATOR, PIN, SO_PIN, TOKEN, Station
from tests.support import WITNESS

pytestmark = pytest.mark.hsm


def _create(station: Station, target: Path) -> object:
    return station(
        station.ws.backup.create,
        target,
        TOKEN,
        SO_PIN,
        PIN,
        threshold=2,
        custodians=("alice", "bob", "carol"),
        deliver=lambda card: None,
    )


def test_backup_names_its_approver(station: Station, tmp_path: Path) -> None:
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    target = tmp_path / "stick"
    target.mkdir()
    _create(station, target)
    [entry] = station.events("backup.create")
    assert entry.outcome == "success"
    assert tuple(entry.operators) == (OPERATOR, WITNESS)
    assert entry.details["approval"]


def test_backup_without_an_approver_writes_nothing(bare_station: Station, tmp_path: Path) -> None:
    station = bare_station
    station.initialize(witness=False)
    station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "k", backup_able=True)
    target = tmp_path / "stick"
    target.mkdir()
    with pytest.raises(KeysteadError):
        _create(station, target)
    assert list(target.iterdir()) == []
    assert station(station.ws.backup.backups) == []
    assert [e.outcome for e in station.events("backup.create")] == ["denied"]
