"""Certificates, requests and CRLs signed by SoftHSM keys: a root CA, an intermediate from a
Keystead CSR, an end entity from a foreign CSR and a CRL, each checked by `cryptography`,
pkilint and `openssl verify -crl_check` as the independent peer; refusals for bad requests,
weak keys, non-CA issuers, path lengths and over-long subjects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord
from app.domain.lifecycle import Action
from app.errors import NotFoundError, PolicyError, ValidationError
from app.pki.lint import lint_certificate, lint_crl
from tests.support import Bench

pytestmark = pytest.mark.hsm


def active(bench: Bench, algorithm: Algorithm, name: str) -> KeyRecord:
    key = bench(bench.ws.keys.generate, "Life", algorithm, name, Purpose.SIGNING)
    return bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)  # type: ignore[no-any-return]


def at(bench: Bench) -> str:
    """openssl's -attime: the workstation's (injected) clock, a minute later."""
    return str(int(bench.clock.now.timestamp()) + 60)


def openssl(*args: str) -> tuple[int, str]:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    return result.returncode, (result.stdout + result.stderr).strip()


def foreign_csr(path: Path, key: object, cn: str = "signer.example") -> Path:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    path.write_bytes(request.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def pki(bench: Bench, tmp_path: Path) -> dict[str, object]:
    """Root (EC P-384) self-signed, intermediate (RSA-2048) from a Keystead CSR."""
    certs = bench.ws.certs
    root = active(bench, Algorithm.EC_P384, "root")
    inter = active(bench, Algorithm.RSA_2048, "issuing")
    bench(
        certs.self_sign,
        root.id,
        "root-ca",
        "CN=Keystead Test Root,O=Keystead,C=DE",
        3650,
        tmp_path / "root.pem",
    )
    bench(certs.csr, inter.id, "CN=Keystead Issuing CA 1,O=Keystead,C=DE", tmp_path / "inter.csr")
    issued = bench(
        certs.sign_csr,
        root.id,
        tmp_path / "inter.csr",
        "intermediate-ca",
        1825,
        tmp_path / "inter.pem",
    )
    return {"root": root, "inter": inter, "inter_serial": issued.serial}


def test_root_intermediate_and_crl_verify_with_openssl(
    bench: Bench, tmp_path: Path, pki: dict[str, object]
) -> None:
    root, inter = pki["root"], pki["inter"]
    assert isinstance(root, KeyRecord) and isinstance(inter, KeyRecord)
    code, text = openssl("req", "-in", str(tmp_path / "inter.csr"), "-noout", "-verify")
    assert code == 0 and "verify OK" in text.replace("Certificate request self-signature ", ""), (
        text
    )

    bench(bench.ws.certs.issue_crl, root.id, tmp_path / "root.crl")
    code, text = openssl(
        "verify",
        "-attime",
        at(bench),
        "-crl_check",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-CRLfile",
        str(tmp_path / "root.crl"),
        str(tmp_path / "inter.pem"),
    )
    assert code == 0 and text.endswith(": OK"), text
    code, text = openssl(
        "crl", "-in", str(tmp_path / "root.crl"), "-noout", "-CAfile", str(tmp_path / "root.pem")
    )
    assert code == 0 and "verify OK" in text, text

    # Revoke the intermediate: the next CRL carries it, numbered one higher, and openssl
    # now refuses the intermediate.
    bench(bench.ws.certs.revoke, str(pki["inter_serial"]), "key_compromise")
    second = bench(bench.ws.certs.issue_crl, root.id, tmp_path / "root2.crl")
    assert second.number == 2
    crl = x509.load_der_x509_crl(second.der)
    [entry] = list(crl)
    assert format(entry.serial_number, "x") == pki["inter_serial"]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    code, text = openssl(
        "verify",
        "-attime",
        at(bench),
        "-crl_check",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-CRLfile",
        str(tmp_path / "root2.crl"),
        str(tmp_path / "inter.pem"),
    )
    assert code != 0 and "certificate revoked" in text, text
    assert not [f for f in lint_crl(second.der) if f.refuses]


def test_every_profile_is_pkilint_clean_and_chains(
    bench: Bench, tmp_path: Path, pki: dict[str, object]
) -> None:
    inter = pki["inter"]
    assert isinstance(inter, KeyRecord)
    csr = foreign_csr(tmp_path / "ee.csr", ec.generate_private_key(ec.SECP256R1()))
    bench(bench.ws.certs.sign_csr, inter.id, csr, "end-entity", 365, tmp_path / "ee.pem")
    chain = tmp_path / "chain.pem"
    chain.write_bytes((tmp_path / "inter.pem").read_bytes())
    code, text = openssl(
        "verify",
        "-attime",
        at(bench),
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-untrusted",
        str(chain),
        str(tmp_path / "ee.pem"),
    )
    assert code == 0 and text.endswith(": OK"), text
    for name in ("root.pem", "inter.pem", "ee.pem"):
        der = x509.load_pem_x509_certificate((tmp_path / name).read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        findings = lint_certificate(der)
        assert not [f for f in findings if f.refuses], (name, findings)
    listed = bench(bench.ws.certs.listing, None)
    assert [(c.profile, c.ca) for c in listed] == [
        ("root-ca", True),
        ("intermediate-ca", True),
        ("end-entity", False),
    ]


def test_ed25519_root_verifies(bench: Bench, tmp_path: Path) -> None:
    root = active(bench, Algorithm.ED25519, "ed-root")
    bench(bench.ws.certs.self_sign, root.id, "root-ca", "CN=Ed Root", 30, tmp_path / "r.pem")
    bench(bench.ws.certs.issue_crl, root.id, tmp_path / "r.crl")
    code, text = openssl(
        "verify", "-attime", at(bench), "-CAfile", str(tmp_path / "r.pem"), str(tmp_path / "r.pem")
    )
    assert code == 0, text
    code, text = openssl(
        "crl", "-in", str(tmp_path / "r.crl"), "-noout", "-CAfile", str(tmp_path / "r.pem")
    )
    assert code == 0 and "verify OK" in text, text


def test_bad_requests_and_issuers_are_refused(
    bench: Bench, tmp_path: Path, pki: dict[str, object]
) -> None:
    root, inter = pki["root"], pki["inter"]
    assert isinstance(root, KeyRecord) and isinstance(inter, KeyRecord)
    certs = bench.ws.certs
    good = foreign_csr(tmp_path / "good.csr", ec.generate_private_key(ec.SECP256R1()))
    der = x509.load_pem_x509_csr(good.read_bytes()).public_bytes(serialization.Encoding.DER)
    tampered = tmp_path / "tampered.csr"
    tampered.write_bytes(der[:-3] + bytes([der[-3] ^ 1]) + der[-2:])
    weak = foreign_csr(tmp_path / "weak.csr", rsa.generate_private_key(65537, 1024))  # noqa: S505 (the weak key refused)
    k1 = ec.generate_private_key(ec.SECP521R1())
    odd_curve = foreign_csr(tmp_path / "p521.csr", k1)
    cases = {
        tampered: "bad signature",
        weak: "1024 bits",
        odd_curve: "secp521r1",
        tmp_path / "missing.csr": "does not exist",
    }
    before = len(bench(certs.listing, None))
    for path, message in cases.items():
        with pytest.raises(ValidationError, match=message):
            bench(certs.sign_csr, inter.id, path, "end-entity", 30, tmp_path / "x.pem")
    # An issuer without a CA certificate, and a path length the issuer does not allow.
    plain = active(bench, Algorithm.EC_P256, "not-a-ca")
    with pytest.raises(PolicyError, match="KS-PKI-ISSUER-NOT-CA"):
        bench(certs.sign_csr, plain.id, good, "end-entity", 30, tmp_path / "x.pem")
    with pytest.raises(PolicyError, match="KS-PKI-PATH-LENGTH"):
        bench(certs.sign_csr, inter.id, good, "intermediate-ca", 30, tmp_path / "x.pem")
    with pytest.raises(ValidationError, match="allows 1 to 825 days"):
        bench(certs.sign_csr, inter.id, good, "end-entity", 5000, tmp_path / "x.pem")
    with pytest.raises(ValidationError, match="length must be >= 1 and <= 64"):
        bench(certs.self_sign, plain.id, "root-ca", "CN=" + "x" * 65, 30, tmp_path / "x.pem")
    with pytest.raises(ValidationError, match="usable distinguished name"):
        bench(certs.self_sign, plain.id, "root-ca", "CN=a,C=Germany", 30, tmp_path / "x.pem")
    assert not (tmp_path / "x.pem").exists()
    assert len(bench(certs.listing, None)) == before


def test_a_suspended_ca_key_signs_nothing(
    bench: Bench, tmp_path: Path, pki: dict[str, object]
) -> None:
    root = pki["root"]
    assert isinstance(root, KeyRecord)
    bench(bench.ws.lifecycle.transition, root.id, Action.SUSPEND, "audit")
    with pytest.raises(PolicyError, match="KS-USE-STATE"):
        bench(bench.ws.certs.issue_crl, root.id, tmp_path / "c.crl")
    assert not (tmp_path / "c.crl").exists()
    last = bench.events(root.id)[-1]
    assert (last.action, last.outcome) == ("key.sign", "denied")


def test_a_profile_pkilint_rejects_is_refused_and_nothing_kept(
    bench: Bench, tmp_path: Path
) -> None:
    # keyCertSign without cA: RFC 5280 §4.2.1.3 forbids it; pkilint reports an error.
    bad = tmp_path / "profiles.toml"
    bad.write_text(
        "[odd-root]\nself_signed = true\nca = false\n"
        'key_usage = ["key_cert_sign", "digital_signature"]\nmax_days = 30\n'
    )
    bench.ws.certs.profile_file = bad
    key = active(bench, Algorithm.EC_P256, "odd")
    with pytest.raises(ValidationError, match="pkilint refuses the certificate"):
        bench(bench.ws.certs.self_sign, key.id, "odd-root", "CN=Odd", 30, tmp_path / "odd.pem")
    assert not (tmp_path / "odd.pem").exists()
    assert bench(bench.ws.certs.listing, None) == []
    last = bench.events(key.id)[-1]
    assert (last.action, last.outcome) == ("cert.issue", "failed")
    assert any("ERROR" in line for line in last.details["lint"])


def test_shipped_profiles_load() -> None:
    from app.pki.profiles import load_profiles

    profiles = load_profiles()
    assert set(profiles) == {"root-ca", "intermediate-ca", "end-entity"}
    assert profiles["root-ca"].self_signed and profiles["root-ca"].ca
    assert profiles["intermediate-ca"].path_length == 0
    assert not profiles["end-entity"].ca


def test_marking_a_key_compromised_revokes_its_certificates_when_asked(
    bench: Bench, tmp_path: Path, pki: dict[str, object]
) -> None:
    root, inter = pki["root"], pki["inter"]
    assert isinstance(root, KeyRecord) and isinstance(inter, KeyRecord)
    certs = bench.ws.certs
    assert [c.serial for c in bench(certs.revocable_for, inter.id)] == [pki["inter_serial"]]
    # Not compromised: refused, nothing revoked.
    with pytest.raises(ValidationError):
        bench(certs.revoke_key_certificates, inter.id)
    assert bench(certs.revocable_for, inter.id)
    bench(bench.ws.lifecycle.transition, inter.id, Action.COMPROMISE, "HSM stolen")
    revoked = bench(certs.revoke_key_certificates, inter.id)
    assert [(c.serial, c.revocation_reason) for c in revoked] == [
        (pki["inter_serial"], "key_compromise")
    ]
    assert bench(certs.revocable_for, inter.id) == []
    entry = [e for e in bench.events(root.id) if e.action == "cert.revoke"][-1]
    assert entry.details["trigger"] == f"key {inter.id} marked compromised"
    # The root's next CRL carries it and openssl refuses the intermediate.
    bench(certs.issue_crl, root.id, tmp_path / "after.crl")
    code, text = openssl(
        "verify",
        "-attime",
        at(bench),
        "-crl_check",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-CRLfile",
        str(tmp_path / "after.crl"),
        str(tmp_path / "inter.pem"),
    )
    assert code != 0 and "certificate revoked" in text, text
    # A second call finds nothing left to revoke.
    assert bench(certs.revoke_key_certificates, inter.id) == []


def test_a_stored_certificate_exports_as_pem_and_der_and_is_recorded(
    bench: Bench, tmp_path: Path, pki: dict[str, object]
) -> None:
    serial = str(pki["inter_serial"])
    certs = bench.ws.certs
    cert, pem = bench(certs.export, serial, False, tmp_path / "out.pem")
    _, der = bench(certs.export, "0x" + serial.upper(), True, tmp_path / "out.der")
    assert (tmp_path / "out.pem").read_bytes() == pem == (tmp_path / "inter.pem").read_bytes()
    assert x509.load_der_x509_certificate(der).serial_number == int(serial, 16)
    code, text = openssl(
        "x509", "-inform", "DER", "-in", str(tmp_path / "out.der"), "-noout", "-subject"
    )
    assert code == 0 and "Keystead Issuing CA 1" in text, text
    # Never over an existing file without overwrite; an unknown serial is refused; both
    # leave the file as it was.
    with pytest.raises(ValidationError):
        bench(certs.export, serial, True, tmp_path / "out.pem")
    assert (tmp_path / "out.pem").read_bytes() == pem
    with pytest.raises(NotFoundError):
        bench(certs.export, "abcdef0123", False, tmp_path / "none.pem")
    assert not (tmp_path / "none.pem").exists()
    root = pki["root"]
    assert isinstance(root, KeyRecord)
    exports = [e for e in bench.events(root.id) if e.action == "cert.export"]
    assert all(e.outcome == "success" for e in exports)
    assert len(exports) == 2
    assert {json.loads(e.details_json)["format"] for e in exports} == {"pem", "der"}
    assert all(json.loads(e.details_json)["serial"] == cert.serial for e in exports)


class _Nobody:
    """An approval source with no second person at hand (the approver did not come)."""

    def credentials(self, request: object, rule: object) -> list[object]:
        return []


@pytest.mark.parametrize("action", ["cert.self-sign", "cert.sign-csr", "cert.crl"])
def test_an_officer_can_require_approval_for_certificate_issuance(
    bench: Bench, tmp_path: Path, pki: dict[str, object], action: str
) -> None:
    """Outside testers: certificate issuance had no dual-control policy action. Each is a
    policy action; with one approver required a real second operator (the enrolled witness,
    with their passphrase) stands behind it and is named in the entry; without one nothing is
    written and a denied entry says why."""
    from tests.support import WITNESS, Witness

    ws = bench.ws
    root = pki["root"]
    assert isinstance(root, KeyRecord)
    assert bench(ws.approvals.rule, action).approvals == 0  # one person by default
    bench(ws.approvals.set_rule, action, 1)  # itself approved by the witness (policy.set)
    assert bench(ws.approvals.rule, action).approvals == 1
    csr = foreign_csr(tmp_path / "leaf.csr", ec.generate_private_key(ec.SECP256R1()))

    def issue(out: Path) -> object:
        if action == "cert.self-sign":
            return bench(ws.certs.self_sign, root.id, "root-ca", "CN=Second Root", 365, out)
        if action == "cert.sign-csr":
            return bench(ws.certs.sign_csr, root.id, csr, "end-entity", 30, out)
        return bench(ws.certs.issue_crl, root.id, out, days=7)

    ws.approvals.source = _Nobody()  # type: ignore[assignment]
    refused = tmp_path / "refused.pem"
    with pytest.raises(PolicyError):
        issue(refused)
    assert not refused.exists()
    before = bench(ws.certs.listing)
    denied = [e for e in bench.events() if e.action == action]
    assert [e.outcome for e in denied] == ["denied"]

    witness = Witness(ws)
    ws.approvals.source = witness
    made = tmp_path / "made.pem"
    issue(made)
    assert made.exists()
    assert [r.action for r in witness.asked] == [action]
    asked = dict(witness.asked[0].parameters)
    assert asked["output"] == "made.pem" and "days" in asked
    [entry] = [
        e
        for e in bench.events()
        if e.outcome == "success" and e.details.get("approval", {}).get("policy") == action
    ]
    assert tuple(entry.operators)[1:] == (WITNESS,)
    if action != "cert.crl":
        assert len(bench(ws.certs.listing)) == len(before) + 1
