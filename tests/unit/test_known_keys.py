"""The one known-key check (app/domain/known_keys.py, KS-DIST-KNOWN-KEY) that import-wrapped,
restore and adopt share: by record id, by algorithm + KCV, by SPKI fingerprint; retired first;
a live verify-only record does not hold its private key."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord, KeyState
from app.domain.known_keys import KnownKeys

WHEN = datetime(2026, 11, 30, tzinfo=UTC)


def _key(
    key_id: str,
    algorithm: Algorithm,
    state: KeyState = KeyState.ACTIVE,
    kcv: str | None = None,
    fingerprint: str | None = None,
    serial: str = "s1",
) -> KeyRecord:
    purpose = Purpose.ENCRYPTION if algorithm.symmetric else Purpose.SIGNING
    return KeyRecord(
        key_id,
        f"name-{key_id}",
        algorithm,
        purpose,
        state,
        serial,
        "t",
        "00",
        True,
        kcv,
        fingerprint,
        WHEN,
        "officer",
    )


def test_matches_by_id_kcv_and_fingerprint_retired_first() -> None:
    held = KnownKeys(
        [
            _key("a", Algorithm.AES_256, kcv="ABC123"),
            _key("b", Algorithm.AES_256, KeyState.DESTROYED_COMPROMISED, kcv="abc123"),
            _key("c", Algorithm.EC_P256, fingerprint="ff" * 32),
        ]
    )
    found = held.holding(Algorithm.AES_256, "abc123", None)
    assert found is not None and found.record.id == "b" and found.retired
    assert "never brought back" in found.describe() and "KCV ABC123" in found.describe()
    assert held.holding(Algorithm.AES_128, "ABC123", None) is None  # another algorithm
    assert held.holding(Algorithm.AES_256, "000000", None, "a").record.id == "a"  # type: ignore[union-attr]
    pair = held.holding(Algorithm.EC_P256, None, "FF" * 32)
    assert pair is not None and pair.record.id == "c" and not pair.retired
    assert "which this workstation holds" in pair.describe()
    assert held.holding(Algorithm.EC_P256, None, "ee" * 32) is None


def test_a_live_verify_only_record_does_not_hold_the_private_key() -> None:
    public = _key("p", Algorithm.EC_P256, fingerprint="aa" * 32, serial="")
    assert KnownKeys([public]).holding(Algorithm.EC_P256, None, "aa" * 32) is None
    retired = public._replace(state=KeyState.COMPROMISED)
    assert KnownKeys([retired]).holding(Algorithm.EC_P256, None, "aa" * 32) is not None
