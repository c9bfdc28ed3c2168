"""Inventory at 100,000 managed keys, database half: unlock, open checks, records, memory.

Run by hand (not part of the tests), from the repository root:

    .venv/bin/python benchmarks/inventory_db.py [--n 100000] [--repeats 3] [--fast-kdf]

Target from the issue: "Inventory with 100,000 managed keys: unlock (after the KDF) to painted
table <= 1 s; peak memory <= 400 MB". This script measures everything up to the list of
``InventoryItem`` the table model receives; ``benchmarks/inventory_gui.py`` adds the Qt model and
paint. ``build_inventory`` and ``load_items`` are importable for that purpose::

    from benchmarks.inventory_db import build_inventory, load_items
    home, operator, passphrase = build_inventory(tmpdir, 100_000, core=core)
    loaded = load_items(home, operator, passphrase, core=core)   # unlocked + items
    ...  # model.set_rows(loaded.items); paint
    core.call(loaded.workstation.lock)

Setup (not timed) runs in a child process, so this process's peak RSS covers only unlock and
inventory: a workstation in a temporary directory, ``n`` KeyRecord rows with mixed algorithms,
purposes, states, tokens, tags, notes, dates and SPKI blobs, inserted through ``KeyRepository``
in one transaction; then locked. No token is logged in, so every row is UNCHECKED.

Raw peer, measured in the same run on the same file with the same key: bare sqlcipher3,
``PRAGMA key`` with the raw key, ``SELECT * FROM keys`` and ``fetchall`` (and, for the
end-to-end comparison, the same two integrity pragmas Keystead runs on every open).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import gc
import json
import multiprocessing
import random
import tempfile
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlcipher3

from app.domain.algorithms import Algorithm, allowed_purposes
from app.domain.keys import InventoryItem, KeyRecord, KeyState, TokenSync
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import Workstation
from app.storage.database import Database
from app.storage.keyslots import KdfCost, KeySlotFile
from app.storage.repository import KeyRepository
from benchmarks.common import (
    current_rss_mb,
    machine_line,
    ms,
    peak_rss_mb,
    ratio,
    row,
    timed,
)

T = TypeVar("T")

OPERATOR = "bench"
PASSPHRASE = "inventory benchmark passphrase"
FAST_KDF = KdfCost(1024, 1, 1)
TOKENS = (
    ("5f1c0a9e3b7d2c41", "Vault A"),
    ("8e2d4b6a1c9f0e37", "Vault B"),
    ("0a7b3c5d9e1f2468", "Issuing CA HSM"),
    ("c4e6a8b0d2f41357", "Backup token"),
)
# Weighted like a real estate: mostly AES, some RSA and EC.
ALGORITHM_WEIGHTS = {
    Algorithm.AES_256: 40,
    Algorithm.AES_128: 10,
    Algorithm.AES_192: 2,
    Algorithm.RSA_2048: 15,
    Algorithm.RSA_3072: 8,
    Algorithm.RSA_4096: 5,
    Algorithm.EC_P256: 12,
    Algorithm.EC_P384: 5,
    Algorithm.ED25519: 3,
}
STATE_WEIGHTS = {
    KeyState.ACTIVE: 50,
    KeyState.PRE_ACTIVE: 15,
    KeyState.SUSPENDED: 4,
    KeyState.DEACTIVATED: 20,
    KeyState.COMPROMISED: 2,
    KeyState.DESTROYED: 8,
    KeyState.DESTROYED_COMPROMISED: 1,
}
SPKI_BYTES = {
    Algorithm.RSA_2048: 294,
    Algorithm.RSA_3072: 422,
    Algorithm.RSA_4096: 550,
    Algorithm.EC_P256: 91,
    Algorithm.EC_P384: 120,
    Algorithm.ED25519: 44,
}
TAGS = ("pci", "payments", "hr", "legacy", "tls", "code-signing", "backup", "db-tde", "test")
_LIVE = (KeyState.PRE_ACTIVE, KeyState.ACTIVE, KeyState.SUSPENDED)


def _call(core: CoreExecutor | None) -> Callable[..., Any]:
    """Run on the core thread when there is one, else right here (no core thread registered)."""
    if core is not None:
        return core.call
    return lambda fn, *args, **kwargs: fn(*args, **kwargs)


# --- setup ---------------------------------------------------------------------------------


def records(n: int, seed: int = 20260301) -> Iterator[tuple[KeyRecord, bytes | None]]:
    """``n`` plausible records (deterministic). Nothing is due, so unlock changes nothing."""
    rng = random.Random(seed)
    algorithms = rng.choices(list(ALGORITHM_WEIGHTS), list(ALGORITHM_WEIGHTS.values()), k=n)
    states = rng.choices(list(STATE_WEIGHTS), list(STATE_WEIGHTS.values()), k=n)
    now = datetime.now(UTC)
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    span = (now - epoch).total_seconds()
    previous: KeyRecord | None = None
    for i in range(n):
        algorithm, state = algorithms[i], states[i]
        purpose = rng.choice(allowed_purposes(algorithm))
        serial, label = TOKENS[i % len(TOKENS)]
        created = epoch + timedelta(seconds=rng.random() * span)
        activation = deactivation = compromise = None
        if state is KeyState.PRE_ACTIVE:
            # Planned activation in the future, or none: apply_due at unlock must find nothing.
            activation = now + timedelta(days=rng.randint(30, 900)) if i % 3 == 0 else None
        else:
            activation = created + timedelta(days=rng.randint(0, 30))
        if state in _LIVE:
            deactivation = now + timedelta(days=rng.randint(30, 3000)) if i % 2 else None
        elif state is not KeyState.PRE_ACTIVE:
            deactivation = created + timedelta(days=rng.randint(30, 700))
        if state in (KeyState.COMPROMISED, KeyState.DESTROYED_COMPROMISED):
            compromise = created + timedelta(days=rng.randint(1, 300))
        tags = tuple(rng.sample(TAGS, rng.randint(1, 2))) if i % 10 < 3 else ()
        record = KeyRecord(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            name=f"{purpose.value}-{algorithm.value.lower()}-{i:06d}",
            algorithm=algorithm,
            purpose=purpose,
            state=state,
            token_serial=serial,
            token_label=label,
            cka_id=f"{rng.getrandbits(128):032x}",
            extractable=i % 4 == 0,
            kcv=f"{rng.getrandbits(24):06X}" if algorithm.symmetric else None,
            fingerprint=None if algorithm.symmetric else f"{rng.getrandbits(256):064x}",
            created_at=created,
            created_by=f"officer{i % 7}",
            tags=tags,
            notes=f"ticket CHG-{rng.randint(1000, 99999)}" if i % 10 == 0 else "",
            activation_date=activation,
            deactivation_date=deactivation,
            compromise_date=compromise,
            replaces=previous.id if previous is not None and i % 20 == 0 else None,
            token_sync=TokenSync.REFUSED if i % 500 == 0 else TokenSync.OK,
        )
        spki = rng.randbytes(SPKI_BYTES[algorithm]) if algorithm in SPKI_BYTES else None
        previous = record
        yield record, spki


def build_inventory(
    tmpdir: str | Path,
    n: int = 100_000,
    *,
    core: CoreExecutor | None = None,
    cost: KdfCost | None = None,
) -> tuple[Home, str, str]:
    """A locked workstation under ``tmpdir`` holding ``n`` key records; (home, operator, pass).

    Runs on ``core`` if given; without it, call this where no core thread is registered (a
    fresh process). ``cost`` defaults to the production Argon2id cost.
    """
    home = Home(Path(tmpdir) / "home")

    def build() -> None:
        ws = Workstation.initialize(home, OPERATOR, PASSPHRASE, PASSPHRASE, cost=cost or KdfCost())
        try:
            repo = KeyRepository(ws.db)
            with ws.db.transaction():
                for record, spki in records(n):
                    repo.insert(record, spki)
        finally:
            ws.lock()

    _call(core)(build)
    return home, OPERATOR, PASSPHRASE


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Loaded:
    """An unlocked workstation and its inventory; lock it with ``core.call(ws.lock)``."""

    workstation: Workstation
    items: list[InventoryItem]
    unlock_seconds: float  # Workstation.unlock, KDF included
    inventory_seconds: float  # ws.keys.inventory()


def load_items(
    home: Home, operator: str, passphrase: str, *, core: CoreExecutor | None = None
) -> Loaded:
    """Unlock and list the inventory, each timed on the core thread."""
    call = _call(core)
    ws, unlock_s = call(timed, Workstation.unlock, home, operator, passphrase)
    try:
        items, inventory_s = call(timed, ws.keys.inventory)
    except BaseException:
        call(ws.lock)
        raise
    return Loaded(ws, items, unlock_s, inventory_s)


def kdf_only(home: Home, operator: str, passphrase: str) -> bytes:
    """What unlock spends in Argon2id + RFC 5649 unwrap: the database key."""
    return KeySlotFile.load(home.keyslots).open(operator, passphrase)


def open_only(home: Home, key: bytes) -> float:
    """Database.open (settings asserts, cipher_integrity_check, quick_check, migrations)."""
    db, seconds = timed(Database.open, home.database, key)
    db.close()
    return seconds


def apply_due_only(ws: Workstation) -> float:
    """The cryptoperiod sweep unlock runs (nothing is due in this data set)."""
    changed, seconds = timed(ws.lifecycle.apply_due)
    if changed:
        raise RuntimeError(f"{len(changed)} keys were due; the data set must have none")
    return seconds


def _raw_connect(path: Path, key: bytes) -> Any:
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return conn


def raw_select(path: Path, key: bytes, checks: bool = False) -> tuple[int, float, float]:
    """The raw peer: connect, key, [integrity pragmas], SELECT * fetchall.

    Returns (rows, seconds for everything, seconds for the SELECT fetchall alone).
    """
    conn = None
    try:
        conn, connect_s = timed(_raw_connect, path, key)
        _, schema_s = timed(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone())
        check_s = 0.0
        if checks:
            _, check_s = timed(
                lambda: (
                    conn.execute("PRAGMA cipher_integrity_check").fetchall(),
                    conn.execute("PRAGMA quick_check").fetchall(),
                )
            )
        rows, select_s = timed(lambda: conn.execute("SELECT * FROM keys").fetchall())
        total = connect_s + schema_s + check_s + select_s
        return len(rows), total, select_s
    finally:
        if conn is not None:
            conn.close()


def memory_run(home: Home, core: CoreExecutor) -> dict[str, float]:
    """The first (cold) unlock + inventory, with RSS around it and tracemalloc on a second list."""
    gc.collect()
    before = current_rss_mb()
    loaded = load_items(home, OPERATOR, PASSPHRASE, core=core)
    facts = {
        "rss_before": before,
        "rss_after": current_rss_mb(),
        "peak_rss": peak_rss_mb(),
        "cold_unlock": loaded.unlock_seconds,
        "cold_inventory": loaded.inventory_seconds,
        "rows": float(len(loaded.items)),
    }
    unchecked = sum(1 for item in loaded.items if item.presence.name == "UNCHECKED")
    if unchecked != len(loaded.items):
        raise RuntimeError("expected every row UNCHECKED with no token logged in")
    # A refresh, as the GUI does it: the table still holds the old list while the new one loads.
    fresh = core.call(loaded.workstation.keys.inventory)
    facts["peak_rss_refresh"] = peak_rss_mb()
    del fresh
    loaded.items = []
    gc.collect()

    def traced() -> tuple[int, int]:
        tracemalloc.start()
        try:
            items = loaded.workstation.keys.inventory()
            current, peak = tracemalloc.get_traced_memory()
            del items
        finally:
            tracemalloc.stop()
        return current, peak

    current, peak = core.call(traced)
    facts["traced_list"] = current / 2**20
    facts["traced_peak"] = peak / 2**20
    core.call(loaded.workstation.lock)
    return facts


def timing_rounds(
    home: Home, key: bytes, repeats: int, core: CoreExecutor
) -> dict[str, list[float]]:
    """One warm-up, then ``repeats`` interleaved rounds of every Keystead step and raw peer."""
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float, counted: bool) -> None:
        if counted:
            samples.setdefault(name, []).append(seconds)

    for round_ in range(repeats + 1):
        counted = round_ > 0
        _, kdf_s = core.call(timed, kdf_only, home, OPERATOR, PASSPHRASE)
        add("kdf", kdf_s, counted)
        add("open", core.call(open_only, home, key), counted)
        loaded = load_items(home, OPERATOR, PASSPHRASE, core=core)
        add("unlock", loaded.unlock_seconds, counted)
        add("inventory", loaded.inventory_seconds, counted)
        loaded.items = []  # measure the steps below with no 100,000-row list alive
        gc.collect()
        add("records", core.call(lambda ws=loaded.workstation: timed(ws.keys.repo.all)[1]), counted)
        add("apply_due", core.call(apply_due_only, loaded.workstation), counted)
        core.call(loaded.workstation.lock)
        del loaded
        gc.collect()
        _, raw_total, raw_select_s = core.call(raw_select, home.database, key)
        add("raw_open_select", raw_total, counted)
        add("raw_select", raw_select_s, counted)
        _, raw_checked, _ = core.call(raw_select, home.database, key, True)
        add("raw_checked", raw_checked, counted)
    return samples


def report(samples: dict[str, list[float]], memory: dict[str, float], repeats: int) -> None:
    print(f"\nMedian of {repeats} (after one warm-up round), all samples in []:")
    kdf = row("KDF alone (KeySlotFile.open, Argon2id)", samples["kdf"])
    unlock = row("Workstation.unlock (KDF included)", samples["unlock"])
    after_kdf = unlock - kdf
    print(f"  {'  unlock after the KDF (median - median)':<44} {ms(after_kdf)}")
    row("  Database.open + integrity checks alone", samples["open"])
    inventory = row("ws.keys.inventory() (all UNCHECKED)", samples["inventory"])
    row("  KeyRepository.all() alone", samples["records"])
    total = after_kdf + inventory
    print(f"  {'=> unlock after KDF + inventory list':<44} {ms(total)}   (Qt part not included)")
    row("lifecycle.apply_due alone (nothing due) *", samples["apply_due"])
    raw_select_s = row("raw: SELECT * FROM keys fetchall", samples["raw_select"])
    raw_open = row("raw: connect + key + SELECT * fetchall", samples["raw_open_select"])
    raw_checked = row("raw: same + cipher_integrity + quick_check", samples["raw_checked"])

    print(
        "  * the cryptoperiod sweep: part of Workstation.unlock at 00ddbcb, moved to the audit\n"
        "    token's login by later work; measured alone so either placement can be read."
    )
    print("\nRatios (median / median):")
    for label, value, peer in (
        ("inventory() / raw SELECT * fetchall", inventory, raw_select_s),
        ("unlock after KDF + inventory / raw connect + SELECT *", total, raw_open),
        ("unlock after KDF + inventory / raw with the same checks", total, raw_checked),
    ):
        print(f"  {label:<56} {ratio(value, peer)}")

    print("\nMemory (first, cold unlock + inventory in this process; setup ran in a child):")
    print(
        f"  RSS before unlock {memory['rss_before']:.0f} MB, after inventory "
        f"{memory['rss_after']:.0f} MB; peak RSS (ru_maxrss) {memory['peak_rss']:.0f} MB"
        "   (target <= 400 MB, whole process)"
    )
    print(
        f"  refresh with the previous list still held (as the table model does): peak RSS "
        f"{memory['peak_rss_refresh']:.0f} MB"
    )
    print(
        f"  tracemalloc during inventory(): list retained {memory['traced_list']:.0f} MB, "
        f"peak {memory['traced_peak']:.0f} MB (Python allocations only)"
    )
    print(
        f"  cold run: unlock {memory['cold_unlock'] * 1000:.0f} ms (KDF included), "
        f"inventory {memory['cold_inventory'] * 1000:.0f} ms, {memory['rows']:,.0f} rows"
    )


def _build_in_child(tmp: str, n: int, fast_kdf: bool) -> None:
    build_inventory(tmp, n, cost=FAST_KDF if fast_kdf else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="key records (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument(
        "--fast-kdf",
        action="store_true",
        help="a 1 MiB Argon2id keyslot instead of the production 64 MiB (smoke runs)",
    )
    args = parser.parse_args()
    print(f"Inventory DB benchmark, {args.n:,} records - {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        child = multiprocessing.get_context("spawn").Process(
            target=_build_in_child, args=(tmp, args.n, args.fast_kdf)
        )
        (_, build_s) = timed(lambda: (child.start(), child.join()))
        if child.exitcode != 0:
            raise SystemExit(f"setup failed in the child process (exit {child.exitcode})")
        home = Home(Path(tmp) / "home")
        slot = json.loads(home.keyslots.read_text())["slots"][0]
        print(
            f"setup in a child process: {build_s:.1f} s; SQLCipher file "
            f"{home.database.stat().st_size / 1e6:.1f} MB; keyslot Argon2id "
            f"{slot['memory_kib'] // 1024} MiB x {slot['iterations']} passes "
            f"x {slot['lanes']} lanes"
        )
        core = CoreExecutor()
        try:
            memory = memory_run(home, core)
            key = core.call(kdf_only, home, OPERATOR, PASSPHRASE)
            samples = timing_rounds(home, key, args.repeats, core)
        finally:
            core.shutdown()
        report(samples, memory, args.repeats)
        print(
            f"  peak RSS at the end of the run (raw peers and all rounds included) "
            f"{peak_rss_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
