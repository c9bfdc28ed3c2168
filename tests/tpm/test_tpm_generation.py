"""Key generation on a TPM 2.0 through tpm2-pkcs11 (swtpm behind tpm2-abrmd).

Transient objects after a failing generation are flushed by the resource manager (tpm2-abrmd)
when the client disconnects; no test calls tpm2_flushcontext.
"""

from __future__ import annotations

import pytest

from tests.hsm.kit import Station
from tests.tpm.conftest import TPM_LABEL

pytestmark = pytest.mark.tpm


def test_smoke(station: Station) -> None:
    ws = station.ws
    caps = station(ws.inspect.capabilities, TPM_LABEL, True)
    print("\n".join(caps.words()))
    print(caps.notes)
