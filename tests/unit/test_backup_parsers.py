"""The manifest, sealed-file and share parsers survive arbitrary input with typed errors only
(hypothesis), and known-good input round-trips."""

from __future__ import annotations

import contextlib
import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backup import format as fmt
from app.backup import shares
from app.errors import BackupIntegrityError

BACKUP_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def sample_manifest() -> fmt.Manifest:
    return fmt.Manifest(
        backup_id=BACKUP_ID,
        generation=3,
        created_at="2026-03-01T09:00:00.000000+00:00",
        workstation="ws",
        audit_checkpoint={"seq": 1},
        kek_check_value="ABCDEF",
        shares={"scheme": "slip39", "identifier": 7, "threshold": 2, "count": 3},
        passphrase=None,
        signer_spki="AAAA",
        keys=(
            fmt.KeyEntry(
                "id", "name", "AES-256", "encryption", "ACTIVE", "ABC123", None, 32, 0, 40
            ),
        ),
        files={n: {"size": 1, "sha256": "0" * 64} for n in fmt.DATA_FILES},
    )


def test_manifest_round_trips() -> None:
    manifest = sample_manifest()
    assert fmt.Manifest.parse(manifest.encode()) == manifest


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_manifest_parser_bytes(data: bytes) -> None:
    with contextlib.suppress(BackupIntegrityError):
        fmt.Manifest.parse(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_manifest_parser_mutated_fields(data: st.DataObject) -> None:
    doc = json.loads(sample_manifest().encode())
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = data.draw(JSON)
    if data.draw(st.booleans()):
        entry = doc.get("keys")
        if isinstance(entry, list) and entry and isinstance(entry[0], dict) and entry[0]:
            field = data.draw(st.sampled_from(sorted(entry[0])))
            entry[0][field] = data.draw(JSON)
    with contextlib.suppress(BackupIntegrityError):
        fmt.Manifest.parse(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_unseal_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(BackupIntegrityError):
        fmt.unseal(bytes(32), BACKUP_ID, fmt.METADATA, data)


def test_seal_binds_the_file_name_and_backup() -> None:
    kek = os.urandom(32)
    sealed = fmt.seal(kek, BACKUP_ID, fmt.METADATA, b"secret metadata")
    assert fmt.unseal(kek, BACKUP_ID, fmt.METADATA, sealed) == b"secret metadata"
    for kek_, backup_id, name in (
        (os.urandom(32), BACKUP_ID, fmt.METADATA),
        (kek, "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", fmt.METADATA),
        (kek, BACKUP_ID, fmt.AUDIT),
    ):
        try:
            fmt.unseal(kek_, backup_id, name, sealed)
        except BackupIntegrityError:
            continue
        raise AssertionError("unsealed under the wrong binding")


SHARE_ERROR = (
    r"A share of \d+ words does not read as SLIP-39 \(.*\)\. Check it against the share card\."
)
WORDS = st.lists(
    st.sampled_from(["academic", "acid", "zero", "zebra", "wisdom", "xyz"]), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), WORDS.map(" ".join)))
def test_share_parser(text: str) -> None:
    try:
        shares.parse(text)
    except shares.ShareError as exc:  # one fixed sentence: the words are never repeated
        assert re.fullmatch(SHARE_ERROR, exc.message)


def test_kek_check_value_is_the_aes_kcv() -> None:
    # FIPS-197 style known answer: AES-256 of the zero block under the zero key.
    assert fmt.kek_check_value(bytes(32)) == "DC95C0"


def _entry(algorithm: str, value_len: int, wrapped_len: int) -> fmt.KeyEntry:
    return fmt.KeyEntry(
        "id", "k1", algorithm, "encryption", "ACTIVE", "ABC123", None, value_len, 0, wrapped_len
    )


def test_an_entrys_kind_follows_its_algorithm() -> None:
    """F0: value_len 0 marks a private key; an AES entry's length comes from its algorithm."""
    for algorithm, length in (("AES-128", 16), ("AES-192", 24), ("AES-256", 32)):
        wrapped = (length + 7) // 8 * 8 + 8
        assert fmt.unwrap_length(_entry(algorithm, length, wrapped), strict=True) == length
        # Written before the fix (restored / imported key): read by its algorithm, except by
        # the read-back of a backup being written.
        assert fmt.unwrap_length(_entry(algorithm, 0, wrapped)) == length
        with pytest.raises(BackupIntegrityError, match="marks it as a private key"):
            fmt.unwrap_length(_entry(algorithm, 0, wrapped), strict=True)
        with pytest.raises(BackupIntegrityError, match="marks it as a 8-byte value"):
            fmt.unwrap_length(_entry(algorithm, 8, wrapped))
        with pytest.raises(BackupIntegrityError, match="its wrapping has"):
            fmt.unwrap_length(_entry(algorithm, length, wrapped + 8))
    for algorithm in ("RSA-2048", "EC-P256", "EC-P384", "RSA-4096"):
        assert fmt.unwrap_length(_entry(algorithm, 0, 1224), strict=True) == 0
        with pytest.raises(BackupIntegrityError, match="private key but its entry gives"):
            fmt.unwrap_length(_entry(algorithm, 32, 1224))
