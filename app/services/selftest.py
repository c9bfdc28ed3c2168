"""``keystead selftest``: proves an installation works, on a throw-away workstation.

Steps, in order (the first failure stops the test):
1. the embedded PKCS#11 module (SoftHSM2) is found and loads (dlopen, C_GetFunctionList);
2. a new SoftHSM token is created and a new SQLCipher database opened (``Workstation.initialize``
   in a temporary directory, random PINs and passphrase held only in memory);
3. an EC P-256 key is generated on the token and its attributes read back;
4. a checkpoint of the audit chain is signed on the token and the whole chain (hashes, token MACs,
   the checkpoint signature) verified with ``cryptography``;
5. nothing touched the network: while the test runs, an audit hook (PEP 578) refuses every
   socket connection other than a Unix socket and every host-name lookup.
The temporary workstation is locked and deleted afterwards, whatever happened.
"""

from __future__ import annotations

import ctypes
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.algorithms import Algorithm
from app.errors import KeysteadError
from app.hsm.softhsm import find_softhsm_module
from app.paths import Home
from app.services.executor import assert_core_thread
from app.services.workstation import SoftTokenRequest, Workstation

TOKEN_LABEL = "keystead-selftest"  # noqa: S105 (a token label)


class SelftestFailed(KeysteadError):
    """A self-test step failed; the message names the step."""


@dataclass(frozen=True)
class StepResult:
    step: str
    detail: str


_attempts: list[str] = []
_watching = False
_hook_installed = False


def _network_hook(event: str, args: tuple[Any, ...]) -> None:
    if not _watching or not event.startswith("socket."):
        return
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        if getattr(args[0], "family", None) == socket.AF_UNIX:
            return
    elif not (
        event.startswith("socket.getaddrinfo")
        or event.startswith("socket.gethostby")
        or event == "socket.getnameinfo"
    ):
        return
    _attempts.append(f"{event} {args[1] if event.startswith('socket.s') else args[0]!r}")
    raise SelftestFailed(f"the self-test tried to reach the network ({_attempts[-1]})")


@contextmanager
def _no_network() -> Iterator[list[str]]:
    """Refuse network use in this process while the block runs; yields the refused attempts."""
    global _watching, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_network_hook)
        _hook_installed = True
    _attempts.clear()
    _watching = True
    try:
        yield _attempts
    finally:
        _watching = False


def run_selftest(report: Callable[[StepResult], None] = lambda _: None) -> list[StepResult]:
    """Run every step on the core thread; ``report`` is called after each one passes.

    Returns the steps' results. Raises ``SelftestFailed`` naming the step that failed (chained to
    the error behind it).
    """
    assert_core_thread()
    results: list[StepResult] = []

    def passed(step: str, detail: str) -> None:
        result = StepResult(step, detail)
        results.append(result)
        report(result)

    root = Path(tempfile.mkdtemp(prefix="keystead-selftest-"))
    ws: Workstation | None = None
    step = "PKCS#11 module loads"
    try:
        with _no_network() as attempts:
            path = find_softhsm_module()
            if path is None:
                raise SelftestFailed("SoftHSM2 (Debian package softhsm2) is not installed")
            try:
                library = ctypes.CDLL(path)  # dlopen only; the workstation initialises it
            except OSError as exc:
                raise SelftestFailed(f"{path} does not load: {exc}") from exc
            if not hasattr(library, "C_GetFunctionList"):
                raise SelftestFailed(f"{path} exports no C_GetFunctionList")
            passed(step, path)

            step = "SoftHSM token created, SQLCipher database opened"
            pin = secrets.token_hex(8)
            passphrase = secrets.token_urlsafe(24)
            ws = Workstation.initialize(
                Home(root / "home"),
                "selftest",
                passphrase,
                passphrase,
                SoftTokenRequest(TOKEN_LABEL, secrets.token_hex(8), pin),
            )
            ws.tokens.login(TOKEN_LABEL, pin)
            passed(step, f"token '{TOKEN_LABEL}', database {ws.home.database.name}")

            step = "key generated on the token and read back"
            key = ws.keys.generate(TOKEN_LABEL, Algorithm.EC_P256, "selftest-key")
            passed(step, f"EC P-256, SPKI SHA-256 {key.fingerprint}")

            step = "audit chain signed on the token and verified"
            ws.audit.checkpoint("selftest")
            verified = ws.audit.verify()
            if not verified.ok:
                raise SelftestFailed(verified.summary())
            passed(step, verified.summary())

            step = "nothing touched the network"
            if attempts:
                raise SelftestFailed("; ".join(attempts))
            passed(step, "no socket other than a Unix socket, no name lookup")
    except KeysteadError as exc:
        raise SelftestFailed(f"self-test failed at '{step}': {exc.message}") from exc
    finally:
        if ws is not None:
            try:
                ws.lock()
            finally:
                shutil.rmtree(root, ignore_errors=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return results
