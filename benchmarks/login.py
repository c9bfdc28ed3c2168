"""Token login and per-command cost against the number of objects on the token (issue 17).

Run by hand (not part of the tests), from the repository root:

    .venv/bin/python benchmarks/login.py [--sizes 0,1000,10000] [--rounds 5]
    .venv/bin/python benchmarks/login.py --sizes 0,300 --rounds 3      # smoke run, ~1 min

Goal (issue 17): token login within 3x a raw C_Login on a 10,000-object token; the cost of a
command independent of the number of objects on the token except for commands that list them.

Setup (not timed), in a fresh temporary directory: a workstation with its embedded SoftHSM
token (file object store, 1 MiB KDF: the KDF is not what this measures) and one key ``shown``
generated with ``keystead keys generate``. Before each size N (ascending) the token is topped up
to N extra token objects (AES-128 secret keys, ``CKA_TOKEN`` true: session objects would not
count) by a raw python-pkcs11 loop in a child process; the same token grows from size to size
(SoftHSM's C_CreateObject re-reads the token directory, so filling is quadratic: 10,000 objects
take 5-8 minutes here). The keys the timed ``keys generate`` rounds add (a few dozen) stay.

Measured per size, interleaved round by round after one warm-up round:

In one process (a child per size, so each size gets its own SoftHSM ``C_Initialize``), on the
core thread as in the product:

- **raw C_Login**: python-pkcs11 ``token.open(rw=True, user_pin=...)`` (C_OpenSession + C_Login);
- **raw search**: one ``C_FindObjects`` run to the end with the template Keystead's login uses
  (``{CKA_TOKEN: true, CKA_MODIFIABLE: false}``) in a logged-in session: the floor of one search;
- **raw public search**: the unlock's rollback pre-check template (``{CKA_CLASS: CKO_DATA,
  CKA_APPLICATION: keystead-audit-checkpoint}``) in a public read-only session;
- **Keystead login**: ``ws.tokens.login`` as the GUI and CLI call it (PIN throttle, C_Login, the
  one audit search, the rollback check, the sealed ``token.login`` entry, the login hooks), after
  ``ws.tokens.logout``.

Whole processes (``subprocess.run``, secrets in the environment as the README lists for
automation; byte-code cached in the run's directory):

- ``pkcs11-tool --login --keygen --key-type AES:32`` (its C_Initialize reads every object file);
- ``keystead keys generate`` (AES-256) and ``keystead keys show shown``.

Printed per size: min / median / max; ratios of medians and per round; and each figure's growth
from the smallest size. The pkcs11-tool peer gets the throwaway token's PIN with ``--pin`` on its
argv (the exception benchmarks/README.md allows); Keystead never takes a secret from argv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence

from benchmarks.common import SOFTHSM_MODULE, machine_line

OPERATOR = "bench"
PASSPHRASE = "login benchmark passphrase"
TOKEN = "Bench"
SO_PIN = "87654321"
USER_PIN = "123456"
VENV_BIN = Path(sys.executable).parent
KEYSTEAD = str(VENV_BIN / "keystead")

_FILL = """
import sys, pkcs11
from pkcs11 import KeyType, Attribute
lib = pkcs11.lib(sys.argv[1])
with lib.get_token(token_label=sys.argv[2]).open(rw=True, user_pin=sys.argv[3]) as session:
    for i in range(int(sys.argv[4]), int(sys.argv[4]) + int(sys.argv[5])):
        session.generate_key(KeyType.AES, 128, store=True, label=f"filler-{i}",
                             id=b"fill" + i.to_bytes(4, "big"),
                             template={Attribute.TOKEN: True, Attribute.SENSITIVE: True,
                                       Attribute.EXTRACTABLE: False})
"""

IN_PROCESS = (
    "raw C_Login",
    "raw search (login template)",
    "raw public search (pre-check)",
    "Keystead tokens.login",
)
WHOLE = ("pkcs11-tool --keygen", "keystead keys generate", "keystead keys show")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **env,
        "PYTHONPYCACHEPREFIX": str(home.parent / "pycache"),
        "KEYSTEAD_HOME": str(home),
        "KEYSTEAD_OPERATOR": OPERATOR,
        "KEYSTEAD_PASSPHRASE": PASSPHRASE,
        "KEYSTEAD_PIN": USER_PIN,
        "SOFTHSM2_CONF": str(home / "softhsm" / "softhsm2.conf"),
    }


def _run(command: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')}")
    return seconds


def _fill(home: Path, first: int, count: int) -> None:
    """``count`` more AES-128 token objects, numbered from ``first``."""
    subprocess.run(
        [sys.executable, "-c", _FILL, SOFTHSM_MODULE, TOKEN, USER_PIN, str(first), str(count)],
        env=_env(home),
        check=True,
    )


def _make_home(root: Path) -> Path:
    from app.paths import Home
    from app.services.workstation import SoftTokenRequest, Workstation
    from app.storage.keyslots import KdfCost

    home = root / "home"
    ws = Workstation.initialize(
        Home(home),
        OPERATOR,
        PASSPHRASE,
        PASSPHRASE,
        SoftTokenRequest(TOKEN, SO_PIN, USER_PIN),
        cost=KdfCost(1024, 1, 1),
    )
    ws.lock()
    env = _env(home)
    if env["SOFTHSM2_CONF"] != str(Home(home).softhsm_conf):
        raise SystemExit("the benchmark's idea of softhsm2.conf differs from Home's")
    _run(
        [
            KEYSTEAD,
            "keys",
            "generate",
            "--token",
            TOKEN,
            "--algorithm",
            "AES-256",
            "--name",
            "shown",
        ],
        env,
    )
    return home


def _child(home: Path, rounds: int) -> None:
    """The in-process contenders on one home; prints {name: [seconds]} as JSON."""
    from pkcs11 import Attribute, ObjectClass

    from app.hsm.audit_objects import CHECKPOINT_APPLICATION
    from app.paths import Home
    from app.services.executor import CoreExecutor
    from app.services.workstation import Workstation

    core = CoreExecutor()
    ws = core.call(Workstation.unlock, Home(home), OPERATOR, PASSPHRASE)
    try:
        core.call(ws.tokens.login, TOKEN, USER_PIN)
        serial = core.call(ws.tokens.session, TOKEN).info.serial
        lib = ws.tokens.modules[SOFTHSM_MODULE].raw
        index = {Attribute.TOKEN: True, Attribute.MODIFIABLE: False}
        public = {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: CHECKPOINT_APPLICATION}

        def raw_login() -> float:
            ws.tokens.logout(serial)
            start = time.perf_counter()
            session = lib.get_token(token_label=TOKEN).open(rw=True, user_pin=USER_PIN)
            seconds = time.perf_counter() - start
            session.close()
            return seconds

        def raw_search() -> float:
            ws.tokens.logout(serial)
            session = lib.get_token(token_label=TOKEN).open(rw=True, user_pin=USER_PIN)
            try:
                start = time.perf_counter()
                found = list(session.get_objects(index))
                seconds = time.perf_counter() - start
            finally:
                session.close()
            if len(found) < 3:
                raise SystemExit(f"the raw search found {len(found)} audit objects, not >= 3")
            return seconds

        def raw_public() -> float:
            ws.tokens.logout(serial)
            session = lib.get_token(token_label=TOKEN).open(rw=False)
            try:
                start = time.perf_counter()
                found = list(session.get_objects(public))
                seconds = time.perf_counter() - start
            finally:
                session.close()
            if not found:
                raise SystemExit("the raw public search found no checkpoint")
            return seconds

        def keystead() -> float:
            ws.tokens.logout(serial)
            start = time.perf_counter()
            ws.tokens.login(TOKEN, USER_PIN)
            return time.perf_counter() - start

        contenders: dict[str, Callable[[], float]] = dict(
            zip(IN_PROCESS, (raw_login, raw_search, raw_public, keystead), strict=True)
        )
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for round_no in range(rounds + 1):
            for name, fn in contenders.items():
                seconds = core.call(fn)
                if round_no:  # round 0 is the warm-up
                    samples[name].append(seconds)
        print(json.dumps(samples))
    finally:
        core.call(ws.lock)
        core.shutdown()


def _whole(home: Path, size: int, rounds: int) -> dict[str, list[float]]:
    env = _env(home)
    tool = [
        "pkcs11-tool",
        "--module",
        SOFTHSM_MODULE,
        "--token-label",
        TOKEN,
        "--login",
        "--pin",
        USER_PIN,
    ]
    made = {"n": 0}

    def name() -> str:
        made["n"] += 1
        return f"bench-{size}-{made['n']}"  # unique: the token grows from size to size

    contenders: dict[str, Callable[[], float]] = {
        WHOLE[0]: lambda: _run([*tool, "--keygen", "--key-type", "AES:32", "--label", name()], env),
        WHOLE[1]: lambda: _run(
            [
                KEYSTEAD,
                "keys",
                "generate",
                "--token",
                TOKEN,
                "--algorithm",
                "AES-256",
                "--name",
                name(),
            ],
            env,
        ),
        WHOLE[2]: lambda: _run([KEYSTEAD, "keys", "show", "shown"], env),
    }
    samples: dict[str, list[float]] = {n: [] for n in contenders}
    for round_no in range(rounds + 1):
        for n, fn in contenders.items():
            seconds = fn()
            if round_no:
                samples[n].append(seconds)
    return samples


def _stats(values: Sequence[float]) -> str:
    return (
        f"min {min(values) * 1000:8.1f}  median {statistics.median(values) * 1000:8.1f}  "
        f"max {max(values) * 1000:8.1f} ms"
    )


def _ratio(top: Sequence[float], bottom: Sequence[float]) -> str:
    paired = sorted(a / b for a, b in zip(top, bottom, strict=True))
    return (
        f"{statistics.median(top) / statistics.median(bottom):7.2f}x of medians; per round "
        f"min {paired[0]:.2f} median {statistics.median(paired):.2f} max {paired[-1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="0,1000,10000",
        help="extra token objects per run, comma-separated (default 0,1000,10000)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child), args.rounds)
        return
    if shutil.which("pkcs11-tool") is None:
        raise SystemExit("pkcs11-tool (OpenSC) is needed as the peer")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"start: {machine_line()}")
    root = Path(tempfile.mkdtemp(prefix="keystead-bench-"))
    results: dict[int, dict[str, list[float]]] = {}
    try:
        home = _make_home(root)
        filled = 0
        for size in sizes:
            started = time.perf_counter()
            _fill(home, filled, size - filled)
            filled = size
            print(
                f"\n== {size:,} extra token objects (setup {time.perf_counter() - started:.0f} s; "
                f"load {os.getloadavg()[0]:.2f})"
            )
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(home), "--rounds", str(args.rounds)],
                env=_env(home),
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                raise SystemExit(f"child for {size} failed:\n{child.stderr}")
            samples: dict[str, list[float]] = json.loads(child.stdout.strip().splitlines()[-1])
            samples.update(_whole(home, size, args.rounds))
            results[size] = samples
            for name, values in samples.items():
                print(f"  {name:<34} {_stats(values)}")
            s = samples
            print(
                f"  {'Keystead login / raw C_Login':<34} "
                f"{_ratio(s['Keystead tokens.login'], s['raw C_Login'])}   (goal <= 3)"
            )
            print(
                f"  {'Keystead login / raw search':<34} "
                f"{_ratio(s['Keystead tokens.login'], s['raw search (login template)'])}"
            )
            print(
                f"  {'raw search / raw C_Login':<34} "
                f"{_ratio(s['raw search (login template)'], s['raw C_Login'])}"
            )
            for verb in ("generate", "show"):
                print(
                    f"  {'keys ' + verb + ' / pkcs11-tool --keygen':<34} "
                    f"{_ratio(s['keystead keys ' + verb], s['pkcs11-tool --keygen'])}"
                )
        base = sizes[0]
        print(
            f"\nGrowth of each median from {base:,} extra objects "
            "(ms added per 1,000 objects in brackets):"
        )
        for name in (*IN_PROCESS, *WHOLE):
            first = statistics.median(results[base][name])
            cells = []
            for size in sizes[1:]:
                value = statistics.median(results[size][name])
                per_k = (value - first) * 1000 / ((size - base) / 1000) if size != base else 0.0
                cells.append(f"{size:,}: {value / first:5.2f}x ({per_k:+.1f} ms/1k)")
            print(f"  {name:<34} {'   '.join(cells)}")
        print(f"\nend: {machine_line()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
