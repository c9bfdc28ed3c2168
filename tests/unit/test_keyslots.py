"""Per-operator keyslots around the random database key (Argon2id + RFC 5649)."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import (
    AuthenticationError,
    StorageError,
    UnknownOperator,
    WorkstationMissing,
    WrongPassphrase,
)
from app.storage.keyslots import KdfCost, KeySlotFile, new_database_key

FAST = KdfCost(1024, 1, 1)
ALICE = ("alice", "alice's passphrase")
BOB = ("bob", "bob's own passphrase")


def make(directory: Path) -> tuple[KeySlotFile, bytes]:
    slots = KeySlotFile.create(directory / "keyslots.json")
    key = new_database_key()
    slots.add(*ALICE, key, FAST)
    slots.add(*BOB, key, FAST)
    slots.save()
    return KeySlotFile.load(slots.path), key


def rewrite(slots: KeySlotFile, change: Any) -> None:
    doc = json.loads(slots.path.read_text())
    change(doc)
    slots.path.write_text(json.dumps(doc))


def test_two_operators_open_the_same_random_key(tmp_path: Path) -> None:
    slots, key = make(tmp_path)
    assert slots.operators() == ["alice", "bob"]
    assert slots.open(*ALICE) == key
    assert slots.open(*BOB) == key
    assert len(key) == 32 and key != new_database_key()


def test_the_slot_is_argon2id_of_the_passphrase_wrapping_the_key(tmp_path: Path) -> None:
    """Recompute alice's slot with `cryptography` alone, as documented in keyslots.py."""
    slots, key = make(tmp_path)
    doc = json.loads(slots.path.read_text())
    assert doc["format"] == "keystead-keyslots" and doc["version"] == 1
    slot = doc["slots"][0]
    assert (slot["memory_kib"], slot["iterations"], slot["lanes"]) == (1024, 1, 1)
    kek = Argon2id(
        salt=base64.b64decode(slot["salt"]),
        length=32,
        iterations=1,
        lanes=1,
        memory_cost=1024,
        ad=b"alice",
    ).derive(ALICE[1].encode())
    assert aes_key_unwrap_with_padding(kek, base64.b64decode(slot["wrapped_key"])) == key
    assert doc["slots"][0]["salt"] != doc["slots"][1]["salt"]


def test_wrong_passphrase(tmp_path: Path) -> None:
    slots, _ = make(tmp_path)
    for wrong in (BOB[1], ALICE[1] + " ", ALICE[1].upper(), ""):
        with pytest.raises(WrongPassphrase, match="alice") as caught:
            slots.open("alice", wrong)
        assert isinstance(caught.value, AuthenticationError)


def test_unknown_operator(tmp_path: Path) -> None:
    slots, _ = make(tmp_path)
    for name in ("mallory", "Alice", "alice ", ""):
        with pytest.raises(UnknownOperator):
            slots.open(name, ALICE[1])


def test_operator_name_is_bound_into_the_slot(tmp_path: Path) -> None:
    """Swapping the names of two slots does not let one operator's passphrase open the other."""
    slots, _ = make(tmp_path)

    def swap(doc: dict[str, Any]) -> None:
        doc["slots"][0]["operator"], doc["slots"][1]["operator"] = "bob", "alice"

    rewrite(slots, swap)
    with pytest.raises(WrongPassphrase):
        KeySlotFile.load(slots.path).open("bob", ALICE[1])


def test_a_second_slot_for_the_same_operator_is_refused(tmp_path: Path) -> None:
    slots, key = make(tmp_path)
    with pytest.raises(StorageError, match="already has a keyslot"):
        slots.add("alice", "another passphrase", key, FAST)


def test_file_holds_no_key_and_no_passphrase_and_is_private(tmp_path: Path) -> None:
    slots, key = make(tmp_path)
    raw = slots.path.read_bytes()
    for secret in (key, key.hex().encode(), base64.b64encode(key), ALICE[1].encode()):
        assert secret not in raw
    assert b"alice" in raw  # operator names are visible labels (the scan can see text)
    assert slots.path.stat().st_mode & 0o077 == 0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkstationMissing):
        KeySlotFile.load(tmp_path / "nowhere.json")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b"42",
        b'"text"',
        b"{}",
        b'{"format": "keystead-keyslots", "version": 2, "workstation_id": "x", "slots": []}',
        b'{"format": "other", "version": 1, "workstation_id": "x", "slots": []}',
        b'{"format": "keystead-keyslots", "version": 1, "workstation_id": "x"}',
        b'{"format": "keystead-keyslots", "version": 1, "workstation_id": "x", "slots": [1]}',
        b'{"format": "keystead-keyslots", "version": 1, "workstation_id": "x", "slots": [{}]}',
    ],
)
def test_damaged_file_is_a_storage_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keyslots.json"
    path.write_bytes(content)
    with pytest.raises(StorageError, match="damaged"):
        KeySlotFile.load(path).open(*ALICE)
    assert path.read_bytes() == content  # nothing rewritten


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("salt", "not base64!"),
        ("salt", 5),
        ("salt", None),
        ("wrapped_key", "%%%"),
        ("wrapped_key", "AAAA"),  # three bytes: no RFC 5649 output is that short
        ("wrapped_key", base64.b64encode(bytes(24)).decode()),  # the wrong length for 32 bytes
        ("wrapped_key", []),
        ("memory_kib", 0),
        ("memory_kib", "abc"),
        ("iterations", None),
        ("lanes", -1),
    ],
)
def test_damaged_slot_is_a_storage_error_not_a_crash(
    tmp_path: Path, field: str, value: object
) -> None:
    slots, _ = make(tmp_path)

    def damage(doc: dict[str, Any]) -> None:
        doc["slots"][0][field] = value

    rewrite(slots, damage)
    with pytest.raises(StorageError, match="damaged"):
        KeySlotFile.load(slots.path).open(*ALICE)
    assert KeySlotFile.load(slots.path).open(*BOB) is not None  # the other slot still opens


@settings(max_examples=20, deadline=None)
@given(
    st.one_of(
        st.text(min_size=1, max_size=64),
        st.sampled_from(
            [
                "quote \" and ' both",
                "back\\slash\\es\\",
                "x'); DROP TABLE keys;--",
                "üñíçødé pässphrase ✓ 🔑",
                "k" * 1024,
                "\x00 nul inside",
            ]
        ),
    )
)
def test_any_passphrase_round_trips(passphrase: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        slots = KeySlotFile.create(Path(tmp) / "k.json")
        key = new_database_key()
        slots.add("op", passphrase, key, FAST)
        slots.save()
        loaded = KeySlotFile.load(slots.path)
        assert loaded.open("op", passphrase) == key
        with pytest.raises(WrongPassphrase):
            loaded.open("op", passphrase + "x")


# --- Unicode normalisation (issue 9): NFC before Argon2id; older slots keep opening -----------

COMPOSED = "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m"  # NFC
DECOMPOSED = "cafe\u0301 nai\u0308ve A\u030angstro\u0308m"  # the same text, NFD


@pytest.mark.parametrize(
    ("enrolled", "typed"),
    [(COMPOSED, DECOMPOSED), (DECOMPOSED, COMPOSED), ("\ufb01le", "\ufb01le")],
)
def test_the_same_passphrase_in_either_normal_form_opens_the_slot(
    tmp_path: Path, enrolled: str, typed: str
) -> None:
    slots = KeySlotFile.create(tmp_path / "k.json")
    key = new_database_key()
    slots.add("op", enrolled, key, FAST)
    slots.save()
    loaded = KeySlotFile.load(slots.path)
    assert loaded.slots[0].normalization == "NFC"
    assert loaded.open("op", typed) == key
    with pytest.raises(WrongPassphrase):
        loaded.open("op", typed + " ")
    # The slot is Argon2id of the NFC form, as keyslots.py documents.
    slot = json.loads(slots.path.read_text())["slots"][0]
    kek = Argon2id(
        salt=base64.b64decode(slot["salt"]),
        length=32,
        iterations=1,
        lanes=1,
        memory_cost=1024,
        ad=b"op",
    ).derive(COMPOSED.encode() if enrolled in (COMPOSED, DECOMPOSED) else enrolled.encode())
    assert aes_key_unwrap_with_padding(kek, base64.b64decode(slot["wrapped_key"])) == key


@pytest.mark.parametrize("enrolled", [COMPOSED, DECOMPOSED])
@pytest.mark.parametrize("typed", [COMPOSED, DECOMPOSED])
def test_a_slot_written_before_normalisation_keeps_opening(
    tmp_path: Path, enrolled: str, typed: str
) -> None:
    """A keyslot made by an earlier version (passphrase bytes as typed, no "normalization"
    field) opens with the passphrase in the form it was typed then, and in the other form."""
    key = new_database_key()
    salt = b"0123456789abcdef"
    kek = Argon2id(salt=salt, length=32, iterations=1, lanes=1, memory_cost=1024, ad=b"op").derive(
        enrolled.encode()
    )
    doc = {
        "format": "keystead-keyslots",
        "version": 1,
        "workstation_id": "d29ya3N0YXRpb24=",
        "slots": [
            {
                "operator": "op",
                "salt": base64.b64encode(salt).decode(),
                "memory_kib": 1024,
                "iterations": 1,
                "lanes": 1,
                "wrapped_key": base64.b64encode(aes_key_wrap_with_padding(kek, key)).decode(),
            }
        ],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    assert KeySlotFile.load(path).open("op", typed) == key
    with pytest.raises(WrongPassphrase):
        KeySlotFile.load(path).open("op", "cafe")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_kib", 4 * 1024 * 1024),  # 4 GiB: would exhaust the machine's memory
        ("memory_kib", 7),  # below RFC 9106's 8 KiB per lane
        ("iterations", 60),  # the attack report's F18: 20 s per try, unbounded
        ("iterations", 10**9),
        ("lanes", 10**6),
        ("iterations", True),  # JSON true is not a number of passes
        ("memory_kib", 1024.5),
    ],
)
def test_an_edited_argon2_cost_is_refused_before_argon2_runs(
    tmp_path: Path, field: str, value: object
) -> None:
    """A keyslot's stored cost is input: out of bounds it is 'damaged', at once (no hang),
    and the other operator's slot still opens."""
    slots, _ = make(tmp_path)

    def damage(doc: dict[str, Any]) -> None:
        doc["slots"][0][field] = value

    rewrite(slots, damage)
    loaded = KeySlotFile.load(slots.path)
    with pytest.raises(StorageError, match="damaged: its Argon2id"):
        loaded.check_cost(ALICE[0])
    with pytest.raises(StorageError, match="damaged"):
        loaded.open(*ALICE)
    assert KeySlotFile.load(slots.path).open(*BOB) is not None
