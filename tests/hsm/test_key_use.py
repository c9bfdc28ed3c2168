"""Key use on a real SoftHSM token: detached signatures checked by `cryptography` and by
Debian's `openssl` as the independent peer, AES-GCM files round-tripped through the token,
the state × operation table, bad input, and every use in the audit chain with its hashes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import KeyRecord
from app.domain.lifecycle import Action
from app.errors import NotAuthentic, OperationCancelled, PolicyError, ValidationError
from tests.support import Bench

pytestmark = pytest.mark.hsm

# (algorithm, mechanism, hash for openssl/cryptography or None for Ed25519, pss)
SIGNATURE_CASES = [
    (Algorithm.RSA_2048, "RSA-PSS-SHA256", "sha256", True),
    (Algorithm.RSA_2048, "RSA-PSS-SHA384", "sha384", True),
    (Algorithm.RSA_2048, "RSA-PSS-SHA512", "sha512", True),
    (Algorithm.RSA_2048, "RSA-PKCS1-SHA256", "sha256", False),
    (Algorithm.RSA_2048, "RSA-PKCS1-SHA384", "sha384", False),
    (Algorithm.RSA_2048, "RSA-PKCS1-SHA512", "sha512", False),
    (Algorithm.EC_P256, "ECDSA-SHA256", "sha256", False),
    (Algorithm.EC_P384, "ECDSA-SHA384", "sha384", False),
    (Algorithm.EC_P256, "ECDSA-SHA512", "sha512", False),
    (Algorithm.ED25519, "ED25519", None, False),
]
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def active_key(bench: Bench, algorithm: Algorithm, purpose: Purpose, name: str) -> KeyRecord:
    key = bench(bench.ws.keys.generate, "Life", algorithm, name, purpose)
    return bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)  # type: ignore[no-any-return]


def public_pem(bench: Bench, key: KeyRecord, path: Path) -> Path:
    spki = bench(bench.ws.keys.repo.spki, key.id)
    public = serialization.load_der_public_key(spki)
    path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def openssl_verify(pem: Path, data: Path, sig: Path, hash_name: str | None, pss: bool) -> str:
    """Debian's openssl checks the detached signature; returns its output."""
    if hash_name is None:  # Ed25519: PureEdDSA needs the raw message
        args = [
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(pem),
            "-rawin",
            "-in",
            str(data),
            "-sigfile",
            str(sig),
        ]
    else:
        args = ["dgst", f"-{hash_name}", "-verify", str(pem), "-signature", str(sig)]
        if pss:
            args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
        args.append(str(data))
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip() + f" (exit {result.returncode})"


@pytest.mark.parametrize(("algorithm", "mechanism", "hash_name", "pss"), SIGNATURE_CASES)
def test_signature_verifies_with_cryptography_and_openssl(
    bench: Bench,
    tmp_path: Path,
    algorithm: Algorithm,
    mechanism: str,
    hash_name: str | None,
    pss: bool,
) -> None:
    key = active_key(bench, algorithm, Purpose.SIGNING, "signer")
    data = tmp_path / "manifest.txt"
    data.write_bytes(b"release 1.0\n" * 150_000)  # ~1.8 MiB: more than one chunk
    sig = tmp_path / "manifest.sig"
    result = bench(bench.ws.use.sign_file, key.id, data, sig, mechanism)
    assert result.output_sha256 == hashlib.sha256(sig.read_bytes()).hexdigest()

    public = serialization.load_der_public_key(bench(bench.ws.keys.repo.spki, key.id))
    signature, message = sig.read_bytes(), data.read_bytes()
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, message)
    elif isinstance(public, rsa.RSAPublicKey):
        assert hash_name is not None
        algo = HASHES[hash_name]
        pad = (
            padding.PSS(padding.MGF1(algo), padding.PSS.DIGEST_LENGTH)
            if pss
            else padding.PKCS1v15()
        )
        public.verify(signature, message, pad, algo)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey) and hash_name is not None
        public.verify(signature, message, ec.ECDSA(HASHES[hash_name]))

    pem = public_pem(bench, key, tmp_path / "pub.pem")
    good = openssl_verify(pem, data, sig, hash_name, pss)
    assert "Verified OK" in good or "Signature Verified Successfully" in good, good
    bench(bench.ws.use.verify_file, key.id, data, sig, mechanism)

    data.write_bytes(message + b"x")  # one byte more: both peers must refuse
    bad = openssl_verify(pem, data, sig, hash_name, pss)
    assert "(exit 1)" in bad, bad
    with pytest.raises(NotAuthentic):
        bench(bench.ws.use.verify_file, key.id, data, sig, mechanism)


def test_each_use_is_in_the_audit_chain_with_its_hashes(bench: Bench, tmp_path: Path) -> None:
    key = active_key(bench, Algorithm.EC_P256, Purpose.SIGNING, "audited")
    data = tmp_path / "in.bin"
    data.write_bytes(b"\x00\x01" * 1000)
    sig = tmp_path / "in.sig"
    bench(bench.ws.use.sign_file, key.id, data, sig)
    bench(bench.ws.use.verify_file, key.id, data, sig)
    entries = [e for e in bench.events(key.id) if e.action in ("key.sign", "key.verify")]
    assert [(e.action, e.outcome) for e in entries] == [
        ("key.sign", "success"),
        ("key.verify", "success"),
    ]
    sign_details = json.loads(json.dumps(entries[0].details))
    assert sign_details["input_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert sign_details["output_sha256"] == hashlib.sha256(sig.read_bytes()).hexdigest()
    assert sign_details["mechanism"] == "ECDSA-SHA256"
    assert bench(bench.ws.use.usage_count, key.id) == 1
    report = bench(bench.ws.audit.verify)
    assert report.ok, report


# --- the state × operation table ----------------------------------------------------------

# How to bring a fresh PRE_ACTIVE key into each state, and what may be done there.
PATHS = {
    "ACTIVE": [Action.ACTIVATE],
    "SUSPENDED": [Action.ACTIVATE, Action.SUSPEND],
    "DEACTIVATED": [Action.ACTIVATE, Action.DEACTIVATE],
    "COMPROMISED": [Action.ACTIVATE, Action.COMPROMISE],
}
# Written out from SP 800-57 §5.3 (protect only ACTIVE; process ACTIVE or DEACTIVATED).
MAY = {
    "ACTIVE": {"sign", "verify", "encrypt", "decrypt"},
    "SUSPENDED": set(),
    "DEACTIVATED": {"verify", "decrypt"},
    "COMPROMISED": set(),
}


@pytest.mark.parametrize("state", list(PATHS))
def test_state_operation_table(bench: Bench, tmp_path: Path, state: str) -> None:
    signer = bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, "s", Purpose.SIGNING)
    aes = bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, "a", Purpose.ENCRYPTION)
    data = tmp_path / "data"
    data.write_bytes(b"payload")
    # Material made while both keys are active, for the process operations.
    for key in (signer, aes):
        bench(bench.ws.lifecycle.transition, key.id, Action.ACTIVATE)
    bench(bench.ws.use.sign_file, signer.id, data, tmp_path / "ok.sig")
    bench(bench.ws.use.encrypt_file, aes.id, data, tmp_path / "ok.enc")
    bench.reopen()  # the same checks after a restart
    for key in (signer, aes):
        # Back to the wanted state along the path (activation already done).
        for action in PATHS[state][1:]:
            bench(bench.ws.lifecycle.transition, key.id, action, "test")
    attempts = {
        "sign": lambda: bench(bench.ws.use.sign_file, signer.id, data, tmp_path / "new.sig"),
        "verify": lambda: bench(bench.ws.use.verify_file, signer.id, data, tmp_path / "ok.sig"),
        "encrypt": lambda: bench(bench.ws.use.encrypt_file, aes.id, data, tmp_path / "new.enc"),
        "decrypt": lambda: bench(
            bench.ws.use.decrypt_file, aes.id, tmp_path / "ok.enc", tmp_path / "out"
        ),
    }
    for operation, attempt in attempts.items():
        subject = signer.id if operation in ("sign", "verify") else aes.id
        before = len(bench.events(subject))
        if operation in MAY[state]:
            attempt()
            assert bench.events(subject)[-1].outcome == "success"
        else:
            with pytest.raises(PolicyError, match="KS-USE-STATE"):
                attempt()
            after = bench.events(subject)
            assert len(after) == before + 1
            assert (after[-1].action, after[-1].outcome) == (f"key.{operation}", "denied")
    assert not (tmp_path / "new.sig").exists() or "sign" in MAY[state]
    assert not (tmp_path / "new.enc").exists() or "encrypt" in MAY[state]
    if "decrypt" in MAY[state]:
        assert (tmp_path / "out").read_bytes() == b"payload"
    else:
        assert not (tmp_path / "out").exists()


def test_pre_active_key_is_not_used(bench: Bench, tmp_path: Path) -> None:
    key = bench(bench.ws.keys.generate, "Life", Algorithm.ED25519, "new", Purpose.SIGNING)
    data = tmp_path / "d"
    data.write_bytes(b"x")
    with pytest.raises(PolicyError, match="PRE_ACTIVE key cannot sign"):
        bench(bench.ws.use.sign_file, key.id, data, tmp_path / "d.sig")
    assert not (tmp_path / "d.sig").exists()
    assert bench.events(key.id)[-1].outcome == "denied"


def test_wrong_purpose_is_refused(bench: Bench, tmp_path: Path) -> None:
    wrapper = active_key(bench, Algorithm.AES_256, Purpose.KEY_WRAPPING, "kek")
    data = tmp_path / "d"
    data.write_bytes(b"x")
    with pytest.raises(PolicyError, match="KS-USE-PURPOSE"):
        bench(bench.ws.use.encrypt_file, wrapper.id, data, tmp_path / "d.enc")
    assert not (tmp_path / "d.enc").exists()


# --- AES-GCM files -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 2 * 1024 * 1024 + 17])
def test_encrypt_decrypt_round_trip(bench: Bench, tmp_path: Path, size: int) -> None:
    key = active_key(bench, Algorithm.AES_256, Purpose.ENCRYPTION, "files")
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(range(256)) * (size // 256) + b"\x07" * (size % 256))
    seen: list[tuple[int, int]] = []
    sealed = tmp_path / "plain.enc"
    bench(
        bench.ws.use.encrypt_file, key.id, plain, sealed, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (size, size)
    raw = sealed.read_bytes()
    assert raw[:8] == b"KSTDENC1" and raw[16:32] == uuid.UUID(key.id).bytes
    if size >= 1024:
        assert plain.read_bytes()[:1024] not in raw
    out = tmp_path / "plain.out"
    result = bench(bench.ws.use.decrypt_file, None, sealed, out)
    assert out.read_bytes() == plain.read_bytes()
    assert result.output_sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()


def tampered_variants(raw: bytes) -> dict[str, bytes]:
    return {
        "flipped header byte": raw[:45] + bytes([raw[45] ^ 1]) + raw[46:],
        "flipped ciphertext byte": raw[:100] + bytes([raw[100] ^ 0x80]) + raw[101:],
        "flipped tag byte": raw[:-1] + bytes([raw[-1] ^ 1]),
        "truncated by one byte": raw[:-1],
        "truncated to the first chunk": raw[: 48 + 1024 * 1024 + 16],
        "extended by one byte": raw + b"\x00",
        "chunks swapped": raw[:48]
        + raw[48 + 1024 * 1024 + 16 : 48 + 2 * (1024 * 1024 + 16)]
        + raw[48 : 48 + 1024 * 1024 + 16]
        + raw[48 + 2 * (1024 * 1024 + 16) :],
        "not a keystead file": b"hello world" * 10,
    }


def test_tampered_files_leave_no_output(bench: Bench, tmp_path: Path) -> None:
    key = active_key(bench, Algorithm.AES_128, Purpose.ENCRYPTION, "files")
    plain = tmp_path / "plain"
    plain.write_bytes(b"A" * (2 * 1024 * 1024 + 5))
    sealed = tmp_path / "plain.enc"
    bench(bench.ws.use.encrypt_file, key.id, plain, sealed)
    for kind, variant in tampered_variants(sealed.read_bytes()).items():
        bad = tmp_path / "bad.enc"
        bad.write_bytes(variant)
        with pytest.raises((NotAuthentic, ValidationError)):
            bench(bench.ws.use.decrypt_file, None, bad, tmp_path / "out")
        assert not (tmp_path / "out").exists(), kind
        assert not list(tmp_path.glob(".keystead-*")), kind


def test_file_for_another_key_is_refused(bench: Bench, tmp_path: Path) -> None:
    one = active_key(bench, Algorithm.AES_256, Purpose.ENCRYPTION, "one")
    two = active_key(bench, Algorithm.AES_256, Purpose.ENCRYPTION, "two")
    plain = tmp_path / "p"
    plain.write_bytes(b"secret-ish")
    bench(bench.ws.use.encrypt_file, one.id, plain, tmp_path / "p.enc")
    with pytest.raises(ValidationError, match="encrypted under key 'one'"):
        bench(bench.ws.use.decrypt_file, two.id, tmp_path / "p.enc", tmp_path / "out")
    # The header names key one; moving it to key two's id must fail authentication.
    raw = bytearray((tmp_path / "p.enc").read_bytes())
    raw[16:32] = uuid.UUID(two.id).bytes
    (tmp_path / "q.enc").write_bytes(bytes(raw))
    with pytest.raises(NotAuthentic):
        bench(bench.ws.use.decrypt_file, None, tmp_path / "q.enc", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_never_overwritten_without_the_flag(
    bench: Bench, tmp_path: Path
) -> None:
    key = active_key(bench, Algorithm.EC_P384, Purpose.SIGNING, "s")
    data = tmp_path / "d"
    data.write_bytes(b"data")
    sig = tmp_path / "d.sig"
    sig.write_bytes(b"keep me")
    with pytest.raises(ValidationError, match="already exists"):
        bench(bench.ws.use.sign_file, key.id, data, sig)
    assert sig.read_bytes() == b"keep me"
    bench(bench.ws.use.sign_file, key.id, data, sig, overwrite=True)
    assert sig.read_bytes() != b"keep me"


def test_cancel_leaves_no_output_and_is_recorded(bench: Bench, tmp_path: Path) -> None:
    key = active_key(bench, Algorithm.AES_256, Purpose.ENCRYPTION, "c")
    data = tmp_path / "big"
    data.write_bytes(b"z" * (3 * 1024 * 1024))
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 1024 * 1024:
            cancel.set()

    with pytest.raises(OperationCancelled):
        bench(
            bench.ws.use.encrypt_file,
            key.id,
            data,
            tmp_path / "big.enc",
            progress=progress,
            cancel=cancel,
        )
    assert not (tmp_path / "big.enc").exists()
    assert not list(tmp_path.glob(".keystead-*"))
    last = bench.events(key.id)[-1]
    assert (last.action, last.outcome) == ("key.encrypt", "aborted")
    assert bench(bench.ws.use.usage_count, key.id) == 0


def test_batch_signing_is_one_entry_that_names_every_message(bench: Bench) -> None:
    key = active_key(bench, Algorithm.EC_P256, Purpose.SIGNING, "batch")
    messages = [f"message {i}".encode() for i in range(50)]
    signatures = bench(bench.ws.use.sign_messages, key.id, messages)
    public = serialization.load_der_public_key(bench(bench.ws.keys.repo.spki, key.id))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for message, signature in zip(messages, signatures, strict=True):
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    [entry] = [e for e in bench.events(key.id) if e.action == "key.sign"]
    manifest = hashlib.sha256(b"".join(hashlib.sha256(m).digest() for m in messages))
    assert entry.details["batch"] == 50
    assert entry.details["input_sha256"] == manifest.hexdigest()
    outputs = hashlib.sha256(b"".join(hashlib.sha256(s).digest() for s in signatures))
    assert entry.details["output_sha256"] == outputs.hexdigest()
    assert bench(bench.ws.use.usage_count, key.id) == 50
