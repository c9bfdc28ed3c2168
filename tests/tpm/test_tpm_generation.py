"""Key generation and the capability probe on a TPM 2.0 through tpm2-pkcs11 1.9.

swtpm runs behind the tpm2-abrmd resource manager (``tests/tpm/swtpm.py``): the transient
objects a failing generation leaves loaded are flushed by the manager when the client
disconnects (each workstation lock), so no test here calls ``tpm2_flushcontext -t``.

Measured facts these tests pin down (docs/architecture.md): tpm2-pkcs11 refuses session
objects, makes EC and RSA key pairs only with sign and decrypt both granted, refuses AES
generation with CKR_FUNCTION_NOT_SUPPORTED although it lists AES_KEY_GEN, and keeps signing
after CKA_SIGN was cleared.
"""

from __future__ import annotations

import json

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.errors import UnsupportedAlgorithm
from tests.hsm.kit import Station
from tests.tpm.conftest import TPM_LABEL, TPM_PIN
from tests.tpm.swtpm import SwTpm, tpm_tool

pytestmark = pytest.mark.tpm


def tpm_labels(device: SwTpm) -> list[str]:
    """Labels of every object pkcs11-tool lists on tpm1 after logging in."""
    out = tpm_tool(device, "--token-label", TPM_LABEL, "--list-objects", pin=TPM_PIN)
    return [line.split(":", 1)[1].strip() for line in out.splitlines() if "label:" in line]


def details(station: Station, action: str, outcome: str) -> list[dict[str, object]]:
    return [json.loads(e.details_json) for e in station.events(action) if e.outcome == outcome]


@pytest.mark.parametrize(
    ("algorithm", "purpose", "extra"),
    [
        (Algorithm.EC_P256, Purpose.SIGNING, ["DECRYPT", "ENCRYPT"]),
        (Algorithm.RSA_2048, Purpose.SIGNING, ["DECRYPT", "ENCRYPT"]),
        (Algorithm.RSA_2048, Purpose.ENCRYPTION, ["SIGN", "VERIFY"]),
    ],
)
def test_a_pair_the_tpm_makes_only_wider_is_refused_then_made_by_recorded_decision(
    station: Station, use_tpm: SwTpm, algorithm: Algorithm, purpose: Purpose, extra: list[str]
) -> None:
    ws = station.ws
    name = f"tpm-{algorithm.value}-{purpose.value}".lower()
    before = tpm_labels(use_tpm)
    with pytest.raises(UnsupportedAlgorithm) as refused:
        station(ws.keys.generate, TPM_LABEL, algorithm, name, purpose)
    text = refused.value.message
    assert f"makes {algorithm.value} keys only with {' and '.join(extra)} as well" in text
    assert "Nothing was generated" in text and "--allow-wider-usage" in text
    assert station.key_count() == 0
    assert tpm_labels(use_tpm) == before  # the trial's objects are gone too
    failed = details(station, "key.generate", "failed")
    assert failed and "CKR_GENERAL_ERROR" in str(failed[-1]["error"])

    # Known now: refused before the token is asked, and recorded as denied.
    with pytest.raises(UnsupportedAlgorithm, match="as well"):
        station(ws.keys.generate, TPM_LABEL, algorithm, name, purpose)
    denied = details(station, "key.generate", "denied")
    assert denied and denied[-1]["trial"] == {
        "outcome": "wider",
        "extra": extra,
        "reason": denied[-1]["trial"]["reason"],  # type: ignore[index]
        "objects": "token",
    }

    key = station(ws.keys.generate, TPM_LABEL, algorithm, name, purpose, allow_wider=True)
    assert key.purpose is purpose and key.token_label == TPM_LABEL
    assert key.token_serial == f"0000000000000000/{TPM_LABEL}"
    done = details(station, "key.generate", "success")[-1]
    assert done["wider_usage_accepted"] == extra
    held = done["token_usage"]
    assert isinstance(held, dict)
    for flag in extra:
        assert any(flag in flags for flags in held.values())
    # pkcs11-tool sees what Keystead made, with the CKA_ID and label it chose.
    listing = tpm_tool(use_tpm, "--token-label", TPM_LABEL, "--list-objects", pin=TPM_PIN)
    assert key.cka_id in listing.replace(":", "").lower() or key.cka_id in listing
    assert tpm_labels(use_tpm).count(name) == 2  # private and public halves


def test_secret_keys_and_eddsa_are_refused_with_the_reason(station: Station) -> None:
    ws = station.ws
    with pytest.raises(UnsupportedAlgorithm) as aes:
        station(ws.keys.generate, TPM_LABEL, Algorithm.AES_256, "tpm-aes", Purpose.ENCRYPTION)
    assert "cannot generate AES-256 keys" in aes.value.message
    assert "FunctionNotSupported" in aes.value.message
    assert "though the token lists AES_KEY_GEN" in aes.value.message
    # Even the decision to accept wider usage cannot make it: there is nothing to widen to.
    with pytest.raises(UnsupportedAlgorithm, match="cannot generate AES-128 keys for key-wrapping"):
        station(
            ws.keys.generate,
            TPM_LABEL,
            Algorithm.AES_128,
            "tpm-aes2",
            Purpose.KEY_WRAPPING,
            allow_wider=True,
        )
    with pytest.raises(UnsupportedAlgorithm, match="EC_EDWARDS_KEY_PAIR_GEN"):
        station(ws.keys.generate, TPM_LABEL, Algorithm.ED25519, "tpm-ed")
    assert station.key_count() == 0


def test_the_probe_learns_on_token_objects_and_leaves_none(
    station: Station, use_tpm: SwTpm
) -> None:
    before = tpm_labels(use_tpm)
    caps = station(station.ws.inspect.capabilities, TPM_LABEL, True)
    assert tpm_labels(use_tpm) == before
    assert caps.enforces_usage is False
    probe_entry = json.loads(station.events("token.probe")[-1].details_json)
    assert probe_entry["enforces_usage"] is False
    assert "EC-P256/signing" in probe_entry["token_object_trials"]
    by_key = {g.key: g for g in caps.generation}
    assert by_key["EC-P256/signing"].outcome == "wider"
    assert by_key["EC-P256/signing"].objects == "token"
    assert by_key["RSA-2048/encryption"].extra == ("SIGN", "VERIFY")
    assert by_key["AES-256/encryption"].outcome == "refused"
    assert by_key["ED25519/signing"].outcome == "refused"
    words = "\n".join(caps.words())
    assert "Usage flags: NOT enforced: key states are recorded by Keystead" in words
    assert "tried with token objects" in words
    # With the probe kept, the very first generation is refused before the token is asked.
    with pytest.raises(UnsupportedAlgorithm, match="only with DECRYPT and ENCRYPT"):
        station(station.ws.keys.generate, TPM_LABEL, Algorithm.EC_P384, "p384", Purpose.SIGNING)
    assert not [e for e in station.events("key.generate") if e.outcome == "failed"]
