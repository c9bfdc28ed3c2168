"""Backup and restore throughput against raw python-pkcs11 wrap / unwrap loops on the same
token in the same run, and the backup's write against ``dd conv=fsync`` of the same byte count.
Run by hand (not part of the tests):

    .venv/bin/python benchmarks/backup.py                    # the issue's: 10,000 AES + 1,000 EC
    .venv/bin/python benchmarks/backup.py --aes 2000 --ec 200 --rounds 3
    .venv/bin/python benchmarks/backup.py --aes 300 --ec 30  # smoke run

Setup (not timed): a workstation with an embedded token; ``--aes`` backup-able AES-256 keys
(encryption) and ``--ec`` backup-able EC P-256 key pairs (signing) made with python-pkcs11
directly, with Keystead's own templates, and recorded with ``KeyRepository`` (SPKI included).

- Keystead backup: ``ws.backup.create`` (SO login for the trusted KEK, wrap every key on the
  token, seal metadata and audit, SLIP-39 2-of-3, sign, write, read back uncached, verify,
  record, checkpoints). Raw peer: a trusted KEK session as Keystead's, one ``get_objects`` over
  secret keys and one over private keys, ``wrap_key`` of every extractable one.
- Keystead restore: ``ws.backup.restore`` onto a fresh workstation and token (verify
  everything, per AES key a session-copy KCV check and the token object, per EC key a session
  copy that must sign verifiably, the private and public token objects; records, audit).
  Raw peer: on another fresh token, ``unwrap_key`` of every blob into a token object with the
  same template, and for EC keys ``create_object`` of the public half.
- Rounds: ``--rounds R`` runs Keystead and the raw peer R times each, alternating which goes
  first; min / median / max are printed, and the ratio of the medians.
- Phases of a backup come from its progress callback (wrap, seal, write, verify; "record" is
  what follows the read-back: database, audit entry, closing checkpoint).
- Write: the backup's write phase (files written, fsynced, renamed, directory fsynced) against
  ``dd if=/dev/zero bs=SIZE count=1 conv=fsync`` of the same byte count, on the same directory.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pkcs11 import DEFAULT, Attribute, KeyType, Mechanism, ObjectClass

from app.domain.algorithms import Algorithm, Family, Purpose, usage_for
from app.domain.approval import Credential
from app.domain.keys import KeyRecord, KeyState, TrustedWrap
from app.domain.roles import FIRST_OPERATOR_ROLES
from app.hsm.backup_wrap import trusted_kek, user_kek
from app.hsm.session import spki_of
from app.hsm.templates import KeySpec, private_template, public_template, secret_template
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


def _record(session: Any, label: str, spec: KeySpec, kcv: str | None, spki: bytes | None,
            purpose: Purpose) -> KeyRecord:  # fmt: skip
    return KeyRecord(
        str(uuid.uuid4()),
        spec.label,
        spec.algorithm,
        purpose,
        KeyState.PRE_ACTIVE,
        session.info.serial,
        label,
        spec.cka_id.hex(),
        True,
        kcv,
        hashlib.sha256(spki).hexdigest() if spki else None,
        utc_now(),
        "bench",
        wrap_trusted=TrustedWrap.OK,
    )


def populate(ws: Workstation, label: str, aes: int, ec: int) -> None:
    """``aes`` AES-256 encryption keys and ``ec`` EC P-256 signing pairs, backup-able, made with
    Keystead's templates through python-pkcs11 and recorded (untimed setup)."""
    session = ws.tokens.session(label)
    raw = session._session
    rows: list[tuple[KeyRecord, bytes | None]] = []
    plan = usage_for(Algorithm.AES_256, Purpose.ENCRYPTION)
    for index in range(aes):
        spec = KeySpec(Algorithm.AES_256, f"k{index:05d}", secrets.token_bytes(16), plan, True)
        key = raw.generate_key(KeyType.AES, 256, store=True, template=secret_template(spec))
        kcv = bytes(key[Attribute.CHECK_VALUE]).hex().upper()
        rows.append((_record(session, label, spec, kcv, None, Purpose.ENCRYPTION), None))
    plan = usage_for(Algorithm.EC_P256, Purpose.SIGNING)
    for index in range(ec):
        spec = KeySpec(Algorithm.EC_P256, f"e{index:05d}", secrets.token_bytes(16), plan, True)
        pair_public, _private = raw.generate_keypair(
            KeyType.EC,
            store=True,
            public_template=public_template(spec),
            private_template=private_template(spec),
        )
        spki = spki_of(
            pair_public.get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT]), Family.EC
        )
        rows.append((_record(session, label, spec, None, spki, Purpose.SIGNING), spki))
    with ws.db.transaction():
        for record, der in rows:
            ws.keys.repo.insert(record, der)


# What the raw peer wraps: every extractable secret and private key, in one search each.
_WRAPPED_CLASSES = (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY)


def _wrap_every_key(raw: Any, kek_object: Any) -> list[tuple[ObjectClass, bytes, bytes]]:
    """(class, CKA_ID, blob) of every extractable secret / private key (the raw loop)."""
    out = []
    for object_class in _WRAPPED_CLASSES:
        for obj in raw.get_objects({Attribute.CLASS: object_class}):
            if obj[Attribute.EXTRACTABLE]:
                out.append((object_class, b"", bytes(kek_object.wrap_key(obj, mechanism=WRAP))))
    return out


WRAP = Mechanism.AES_KEY_WRAP_PAD


def raw_wrap(ws: Workstation, label: str) -> tuple[float, int]:
    session = ws.tokens.session(label)
    kek = os.urandom(32)
    with trusted_kek(session.module, session.info, kek, SO_PIN, PIN) as kek_session:
        start = time.perf_counter()
        blobs = _wrap_every_key(kek_session._session, kek_session._kek)
        elapsed = time.perf_counter() - start
    session.login_changed()
    return elapsed, len(blobs)


def raw_material(ws: Workstation, label: str, kek: bytes) -> list[tuple[ObjectClass, Any, Any]]:
    """Untimed: every key wrapped under ``kek``, with what the raw unwrap loop needs beside the
    blob (EC: the public key's attributes, read from token A)."""
    session = ws.tokens.session(label)
    out: list[tuple[ObjectClass, Any, Any]] = []
    with trusted_kek(session.module, session.info, kek, SO_PIN, PIN) as kek_session:
        raw, kek_object = kek_session._session, kek_session._kek
        for obj in raw.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            if obj[Attribute.EXTRACTABLE]:
                out.append(
                    (ObjectClass.SECRET_KEY, bytes(kek_object.wrap_key(obj, mechanism=WRAP)), None)
                )
        publics = {
            bytes(p[Attribute.ID]): p.get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT])
            for p in raw.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})
            if p[Attribute.KEY_TYPE] == KeyType.EC
        }
        for obj in raw.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
            if obj[Attribute.EXTRACTABLE]:
                public = publics[bytes(obj[Attribute.ID])]
                out.append(
                    (
                        ObjectClass.PRIVATE_KEY,
                        bytes(kek_object.wrap_key(obj, mechanism=WRAP)),
                        public,
                    )
                )
    session.login_changed()
    return out


_SECRET_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: True,
    Attribute.WRAP_WITH_TRUSTED: True,
    Attribute.MODIFIABLE: True,
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
_PRIVATE_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: True,
    Attribute.WRAP_WITH_TRUSTED: True,
    Attribute.MODIFIABLE: True,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
    Attribute.ENCRYPT: DEFAULT,
    Attribute.VERIFY: DEFAULT,
    Attribute.WRAP: DEFAULT,
}


def raw_unwrap(ws: Workstation, label: str, kek: bytes, material: list[Any]) -> float:
    """The raw restore on this (fresh) token: each blob unwrapped into a token object with the
    full template, and each EC key's public half created. Timed; nothing else."""
    session = ws.tokens.session(label)
    with user_kek(session.module, session.info, kek) as kek_session:
        raw, kek_object = kek_session._session, kek_session._kek
        start = time.perf_counter()
        for object_class, blob, public in material:
            cka_id = secrets.token_bytes(16)
            if object_class is ObjectClass.SECRET_KEY:
                kek_object.unwrap_key(
                    ObjectClass.SECRET_KEY, KeyType.AES, blob, mechanism=WRAP, store=True,
                    template={**_SECRET_TEMPLATE, Attribute.ID: cka_id},
                )  # fmt: skip
            else:
                kek_object.unwrap_key(
                    ObjectClass.PRIVATE_KEY, KeyType.EC, blob, mechanism=WRAP, store=True,
                    template={**_PRIVATE_TEMPLATE, Attribute.ID: cka_id},
                )  # fmt: skip
                raw.create_object(
                    {
                        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                        Attribute.KEY_TYPE: KeyType.EC,
                        **public,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.MODIFIABLE: True,
                        Attribute.ID: cka_id,
                        Attribute.VERIFY: True,
                    }
                )
        elapsed = time.perf_counter() - start
    return elapsed


def dd(directory: Path, size: int) -> float:
    """``dd conv=fsync`` of exactly ``size`` bytes into ``directory``: seconds."""
    target = directory / "dd.bin"
    start = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", f"bs={size}", "count=1", "conv=fsync"],
        check=True, capture_output=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


class Phases:
    """Stage start times from a backup's progress callback."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if done == 0 and stage not in self.marks:
            self.marks[stage] = time.perf_counter()
        if stage == "verify" and done == total > 0:
            self.marks["record"] = time.perf_counter()  # read back: then database and audit

    def durations(self, end: float) -> dict[str, float]:
        """Seconds per phase: "prepare" (approval, checkpoint, KEK, shares: until the first
        wrap), then each stage, and "record" (after the read-back: database, audit entry,
        closing checkpoint)."""
        names = ["prepare", *self.marks]
        times = [self.start, *self.marks.values(), end]
        return {name: times[i + 1] - times[i] for i, name in enumerate(names)}


def _profiled(path: Path | None, work: Callable[[], Any]) -> Any:
    if path is None:
        return work()
    profile = cProfile.Profile()
    profile.enable()
    try:
        return work()
    finally:
        profile.disable()
        profile.dump_stats(str(path))


def _stats(values: list[float]) -> str:
    return (
        f"min {min(values):8.2f}  median {statistics.median(values):8.2f}  max {max(values):8.2f}"
    )


def _ratios(ours: list[float], theirs: list[float]) -> str:
    rounds = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, theirs, strict=True))
    median = statistics.median(ours) / statistics.median(theirs)
    return f"         ratio of medians {median:.2f}x (per round: {rounds})"


def _mbps(size: int, seconds: list[float]) -> list[float]:
    return [size / s / 1e6 for s in seconds]


def _revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent.parent), "describe", "--always",
             "--dirty"], check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aes", "--n", type=int, default=10_000, help="AES-256 keys (10,000)")
    parser.add_argument("--ec", type=int, default=1_000, help="EC P-256 key pairs (1,000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each measurement")
    parser.add_argument("--backup-only", action="store_true", help="skip the restores")
    parser.add_argument("--profile", type=Path, help="cProfile Keystead's first backup and "
                        "restore (core thread) into this directory")  # fmt: skip
    args = parser.parse_args()
    n = args.aes + args.ec
    print(f"revision {_revision()}; {args.aes} AES-256 + {args.ec} EC P-256 keys; "
          f"{args.rounds} round(s); load average at start {os.getloadavg()[0]:.2f}")  # fmt: skip
    core = CoreExecutor()
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        root = Path(tmp)
        stick = root / "stick"
        stick.mkdir()
        ws = core.call(workstation, Home(root / "a"), "BenchA")
        core.call(populate, ws, "BenchA", args.aes, args.ec)
        # The keys were made behind Keystead's back: bring the embedded store's shadow copies
        # up to date now (untimed), as Keystead's own generation does key by key. Otherwise
        # the backup's first token write copies and fsyncs every new object file (16.8 s of
        # 27.2 s at 2,000 keys in a profile) and the benchmark measures the setup.
        core.call(lambda: ws.tokens.session("BenchA").module.wrote())

        ours: list[float] = []
        theirs: list[float] = []
        phases: list[dict[str, float]] = []
        created: Any = None
        for round_ in range(args.rounds):

            def create(profile: Path | None) -> tuple[Any, float, dict[str, float]]:
                progress = Phases()

                def work() -> Any:
                    return ws.backup.create(
                        stick,
                        "BenchA",
                        SO_PIN,
                        PIN,
                        threshold=2,
                        custodians=("a", "b", "c"),
                        deliver=lambda card: None,  # shares handed out: nothing to show
                        progress=progress,
                    )

                made = _profiled(profile, work)
                end = time.perf_counter()
                return made, end - progress.start, progress.durations(end)

            profile = args.profile / "backup.prof" if args.profile and round_ == 0 else None

            def ours_step(profile: Path | None = profile) -> None:
                nonlocal created
                made, elapsed, durations = core.call(create, profile)
                created = created or made
                ours.append(n / elapsed)
                phases.append(durations)

            def raw_step() -> None:
                elapsed, count = core.call(raw_wrap, ws, "BenchA")
                theirs.append(count / elapsed)

            steps = [ours_step, raw_step]
            for step in steps if round_ % 2 == 0 else reversed(steps):
                step()
        size = sum(p.stat().st_size for p in created.directory.iterdir())
        dd_times = [dd(stick, size) for _ in range(max(3, args.rounds))]
        kek = os.urandom(32)
        material = core.call(raw_material, ws, "BenchA", kek)
        core.call(ws.lock)
        print(f"backup   Keystead keys/s  {_stats(ours)}")
        print(f"         raw wrap keys/s  {_stats(theirs)}")
        print(_ratios(ours, theirs))
        for name in phases[0]:
            print(f"         phase {name:8s} s  {_stats([p[name] for p in phases])}")
        writes = [p["write"] for p in phases]
        print(f"write    {size} bytes; Keystead's write phase MB/s {_stats(_mbps(size, writes))}")
        print(f"         dd conv=fsync, same size, MB/s  {_stats(_mbps(size, dd_times))}")
        if args.backup_only:
            core.shutdown()
            return

        secret = KekSecret(mnemonics=created.share_set.mnemonics[:2])
        ours_r: list[float] = []
        theirs_r: list[float] = []
        for round_ in range(args.rounds):
            profile = args.profile / "restore.prof" if args.profile and round_ == 0 else None

            # Each restore goes onto a fresh workstation and token, set up untimed and locked
            # after: the process has one SoftHSM instance, which reads its configuration (the
            # token directory) at C_Initialize, so two workstations open at once would share
            # one token directory.
            def ours_restore(index: int = round_, profile: Path | None = profile) -> None:
                target = core.call(workstation, Home(root / f"b{index}"), "BenchB")

                def work() -> float:
                    start = time.perf_counter()
                    _profiled(
                        profile, lambda: target.backup.restore(created.directory, secret, "BenchB")
                    )
                    return time.perf_counter() - start

                ours_r.append(n / core.call(work))
                core.call(target.lock)

            def raw_restore(index: int = round_) -> None:
                target = core.call(workstation, Home(root / f"c{index}"), "BenchC")
                elapsed = core.call(raw_unwrap, target, "BenchC", kek, material)
                theirs_r.append(len(material) / elapsed)
                core.call(target.lock)

            steps = [ours_restore, raw_restore]
            for step in steps if round_ % 2 == 0 else reversed(steps):
                step()
        print(f"restore  Keystead keys/s  {_stats(ours_r)}")
        print(f"         raw unwrap keys/s {_stats(theirs_r)}")
        print(_ratios(ours_r, theirs_r))
    core.shutdown()
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
