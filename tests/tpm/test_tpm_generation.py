"""Key generation on a TPM 2.0 through tpm2-pkcs11 (swtpm behind tpm2-abrmd).

Transient objects after a failing generation are flushed by the resource manager (tpm2-abrmd)
when the client disconnects; no test calls tpm2_flushcontext.
"""

from __future__ import annotations

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.errors import UnsupportedAlgorithm
from tests.hsm.kit import Station
from tests.tpm.conftest import TPM_LABEL

pytestmark = pytest.mark.tpm


def test_smoke(station: Station) -> None:
    ws = station.ws
    with pytest.raises(UnsupportedAlgorithm) as e:
        station(ws.keys.generate, TPM_LABEL, Algorithm.EC_P256, "ec1", Purpose.SIGNING)
    print(e.value)
    with pytest.raises(UnsupportedAlgorithm) as e:
        station(ws.keys.generate, TPM_LABEL, Algorithm.EC_P256, "ec1", Purpose.SIGNING)
    print(e.value)
    k = station(ws.keys.generate, TPM_LABEL, Algorithm.EC_P256, "ec1", Purpose.SIGNING, allow_wider=True)
    print(k)
    print(station.events("key.generate")[-1])
    with pytest.raises(UnsupportedAlgorithm) as e:
        station(ws.keys.generate, TPM_LABEL, Algorithm.AES_256, "aes1", Purpose.ENCRYPTION)
    print(e.value)
