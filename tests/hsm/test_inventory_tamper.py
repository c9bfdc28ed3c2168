"""F22: a key record edited directly in the decrypted database (the audit chain untouched) fails
``audit verify``: the chain's last recorded values per key are replayed and every record that
differs is named with the entry that says otherwise. Siblings: each column the chain vouches
for, a vanished record, a record without history; and a clean, varied history still verifies
(no false alarm)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.audit import Fault
from app.domain.lifecycle import Action
from app.errors import KeyUseRefused
from tests.support import Bench

pytestmark = pytest.mark.hsm


def sql(bench: Bench, statement: str, *params: Any) -> None:
    """Tamper with the decrypted database directly, as someone with the database key could."""

    def run() -> None:
        with bench.ws.db.transaction():
            bench.ws.db.execute(statement, params)

    bench(run)


def verify(bench: Bench) -> Any:
    return bench(bench.ws.audit.verify)


def compromised_k6(bench: Bench) -> Any:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "k6")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    bench(bench.ws.lifecycle.transition, key.id, Action.COMPROMISE, "laptop stolen")
    return key


def compromise_seq(bench: Bench, key_id: str) -> int:
    return max(e.seq for e in bench.events(key_id) if e.action == "key.compromise")


def test_state_edited_from_compromised_to_active_fails_verification(bench: Bench) -> None:
    key = compromised_k6(bench)
    assert verify(bench).ok
    sql(bench, "UPDATE keys SET state = 'ACTIVE' WHERE id = ?", key.id)
    report = verify(bench)
    assert not report.ok and report.fault is Fault.INVENTORY
    seq = compromise_seq(bench, key.id)
    assert report.differences == [
        f"'k6' has state ACTIVE in the inventory but the audit chain's last state is "
        f"COMPROMISED (entry #{seq})"
    ]
    assert report.bad_seq == seq
    assert "changed outside Keystead" in report.summary() and "\n" not in report.summary()
    verified = [e for e in bench.events() if e.action == "audit.verify"][-1]
    assert verified.outcome == "failed" and verified.details["differences"]


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("state", "DESTROYED", "state"),
        ("extractable", 1, "backup-able"),
        ("token_serial", "0000feedbeef0000", "token"),
        ("cka_id", "00" * 16, "CKA_ID"),
        ("deactivation_date", "2099-01-01T00:00:00+00:00", "deactivation date"),
        ("compromise_date", None, "compromise date"),
        ("activation_date", None, "activation date"),
    ],
)
def test_each_vouched_column_edited_is_named(
    bench: Bench, column: str, value: Any, words: str
) -> None:
    key = compromised_k6(bench)
    other = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "untouched")
    sql(bench, f"UPDATE keys SET {column} = ? WHERE id = ?", value, key.id)  # noqa: S608
    report = verify(bench)
    assert report.fault is Fault.INVENTORY, report.summary()
    assert len(report.differences) == 1, report.differences
    assert report.differences[0].startswith(f"'k6' has {words} ")
    assert "untouched" not in report.detail and other.id not in report.detail


def test_deleted_record_is_named_as_missing(bench: Bench) -> None:
    key = compromised_k6(bench)
    sql(bench, "PRAGMA foreign_keys = OFF")
    sql(bench, "DELETE FROM keys WHERE id = ?", key.id)
    report = verify(bench)
    assert report.fault is Fault.INVENTORY
    created = min(e.seq for e in bench.events(key.id) if e.action == "key.generate")
    assert report.differences == [
        f"'k6' ({key.id}) is missing from the inventory but the audit chain records it "
        f"(created in entry #{created})"
    ]


def test_record_without_history_is_named(bench: Bench) -> None:
    key = compromised_k6(bench)
    columns = [r[1] for r in bench(bench.ws.db.query, "PRAGMA table_info(keys)")]
    chosen = ", ".join(columns)
    picked = ", ".join(
        "'11111111-2222-3333-4444-555555555555'" if c == "id" else "'planted'" if c == "name"
        else "'ab' || cka_id" if c == "cka_id" else c
        for c in columns
    )
    sql(bench, f"INSERT INTO keys ({chosen}) SELECT {picked} FROM keys WHERE id = ?", key.id)  # noqa: S608
    report = verify(bench)
    assert report.fault is Fault.INVENTORY
    assert report.differences == [
        "'planted' (11111111-2222-3333-4444-555555555555) is in the inventory but the audit "
        "chain never recorded its creation"
    ]


def test_varied_clean_history_verifies(bench: Bench) -> None:
    """Every kind of recorded change replays to the inventory: no false alarm."""
    now = datetime.now(UTC)
    a = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "a")
    b = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "b", backup_able=True)
    bench(bench.ws.lifecycle.edit, a.id, deactivation_date=now + timedelta(days=400))
    bench(bench.ws.lifecycle.edit, a.id, name="a-renamed", notes="n", tags=("t",))
    for action in (Action.ACTIVATE, Action.SUSPEND, Action.RESUME, Action.DEACTIVATE):
        bench(bench.ws.lifecycle.transition, a.id, action, "because")
    bench(bench.ws.lifecycle.transition, a.id, Action.DESTROY, confirm_name="a-renamed")
    bench(bench.ws.lifecycle.transition, b.id, Action.ACTIVATE)
    bench(bench.ws.lifecycle.transition, b.id, Action.COMPROMISE, "lost")
    bench(bench.ws.lifecycle.transition, b.id, Action.DESTROY, confirm_name="b")
    bench(bench.ws.keys.generate, "Life", Algorithm.RSA_2048, "r")
    report = verify(bench)
    assert report.ok, report.summary()


# --- the token's refusal of a use, in words ---------------------------------------------------


def test_encrypt_with_a_compromised_key_edited_to_active_names_key_and_token(
    bench: Bench, tmp_path: Path
) -> None:
    key = compromised_k6(bench)
    sql(bench, "UPDATE keys SET state = 'ACTIVE' WHERE id = ?", key.id)
    plain = tmp_path / "hi.txt"
    plain.write_bytes(b"hi")
    out = tmp_path / "hi.enc"
    with pytest.raises(KeyUseRefused) as caught:
        bench(bench.ws.use.encrypt_file, "k6", plain, out)
    text = caught.value.message
    assert "Token 'Life' refuses encryption with key 'k6'" in text
    assert "CKA_ENCRYPT" in text and "audit verify" in text and "\n" not in text
    assert not out.exists()


def test_decrypt_with_a_suspended_key_edited_to_active_is_refused_in_words(
    bench: Bench, tmp_path: Path
) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "s1")
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"secret text")
    sealed = tmp_path / "p.enc"
    bench(bench.ws.use.encrypt_file, key.id, plain, sealed)
    bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "audit")
    sql(bench, "UPDATE keys SET state = 'ACTIVE' WHERE id = ?", key.id)
    with pytest.raises(KeyUseRefused, match="refuses decryption with key 's1'"):
        bench(bench.ws.use.decrypt_file, key.id, sealed, tmp_path / "back.txt")
    assert not (tmp_path / "back.txt").exists()


def test_sign_with_a_suspended_key_edited_to_active_is_refused_in_words(
    bench: Bench, tmp_path: Path
) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.RSA_2048, "e1", Purpose.SIGNING)
    bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    bench(bench.ws.lifecycle.transition, key.id, Action.SUSPEND, "audit")
    sql(bench, "UPDATE keys SET state = 'ACTIVE' WHERE id = ?", key.id)
    data = tmp_path / "d.txt"
    data.write_bytes(b"data")
    with pytest.raises(KeyUseRefused, match=r"refuses signing with key 'e1'.*CKA_SIGN"):
        bench(bench.ws.use.sign_file, key.id, data, tmp_path / "d.sig")
    assert not (tmp_path / "d.sig").exists()
