"""Token sync (reconciliation) of 10,000 objects against raw python-pkcs11 and pkcs11-tool.

Run by hand (not part of the tests), from the repository root:

    .venv/bin/python benchmarks/token_sync.py [--n 10000] [--repeats 3]

Target from the issue: token sync of 10,000 objects <= 1.2x python-pkcs11's raw enumeration
with one batched attribute read per object, and faster than ``pkcs11-tool --login
--list-objects``, both measured in the same run.

Everything lives in a temporary directory: a fresh workstation whose embedded SoftHSM token uses
its own ``softhsm2.conf`` (``objectstore.backend = file``). ``--n`` token objects are created
with python-pkcs11 straight on the core thread (AES secret keys, and one EC P-256 key pair in
ten, with Keystead's own templates); every other key also gets a Keystead record written through
``KeyRepository``, and one record in a hundred points at an object that does not exist, so the
reconciliation produces present, unmanaged and missing rows.

Measured, each ``--repeats`` times after one warm-up, interleaved, median printed:

(a) Keystead: ``ws.keys.inventory()`` (DB read + token enumeration + join) and
    ``TokenSession.key_objects()`` alone;
(b) raw python-pkcs11 on the same logged-in session: ``for obj in session.get_objects():
    obj.get_attributes(<the same list Keystead reads>)``;
(c) ``pkcs11-tool --login --pin ... --list-objects`` as a subprocess (stdout discarded). Its
    start-up includes C_Initialize, which makes SoftHSM read every object file of the token;
    (a) and (b) run in a process that is already initialised. ``pkcs11-tool -L`` (list slots,
    same start-up) is measured too and subtracted for the "adjusted" figure.

Afterwards, for information: Keystead's audited login against a raw python-pkcs11 login.

The user PIN of the throwaway token is on pkcs11-tool's argv here (benchmark only); Keystead
itself never takes a PIN from argv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os
import secrets
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pkcs11 import KeyType

from app.domain.algorithms import Algorithm, Purpose, allowed_purposes, usage_for
from app.domain.keys import KeyRecord, KeyState
from app.hsm.key_attributes import ENUMERATION_ATTRIBUTES
from app.hsm.session import TokenSession
from app.hsm.templates import KEY_TYPE, KeySpec, private_template, public_template, secret_template
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.keyslots import KdfCost
from app.storage.repository import KeyRepository
from benchmarks.common import (
    SOFTHSM_MODULE,
    machine_line,
    median,
    ms,
    ratio,
    row,
    timed,
)

OPERATOR = "bench"
PASSPHRASE = "token sync benchmark passphrase"
TOKEN_LABEL = "Bench"
SO_PIN = "87654321"
USER_PIN = "123456"
FAST_KDF = KdfCost(1024, 1, 1)  # the KDF is not what this benchmark measures
AES_MIX = (Algorithm.AES_128, Algorithm.AES_192, Algorithm.AES_256)
# The PIN of a throwaway token on pkcs11-tool's argv: acceptable here only.
LIST_OBJECTS = ("--token-label", TOKEN_LABEL, "--login", "--pin", USER_PIN, "--list-objects")


@dataclass(frozen=True)
class Made:
    """One key put on the token: what a Keystead record needs."""

    label: str
    cka_id: bytes
    algorithm: Algorithm
    purpose: Purpose


def _spec(index: int, algorithm: Algorithm) -> tuple[KeySpec, Purpose]:
    purposes = allowed_purposes(algorithm)
    purpose = purposes[index % len(purposes)]
    spec = KeySpec(
        algorithm=algorithm,
        label=f"bench-{index:06d}",
        cka_id=secrets.token_bytes(16),
        usage=usage_for(algorithm, purpose),
        extractable=False,
    )
    return spec, purpose


def populate(ts: TokenSession, n_objects: int, chunk: int = 500) -> list[Made]:
    """Create ``n_objects`` token objects with python-pkcs11 directly (core thread)."""
    raw = ts._session  # the benchmark drives python-pkcs11 itself: setup, not measured
    made: list[Made] = []
    objects = 0
    start = last = time.perf_counter()
    next_report = chunk
    while objects < n_objects:
        index = len(made)
        if index % 10 == 9 and n_objects - objects >= 2:
            spec, purpose = _spec(index, Algorithm.EC_P256)
            raw.generate_keypair(
                KEY_TYPE[spec.algorithm.family],
                None,
                store=True,
                public_template=public_template(spec),
                private_template=private_template(spec),
            )
            objects += 2
        else:
            spec, purpose = _spec(index, AES_MIX[index % len(AES_MIX)])
            raw.generate_key(
                KeyType.AES, spec.algorithm.spec.bits, store=True, template=secret_template(spec)
            )
            objects += 1
        made.append(Made(spec.label, spec.cka_id, spec.algorithm, purpose))
        if objects >= next_report or objects >= n_objects:
            now = time.perf_counter()
            print(
                f"  populated {objects:>6,} / {n_objects:,} objects in {now - start:6.1f} s "
                f"(lately {(now - last) / chunk * 1000:.1f} ms per object)",
                flush=True,
            )
            last, next_report = now, next_report + chunk
    return made


def record_half(ws: Workstation, ts: TokenSession, made: list[Made]) -> Counter[str]:
    """Keystead records for every other key, plus 1% records whose object does not exist."""
    repo = KeyRepository(ws.db)
    now = datetime.now(UTC)
    states = (KeyState.ACTIVE, KeyState.PRE_ACTIVE, KeyState.DEACTIVATED)
    expected: Counter[str] = Counter()

    def record(i: int, m: Made) -> KeyRecord:
        return KeyRecord(
            id=str(uuid.uuid4()),
            name=m.label,
            algorithm=m.algorithm,
            purpose=m.purpose,
            state=states[i % len(states)],
            token_serial=ts.info.serial,
            token_label=ts.info.label,
            cka_id=m.cka_id.hex(),
            extractable=False,
            kcv=None,
            fingerprint=None,
            created_at=now,
            created_by=OPERATOR,
        )

    with ws.db.transaction():
        for i, m in enumerate(made):
            if i % 2 == 0:
                repo.insert(record(i, m), None)
                expected["present"] += 1
            else:
                expected["unmanaged"] += 1
        for j in range(max(1, len(made) // 100)):
            ghost = Made(f"ghost-{j:05d}", secrets.token_bytes(16), Algorithm.AES_256, Purpose.MAC)
            repo.insert(record(j, ghost), None)
            expected["missing on token"] += 1
    return expected


def raw_enumeration(ts: TokenSession) -> list[dict[Any, Any]]:
    """The raw peer: python-pkcs11 on the same session, one batched read per object."""
    session = ts._session
    return [obj.get_attributes(ENUMERATION_ATTRIBUTES) for obj in session.get_objects()]


def run_tool(conf: Path, *args: str, capture: bool = False) -> tuple[str, float]:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    command = ["pkcs11-tool", "--module", SOFTHSM_MODULE, *args]
    start = time.perf_counter()
    result = subprocess.run(
        command,
        env=env,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"pkcs11-tool {' '.join(args[:1])} failed: {result.stderr.strip()}")
    return result.stdout or "", seconds


def check_views(
    ws: Workstation,
    ts: TokenSession,
    conf: Path,
    n: int,
    expected: Counter[str],
    core: CoreExecutor,
) -> int:
    """Before timing anything: every contender sees the same objects.

    Returns how many objects besides the benchmark's own the token holds (Keystead's audit
    keys and checkpoint data objects, when the working tree creates them at login).
    """
    items = core.call(ws.keys.inventory)
    seen = Counter(item.presence.value for item in items)
    if seen != expected:
        raise RuntimeError(f"inventory rows {dict(seen)} != expected {dict(expected)}")
    raw_count = len(core.call(raw_enumeration, ts))
    listing, _ = run_tool(conf, *LIST_OBJECTS, capture=True)
    tool_count = listing.count("Key Object") + listing.count("Data object")
    if raw_count != tool_count or raw_count < n:
        raise RuntimeError(
            f"object counts differ: raw {raw_count}, pkcs11-tool {tool_count}, created {n}"
        )
    return raw_count - n


def measure(
    ws: Workstation, ts: TokenSession, conf: Path, repeats: int, core: CoreExecutor
) -> dict[str, list[float]]:
    """One warm-up run of each contender, then ``repeats`` interleaved rounds."""

    def on_core(fn: Callable[[], object]) -> float:
        # Timed on the core thread itself: no queue hand-off in the number.
        return core.call(lambda: timed(fn)[1])

    contenders: dict[str, Callable[[], float]] = {
        "inventory": lambda: on_core(ws.keys.inventory),
        "db_read": lambda: on_core(ws.keys.repo.all),
        "key_objects": lambda: on_core(ts.key_objects),
        "raw": lambda: on_core(lambda: raw_enumeration(ts)),
        "tool_list": lambda: run_tool(conf, *LIST_OBJECTS)[1],
        "tool_slots": lambda: run_tool(conf, "-L")[1],
    }
    for contender in contenders.values():
        contender()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, contender in contenders.items():
            samples[name].append(contender())
    return samples


def login_rounds(
    ws: Workstation, serial: str, repeats: int, core: CoreExecutor
) -> dict[str, list[float]]:
    """Keystead's login (throttle check, C_Login, audit, enforce_pending) against a raw login.

    Runs after the sync measurements: it closes and reopens the session they used.
    """
    lib = ws.tokens.modules[SOFTHSM_MODULE].raw

    def keystead() -> float:
        ws.tokens.logout(serial)
        return timed(ws.tokens.login, TOKEN_LABEL, USER_PIN)[1]

    def raw() -> float:
        ws.tokens.logout(serial)  # Keystead's session closed: the token is logged out
        start = time.perf_counter()
        session = lib.get_token(token_label=TOKEN_LABEL).open(rw=True, user_pin=USER_PIN)
        seconds = time.perf_counter() - start
        session.close()
        return seconds

    def hook() -> float:
        ws.tokens.login(TOKEN_LABEL, USER_PIN)
        return timed(ws.lifecycle.enforce_pending, serial)[1]

    def scan() -> float:
        return timed(ws.keys.repo.on_token, serial)[1]

    contenders = {"login": keystead, "raw_login": raw, "enforce_pending": hook, "on_token": scan}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(repeats + 1):
        for name, contender in contenders.items():
            seconds = core.call(contender)
            if round_:
                samples[name].append(seconds)
    return samples


def report_login(samples: dict[str, list[float]], records: int) -> None:
    print(f"\nLogin (median, same rounds; {records:,} Keystead records on this token):")
    login = row("Keystead tokens.login (audited)", samples["login"])
    raw = row("raw python-pkcs11 get_token + open(user_pin)", samples["raw_login"])
    row("  login hook lifecycle.enforce_pending alone", samples["enforce_pending"])
    row("  of which KeyRepository.on_token alone", samples["on_token"])
    print(f"  {'Keystead login / raw login':<44} {ratio(login, raw)}")
    paired = sorted(a / b for a, b in zip(samples["login"], samples["raw_login"], strict=True))
    print(
        f"  {'  per round (min / median / max)':<44} {paired[0]:.2f} / "
        f"{median(paired):.2f} / {paired[-1]:.2f}x   login min / max "
        f"{min(samples['login']) * 1000:.1f} / {max(samples['login']) * 1000:.1f} ms, raw "
        f"{min(samples['raw_login']) * 1000:.2f} / {max(samples['raw_login']) * 1000:.2f} ms"
    )


def report(samples: dict[str, list[float]], n: int, repeats: int) -> None:
    print(f"\nMedian of {repeats} (after one warm-up run each), all samples in []:")
    inv = row("(a) Keystead ws.keys.inventory()", samples["inventory"])
    db = row("    of which KeyRepository.all() alone", samples["db_read"])
    objs = row("(a) Keystead TokenSession.key_objects()", samples["key_objects"])
    raw = row("(b) raw python-pkcs11 get_objects+get_attrs", samples["raw"])
    tool = row("(c) pkcs11-tool --login --list-objects", samples["tool_list"])
    slots = row("    pkcs11-tool -L (start-up, C_Initialize)", samples["tool_slots"])
    adjusted = max(tool - slots, 0.0)
    print(f"  {'    pkcs11-tool --list-objects minus -L':<44} {ms(adjusted)}")
    print(f"  {'    inventory - DB read - key_objects (noisy)':<44} {ms(inv - db - objs)}")
    print("\nRatios (median / median):")
    for label, value, peer, target in (
        ("Keystead inventory   / raw python-pkcs11", inv, raw, "target <= 1.2"),
        ("Keystead key_objects / raw python-pkcs11", objs, raw, ""),
        ("Keystead inventory   / pkcs11-tool (as run)", inv, tool, "target < 1"),
        ("Keystead inventory   / pkcs11-tool (minus -L)", inv, adjusted, "target < 1"),
    ):
        print(f"  {label:<46} {ratio(value, peer)}   {target}")
    per = 1e6 / n
    print(
        f"  per object: Keystead inventory {inv * per:.0f} us, raw {raw * per:.0f} us, "
        f"pkcs11-tool minus start-up {adjusted * per:.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="token objects (default 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs (default 3)")
    parser.add_argument(
        "--login-only", action="store_true", help="skip the sync rounds; time only the login"
    )
    args = parser.parse_args()
    if args.n < 4:
        parser.error("--n must be at least 4")

    print(f"Token sync benchmark, {args.n:,} objects - {machine_line()}")
    core = CoreExecutor()
    ws: Workstation | None = None
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        try:
            home = Home(Path(tmp) / "home")
            request = SoftTokenRequest(TOKEN_LABEL, SO_PIN, USER_PIN)
            ws = core.call(
                Workstation.initialize, home, OPERATOR, PASSPHRASE, PASSPHRASE, request, FAST_KDF
            )
            conf = home.softhsm_conf
            if "objectstore.backend = file" not in conf.read_text():
                raise RuntimeError(f"{conf} does not select the file object store")
            print(f"SOFTHSM2_CONF={conf} (objectstore.backend = file)")
            core.call(ws.tokens.login, TOKEN_LABEL, USER_PIN)
            ts = core.call(ws.tokens.session, TOKEN_LABEL)

            made, populate_s = timed(core.call, populate, ts, args.n)
            expected = core.call(record_half, ws, ts, made)
            print(
                f"populated {args.n:,} objects ({len(made):,} keys) in {populate_s:.0f} s; "
                f"inventory rows: {dict(expected)}"
            )
            others = check_views(ws, ts, conf, args.n, expected, core)
            print(
                f"every contender sees {args.n + others:,} objects ({args.n:,} benchmark objects "
                f"+ {others} of Keystead's own: audit keys, checkpoints)"
            )
            if not args.login_only:
                samples = measure(ws, ts, conf, args.repeats, core)
                report(samples, args.n, args.repeats)
            logins = login_rounds(ws, ts.info.serial, args.repeats, core)
            report_login(logins, expected["present"] + expected["missing on token"])
        finally:
            if ws is not None:
                core.call(ws.lock)
            core.shutdown()


if __name__ == "__main__":
    main()
