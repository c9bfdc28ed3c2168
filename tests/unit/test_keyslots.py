"""Per-operator keyslots around the random database key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import StorageError, UnknownOperator, WorkstationMissing, WrongPassphrase
from app.storage.keyslots import KdfCost, KeySlotFile, new_database_key

FAST = KdfCost(1024, 1, 1)


def make(tmp_path: Path) -> tuple[KeySlotFile, bytes]:
    slots = KeySlotFile.create(tmp_path / "keyslots.json")
    key = new_database_key()
    slots.add("alice", "alice's passphrase", key, FAST)
    slots.add("bob", "bob's own passphrase", key, FAST)
    slots.save()
    return KeySlotFile.load(slots.path), key


def test_each_operator_opens_the_same_key(tmp_path: Path) -> None:
    slots, key = make(tmp_path)
    assert slots.open("alice", "alice's passphrase") == key
    assert slots.open("bob", "bob's own passphrase") == key
    assert len(key) == 32 and key != new_database_key()


def test_wrong_passphrase_and_unknown_operator(tmp_path: Path) -> None:
    slots, _ = make(tmp_path)
    with pytest.raises(WrongPassphrase, match="alice"):
        slots.open("alice", "bob's own passphrase")  # another operator's passphrase
    with pytest.raises(UnknownOperator):
        slots.open("mallory", "anything at all")


def test_file_holds_no_key_and_no_passphrase(tmp_path: Path) -> None:
    slots, key = make(tmp_path)
    raw = slots.path.read_bytes()
    assert key not in raw and key.hex().encode() not in raw
    assert b"passphrase" not in raw
    assert slots.path.stat().st_mode & 0o077 == 0


def test_damaged_or_missing_file(tmp_path: Path) -> None:
    slots, _ = make(tmp_path)
    doc = json.loads(slots.path.read_text())
    doc["slots"][0]["wrapped_key"] = doc["slots"][0]["wrapped_key"][:-8] + "AAAAAAA="
    slots.path.write_text(json.dumps(doc))
    with pytest.raises((WrongPassphrase, StorageError)):
        KeySlotFile.load(slots.path).open("alice", "alice's passphrase")
    slots.path.write_text("{not json")
    with pytest.raises(StorageError, match="damaged"):
        KeySlotFile.load(slots.path)
    with pytest.raises(WorkstationMissing):
        KeySlotFile.load(tmp_path / "nowhere.json")


def test_operator_name_is_bound_into_the_slot(tmp_path: Path) -> None:
    slots, _ = make(tmp_path)
    doc = json.loads(slots.path.read_text())
    doc["slots"][0]["operator"], doc["slots"][1]["operator"] = "bob", "alice"  # swap names
    slots.path.write_text(json.dumps(doc))
    with pytest.raises(WrongPassphrase):
        KeySlotFile.load(slots.path).open("bob", "alice's passphrase")


@settings(max_examples=25, deadline=None)
@given(
    st.one_of(
        st.text(min_size=12, max_size=64),
        st.sampled_from(
            [
                "quote \" and ' both",
                "back\\slash\\es\\",
                "x'); DROP TABLE keys;--",
                "üñíçødé pässphrase ✓",
                "k" * 1024,
            ]
        ),
    )
)
def test_any_passphrase_round_trips(passphrase: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        slots = KeySlotFile.create(Path(tmp) / "k.json")
        key = new_database_key()
        slots.add("op", passphrase, key, FAST)
        slots.save()
        assert KeySlotFile.load(slots.path).open("op", passphrase) == key
