"""The one rule for "can a backup ever hold this key" (``app.domain.backup_rules``): Ed25519
never (the backup wrapper has no way for it and SoftHSM refuses to wrap it), the others unless
the token's capability probe found it cannot wrap that family."""

from __future__ import annotations

import pytest

from app.domain.algorithms import Algorithm, Family
from app.domain.backup_rules import (
    RULE_NOT_WRAPPABLE,
    backup_refusal,
    unwrappable_reason,
)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_only_eddsa_is_never_wrappable(algorithm: Algorithm) -> None:
    never = unwrappable_reason(algorithm)
    assert (never is not None) == (algorithm.family is Family.EDDSA)
    refusal = backup_refusal(algorithm, "Vault")
    assert (refusal is not None) == (algorithm.family is Family.EDDSA)
    if refusal is not None:
        assert RULE_NOT_WRAPPABLE in refusal and algorithm.value in refusal
        assert "without 'backup-able'" in refusal  # what to do


def test_a_probe_narrows_the_rule_per_family() -> None:
    probe = {"RSA": True, "EC": False, "Ed25519": False}
    assert backup_refusal(Algorithm.RSA_2048, "Vault", probe) is None
    refusal = backup_refusal(Algorithm.EC_P384, "Vault", probe)
    assert refusal is not None and "Token 'Vault' cannot wrap EC private keys" in refusal
    assert backup_refusal(Algorithm.AES_256, "Vault", {"RSA": False, "EC": False}) is None
    # A family the probe did not try stays allowed (the probe narrows, never widens).
    assert backup_refusal(Algorithm.EC_P256, "Vault", {}) is None
    assert "Ed25519" in (backup_refusal(Algorithm.ED25519, "Vault", {"Ed25519": True}) or "")
