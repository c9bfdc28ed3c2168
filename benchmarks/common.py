"""Small helpers shared by the benchmark scripts: timing, medians, memory, printing.

Nothing here asserts a target: benchmarks print ratios against a raw peer measured in the same
run, and people read them.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``fn(*args, **kwargs)`` and the seconds it took (perf_counter)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.1f} ms"


def samples_text(samples: Sequence[float]) -> str:
    return "[" + ", ".join(f"{s * 1000:.0f}" for s in samples) + "] ms"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:6.2f}x" if denominator > 0 else "   n/a"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Current resident set size, from /proc (Linux); 0 where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def revision() -> str:
    """The commit measured, with '+dirty' when the working tree has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "app"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return head + ("+dirty app/" if dirty else "")


def machine_line() -> str:
    """One line describing where the numbers come from."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{revision()} - {os.cpu_count()} CPUs - Python {platform.python_version()} - "
        f"load average {load}"
    )


def row(label: str, samples: Sequence[float], width: int = 44) -> float:
    """Print one measurement as its median and all samples; returns the median."""
    value = median(samples)
    print(f"  {label:<{width}} {ms(value)}   {samples_text(samples)}")
    return value
