"""The TPM as audit token, or the refusal that says why — before anything is created.
(swtpm behind tpm2-abrmd; the resource manager flushes transient objects, no test calls
tpm2_flushcontext.)

tpm2-pkcs11 1.9 generates no secret keys, so it cannot hold the audit log's HMAC key.
"""

from __future__ import annotations

import pytest

from app.errors import UnsupportedAlgorithm
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import AuditTokenChoice, Workstation
from tests.hsm.kit import FAST_KDF, OPERATOR, PASSPHRASE, Clock, Station
from tests.tpm.conftest import TPM_LABEL, TPM_PIN
from tests.tpm.swtpm import MODULE, SwTpm

pytestmark = pytest.mark.tpm


def test_the_tpm_is_refused_as_audit_token_before_anything_exists(
    use_tpm: SwTpm, home: Home, core: CoreExecutor, clock: Clock
) -> None:
    with pytest.raises(UnsupportedAlgorithm) as refused:
        core.call(
            Workstation.initialize,
            home,
            OPERATOR,
            PASSPHRASE,
            PASSPHRASE,
            None,
            cost=FAST_KDF,
            clock=clock,
            audit_token=AuditTokenChoice(TPM_LABEL, TPM_PIN, (MODULE,)),
        )
    text = refused.value.message
    assert f"Token '{TPM_LABEL}' cannot hold the audit keys" in text
    assert "GENERIC_SECRET_KEY_GEN" in text
    assert "Nothing was created" in text and "embedded token for audit" in text
    assert not home.root.exists() or not any(home.root.iterdir())


def test_a_tpm_logged_in_first_is_not_made_the_audit_token(
    use_tpm: SwTpm, home: Home, core: CoreExecutor, clock: Clock
) -> None:
    """A home with only the TPM: logging in works, the audit keys are not attempted there,
    and nothing claims an audit token exists."""
    station = Station(home, core, clock)
    try:
        ws = station.initialize(soft_token=False)
        station(ws.tokens.add_module, MODULE)
        station(ws.tokens.login, TPM_LABEL, TPM_PIN)
        assert station(lambda: ws.audit.token_serial) is None
        assert not station(lambda: ws.audit.sealing)
        assert not station.events("audit.keys")
    finally:
        station.close()
