"""CMS detached signatures made on the token, checked by `openssl cms -verify` with the
signer's certificate as the trust anchor, for every key type; a changed file is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.lifecycle import Action
from app.errors import ValidationError
from tests.support import Bench

pytestmark = pytest.mark.hsm


def openssl_cms(bench: Bench, tmp_path: Path, data: Path, sig: Path) -> tuple[int, str]:
    result = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(sig),
            "-content",
            str(data),
            "-CAfile",
            str(tmp_path / "cert.pem"),
            "-purpose",
            "any",
            "-attime",
            str(int(bench.clock.now.timestamp()) + 60),
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("algorithm", [Algorithm.RSA_2048, Algorithm.EC_P256, Algorithm.EC_P384])
def test_cms_detached_signature_verifies_with_openssl(
    bench: Bench, tmp_path: Path, algorithm: Algorithm
) -> None:
    key = bench(bench.ws.keys.generate, "Life", algorithm, "cms", Purpose.SIGNING)
    key = bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    data = tmp_path / "payload.bin"
    data.write_bytes(b"\x00\xffpayload\r\n" * 200_000)
    with pytest.raises(ValidationError, match="has none made here"):
        bench(bench.ws.use.sign_file_cms, key.id, data, tmp_path / "early.p7s")
    assert not (tmp_path / "early.p7s").exists()
    bench(bench.ws.certs.self_sign, key.id, "root-ca", "CN=CMS Signer", 30, tmp_path / "cert.pem")
    sig = tmp_path / "payload.p7s"
    result = bench(bench.ws.use.sign_file_cms, key.id, data, sig)
    assert result.mechanism.startswith("CMS/")
    code, text = openssl_cms(bench, tmp_path, data, sig)
    assert code == 0 and "Verification successful" in text, text
    data.write_bytes(data.read_bytes() + b"!")
    code, text = openssl_cms(bench, tmp_path, data, sig)
    assert code != 0 and "Verification failure" in text, text


def test_cms_with_ed25519_is_refused_not_made_unverifiable(bench: Bench, tmp_path: Path) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.ED25519, "ed", Purpose.SIGNING)
    key = bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    data = tmp_path / "d"
    data.write_bytes(b"x")
    with pytest.raises(ValidationError, match=r"OpenSSL 3\.0 cannot verify"):
        bench(bench.ws.use.sign_file_cms, key.id, data, tmp_path / "d.p7s")
    assert not (tmp_path / "d.p7s").exists()
