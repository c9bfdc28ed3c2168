"""python-pkcs11's ``pkcs11.util`` helpers load on first use (``app/hsm/lazy_util.py``), and the
curve parameters written out in ``app/hsm/templates.py`` are python-pkcs11's own encoding.

Each import check runs in a fresh interpreter: this test process has imported pkcs11 already."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pkcs11.util.ec import encode_named_curve_parameters

from app.hsm.templates import CURVE_PARAMS, PARAMS_CURVE


@pytest.mark.parametrize(("name", "curve"), [("P-256", "secp256r1"), ("P-384", "secp384r1")])
def test_written_out_curve_parameters_are_python_pkcs11s_encoding(name: str, curve: str) -> None:
    assert CURVE_PARAMS[name] == encode_named_curve_parameters(curve)
    assert PARAMS_CURVE[encode_named_curve_parameters(curve)] == name


def _fresh(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_IMPORT_HSM = """
import json, sys
import app.hsm.session, app.hsm.module
before = sorted(m for m in sys.modules if m.split(".")[0] in ("asn1crypto", "fractions", "decimal"))
from pkcs11.util.ec import decode_ec_public_key, encode_ec_public_key
from pkcs11.util import rsa
import pkcs11, pkcs11.util.x509
print(json.dumps({
    "before": before,
    "after": "asn1crypto" in sys.modules,
    "same_ec": pkcs11.util.ec.decode_ec_public_key is decode_ec_public_key,
    "rsa": rsa.encode_rsa_public_key.__module__,
    "x509": pkcs11.util.x509.decode_x509_public_key.__module__,
    "der": pkcs11.util.ec.encode_named_curve_parameters("secp256r1").hex(),
}))
"""


def test_importing_keysteads_token_layer_does_not_load_asn1crypto_until_a_helper_is_used() -> None:
    result = _fresh(_IMPORT_HSM)
    assert result["before"] == []  # nor decimal / fractions, which asn1crypto brings
    assert result["after"] is True  # a helper used: loaded then, and it works
    assert result["same_ec"] is True
    assert result["rsa"] == "pkcs11.util.rsa"
    assert result["x509"] == "pkcs11.util.x509"
    assert result["der"] == CURVE_PARAMS["P-256"].hex()


_ALREADY = """
import json, sys
import pkcs11
from app.hsm.lazy_util import defer_pkcs11_util
print(json.dumps({"deferred": defer_pkcs11_util(), "loaded": "asn1crypto" in sys.modules}))
"""


def test_nothing_is_deferred_once_pkcs11_is_imported() -> None:
    # pkcs11 imported before Keystead's token layer: python-pkcs11 loaded its helpers itself.
    assert _fresh(_ALREADY) == {"deferred": [], "loaded": True}


_SECOND = """
import json
import app.hsm
from app.hsm.lazy_util import defer_pkcs11_util
print(json.dumps({"again": defer_pkcs11_util()}))
"""


def test_deferring_twice_changes_nothing() -> None:
    assert _fresh(_SECOND) == {"again": []}


_BROKEN_LOADER = """
import importlib.util, json, sys

class Refusing:
    def __init__(self, loader):
        raise TypeError("loader does not define exec_module()")

importlib.util.LazyLoader = Refusing  # as for a loader the lazy loader cannot wrap
import app.hsm.module
import pkcs11
from pkcs11.util.ec import encode_named_curve_parameters
print(json.dumps({
    "loaded": "asn1crypto" in sys.modules,
    "der": encode_named_curve_parameters("secp384r1").hex(),
    "bound": pkcs11.util.ec.encode_named_curve_parameters is encode_named_curve_parameters,
}))
"""


def test_a_loader_that_cannot_be_deferred_leaves_python_pkcs11_as_shipped() -> None:
    # Nothing half-registered is left behind: pkcs11 imports its helpers itself.
    assert _fresh(_BROKEN_LOADER) == {
        "loaded": True,
        "der": CURVE_PARAMS["P-384"].hex(),
        "bound": True,
    }
