"""The capabilities probe on a real SoftHSM token: it finds DESIGN.md's SoftHSM 2.6.1 facts,
and leaves the token exactly as it found it (seen by the session and by pkcs11-tool)."""

from __future__ import annotations

import json
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap, aes_key_wrap_with_padding
from pkcs11 import Attribute

from app.errors import TokenError
from app.hsm.capabilities import (
    KAT_AES_128,
    KAT_AES_192,
    KAT_KEK,
    KAT_SECRET_20,
    Capabilities,
    _Probe,
    probe,
)
from app.services.workstation import Workstation
from tests.support import TOKEN, Bench, peer_objects

pytestmark = pytest.mark.hsm

Snapshot = list[tuple[int, bytes, str]]


def _snapshot(session: pkcs11.Session) -> Snapshot:
    """Every object this application can see on the token (token and session objects)."""
    found = []
    for obj in session.get_objects():
        values = obj.get_attributes([Attribute.CLASS, Attribute.ID, Attribute.LABEL])
        found.append((int(values[Attribute.CLASS]), values[Attribute.ID], values[Attribute.LABEL]))
    return sorted(found)


def _open(ws: Workstation) -> pkcs11.Session:
    """A second read-write session; the workstation's login already covers it."""
    info = ws.tokens.find(TOKEN)
    return ws.tokens.module_of(info).token(info.serial).open(rw=True)


def _probe_logged_in(ws: Workstation) -> tuple[Capabilities, Snapshot, Snapshot]:
    session = _open(ws)
    try:
        before = _snapshot(session)
        capabilities = probe(session)
        return capabilities, before, _snapshot(session)
    finally:
        session.close()


@pytest.fixture
def probed(bench: Bench) -> tuple[Capabilities, Snapshot, Snapshot, Bench]:
    peer_before = peer_objects(bench.home, audit=True)
    capabilities, before, after = bench(_probe_logged_in, bench.ws)
    assert peer_objects(bench.home, audit=True) == peer_before
    return capabilities, before, after, bench


def test_softhsm_gives_the_design_facts(probed: tuple[Capabilities, Any, Any, Bench]) -> None:
    caps = probed[0]
    assert caps.wrap_mechanisms["AES_KEY_WRAP"] is True
    assert caps.wrap_mechanisms["AES_KEY_WRAP_PAD"] is True  # RFC 5649, byte-identical
    assert caps.private_key_wrap == {"RSA": True, "EC": True, "Ed25519": False}
    assert any("KeyNotWrappable" in n for n in caps.notes_for("Ed25519"))
    assert caps.eddsa is True
    assert caps.check_value is True
    assert caps.trusted_wrapping is True
    assert not caps.notes_for("EDDSA") and not caps.notes_for("CHECK_VALUE")


def test_softhsm_zero_pads_unaligned_keys_before_wrapping(
    probed: tuple[Capabilities, Any, Any, Bench],
) -> None:
    """SoftHSM 2.6.1 pads a key value to a multiple of 8 bytes with zeros before wrapping:
    0x210A of a 20-byte secret is RFC 5649 of 24 bytes, and 0x2109 takes it instead of refusing.
    Wrapped PKCS#8 private keys carry the same trailing zeros."""
    caps = probed[0]
    assert caps.wrap_mechanisms["AES_KEY_WRAP_PAD_UNALIGNED"] is False
    assert any(
        "zero-pads the key to 24 bytes" in n for n in caps.notes_for("AES_KEY_WRAP_PAD_UNALIGNED")
    )
    assert any("zero-pads it to 24 bytes" in n for n in caps.notes_for("AES_KEY_WRAP"))
    # Wrapped private keys get the same padding when their PKCS#8 length is not a multiple of
    # 8 (it varies with the random key, so it is not asserted here).


def test_the_probe_leaves_nothing_on_the_token(
    probed: tuple[Capabilities, Snapshot, Snapshot, Bench],
) -> None:
    _, before, after, _ = probed
    assert before, "the workstation's audit keys should be visible"
    assert after == before


def test_capabilities_survive_json_and_explain_each_fact(
    probed: tuple[Capabilities, Any, Any, Bench],
) -> None:
    caps = probed[0]
    assert Capabilities.from_json(json.loads(json.dumps(caps.to_json()))) == caps
    words = caps.words()
    # wrap facts, private-key wrap per family, check value, trusted wrapping, EdDSA, usage
    # enforcement, then one sentence per generation trial
    assert len(words) == (
        len(caps.wrap_mechanisms) + len(caps.private_key_wrap) + 4 + len(caps.generation)
    )
    assert len(caps.generation) == 5
    text = "\n".join(words)
    for expected in (
        "AES key wrap, RFC 3394 (0x2109): works, matches cryptography's output",
        "RFC 5649 padded wrap (0x210A): works, matches cryptography's output.",
        "RFC 5649 padded wrap (0x210A) of a 20-byte secret: not confirmed",
        "Wrapping an RSA private key (0x210A): works",
        "Wrapping an EC private key (0x210A): works",
        "Wrapping an Ed25519 private key (0x210A): does not work (KeyNotWrappable",
        "CKA_CHECK_VALUE on generated AES keys: filled in by the token and correct.",
        "CKA_WRAP_WITH_TRUSTED: enforced",
        "Ed25519 generation and EdDSA sign/verify: works",
        # SoftHSM refuses to sign once CKA_SIGN is cleared, and takes every exact template
        "Usage flags: enforced by the token (with CKA_SIGN cleared the token refused to sign",
        "Generating EC-P256 for signing: with exactly the purpose's usage flags; tried with "
        "session objects.",
        "Generating AES-256 for encryption: with exactly the purpose's usage flags",
        "Generating RSA-2048 for encryption: with exactly the purpose's usage flags",
    ):
        assert expected in text
    assert caps.enforces_usage is True


def test_the_probe_says_nothing_about_key_values(
    probed: tuple[Capabilities, Any, Any, Bench],
) -> None:
    dumped = json.dumps(probed[0].to_json()) + "\n".join(probed[0].words())
    for secret in (KAT_KEK, KAT_AES_128, KAT_AES_192, KAT_SECRET_20):
        assert secret.hex() not in dumped.lower()


def test_a_lost_session_raises_instead_of_answering_false(bench: Bench) -> None:
    def closed_then_probed(ws: Workstation) -> None:
        session = _open(ws)
        session.close()
        probe(session)

    with pytest.raises(TokenError):
        bench(closed_then_probed, bench.ws)


# --- without a token ---------------------------------------------------------------------------


def test_the_known_answer_vectors_are_the_rfc_ones() -> None:
    """RFC 3394 section 4.3 and 4.5 (256-bit KEK), so the comparison cannot drift with
    cryptography; the 20-byte padded vector only checks that padding is used."""
    assert aes_key_wrap(KAT_KEK, KAT_AES_128).hex() == (
        "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7"
    )
    assert aes_key_wrap(KAT_KEK, KAT_AES_192).hex() == (
        "a8f9bc1612c68b3ff6e6f4fbe30e71e4769c8b80a32cb8958cd5d17d6b254da1"
    )
    assert len(aes_key_wrap_with_padding(KAT_KEK, KAT_SECRET_20)) == 32


@pytest.mark.parametrize(
    ("wrapped", "says"),
    [
        (aes_key_wrap_with_padding(KAT_KEK, KAT_SECRET_20 + bytes(4)), "zero-pads the key"),
        (aes_key_wrap(KAT_KEK, KAT_SECRET_20 + bytes([4]) * 4), "PKCS#11 2.40"),
        (aes_key_wrap_with_padding(KAT_KEK, KAT_AES_192), "other key bytes"),
        (bytes(32), "matches neither"),
    ],
)
def test_a_mismatching_padded_wrap_is_diagnosed(wrapped: bytes, says: str) -> None:
    assert says in _Probe._diagnose(wrapped, KAT_SECRET_20)


def _sample(trusted: bool | None = None) -> Capabilities:
    return Capabilities(
        wrap_mechanisms={"AES_KEY_WRAP": False, "AES_KEY_WRAP_PAD": True},
        private_key_wrap={"RSA": True, "EC": False, "Ed25519": False},
        check_value=False,
        trusted_wrapping=trusted,
        eddsa=False,
        notes=(
            "AES_KEY_WRAP: AES_KEY_WRAP not listed by the token",
            "EC: MechanismInvalid while generating a EC key pair",
            "WRAP_WITH_TRUSTED: no AES wrap mechanism works to test it with",
        ),
    )


@pytest.mark.parametrize("trusted", [True, False, None])
def test_json_round_trip_keeps_every_answer(trusted: bool | None) -> None:
    caps = _sample(trusted)
    assert Capabilities.from_json(json.loads(json.dumps(caps.to_json()))) == caps


def test_words_give_the_reason_for_what_does_not_work() -> None:
    words = _sample().words()
    assert (
        "AES key wrap, RFC 3394 (0x2109): not confirmed (AES_KEY_WRAP not listed by the token)."
        in words
    )
    assert any(
        w.startswith("Wrapping an EC private key (0x210A): does not work (Mechanism") for w in words
    )
    assert "CKA_CHECK_VALUE on generated AES keys: not confirmed." in words
    assert any("could not be determined (no AES wrap mechanism" in w for w in words)
    assert "Ed25519 generation and EdDSA sign/verify: does not work." in words


@pytest.mark.parametrize(
    "change",
    [
        {"wrap_mechanisms": {"AES_KEY_WRAP": "yes"}},
        {"private_key_wrap": ["RSA"]},
        {"check_value": None},
        {"trusted_wrapping": "maybe"},
        {"eddsa": 1},
        {"notes": "text"},
        {"notes": [1]},
    ],
)
def test_from_json_refuses_malformed_documents(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="capabilities"):
        Capabilities.from_json({**_sample().to_json(), **change})
