"""Lifecycle, adoption and destruction of keys on a TPM 2.0 (tpm2-pkcs11 over swtpm behind
tpm2-abrmd; the resource manager flushes transient objects, no test calls tpm2_flushcontext).

tpm2-pkcs11 1.9 accepts a cleared CKA_SIGN and reports it, yet still signs: every state change
there must say "recorded by Keystead, not enforced by this token", in the record, the audit
entry and the CLI — never "token enforces the state".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState, TokenSync
from app.domain.lifecycle import Action
from app.services.keys import identity_of
from tests.hsm.kit import Station
from tests.tpm.conftest import TPM_LABEL, TPM_PIN
from tests.tpm.swtpm import SwTpm, tpm_tool

pytestmark = pytest.mark.tpm

RECORDED = "recorded by Keystead, not enforced by this token"


def peer_sign(device: SwTpm, cka_id: str, tmp_path: Path, message: bytes) -> bytes:
    """pkcs11-tool signs ``message`` (ECDSA over SHA-256) with the key ``cka_id``; raw r||s."""
    data = tmp_path / "message.bin"
    data.write_bytes(message)
    out = tmp_path / "signature.bin"
    tpm_tool(
        device,
        "--token-label",
        TPM_LABEL,
        "--sign",
        "--id",
        cka_id,
        "-m",
        "ECDSA-SHA256",
        "--input-file",
        str(data),
        "--output-file",
        str(out),
        pin=TPM_PIN,
    )
    return out.read_bytes()


def test_states_are_recorded_not_claimed_enforced_and_the_tpm_still_signs(
    station: Station, use_tpm: SwTpm, tmp_path: Path
) -> None:
    ws = station.ws
    key = station(
        ws.keys.generate,
        TPM_LABEL,
        Algorithm.EC_P256,
        "tpm-life",
        Purpose.SIGNING,
        allow_wider=True,
    )
    active = station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
    assert active.token_sync is TokenSync.RECORDED
    suspended = station(ws.lifecycle.transition, key.id, Action.SUSPEND, "inquiry")
    assert suspended.state is KeyState.SUSPENDED
    assert suspended.token_sync is TokenSync.RECORDED
    assert suspended.token_sync.title == RECORDED
    entry = json.loads(station.events("key.suspend")[-1].details_json)
    assert entry["token_sync"] == "recorded" and entry["token_sync_text"] == RECORDED
    # The token reports the flag cleared ...
    flags = station(lambda: ws.tokens.session(TPM_LABEL).usage(identity_of(key)))
    assert flags["PRIVATE_KEY"]["SIGN"] is False
    # ... and signs anyway: the claim Keystead makes is the true one.
    message = b"suspended, yet signed"
    raw = peer_sign(use_tpm, key.cka_id, tmp_path, message)
    spki = station(ws.keys.repo.spki, key.id)
    assert spki is not None
    public = serialization.load_der_public_key(spki)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    half = len(raw) // 2
    signature = encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )
    public.verify(signature, message, ec.ECDSA(hashes.SHA256()))  # raises if not valid
    # The enforcement trial ran once and was kept: it left nothing on the token.
    listing = tpm_tool(use_tpm, "--token-label", TPM_LABEL, "--list-objects", pin=TPM_PIN)
    assert "keystead-probe" not in listing


def test_adopt_and_destroy_a_key_pkcs11_tool_made(station: Station, use_tpm: SwTpm) -> None:
    tpm_tool(
        use_tpm,
        "--token-label",
        TPM_LABEL,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "a1b2c3",
        "--label",
        "peer-made",
        pin=TPM_PIN,
    )
    # tpm2-pkcs11 reads its store at C_Initialize (a new login is not enough): what another
    # program made appears after the workstation is locked and unlocked.
    station.unlock()
    ws = station.ws
    station(ws.tokens.login, TPM_LABEL, TPM_PIN)
    # tpm2-pkcs11's pairs also decrypt: signing is confirmed explicitly (issue 9).
    key = station(ws.keys.adopt, TPM_LABEL, "a1b2c3", purpose=Purpose.SIGNING, accept_exposure=True)
    assert key.algorithm is Algorithm.EC_P256
    assert key.token_serial == f"0000000000000000/{TPM_LABEL}"
    done = station(ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name=key.name)
    assert done.state is KeyState.DESTROYED
    listing = tpm_tool(use_tpm, "--token-label", TPM_LABEL, "--list-objects", pin=TPM_PIN)
    assert "peer-made" not in listing
