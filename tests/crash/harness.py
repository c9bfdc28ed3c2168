"""Kill the ``keystead`` CLI with SIGKILL at the moment a token file changes, or at a random
instant, and check after each kill that the next login finds every key, the token and the
database in agreement, and nothing left pending.

Used by ``tests/crash/test_kill.py`` (a few dozen kills, marker ``crash``) and run on its own
for the full counts::

    .venv/bin/python -m tests.crash.harness --at-changes 200 --random 200

A kill "at a token-file change" watches every token directory with inotify (IN_MODIFY,
IN_CREATE, IN_DELETE, IN_MOVED_TO, IN_CLOSE_WRITE) and sends SIGKILL on the N-th event of the
command; N walks over every change the command makes (measured by an unkilled run of the same
command first) in a golden-ratio sequence, so the kills of each operation spread over all its
writes, first to last. The independent checks
use pkcs11-tool (the token's view) and the JSON inventory (the database's view).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.algorithms import Purpose, parse_algorithm
from app.domain.keys import KeyState
from app.domain.lifecycle import usage_in_state
from app.hsm.filestore import Damaged, verify_object_file
from app.paths import Home
from tests.hsm.kit import peer_keys

KEYSTEAD = Path(sys.executable).with_name("keystead")
PASSPHRASE = "SENTINEL-crash-passphrase-5e2a"
PIN = "SENTINEL-crash-pin-7b19"
SO_PIN = "SENTINEL-crash-sopin-c04d"
TOKEN = "t1"

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x2, 0x8, 0x80, 0x100, 0x200
_IN_ISDIR = 0x40000000
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT = struct.Struct("iIII")


class Inotify:
    """Token-directory change events through the Linux inotify API (ctypes, no dependency)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._dirs: dict[int, Path] = {}

    def watch(self, directory: Path) -> None:
        wd = self._libc.inotify_add_watch(self.fd, str(directory).encode(), _MASK)
        if wd >= 0:
            self._dirs[wd] = directory

    def events(self, timeout: float) -> list[tuple[Path, str, int]]:
        """(directory, file name, mask) of the events that arrived within ``timeout`` s."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        found = []
        pos = 0
        while pos < len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            name = data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0").decode()
            pos += _EVENT.size + length
            found.append((self._dirs.get(wd, Path("?")), name, mask))
        return found

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class Tally:
    """What the runs found; every counter but the first three must stay 0 (orphans too: a
    generation's object left without its template is destroyed at the next login)."""

    kills_at_change: int = 0
    kills_random: int = 0
    damaged_files_seen: int = 0  # token files left empty/cut short by a kill (then repaired)
    keys_lost: int = 0
    done_but_lost: int = 0  # a command that reported success whose result is gone
    disagreements: int = 0  # token vs database after the next login
    pending_left: int = 0  # intents or token syncs still pending after the next login
    login_failures: int = 0  # the next login did not work at all
    orphans: int = 0  # objects on the token no record owns, after the next login
    operations: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def failed(self) -> bool:
        return bool(
            self.keys_lost
            or self.done_but_lost
            or self.disagreements
            or self.pending_left
            or self.login_failures
            or self.orphans
        )

    def summary(self) -> dict[str, Any]:
        return {
            "kills_at_token_file_changes": self.kills_at_change,
            "kills_at_random": self.kills_random,
            "token_files_left_damaged_by_a_kill": self.damaged_files_seen,
            "keys_lost": self.keys_lost,
            "reported_done_but_lost": self.done_but_lost,
            "disagreements_after_next_login": self.disagreements,
            "pending_after_next_login": self.pending_left,
            "next_login_failed": self.login_failures,
            "orphan_objects_after_next_login": self.orphans,
            "operations_killed": dict(self.operations),
            "problems": self.problems[:20],
        }


class Bench:
    """One workstation home driven through the CLI, with the model of what must be there."""

    def __init__(self, root: Path, seed: int) -> None:
        self.home = Home(root)
        self.rng = random.Random(seed)  # noqa: S311 (a reproducible test schedule)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KEYSTEAD_") and k != "SOFTHSM2_CONF"
        }
        self.env.update(
            {
                "KEYSTEAD_OPERATOR": "officer",
                "KEYSTEAD_PASSPHRASE": PASSPHRASE,
                "KEYSTEAD_PIN": PIN,
                "KEYSTEAD_SO_PIN": SO_PIN,
                "KEYSTEAD_NEW_PIN": PIN,
                "KEYSTEAD_NEW_SO_PIN": SO_PIN,
            }
        )
        self.counter = 0
        self.soft_tokens = 0
        self.done_names: set[str] = set()  # generated and reported done, never destroyed
        self.tally = Tally()
        self.events_of: dict[str, int] = {}  # operation kind -> token-file events it makes
        self.cursor: dict[str, int] = {}  # operation kind -> the event its last kill was at
        self.trace: Path | None = None  # a line per operation, when set
        self.rows: list[dict[str, Any]] | None = None  # the inventory the last check read
        self.progress: Path | None = None  # summary so far, rewritten after each cycle

    # --- running ----------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KEYSTEAD), "--home", str(self.home.root), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def start(self, args: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(KEYSTEAD), "--home", str(self.home.root), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def init(self) -> None:
        result = self.cli("init", "--operator", "officer", "--soft-token", TOKEN)
        if result.returncode != 0:
            raise AssertionError(f"init failed: {result.stderr}")

    def _watch(self) -> Inotify:
        notify = Inotify()
        self.home.softhsm_tokens.mkdir(parents=True, exist_ok=True)
        notify.watch(self.home.softhsm_tokens)
        for directory in self.home.softhsm_tokens.iterdir():
            if directory.is_dir():
                notify.watch(directory)
        return notify

    def run_counting(self, args: list[str]) -> tuple[subprocess.CompletedProcess[str], int]:
        """Run to the end; returns the result and how many token-file events it caused."""
        notify = self._watch()
        process = self.start(args)
        count = 0
        try:
            while process.poll() is None:
                count += self._count(notify, notify.events(0.01))
            count += self._count(notify, notify.events(0.05))
            out, err = process.communicate()
        finally:
            notify.close()
        return subprocess.CompletedProcess(args, process.returncode, out, err), count

    def _count(self, notify: Inotify, events: list[tuple[Path, str, int]]) -> int:
        count = 0
        for directory, name, mask in events:
            if mask & _IN_ISDIR:
                if mask & _IN_CREATE:
                    notify.watch(directory / name)
                continue
            if name.startswith(".") or name.endswith(".lock"):
                continue  # Keystead's own atomic temp files, SoftHSM's empty lock files
            count += 1
        return count

    def run_killed_at_event(self, args: list[str], nth: int) -> bool:
        """Start the command and SIGKILL it at its ``nth`` token-file event. False if it
        ended first."""
        notify = self._watch()
        process = self.start(args)
        seen = 0
        try:
            while process.poll() is None:
                seen += self._count(notify, notify.events(0.005))
                if seen >= nth:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    return True
            process.communicate()
            return False
        finally:
            notify.close()

    def run_killed_at_random(self, args: list[str], within: float) -> bool:
        process = self.start(args)
        time.sleep(self.rng.uniform(0, within))
        if process.poll() is not None:
            process.communicate()
            return False
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True

    # --- choosing operations ----------------------------------------------------------------

    def inventory(self) -> list[dict[str, Any]]:
        result = self.cli("--json", "keys", "list")
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip())
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows

    def next_operation(self, rows: list[dict[str, Any]]) -> tuple[str, list[str], str | None]:
        """(kind, argv, name of a key it generates or None) chosen from the keys' states."""
        managed = [r for r in rows if r["id"]]
        by_state: dict[str, list[dict[str, Any]]] = {}
        for row in managed:
            by_state.setdefault(row["state"], []).append(row)
        choices: list[tuple[str, list[str], str | None]] = []
        self.counter += 1
        name = f"k{self.counter:04d}"
        algorithm = self.rng.choice(["AES-128", "EC-P256"])
        choices.append(
            (
                "generate",
                ["keys", "generate", "--token", TOKEN, "--algorithm", algorithm, "--name", name],
                name,
            )
        )

        def pick(state: str) -> dict[str, Any] | None:
            rows_in = by_state.get(state) or []
            return self.rng.choice(rows_in) if rows_in else None

        if key := pick("PRE_ACTIVE"):
            choices.append(("activate", ["keys", "activate", key["id"]], None))
        if key := pick("ACTIVE"):
            choices.append(("suspend", ["keys", "suspend", key["id"], "--reason", "drill"], None))
            choices.append(
                ("deactivate", ["keys", "deactivate", key["id"], "--reason", "drill"], None)
            )
            if not key.get("replaced_by"):
                choices.append(("rotate", ["keys", "rotate", key["id"]], None))
        if key := pick("SUSPENDED"):
            choices.append(("resume", ["keys", "resume", key["id"]], None))
        for state in ("DEACTIVATED", "PRE_ACTIVE"):
            if key := pick(state):
                choices.append(
                    ("destroy", ["keys", "destroy", key["id"], "--confirm", key["name"]], None)
                )
        choices.append(("checkpoint", ["audit", "checkpoint"], None))
        choices.append(("list", ["keys", "list"], None))
        if self.soft_tokens < 4:
            self.soft_tokens += 1
            label = f"s{self.counter:04d}"
            choices.append(("create-soft", ["tokens", "create-soft", "--label", label], None))
        return self.rng.choice(choices)

    # --- checking ---------------------------------------------------------------------------

    def damaged_files(self) -> int:
        """Token files a kill left damaged (before Keystead's next open repairs them)."""
        damaged = 0
        for directory in self.home.softhsm_tokens.iterdir():
            for path in directory.glob("*.object"):
                try:
                    verify_object_file(path.read_bytes(), path.name)
                except Damaged:
                    damaged += 1
                except FileNotFoundError:
                    continue
        return damaged

    def check(self, context: str) -> list[dict[str, Any]]:
        """The next login, then token against database; counts into the tally."""
        tally = self.tally
        result = self.cli("--json", "keys", "list")
        if result.returncode != 0:
            tally.login_failures += 1
            tally.problems.append(f"{context}: next login failed: {result.stderr.strip()}")
            return []
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        managed = {r["name"]: r for r in rows if r["id"]}
        for name in sorted(self.done_names):
            row = managed.get(name)
            if row is None:
                tally.done_but_lost += 1
                tally.problems.append(f"{context}: {name} reported done, now not recorded")
        peer: dict[str, list[Any]] = {}
        for obj in peer_keys(self.home, TOKEN, PIN):  # a pair is two objects with one CKA_ID
            peer.setdefault(obj.cka_id.lower(), []).append(obj)
        for row in managed.values():
            state = KeyState(row["state"])
            on_token = peer.get((row["cka_id"] or "").lower(), [])
            if state in (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED):
                if on_token:
                    tally.disagreements += 1
                    tally.problems.append(f"{context}: {row['name']} destroyed but on token")
                continue
            if not any(p.kind in ("Secret", "Private") for p in on_token):
                tally.keys_lost += 1
                tally.problems.append(f"{context}: {row['name']} ({state.value}) not on token")
                continue
            if row["token_sync"] != "ok":
                tally.pending_left += 1
                tally.problems.append(f"{context}: {row['name']} token_sync {row['token_sync']}")
            private, public = usage_in_state(
                parse_algorithm(row["algorithm"]), Purpose(row["purpose"]), state
            )
            for obj in on_token:
                want = (private | public) if obj.kind == "Secret" else (
                    private if obj.kind == "Private" else public
                )
                words = {u.value.lower() for u in want}
                if set(obj.usage) != words:
                    tally.disagreements += 1
                    tally.problems.append(
                        f"{context}: {row['name']} {state.value} {obj.kind} usage "
                        f"{sorted(obj.usage)} != {sorted(words)}"
                    )
        pending = self.cli("--json", "audit", "intents")
        if pending.returncode != 0:
            tally.login_failures += 1
            tally.problems.append(f"{context}: audit intents failed: {pending.stderr.strip()}")
        else:
            for intent in json.loads(pending.stdout):
                tally.pending_left += 1
                tally.problems.append(f"{context}: intent pending: {intent}")
        known = {(r["cka_id"] or "").lower() for r in managed.values()}
        for cid, objs in peer.items():
            for obj in objs:
                # An object of a generation nobody recorded: a key label, or no ID at all (a
                # kill inside C_GenerateKey can leave SoftHSM's defaults without the template).
                ours = re.fullmatch(r"k\d{4}(-v\d+)?", obj.label) or not cid
                if cid not in known and ours:
                    tally.orphans += 1
                    tally.problems.append(f"{context}: orphan object '{obj.label}' ({cid})")
        return rows

    # --- loops ------------------------------------------------------------------------------

    def cycle(self, mode: str) -> None:
        rows = self.rows if self.rows is not None else self.inventory()
        kind, args, name = self.next_operation(rows)
        if mode == "change":
            if kind not in self.events_of:
                result, count = self.run_counting(args)
                self.events_of[kind] = max(count, 1)
                self._note_done(kind, name, result)
                self.rows = None
                return
            # A low-discrepancy walk (golden ratio) over the command's events: successive kills
            # of one kind spread over all its token-file changes, first to last.
            step = self.cursor[kind] = self.cursor.get(kind, 0) + 1
            nth = int((step * 0.6180339887498949) % 1.0 * self.events_of[kind]) + 1
            killed = self.run_killed_at_event(args, nth)
        else:
            killed = self.run_killed_at_random(args, 1.2)
        if self.trace is not None:
            with self.trace.open("a") as log:
                log.write(f"{kind} {args} killed={killed} nth={locals().get('nth')}\n")
        if killed:
            if mode == "change":
                self.tally.kills_at_change += 1
            else:
                self.tally.kills_random += 1
            self.tally.operations[kind] += 1
            self.tally.damaged_files_seen += self.damaged_files()
        elif name:
            # it ended before the kill: done if it said so
            self.done_names.add(name)
        self.rows = self.check(f"{kind} {' '.join(args)} ({'killed' if killed else 'ran'})")

    def _note_done(
        self, kind: str, name: str | None, result: subprocess.CompletedProcess[str]
    ) -> None:
        if kind == "generate" and name and result.returncode == 0:
            self.done_names.add(name)

    def _progress(self) -> None:
        """The summary so far, rewritten after every cycle (a long run can be read, or cut
        short, at any time)."""
        if self.progress is not None:
            summary = self.tally.summary()
            summary["events_per_operation"] = self.events_of
            self.progress.write_text(json.dumps(summary, indent=2))

    def run(self, at_changes: int, at_random: int, stop_on_problem: bool = False) -> Tally:
        while self.tally.kills_at_change < at_changes:
            self.cycle("change")
            self._progress()
            if stop_on_problem and self.tally.problems:
                return self.tally
        while self.tally.kills_random < at_random:
            self.cycle("random")
            self._progress()
            if stop_on_problem and self.tally.problems:
                return self.tally
        return self.tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--at-changes", type=int, default=200)
    parser.add_argument("--random", type=int, default=200)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--stop-on-problem", action="store_true")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="keystead-crash-") as tmp:
        bench = Bench(args.home or Path(tmp) / "home", args.seed)
        bench.init()
        bench.trace = bench.home.root.parent / "trace.log"
        bench.progress = bench.home.root.parent / "progress.json"
        started = time.monotonic()
        tally = bench.run(args.at_changes, args.random, args.stop_on_problem)
        summary = tally.summary()
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["events_per_operation"] = bench.events_of
        print(json.dumps(summary, indent=2))
    return 1 if tally.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
