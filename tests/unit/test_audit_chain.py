"""The canonical encoding built from stored texts equals the documented one, for any values."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.domain.audit import AuditEntry, canonical, hash_of, verify_chain

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.integers(1, 10**9),
    st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
    st.text(max_size=20),
    st.text(max_size=40),
    st.sampled_from(["success", "denied"]),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_stored_text_encoding_is_the_canonical_one(
    seq: int,
    ts: str,
    operators: list[str],
    action: str,
    subject: str,
    outcome: str,
    details: dict[str, Any],
) -> None:
    entry = AuditEntry.of(seq, ts, operators, action, subject, outcome, details)
    assert entry.canonical() == canonical(seq, ts, operators, action, subject, outcome, details)
    assert entry.details == details and list(entry.operators) == operators


def test_offline_chain_without_macs_verifies_and_lists_unsealed() -> None:
    prev = bytes(32)
    chain = []
    for seq in range(1, 6):
        entry = AuditEntry.of(
            seq, f"2026-01-0{seq}", ["a"], "key.generate", "key:x", "success", {"n": seq}, prev
        )
        entry = AuditEntry(
            entry.seq,
            entry.ts,
            entry.operators_json,
            entry.action,
            entry.subject,
            entry.outcome,
            entry.details_json,
            prev,
            hash_of(entry),
        )
        chain.append(entry)
        prev = entry.entry_hash
    report = verify_chain(chain)
    assert report.ok and report.entries == 5 and report.unmaced == [1, 2, 3, 4, 5]
