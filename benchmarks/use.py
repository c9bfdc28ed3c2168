"""Key use: signing many small messages and encrypting a large file, Keystead against a raw
python-pkcs11 loop on the same token in the same run (and ``pkcs11-tool --sign`` per message).

    .venv/bin/python benchmarks/use.py [--messages 10000] [--mib 1024] [--repeats 3]
    .venv/bin/python benchmarks/use.py --messages 500 --mib 16 --repeats 1   # smoke run

Targets (issue 14): signing at least 0.8x the raw loop's rate; file encryption at least 0.8x the
raw token's AES-GCM throughput. Keystead's numbers include what it must do and the raw loop does
not: the state check, the audit entry (sealed with the token's HMAC), hashing input and output
(SHA-256), writing the output to a temporary file, fsync, and linking it into place.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams

from app.domain.algorithms import Algorithm, Purpose
from app.domain.approval import Credential
from app.domain.lifecycle import Action
from app.domain.roles import FIRST_OPERATOR_ROLES
from app.paths import Home
from app.services.approvals import ScriptedApprovers
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.keyslots import KdfCost
from benchmarks.common import SOFTHSM_MODULE, median, ratio, samples_text

PIN = "123456"


def raw_objects(ws: Workstation, key: Any, cls: ObjectClass) -> Any:
    session = ws.tokens.session("Bench")._session
    [obj] = list(
        session.get_objects({Attribute.CLASS: cls, Attribute.ID: bytes.fromhex(key.cka_id)})
    )
    return obj


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pkcs11-tool-signs", type=int, default=50)
    args = parser.parse_args()
    core = CoreExecutor()
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        root = Path(tmp)
        home = Home(root / "home")

        def setup() -> tuple[Workstation, Any, Any]:
            ws = Workstation.initialize(
                home,
                "bench",
                "bench-passphrase",
                "bench-passphrase",
                SoftTokenRequest("Bench", "12345678", PIN),
                cost=KdfCost(1024, 1, 1),
            )
            ws.tokens.login("Bench", PIN)
            # Dual control: a second operator approves the signing key's activation.
            witness_pass = "witness-passphrase"
            ws.roster.add("witness", FIRST_OPERATOR_ROLES, witness_pass, witness_pass)
            ws.approvals.source = ScriptedApprovers([Credential("witness", witness_pass)])
            signer = ws.keys.generate("Bench", Algorithm.EC_P256, "signer", Purpose.SIGNING)
            aes = ws.keys.generate("Bench", Algorithm.AES_256, "files", Purpose.ENCRYPTION)
            for key in (signer, aes):
                ws.lifecycle.transition(key.id, Action.ACTIVATE)
            return ws, ws.keys.resolve(signer.id), ws.keys.resolve(aes.id)

        ws, signer, aes = core.call(setup)
        messages = [os.urandom(64) for _ in range(args.messages)]
        plain = root / "plain.bin"
        with plain.open("wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(1024 * 1024))

        def keystead_sign() -> float:
            start = time.perf_counter()
            ws.use.sign_messages(signer.id, messages, "ECDSA-SHA256")
            return time.perf_counter() - start

        def raw_sign() -> float:
            start = time.perf_counter()
            obj = raw_objects(ws, signer, ObjectClass.PRIVATE_KEY)
            for message in messages:
                obj.sign(hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA)
            return time.perf_counter() - start

        def keystead_encrypt(n: int) -> float:
            target = root / f"k{n}.enc"
            start = time.perf_counter()
            ws.use.encrypt_file(aes.id, plain, target)
            took = time.perf_counter() - start
            target.unlink()
            return took

        def raw_encrypt(n: int) -> float:
            target = root / f"r{n}.enc"
            start = time.perf_counter()
            obj = raw_objects(ws, aes, ObjectClass.SECRET_KEY)
            prefix = os.urandom(8)
            with plain.open("rb") as src, target.open("wb") as out:
                index = 0
                while block := src.read(1024 * 1024):
                    nonce = prefix + index.to_bytes(4, "big")
                    out.write(
                        obj.encrypt(
                            block,
                            mechanism=Mechanism.AES_GCM,
                            mechanism_param=GCMParams(nonce, b"", 128),
                        )
                    )
                    index += 1
            took = time.perf_counter() - start
            target.unlink()
            return took

        load = os.getloadavg()
        print(
            f"messages {args.messages}, file {args.mib} MiB, repeats {args.repeats}, "
            f"load {load[0]:.2f} {load[1]:.2f}"
        )
        core.call(keystead_sign), core.call(raw_sign)  # warm-up
        k_sign, r_sign, k_enc, r_enc = [], [], [], []
        for n in range(args.repeats):
            k_sign.append(core.call(keystead_sign))
            r_sign.append(core.call(raw_sign))
            k_enc.append(core.call(keystead_encrypt, n))
            r_enc.append(core.call(raw_encrypt, n))
        core.call(ws.lock)

        signs: list[float] = []
        conf = home.softhsm_conf
        data = root / "m.bin"
        data.write_bytes(hashlib.sha256(messages[0]).digest())  # SoftHSM 2.6 has no ECDSA-SHA256
        for _ in range(args.pkcs11_tool_signs):
            start = time.perf_counter()
            done = subprocess.run(
                [
                    "pkcs11-tool",
                    "--module",
                    SOFTHSM_MODULE,
                    "--token-label",
                    "Bench",
                    "--login",
                    "--pin",
                    PIN,
                    "--sign",
                    "--mechanism",
                    "ECDSA",
                    "--id",
                    signer.cka_id,
                    "--input-file",
                    str(data),
                    "--output-file",
                    str(root / "m.sig"),
                ],
                env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"},
                check=False,
                capture_output=True,
            )
            signs.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"pkcs11-tool --sign failed: {done.stderr.decode()}")
        core.shutdown()

    n = args.messages
    mib = args.mib
    print(f"sign, Keystead sign_messages : {n / median(k_sign):9.0f} /s  {samples_text(k_sign)}")
    print(f"sign, raw python-pkcs11 loop : {n / median(r_sign):9.0f} /s  {samples_text(r_sign)}")
    print(f"sign, pkcs11-tool per message: {1 / median(signs):9.1f} /s  (median of {len(signs)})")
    print(f"sign rate ratio Keystead/raw : {ratio(median(r_sign), median(k_sign))}")
    print(
        f"encrypt, Keystead encrypt_file: {mib / median(k_enc):8.1f} MiB/s  {samples_text(k_enc)}"
    )
    print(
        f"encrypt, raw GCM loop         : {mib / median(r_enc):8.1f} MiB/s  {samples_text(r_enc)}"
    )
    print(f"encrypt throughput ratio      : {ratio(median(r_enc), median(k_enc))}")


if __name__ == "__main__":
    main()
