"""The key transfer file and handed-over public keys: a round trip, every field change caught
by the SHA-256, and fuzzed input raising only the typed errors (never anything else)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import transfer
from app.domain.algorithms import Algorithm, Purpose
from app.domain.public_import import read_public
from app.errors import NotAuthentic, ValidationError

MADE = transfer.TransferFile(
    key_id="k1",
    key_name="zmk",
    algorithm=Algorithm.AES_256,
    purpose=Purpose.ENCRYPTION,
    value_len=32,
    kcv="ABCDEF",
    mechanism=transfer.WrapMechanism.RSA_OAEP_SHA1,
    recipient="00" * 32,
    wrapped=bytes(range(256)),
    workstation="ws",
    operators=("officer", "witness"),
    created_at="2026-11-30T12:00:00+00:00",
)


def test_round_trip_and_the_note_says_sha1() -> None:
    data = MADE.encode()
    assert transfer.decode(data) == MADE
    assert "SHA-1" in json.loads(data)["wrapping"]["note"]


@pytest.mark.parametrize("cut", [1, 10, 100, -2])
def test_truncation_is_caught(cut: int) -> None:
    with pytest.raises(NotAuthentic):
        transfer.decode(MADE.encode()[:cut])


def test_every_changed_field_is_caught_by_the_digest() -> None:
    data = MADE.encode()
    doc = json.loads(data)
    for path in (
        ("key", "kcv"),
        ("key", "name"),
        ("wrapping", "recipient"),
        ("sender", "created_at"),
    ):
        changed = json.loads(data)
        changed[path[0]][path[1]] = str(changed[path[0]][path[1]])[:-1] + "9"
        assert changed != doc
        with pytest.raises(NotAuthentic):
            transfer.decode(json.dumps(changed).encode())
    doc["wrapped"] = doc["wrapped"][::-1]
    with pytest.raises(NotAuthentic):
        transfer.decode(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzzed_transfer_files_raise_only_not_authentic(data: bytes) -> None:
    with pytest.raises(NotAuthentic):
        transfer.decode(data)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=8,
    )
)
def test_fuzzed_json_documents_raise_only_not_authentic(doc: dict[str, object]) -> None:
    doc = {**doc, "format": transfer.FORMAT, "version": transfer.VERSION}
    body = dict(doc)
    body.pop("sha256", None)
    sealed = {**body, "sha256": transfer._digest(body)}
    with pytest.raises(NotAuthentic):
        transfer.decode(json.dumps(sealed).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_fuzzed_public_keys_raise_only_validation_errors(data: bytes) -> None:
    with pytest.raises(ValidationError):
        read_public(data)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(version=True),  # JSON true equals 1 in Python
        lambda d: d.update(extra="field"),
        lambda d: d["key"].update(purpose_note="x"),
        lambda d: d["wrapping"].update(note="no caveat"),
        lambda d: d["key"].update(value_len=str(d["key"]["value_len"])),
    ],
)
def test_a_resealed_file_with_unknown_or_retyped_fields_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(MADE.encode())
    doc.pop("sha256")
    change(doc)
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    doc["sha256"] = __import__("hashlib").sha256(body).hexdigest()  # re-sealed by whoever edits
    with pytest.raises(NotAuthentic):
        transfer.decode(json.dumps(doc).encode())
