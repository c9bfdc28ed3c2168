"""The usage counter (from the audit chain) and per-purpose usage limits that make a key due."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.domain.usage import UsageTally, usage_warning
from app.errors import ValidationError
from app.services.policy import UsageLimits, load_usage_limits
from tests.hsm.kit import TOKEN, Station

pytestmark = pytest.mark.hsm


def test_shipped_limits_load_and_name_sp_800_38d() -> None:
    limits = load_usage_limits()
    assert limits.limits[Purpose.ENCRYPTION]["invocations"] == 2**32
    assert 0 < limits.limits[Purpose.ENCRYPTION]["files"] < 2**17
    assert 0 < limits.warn_fraction <= 1


@pytest.mark.parametrize(
    "text",
    [
        "warn_fraction = 0\n",
        "[limits.encryption]\nsignatures = 5\n",
        "[limits.encryption]\nfiles = 0\n",
        "[limits.nonsense]\nfiles = 5\n",
        "not toml [",
    ],
)
def test_bad_limit_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    with pytest.raises(ValidationError):
        load_usage_limits(path)


def test_usage_warning_at_the_fraction_and_at_the_limit() -> None:
    limits = {Purpose.ENCRYPTION: {"files": 10}}
    assert usage_warning(Purpose.ENCRYPTION, UsageTally(8, 8, 8), limits, 0.9) is None
    assert "near" in (usage_warning(Purpose.ENCRYPTION, UsageTally(9, 9, 9), limits, 0.9) or "")
    assert "reached" in (
        usage_warning(Purpose.ENCRYPTION, UsageTally(10, 10, 10), limits, 0.9) or ""
    )
    assert usage_warning(Purpose.SIGNING, UsageTally(10**9, 0, 0), limits, 0.9) is None


def test_counter_follows_each_use_and_a_limit_makes_the_key_due(
    station: Station, tmp_path: Path
) -> None:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "gcm", Purpose.ENCRYPTION)
    key = station(station.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    source = tmp_path / "plain.bin"
    source.write_bytes(b"x" * (2 * 1024 * 1024 + 5))  # three 1 MiB chunks
    for n in range(3):
        station(station.ws.use.encrypt_file, key.id, source, tmp_path / f"c{n}")
    # A refused use counts nothing.
    with pytest.raises(ValidationError):
        station(station.ws.use.encrypt_file, key.id, source, tmp_path / "c0")
    tally = station(station.ws.use.tallies, key.id)[key.id]
    assert tally == UsageTally(uses=3, invocations=9, files=3)
    assert station(station.ws.use.usage_count, key.id) == 3
    item = next(i for i in station(station.ws.keys.inventory) if i.record and i.record.id == key.id)
    assert item.uses == 3 and item.usage_due == ""

    station.ws.usage_limits = UsageLimits({Purpose.ENCRYPTION: {"invocations": 10}}, 0.9)
    item = next(i for i in station(station.ws.keys.inventory) if i.record and i.record.id == key.id)
    assert item.usage_due.startswith("usage limit near: AES-GCM invocations 9 of 10")
    station(station.ws.use.encrypt_file, key.id, source, tmp_path / "c9")
    due = station(station.ws.use.usage_due, station(station.ws.keys.repo.all))
    assert due[key.id].startswith("usage limit reached")
