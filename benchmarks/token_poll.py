"""What noticing tokens costs: ``TokenService.poll()`` against a raw python-pkcs11 slot scan.

Run by hand (not part of the tests):

    .venv/bin/python benchmarks/token_poll.py [--tokens 3] [--rounds 500]

The GUI polls once a second on the core thread, so a poll must stay far below a millisecond
budget that would delay other jobs. Keystead's poll = C_GetSlotList + C_GetTokenInfo per slot
(through python-pkcs11), a look at the embedded store's token directories and the session
bookkeeping; the raw peer is the same slot scan alone, in the same process and run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.keyslots import KdfCost


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    core = CoreExecutor()
    with tempfile.TemporaryDirectory(prefix="keystead-bench-") as tmp:
        home = Home(Path(tmp) / "home")

        def setup() -> Workstation:
            ws = Workstation.initialize(
                home, "bench", "benchmark passphrase", "benchmark passphrase",
                SoftTokenRequest("Bench0", "12345678", "123456"), cost=KdfCost(1024, 1, 1),
            )  # fmt: skip
            for index in range(1, args.tokens):
                ws.tokens.create_soft_token(f"Bench{index}", "12345678", "123456")
            ws.tokens.login("Bench0", "123456")
            return ws

        ws = core.call(setup)
        lib = next(iter(ws.tokens.modules.values())).raw

        def raw_scan() -> None:
            for slot in lib.get_slots(token_present=True):
                slot.get_token()

        def measure() -> tuple[list[float], list[float]]:
            ours: list[float] = []
            raw: list[float] = []
            ws.tokens.poll()
            for _ in range(args.rounds):  # interleaved, so a burst hits both
                start = time.perf_counter()
                ws.tokens.poll()
                ours.append(time.perf_counter() - start)
                start = time.perf_counter()
                raw_scan()
                raw.append(time.perf_counter() - start)
            return ours, raw

        ours, raw = core.call(measure)
        core.call(ws.lock)
    core.shutdown()
    k, r = statistics.median(ours), statistics.median(raw)
    print(f"{args.tokens} embedded tokens, {args.rounds} rounds")
    print(f"Keystead poll        median {k * 1000:.3f} ms  max {max(ours) * 1000:.3f} ms")
    print(f"raw slot scan        median {r * 1000:.3f} ms  max {max(raw) * 1000:.3f} ms")
    print(f"ratio Keystead/raw   {k / r:.2f}x")


if __name__ == "__main__":
    main()
