"""Backup and restore throughput against raw python-pkcs11 wrap / unwrap loops, and the write
against ``dd conv=fsync`` of the same size. Run by hand (not part of the tests):

    .venv/bin/python benchmarks/backup.py [--n 10000]
    .venv/bin/python benchmarks/backup.py --n 300          # smoke run

Setup (not timed): a workstation with an embedded token; ``--n`` backup-able AES-256 keys made
with python-pkcs11 directly (Keystead's own template) and recorded with ``KeyRepository``.

- Keystead backup: ``ws.backup.create`` (SO login for the trusted KEK, wrap every key on the
  token, seal metadata and audit, SLIP-39 2-of-3, sign, write, read back uncached, verify,
  record). Raw peer: the same trusted KEK session, one ``get_objects`` and ``wrap_key`` per key.
- Keystead restore: ``ws.backup.restore`` onto a second, fresh workstation and token (verify
  everything, per key a session-copy KCV check and the token object). Raw peer: ``unwrap_key``
  of every blob into token objects (then destroyed), same token, same run.
- Write: the backup's bytes against ``dd if=/dev/zero bs=1M count=… conv=fsync``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from app.domain.algorithms import Algorithm, Purpose, usage_for
from app.domain.approval import Credential
from app.domain.keys import KeyRecord, KeyState, TrustedWrap
from app.domain.roles import FIRST_OPERATOR_ROLES
from app.hsm.backup_wrap import trusted_kek, user_kek
from app.hsm.templates import KeySpec, secret_template
from app.paths import Home
from app.services.approvals import ScriptedApprovers
from app.services.backup import KekSecret
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation, utc_now
from app.storage.keyslots import KdfCost

SO_PIN, PIN, PASSPHRASE = "12345678", "123456", "benchmark passphrase"
WITNESS, WITNESS_PASS = "witness", "benchmark witness passphrase"


def workstation(home: Home, label: str) -> Workstation:
    ws = Workstation.initialize(
        home, "bench", PASSPHRASE, PASSPHRASE, SoftTokenRequest(label, SO_PIN, PIN),
        cost=KdfCost(1024, 1, 1),
    )  # fmt: skip
    ws.tokens.login(label, PIN)
    # Dual control (issue 12): a second operator approves backup and restore (not timed apart:
    # one approval per run, as at a real ceremony).
    ws.roster.cost = KdfCost(1024, 1, 1)
    ws.roster.add(WITNESS, FIRST_OPERATOR_ROLES, WITNESS_PASS, WITNESS_PASS)
    ws.approvals.source = ScriptedApprovers([Credential(WITNESS, WITNESS_PASS)])
    return ws


def populate(ws: Workstation, label: str, n: int) -> None:
    session = ws.tokens.session(label)
    raw = session._session
    plan = usage_for(Algorithm.AES_256, Purpose.ENCRYPTION)
    records = []
    for index in range(n):
        spec = KeySpec(Algorithm.AES_256, f"k{index:05d}", secrets.token_bytes(16), plan, True)
        key = raw.generate_key(KeyType.AES, 256, store=True, template=secret_template(spec))
        kcv = bytes(key[Attribute.CHECK_VALUE]).hex().upper()
        records.append(
            KeyRecord(
                str(uuid.uuid4()),
                spec.label,
                Algorithm.AES_256,
                Purpose.ENCRYPTION,
                KeyState.PRE_ACTIVE,
                session.info.serial,
                label,
                spec.cka_id.hex(),
                True,
                kcv,
                None,
                utc_now(),
                "bench",
                wrap_trusted=TrustedWrap.OK,
            )
        )
    with ws.db.transaction():
        for record in records:
            ws.keys.repo.insert(record, None)


def raw_wrap(ws: Workstation, label: str) -> tuple[float, list[bytes]]:
    session = ws.tokens.session(label)
    kek = os.urandom(32)
    with trusted_kek(session.module, session.info, kek, SO_PIN, PIN) as kek_session:
        start = time.perf_counter()
        raw, kek_object = kek_session._session, kek_session._kek
        blobs = [
            bytes(kek_object.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP_PAD))
            for obj in raw.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
            if obj[Attribute.EXTRACTABLE]
        ]
        elapsed = time.perf_counter() - start
    session.login_changed()
    return elapsed, blobs


def raw_unwrap(ws: Workstation, label: str, kek: bytes, blobs: list[bytes]) -> float:
    session = ws.tokens.session(label)
    with user_kek(session.module, session.info, kek) as kek_session:
        kek_object = kek_session._kek
        start = time.perf_counter()
        made = [
            kek_object.unwrap_key(
                ObjectClass.SECRET_KEY,
                KeyType.AES,
                blob,
                mechanism=Mechanism.AES_KEY_WRAP_PAD,
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: True,
                    Attribute.ID: secrets.token_bytes(16),
                },
            )
            for blob in blobs
        ]
        elapsed = time.perf_counter() - start
        for obj in made:
            obj.destroy()
    return elapsed


def dd(directory: Path, size: int) -> float:
    target = directory / "dd.bin"
    count = max(1, (size + (1 << 20) - 1) >> 20)
    start = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={count}", "conv=fsync"],
        check=True, capture_output=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument(
        "--backup-only", action="store_true", help="skip restore (≈ 17 keys/s on SoftHSM)"
    )
    args = parser.parse_args()
    core = CoreExecutor()
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        root = Path(tmp)
        stick = root / "stick"
        stick.mkdir()
        ws = core.call(workstation, Home(root / "a"), "BenchA")
        core.call(populate, ws, "BenchA", args.n)
        # The keys were made behind Keystead's back: bring the embedded store's shadow copies
        # up to date now (untimed), as Keystead's own generation does key by key. Otherwise
        # the backup's first token write copies and fsyncs every new object file (16.8 s of
        # 27.2 s at 2,000 keys in a profile) and the benchmark measures the setup.
        core.call(lambda: ws.tokens.session("BenchA").module.wrote())

        def create() -> tuple[Any, float]:
            start = time.perf_counter()
            made = ws.backup.create(
                stick,
                "BenchA",
                SO_PIN,
                PIN,
                threshold=2,
                custodians=("a", "b", "c"),
                deliver=lambda card: None,  # shares handed out: not timed, nothing to show
            )
            return made, time.perf_counter() - start

        created, keystead_backup = core.call(create)
        raw_backup, blobs = core.call(raw_wrap, ws, "BenchA")
        size = sum(p.stat().st_size for p in created.directory.iterdir())
        dd_time = dd(stick, size)
        core.call(ws.lock)
        if args.backup_only:
            core.shutdown()
            _print_backup(args.n, keystead_backup, len(blobs), raw_backup, size, dd_time)
            return

        ws_b = core.call(workstation, Home(root / "b"), "BenchB")
        secret = KekSecret(mnemonics=created.share_set.mnemonics[:2])

        def restore() -> float:
            start = time.perf_counter()
            ws_b.backup.restore(created.directory, secret, "BenchB")
            return time.perf_counter() - start

        keystead_restore = core.call(restore)
        kek = os.urandom(32)
        # the raw peer unwraps blobs made under its own KEK: wrap them again untimed
        with_kek = core.call(_rewrap, ws_b, "BenchB", kek)
        raw_restore = core.call(raw_unwrap, ws_b, "BenchB", kek, with_kek)
        core.call(ws_b.lock)
    core.shutdown()
    n = args.n
    _print_backup(n, keystead_backup, len(blobs), raw_backup, size, dd_time)
    print(f"restore  Keystead {n / keystead_restore:8.1f} keys/s ({keystead_restore:.2f} s)")
    print(f"         raw unwrap {len(with_kek) / raw_restore:6.1f} keys/s ({raw_restore:.2f} s)")
    print(
        f"         ratio Keystead/raw {(n / keystead_restore) / (len(with_kek) / raw_restore):.2f}x"
    )


def _print_backup(n: int, ours: float, wrapped: int, raw: float, size: int, dd_time: float) -> None:
    print(f"{n} AES-256 keys (EC keys: not measured in this run)")
    print(f"backup   Keystead {n / ours:8.1f} keys/s ({ours:.2f} s, incl. write + read-back)")
    print(f"         raw wrap {wrapped / raw:8.1f} keys/s ({raw:.2f} s)")
    print(f"         ratio Keystead/raw {(n / ours) / (wrapped / raw):.2f}x")
    print(
        f"write    {size} bytes in the backup; dd conv=fsync of {max(1, size >> 20)} MiB: "
        f"{dd_time:.3f} s"
    )


def _rewrap(ws: Workstation, label: str, kek: bytes) -> list[bytes]:
    session = ws.tokens.session(label)
    with trusted_kek(session.module, session.info, kek, SO_PIN, PIN) as kek_session:
        raw, kek_object = kek_session._session, kek_session._kek
        blobs = [
            bytes(kek_object.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP_PAD))
            for obj in raw.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
            if obj[Attribute.EXTRACTABLE]
        ]
    session.login_changed()
    return blobs


if __name__ == "__main__":
    main()
