"""One canonical encoding: the writer (``append_event`` / ``AuditEntry.canonical``) and the
streaming verifier (``verify_chain`` over stored rows) hash the same bytes for any entry, and
those bytes are the documented JSON (docs/audit-verification.md). Damage to a random entry of a
random chain is named at that entry, whether the verifier reads rows or ``AuditEntry`` values."""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.audit import (
    DOMAIN_TAG,
    GENESIS,
    AuditEntry,
    Checkpoint,
    Fault,
    canonical,
    hash_of,
    stored_canonical,
    verify_chain,
)
from app.storage.database import Database
from app.storage.events import append_event, iter_event_rows, list_events

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # UTF-8 encodable
entries = st.tuples(
    st.lists(texts, min_size=1, max_size=3),
    texts,
    texts,
    st.sampled_from(["success", "denied", "failed", "aborted"]),
    st.dictionaries(texts, json_values, max_size=5),
)


def documented(
    seq: int,
    ts: str,
    operators: list[str],
    action: str,
    subject: str,
    outcome: str,
    details: dict[str, Any],
) -> bytes:
    """docs/audit-verification.md, written out independently of Keystead's code."""
    body = {
        "seq": seq,
        "ts": ts,
        "operators": operators,
        "action": action,
        "subject": subject,
        "outcome": outcome,
        "details": details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
    expected = json.dumps(
        {
            "seq": seq,
            "ts": ts,
            "operators": operators,
            "action": action,
            "subject": subject,
            "outcome": outcome,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode(errors="surrogatepass")  # (lone surrogates: compared byte for byte all the same)
    try:
        written = entry.canonical()
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8: refused by every path
        for call in (
            lambda: canonical(seq, ts, operators, action, subject, outcome, details),
            lambda: stored_canonical(*entry[:7]),
        ):
            try:
                call()
            except UnicodeEncodeError:
                continue
            raise AssertionError("one path encoded what another refused") from None
        return
    assert written == expected
    assert canonical(seq, ts, operators, action, subject, outcome, details) == expected
    assert stored_canonical(*entry[:7]) == expected
    assert entry.details == details and list(entry.operators) == operators


KEY = bytes(range(32))


def _seal(digest: bytes) -> bytes:
    """Stands in for the audit token's HMAC (tests/hsm/test_audit.py uses the real one)."""
    return hmac.new(b"test mac key", digest, hashlib.sha256).digest()


def _check(digest: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(_seal(digest), mac)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries, min_size=1, max_size=12))
def test_what_the_writer_stores_the_streaming_verifier_accepts(
    written: list[tuple[list[str], str, str, str, dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.create(Path(tmp) / "t.db", KEY)
        try:
            db.sealer = _seal
            start = datetime(2026, 11, 30, tzinfo=UTC)
            for i, (operators, action, subject, outcome, details) in enumerate(written):
                with db.transaction():
                    append_event(
                        db,
                        when=start + timedelta(seconds=i),
                        operators=tuple(operators),
                        action=action,
                        subject=subject,
                        outcome=outcome,
                        details=details,
                    )
            rows = list(iter_event_rows(db))
            objects = list_events(db)
        finally:
            db.close()
    prev = GENESIS
    for row, (operators, action, subject, outcome, details) in zip(rows, written, strict=True):
        seq, ts = row[0], row[1]
        # The stored hash is SHA-256 over the documented bytes: the writer used the encoding.
        data = documented(seq, ts, operators, action, subject, outcome, details)
        assert row[8] == hashlib.sha256(DOMAIN_TAG + data + prev).digest()
        prev = row[8]
    by_rows = verify_chain(rows, _check)
    assert by_rows.ok, by_rows.summary()
    assert by_rows.entries == len(written) == by_rows.macs_checked
    assert verify_chain(objects, _check) == by_rows


def _chain(n: int) -> list[AuditEntry]:
    prev, chain = GENESIS, []
    for seq in range(1, n + 1):
        entry = AuditEntry.of(
            seq, f"2026-01-01T00:00:{seq:02d}", ["a"], "key.generate", f"key:{seq}", "success",
            {"n": seq}, prev,
        )
        entry = entry._replace(entry_hash=hash_of(entry), mac=_seal(hash_of(entry)))
        chain.append(entry)
        prev = entry.entry_hash
    return chain


FIELDS = {"ts": 1, "operators_json": 2, "action": 3, "subject": 4, "outcome": 5, "details_json": 6}


@given(st.integers(3, 12), st.data())
def test_a_changed_entry_is_named_the_same_from_rows_and_from_objects(n: int, data: Any) -> None:
    chain = _chain(n)
    k = data.draw(st.integers(1, n), label="entry")
    field = data.draw(st.sampled_from(sorted(FIELDS)), label="field")
    value = {"operators_json": '["b"]', "details_json": '{"n":-1}', "ts": "2026-01-01T00:00:00"}
    chain[k - 1] = chain[k - 1]._replace(**{field: value.get(field, "changed")})
    rows = [tuple(e) for e in chain]
    report = verify_chain(rows, _check)
    assert (report.fault, report.bad_seq) == (Fault.MODIFIED, k)
    assert verify_chain(chain, _check) == report


@given(st.integers(3, 12), st.data())
def test_deleted_swapped_and_truncated_entries_are_named(n: int, data: Any) -> None:
    chain = _chain(n)
    k = data.draw(st.integers(1, n - 1), label="entry")
    deleted = chain[: k - 1] + chain[k:]
    report = verify_chain([tuple(e) for e in deleted])
    assert (report.fault, report.bad_seq) == (Fault.MISSING, k)
    swapped = list(chain)
    swapped[k - 1], swapped[k] = swapped[k], swapped[k - 1]
    assert verify_chain(swapped).bad_seq == k and not verify_chain(swapped).ok
    head = Checkpoint("ws", n, chain[-1].entry_hash, "t")
    assert verify_chain(chain, None, [head]).ok
    cut = verify_chain([tuple(e) for e in chain[:k]], None, [head], lambda _: True)
    assert (cut.fault, cut.bad_seq) == (Fault.TRUNCATED, k + 1)
    other = Checkpoint("ws", k, b"\x01" * 32, "t")
    assert verify_chain(chain, None, [other]).fault is Fault.CHECKPOINT_MISMATCH


def test_a_forged_mac_and_a_missing_one_are_named() -> None:
    chain = _chain(5)
    chain[2] = chain[2]._replace(mac=b"\x00" * 32)
    report = verify_chain([tuple(e) for e in chain], _check)
    assert (report.fault, report.bad_seq, report.macs_checked) == (Fault.MAC_INVALID, 3, 2)
    chain[2] = chain[2]._replace(mac=None)
    report = verify_chain([tuple(e) for e in chain], _check)
    assert (report.fault, report.bad_seq) == (Fault.MAC_MISSING, 3)


def test_offline_chain_without_macs_verifies_and_lists_unsealed() -> None:
    chain = [e._replace(mac=None) for e in _chain(5)]
    report = verify_chain(chain)
    assert report.ok and report.entries == 5 and report.unmaced == [1, 2, 3, 4, 5]


def test_an_old_row_without_a_link_still_verifies() -> None:
    """Rows written before the chain column existed may hold NULL for the genesis link."""
    chain = _chain(3)
    rows = [tuple(e) for e in chain]
    rows[0] = (*rows[0][:7], None, *rows[0][8:])
    assert verify_chain(rows, _check).ok


def _labelled_chain(rows: list[tuple[str, str, bool]]) -> list[AuditEntry]:
    """Entries (action, outcome, has a MAC) linked into a valid chain; the MAC is b"ok"."""
    prev = bytes(32)
    chain = []
    for seq, (action, outcome, maced) in enumerate(rows, start=1):
        made = AuditEntry.of(
            seq, f"2026-01-01T00:00:{seq:02d}", ["a"], action, "s", outcome, {}, prev
        )
        made = made._replace(prev_hash=prev)
        made = made._replace(entry_hash=hash_of(made), mac=b"ok" if maced else None)
        chain.append(made)
        prev = made.entry_hash
    return chain


def test_the_summary_says_how_many_carry_no_mac_and_why() -> None:
    """Outside testers: about 30 % of entries carry no token MAC (unlock, login, lock by design)
    and the summary did not say so; an auditor was surprised."""
    rows = [
        ("workstation.unlock", "success", False),
        ("token.login", "success", False),
        ("key.generate", "success", True),
        ("key.destroy", "denied", False),
        ("key.activate", "success", True),
        ("workstation.lock", "success", False),
        ("workstation.unlock", "success", False),
        ("key.suspend", "success", True),
        ("key.resume", "success", True),
        ("key.deactivate", "success", True),
    ]
    report = verify_chain(_labelled_chain(rows), mac_check=lambda digest, mac: mac == b"ok")
    assert report.ok and report.macs_checked == 5
    assert report.unmaced_actions == {
        "workstation.unlock": 2,
        "token.login": 1,
        "key.destroy denied": 1,
        "workstation.lock": 1,
    }
    summary = report.summary()
    assert "10 entries verified" in summary and "5 token MACs valid" in summary
    assert "5 (50 %) carry no token MAC by design" in summary
    note = report.unmaced_note()
    assert note.startswith("Entries without a token MAC (5): workstation.unlock 2, ")
    assert "key.destroy denied 1" in note and "By design" in note
    # Every entry sealed: nothing to explain.
    sealed = verify_chain(_labelled_chain([("key.generate", "success", True)]), lambda d, m: True)
    assert sealed.unmaced_note() == "" and "MAC by design" not in sealed.summary()
    # A successful change without its MAC is not "by design": verification fails there.
    forged = verify_chain(_labelled_chain([("key.generate", "success", False)]), lambda d, m: True)
    assert not forged.ok and forged.bad_seq == 1
