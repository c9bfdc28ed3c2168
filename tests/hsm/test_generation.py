"""Key generation on SoftHSM: explicit templates read back, what pkcs11-tool sees, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.algorithms import Algorithm, Purpose, allowed_purposes, usage_for
from app.domain.keys import KeyState
from app.errors import DiskFull, TemplateMismatch, UnsupportedAlgorithm, ValidationError
from app.hsm import templates
from app.storage.repository import KeyRepository
from tests.support import Bench, peer_objects

pytestmark = pytest.mark.hsm

PEER_TYPE = {"AES": "AES", "RSA": "RSA", "EC": "EC", "EdDSA": "EC_EDWARDS"}


def cases() -> list[tuple[Algorithm, Purpose, bool]]:
    out = []
    for i, algorithm in enumerate(Algorithm):
        for j, purpose in enumerate(allowed_purposes(algorithm)):
            if algorithm is Algorithm.RSA_4096 and j:
                continue  # one slow RSA-4096 is enough
            out.append((algorithm, purpose, (i + j) % 2 == 0))
    return out


@pytest.mark.parametrize(("algorithm", "purpose", "backup"), cases())
def test_generated_key_matches_its_purpose(
    bench: Bench, algorithm: Algorithm, purpose: Purpose, backup: bool
) -> None:
    key = bench(bench.ws.keys.generate, "Life", algorithm, "k-1", purpose, backup)
    assert key.state is KeyState.PRE_ACTIVE and key.extractable is backup
    live = bench(bench.ws.keys.details, key.id).token_attributes
    plan = usage_for(algorithm, purpose)
    objects: dict[str, Any]
    if algorithm.symmetric:
        objects = {"SECRET_KEY": plan.secret}
        assert key.kcv and len(key.kcv) == 6 and key.fingerprint is None
    else:
        objects = {"PRIVATE_KEY": plan.private, "PUBLIC_KEY": plan.public}
        assert key.fingerprint and len(key.fingerprint) == 64 and key.kcv is None
    assert set(live) == set(objects)
    for cls, granted in objects.items():
        attrs = live[cls]
        assert attrs["TOKEN"] is True and attrs["PRIVATE"] is True
        assert attrs["LABEL"] == "k-1" and attrs["ID"] == key.cka_id
        flags = {u.value for u in granted}
        for usage in ("ENCRYPT", "DECRYPT", "SIGN", "VERIFY", "WRAP", "UNWRAP", "DERIVE"):
            if usage in attrs:
                assert attrs[usage] is (usage in flags), (cls, usage)
        if cls != "PUBLIC_KEY":
            assert attrs["SENSITIVE"] is True and attrs["ALWAYS_SENSITIVE"] is True
            assert attrs["EXTRACTABLE"] is backup
            assert attrs["NEVER_EXTRACTABLE"] is (not backup)
    # The independent peer sees the same objects.
    seen = [o for o in peer_objects(bench.home) if o.cka_id == key.cka_id]
    kinds = {"Secret"} if algorithm.symmetric else {"Private", "Public"}
    assert {o.kind for o in seen} == kinds
    assert all(o.label == "k-1" for o in seen)
    assert all(o.key_type == PEER_TYPE[algorithm.family.value] for o in seen)


def test_fingerprint_is_sha256_of_the_public_key_pkcs11_tool_exports(bench: Bench) -> None:
    import hashlib

    from tests.support import pkcs11_tool

    key = bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, "fp")
    der = bench.home.root / "pub.der"
    pkcs11_tool(
        bench.home,
        "--token-label",
        "Life",
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        key.cka_id,
        "--output-file",
        str(der),
    )
    assert hashlib.sha256(der.read_bytes()).hexdigest() == key.fingerprint


@pytest.mark.parametrize("name", ["", "   ", "n" * 65, "bad\x00name", "new\nline"])
def test_bad_names_refused_before_the_token(bench: Bench, name: str) -> None:
    before = peer_objects(bench.home)
    with pytest.raises(ValidationError):
        bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, name)
    assert peer_objects(bench.home) == before


def test_duplicate_name_refused(bench: Bench) -> None:
    bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "same")
    count = len(peer_objects(bench.home))
    with pytest.raises(ValidationError, match="already exists"):
        bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, "same")
    assert len(peer_objects(bench.home)) == count


def test_unsupported_algorithm_checked_against_mechanisms(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = bench.ws.tokens.logged_in()[0].module
    real = module.mechanisms
    # A token without EdDSA: the real module's list, minus one mechanism.
    monkeypatch.setattr(
        module, "mechanisms", lambda serial: real(serial) - {"EC_EDWARDS_KEY_PAIR_GEN"}
    )
    with pytest.raises(UnsupportedAlgorithm, match="EC_EDWARDS_KEY_PAIR_GEN"):
        bench(bench.ws.keys.generate, "Life", Algorithm.ED25519, "ed")
    assert peer_objects(bench.home) == []
    assert bench.events()[-1].outcome == "failed"


def test_key_differing_from_template_is_destroyed(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = templates.secret_template

    def sloppy_token(spec: Any) -> Any:  # the token "ignores" SENSITIVE
        template = real(spec)
        template[templates.Attribute.SENSITIVE] = False
        return template

    monkeypatch.setattr("app.hsm.session.secret_template", sloppy_token)
    with pytest.raises(TemplateMismatch, match="SENSITIVE"):
        bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "sloppy")
    assert peer_objects(bench.home) == []
    assert bench(bench.ws.keys.repo.count) == 0


def test_database_failure_after_generation_removes_the_token_object(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(self: KeyRepository, key: Any, spki: Any) -> None:
        raise DiskFull("The disk is full; the change was not saved.")

    monkeypatch.setattr(KeyRepository, "insert", full_disk)
    with pytest.raises(DiskFull):
        bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, "orphan")
    monkeypatch.undo()
    assert peer_objects(bench.home) == []
    assert bench(bench.ws.keys.repo.count) == 0
    failed = bench.events()[-1]
    assert (failed.action, failed.outcome) == ("key.generate", "failed")
    assert failed.details["token_object"] == "destroyed"
