"""Argon2id costs read from files are bounded (app.domain.kdf): the attack report's F18."""

from __future__ import annotations

import pytest

from app.domain.kdf import MAX_ITERATIONS, MAX_MEMORY_KIB, kdf_cost_problem
from app.errors import BackupIntegrityError
from app.services.backup import _passphrase_slot, kek_from_passphrase

PASSPHRASE = "SENTINEL-kdf-bounds-recovery-passphrase"
KEK = bytes(range(32))


def test_what_keystead_writes_is_within_bounds() -> None:
    assert kdf_cost_problem(64 * 1024, 3, 4) is None  # keyslots and backups
    assert kdf_cost_problem(1024, 1, 1) is None  # the tests' fast cost
    assert kdf_cost_problem(MAX_MEMORY_KIB, MAX_ITERATIONS, 16) is None


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes", "words"),
    [
        (MAX_MEMORY_KIB + 1, 3, 4, "memory"),
        (31, 3, 4, "memory"),  # RFC 9106: at least 8 KiB per lane
        (65536, 0, 4, "iterations"),
        (65536, MAX_ITERATIONS + 1, 4, "iterations"),
        (65536, 3, 0, "lanes"),
        (65536, 3, 17, "lanes"),
        (65536, "3", 4, "not a whole number"),
        (65536, 3, True, "not a whole number"),
        (None, 3, 4, "not a whole number"),
    ],
)
def test_out_of_bounds_costs_are_named(
    memory_kib: object, iterations: object, lanes: object, words: str
) -> None:
    problem = kdf_cost_problem(memory_kib, iterations, lanes)
    assert problem is not None and words in problem


def test_a_backup_manifest_naming_a_huge_cost_is_refused_before_argon2id() -> None:
    slot = _passphrase_slot(KEK, PASSPHRASE)
    assert kek_from_passphrase(slot, PASSPHRASE) == KEK
    for field, words, value in (
        ("iterations", "iterations", 60),
        ("memory_kib", "memory", 64 * 1024 * 1024),
        ("lanes", "lanes", 10**6),
    ):
        hostile = {**slot, field: value}
        with pytest.raises(BackupIntegrityError, match=f"refused: its Argon2id {words}"):
            kek_from_passphrase(hostile, PASSPHRASE)
