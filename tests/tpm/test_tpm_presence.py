"""A TPM whose simulator is killed mid-session, and a module that cannot start.

tpm2-pkcs11 keeps answering C_GetSlotList, C_GetTokenInfo and object searches from its own
store when the TPM is gone; Keystead notices through a call that reaches the device. (swtpm
behind tpm2-abrmd; the resource manager flushes transient objects, no test calls
tpm2_flushcontext.)
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyState, TokenSync
from app.domain.lifecycle import Action
from app.errors import ModuleLoadError, TokenNotLoggedIn
from app.hsm.module import Pkcs11Module
from tests.hsm.kit import Station
from tests.tpm.conftest import TPM_LABEL
from tests.tpm.swtpm import MODULE, SwTpm

pytestmark = pytest.mark.tpm


def test_a_killed_tpm_is_noticed_and_nothing_claims_success(
    own_station: Station, own_tpm: SwTpm
) -> None:
    station = own_station
    ws = station.ws
    key = station(
        ws.keys.generate,
        TPM_LABEL,
        Algorithm.EC_P256,
        "before-kill",
        Purpose.SIGNING,
        allow_wider=True,
    )
    station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
    own_tpm.kill()
    # The module still lists the token: presence alone would not notice.
    assert any(t.label == TPM_LABEL for t in station(ws.tokens.present))
    # A restricting change does not wait for the token, and says the token update is pending
    # rather than that the token holds it.
    suspended = station(ws.lifecycle.transition, key.id, Action.SUSPEND, "device gone")
    assert suspended.state is KeyState.SUSPENDED
    assert suspended.token_sync is TokenSync.PENDING
    lost = station.events("token.session-lost")
    assert lost and "device is gone" in json.loads(lost[-1].details_json)["why"]
    statuses = {s.info.label: s for s in station(ws.tokens.statuses)}
    assert not statuses[TPM_LABEL].logged_in
    # Destroying and generating need the token: refused, nothing recorded as done.
    station(ws.lifecycle.transition, key.id, Action.DEACTIVATE, "retire")
    with pytest.raises(TokenNotLoggedIn):
        station(ws.lifecycle.transition, key.id, Action.DESTROY, confirm_name=key.name)
    with pytest.raises(TokenNotLoggedIn):
        station(ws.keys.generate, TPM_LABEL, Algorithm.EC_P256, "after", Purpose.SIGNING)
    assert station(ws.keys.resolve, key.id).state is KeyState.DEACTIVATED


def test_the_poll_notices_a_killed_tpm(own_station: Station, own_tpm: SwTpm) -> None:
    station = own_station
    ws = station.ws
    assert not station(ws.tokens.poll)
    own_tpm.kill()
    assert station(ws.tokens.poll)
    lost = station.events("token.session-lost")
    assert lost and json.loads(lost[-1].details_json)["label"] == TPM_LABEL
    assert not any(s.logged_in for s in station(ws.tokens.statuses) if s.info.label == TPM_LABEL)


def test_a_module_that_cannot_reach_its_tpm_says_why(core: object, use_tpm: SwTpm) -> None:
    """tpm2-pkcs11 with its TCTI pointing at a resource manager that is not there: the module
    loads but C_Initialize fails; the error carries the module's own words, not a suggestion
    to choose another library. Run in a child process so the shared module stays as it is."""
    script = (
        "from app.hsm.module import Pkcs11Module\n"
        "from app.errors import ModuleLoadError\n"
        "try:\n"
        f"    Pkcs11Module({MODULE!r})\n"
        "except ModuleLoadError as e:\n"
        "    print(e.message)\n"
    )
    env = {
        **os.environ,
        "TPM2_PKCS11_TCTI": "tabrmd:bus_name=com.keystead.test.nobody,bus_type=session",
    }
    result = subprocess.run(
        [os.sys.executable, "-c", script],  # type: ignore[attr-defined]
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    message = result.stdout.strip()
    assert "is a PKCS#11 module, but it failed to start" in message, result
    assert "CKR_GENERAL_ERROR" in message
    assert "tabrmd" in message  # the module's own words name the TCTI it could not load
    assert "Choose the token vendor" not in message
    assert Pkcs11Module is not None and ModuleLoadError is not None
