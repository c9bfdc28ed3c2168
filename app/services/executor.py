"""The core worker: one thread owns PKCS#11 and the database; everything else submits jobs.

python-pkcs11 initialises without OS locking and SoftHSM 2.6 has races under concurrent use, so
every token and database call happens on this one thread (``assert_core_thread`` checks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_core_thread: threading.Thread | None = None


class CoreExecutor:
    """A single named worker thread with a job queue."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="keystead-core", initializer=self._register
        )

    @staticmethod
    def _register() -> None:
        global _core_thread
        _core_thread = threading.current_thread()

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._pool.submit(fn, *args, **kwargs)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the core thread and wait for it (CLI and tests only, never the GUI)."""
        return self.submit(fn, *args, **kwargs).result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def assert_core_thread() -> None:
    """Fail loudly when a token or database call is made off the core thread."""
    if _core_thread is not None and threading.current_thread() is not _core_thread:
        raise RuntimeError("PKCS#11 and database calls must run on the keystead-core thread")
