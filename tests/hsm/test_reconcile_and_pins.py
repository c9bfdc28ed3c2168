"""Reconciliation with what pkcs11-tool does to the token, adoption, and Keystead's own count
of wrong PINs (SoftHSM never locks)."""

from __future__ import annotations

import subprocess

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import Presence
from app.errors import PinBackoff, TokenNotPresent, ValidationError, WrongPin
from tests.support import PIN, Bench, pkcs11_tool

pytestmark = pytest.mark.hsm


def presence(bench: Bench) -> dict[str, Presence]:
    return {item.name: item.presence for item in bench(bench.ws.keys.inventory)}


def test_pkcs11_tool_keys_are_unmanaged_then_adopted(bench: Bench) -> None:
    pkcs11_tool(
        bench.home,
        "--token-label",
        "Life",
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "0a0b",
        "--label",
        "peer-key",
    )
    pkcs11_tool(
        bench.home,
        "--token-label",
        "Life",
        "--keygen",
        "--key-type",
        "AES:32",
        "--id",
        "0c0d",
        "--label",
        "peer-aes",
    )
    items = {i.name: i for i in bench(bench.ws.keys.inventory)}
    assert items["peer-key"].presence is Presence.UNMANAGED
    assert items["peer-key"].token_object is not None
    assert items["peer-key"].token_object.algorithm is Algorithm.EC_P256
    assert items["peer-aes"].presence is Presence.UNMANAGED

    ec = bench(bench.ws.keys.adopt, "Life", "0a0b")
    assert (ec.name, ec.algorithm, ec.purpose, ec.cka_id) == (
        "peer-key",
        Algorithm.EC_P256,
        Purpose.SIGNING,
        "0a0b",
    )
    der = bench.home.root / "peer.der"
    pkcs11_tool(
        bench.home,
        "--token-label",
        "Life",
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "0a0b",
        "--output-file",
        str(der),
    )
    import hashlib

    assert ec.fingerprint == hashlib.sha256(der.read_bytes()).hexdigest()
    aes = bench(bench.ws.keys.adopt, "Life", "0c:0d", "renamed-aes")
    assert aes.algorithm is Algorithm.AES_256 and aes.kcv and aes.name == "renamed-aes"
    assert presence(bench) == {"peer-key": Presence.PRESENT, "renamed-aes": Presence.PRESENT}
    events = [(e.action, e.outcome) for e in bench.events(ec.id)]
    assert events == [("key.adopt", "success")]
    with pytest.raises(ValidationError, match="already managed"):
        bench(bench.ws.keys.adopt, "Life", "0a0b", "again")


def test_record_whose_object_is_gone_is_missing_and_kept(bench: Bench) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "vanishing")
    pkcs11_tool(
        bench.home,
        "--token-label",
        "Life",
        "--delete-object",
        "--type",
        "secrkey",
        "--id",
        key.cka_id,
    )
    assert presence(bench) == {"vanishing": Presence.MISSING}
    assert bench(bench.ws.keys.resolve, "vanishing") == key  # nothing deleted automatically
    assert bench(bench.ws.keys.details, key.id).presence is Presence.MISSING


def test_not_logged_in_means_unchecked(bench: Bench) -> None:
    bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "k")
    serial = bench.ws.tokens.logged_in()[0].info.serial
    bench(bench.ws.tokens.logout, serial)
    assert presence(bench) == {"k": Presence.UNCHECKED}


def test_wrong_pins_are_counted_throttled_audited_and_remembered(bench: Bench) -> None:
    serial = bench.ws.tokens.logged_in()[0].info.serial
    bench(bench.ws.tokens.logout, serial)
    for expected in (1, 2, 3):
        with pytest.raises(WrongPin) as caught:
            bench(bench.ws.tokens.login, "Life", "000000")
        assert caught.value.failures == expected
    assert "waits 5 s" in caught.value.message
    with pytest.raises(PinBackoff) as backoff:
        bench(bench.ws.tokens.login, "Life", PIN)  # even the right PIN waits
    assert 0 < backoff.value.retry_after <= 5
    bench.reopen(login=False)  # the count survives a restart
    assert bench(bench.ws.tokens.statuses)[0].pin_failures == 3
    with pytest.raises(PinBackoff):
        bench(bench.ws.tokens.login, "Life", PIN)
    bench.clock.advance(seconds=6)
    with pytest.raises(WrongPin) as fourth:
        bench(bench.ws.tokens.login, "Life", "111111")
    assert fourth.value.failures == 4 and "10 s" in fourth.value.message
    bench.clock.advance(seconds=11)
    bench(bench.ws.tokens.login, "Life", PIN)
    assert bench(bench.ws.tokens.statuses)[0].pin_failures == 0
    logins = [
        (e.outcome, e.details.get("failures")) for e in bench.events() if e.action == "token.login"
    ]
    assert logins[-7:] == [
        ("failed", 1),
        ("failed", 2),
        ("failed", 3),
        ("denied", 3),
        ("denied", 3),
        ("failed", 4),
        ("success", None),
    ]


def test_tokens_are_chosen_by_label_or_serial(bench: Bench) -> None:
    info = bench.ws.tokens.logged_in()[0].info
    assert bench(bench.ws.tokens.find, info.serial) == bench(bench.ws.tokens.find, "Life")
    with pytest.raises(TokenNotPresent, match="Insert it"):
        bench(bench.ws.tokens.find, "NoSuchToken")


def test_two_tokens_with_one_label_need_a_serial(bench: Bench) -> None:
    bench(bench.ws.tokens.create_soft_token, "Other", "87654321", "123456")
    with pytest.raises(ValidationError, match="already exists"):
        bench(bench.ws.tokens.create_soft_token, "Other", "87654321", "123456")
    # Another tool makes a second token labelled "Life" (Keystead itself refuses to).
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "Life",
            "--pin",
            "1111",
            "--so-pin",
            "22222222",
        ],
        env={"SOFTHSM2_CONF": str(bench.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    bench.reopen(login=False)
    tokens = bench(bench.ws.tokens.present)
    assert sorted(t.label for t in tokens) == ["Life", "Life", "Other"]
    with pytest.raises(ValidationError, match="Several tokens are labelled 'Life'"):
        bench(bench.ws.tokens.find, "Life")
    for token in tokens:  # by serial, each one is unambiguous
        assert bench(bench.ws.tokens.find, token.serial) == token
