"""All PKCS#11 and database work happens on the one core thread, even when many threads
submit jobs at once (a tracing wrapper around the adapter records the thread of each call)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.domain.algorithms import Algorithm
from app.hsm.module import Pkcs11Module
from app.hsm.session import TokenSession
from tests.support import Bench

pytestmark = pytest.mark.hsm


def test_pkcs11_calls_stay_on_the_core_thread_under_load(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every method of the two classes that call python-pkcs11 records its thread."""
    seen: dict[str, set[str]] = {}
    lock = threading.Lock()

    def traced(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                seen.setdefault(threading.current_thread().name, set()).add(name)
            return method(*args, **kwargs)

        return wrapper

    for cls in (TokenSession, Pkcs11Module):
        for name, member in list(vars(cls).items()):
            if callable(member) and not name.startswith("__"):
                monkeypatch.setattr(cls, name, traced(f"{cls.__name__}.{name}", member))

    def submit_many(worker: int) -> None:
        futures = [
            bench.core.submit(bench.ws.keys.generate, "Life", Algorithm.AES_128, f"w{worker}-{i}")
            for i in range(5)
        ]
        futures += [bench.core.submit(bench.ws.keys.inventory) for _ in range(5)]
        futures += [bench.core.submit(bench.ws.tokens.statuses) for _ in range(5)]
        for future in futures:
            future.result()

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="gui-like") as pool:
        list(pool.map(submit_many, range(4)))
    assert len(seen) == 1 and next(iter(seen)).startswith("keystead-core"), seen.keys()
    calls = next(iter(seen.values()))
    assert {"TokenSession.generate", "TokenSession.key_objects", "Pkcs11Module.tokens"} <= calls
    assert len(bench(bench.ws.keys.inventory)) == 20


def test_services_refuse_to_run_off_the_core_thread(bench: Bench) -> None:
    with pytest.raises(RuntimeError, match="keystead-core"):
        bench.ws.keys.inventory()  # called from the test's own thread
    with pytest.raises(RuntimeError, match="keystead-core"):
        bench.ws.tokens.present()
