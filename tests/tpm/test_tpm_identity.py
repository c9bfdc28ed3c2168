"""Token identity when serials collide: tpm2-pkcs11 1.9 reports serial 0000000000000000 for
every token. (swtpm behind tpm2-abrmd; the resource manager flushes transient objects, no test
calls tpm2_flushcontext.)

Keystead binds keys to "serial/label" for such a placeholder serial, so tpm1 and tpm2 of one
TPM are told apart; two present tokens that still cannot be told apart are refused, both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.domain.algorithms import Purpose
from app.errors import AmbiguousToken, NotFoundError, TokenError, ValidationError
from tests.hsm.kit import Station
from tests.tpm.conftest import TPM_LABEL, TPM_PIN, TPM_SO_PIN
from tests.tpm.swtpm import MODULE, SwTpm, tpm_tool

pytestmark = pytest.mark.tpm

ZEROS = "0000000000000000"


def add_tpm2(station: Station) -> None:
    """Initialise the TPM's blank slot as 'tpm2' the way an officer does: Keystead's C_InitToken
    through the module's function list, the new label typed twice, then C_InitPIN."""
    ws = station.ws
    blank = [t for t in station(ws.tokens.blank_slots) if t.module_path == MODULE]
    assert len(blank) == 1
    created = station(
        ws.admin.init_blank, MODULE, blank[0].slot_id, "tpm2", "tpm2", TPM_SO_PIN, TPM_PIN
    )
    assert created.serial == f"{ZEROS}/tpm2"


def test_two_tokens_with_one_serial_are_never_confused(
    own_station: Station, own_tpm: SwTpm
) -> None:
    station = own_station
    ws = station.ws
    add_tpm2(station)
    present = {t.label: t for t in station(ws.tokens.present) if t.module_path == MODULE}
    assert present["tpm1"].reported_serial == present["tpm2"].reported_serial == ZEROS
    assert present["tpm1"].serial == f"{ZEROS}/tpm1"
    assert present["tpm2"].serial == f"{ZEROS}/tpm2"
    # The serial alone names two tokens: refused, with both identities named.
    with pytest.raises(ValidationError, match=f"{ZEROS}/tpm1, {ZEROS}/tpm2"):
        station(ws.tokens.find, ZEROS)
    assert station(ws.tokens.find, "tpm2").label == "tpm2"
    # Logged in to tpm1 only: tpm2 does not show as logged in.
    status = {s.info.label: s for s in station(ws.tokens.statuses)}
    assert status["tpm1"].logged_in and not status["tpm2"].logged_in
    assert not status["tpm1"].ambiguous and not status["tpm2"].ambiguous
    # Initialising tpm2 asks for tpm2's label, not tpm1's.
    impact = station(station.ws.admin.init_impact, "tpm2")
    assert impact.token.label == "tpm2"
    # A key pkcs11-tool made on tpm2 is adopted from tpm2, and bound to tpm2.
    tpm_tool(
        own_tpm,
        "--token-label",
        "tpm2",
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "0102",
        "--label",
        "on-tpm2",
        pin=TPM_PIN,
    )
    station.unlock()  # tpm2-pkcs11 reads its store at C_Initialize
    ws = station.ws
    station(ws.tokens.login, "tpm1", TPM_PIN)
    station(ws.tokens.login, "tpm2", TPM_PIN)
    with pytest.raises(NotFoundError, match="No key with ID 0102 on token 'tpm1'"):
        station(ws.keys.adopt, "tpm1", "0102", purpose=Purpose.SIGNING)
    # tpm2-pkcs11's pairs also decrypt: signing is confirmed explicitly (issue 9).
    key = station(ws.keys.adopt, "tpm2", "0102", purpose=Purpose.SIGNING, accept_exposure=True)
    assert key.token_serial == f"{ZEROS}/tpm2" and key.token_label == "tpm2"
    # Logging out of tpm1 leaves tpm2's session alone.
    station(ws.tokens.logout, f"{ZEROS}/tpm1")
    status = {s.info.label: s for s in station(ws.tokens.statuses)}
    assert status["tpm2"].logged_in and not status["tpm1"].logged_in


def test_tokens_that_cannot_be_told_apart_are_both_refused(
    station: Station, tmp_path: Path
) -> None:
    """The same TPM token reached through a second module (here a copy of the library, as a
    p11-kit proxy or a second vendor path would): serial, label and model all equal. Keystead
    acts on neither, ends the session it had, and says why."""
    twin = tmp_path / "libtpm2_pkcs11_twin.so"
    shutil.copyfile(MODULE, twin)
    ws = station.ws
    station(ws.tokens.add_module, str(twin))
    identity = f"{ZEROS}/{TPM_LABEL}"
    twins = [t for t in station(ws.tokens.present) if t.serial == identity]
    assert len(twins) == 2
    assert station(ws.tokens.poll)  # the logged-in tpm1 session ends: it is ambiguous now
    lost = station.events("token.session-lost")
    assert lost and "same identity" in lost[-1].details_json
    for ref in (TPM_LABEL, identity):
        with pytest.raises(AmbiguousToken, match="cannot be told apart") as refused:
            station(ws.tokens.find, ref)
        assert "libtpm2_pkcs11_twin.so" in refused.value.message
    with pytest.raises(AmbiguousToken):
        station(ws.tokens.login, TPM_LABEL, TPM_PIN)
    status = [s for s in station(ws.tokens.statuses) if s.info.serial == identity]
    assert [s.ambiguous for s in status] == [True, True]
    assert not any(s.logged_in for s in status)
    # With the twin module gone, tpm1 is itself again.
    station(ws.tokens.remove_module, str(twin))
    assert station(ws.tokens.find, TPM_LABEL).serial == identity


def test_a_blank_slot_is_initialised_only_as_confirmed(
    own_station: Station, own_tpm: SwTpm
) -> None:
    station = own_station
    ws = station.ws
    blank = [t for t in station(ws.tokens.blank_slots) if t.module_path == MODULE]
    assert len(blank) == 1 and not blank[0].initialized
    slot = blank[0].slot_id
    with pytest.raises(ValidationError, match="Type the new label 'tpm3' again"):
        station(ws.admin.init_blank, MODULE, slot, "tpm3", "tpm", TPM_SO_PIN, TPM_PIN)
    # A label with control characters is refused before the module is asked (it once left
    # a half-initialised token and a slot that could not be tried again).
    with pytest.raises(ValidationError, match="control or invisible"):
        station(ws.admin.init_blank, MODULE, slot, "a\x1b[31m", "a\x1b[31m", TPM_SO_PIN, TPM_PIN)
    with pytest.raises(ValidationError, match="already labelled 'tpm1'"):
        station(ws.admin.init_blank, MODULE, slot, "tpm1", "tpm1", TPM_SO_PIN, TPM_PIN)
    assert [e.outcome for e in station.events("token.init-blank")] == ["denied"]
    created = station(ws.admin.init_blank, MODULE, slot, "tpm3", "tpm3", TPM_SO_PIN, TPM_PIN)
    assert created.label == "tpm3" and created.initialized
    assert [e.outcome for e in station.events("token.init-blank")] == ["denied", "success"]
    # The officer's PIN works, and pkcs11-tool sees the new token.
    station(ws.tokens.login, "tpm3", TPM_PIN)
    listing = tpm_tool(own_tpm, "-L")
    assert "tpm3" in listing
    # The slot is no longer blank: a second try is refused before the module is asked.
    with pytest.raises(TokenError, match=f"Slot {slot} of .* holds no blank token"):
        station(ws.admin.init_blank, MODULE, slot, "tpm4", "tpm4", TPM_SO_PIN, TPM_PIN)
