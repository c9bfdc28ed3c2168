"""The test suite never touches the network: a PEP 578 audit hook refuses every socket
connection and name lookup that could leave the machine.

Allowed, and nothing else (fail closed):
- Unix-domain sockets (``AF_UNIX``): local IPC only.
- Loopback by numeric address: ``127.0.0.0/8`` and ``::1`` for ``socket.connect``/``sendto``,
  and ``getaddrinfo``/``getnameinfo`` on such literals (or no host at all). This is for peers the
  suite starts on this machine (swtpm for the TPM tests listens on 127.0.0.1). Host *names*, even
  ``localhost``, are refused: resolving a name may ask a DNS server.

A refusal raises ``NetworkForbidden`` (the call never happens) and is also remembered in
``VIOLATIONS``, so a test that swallows the error still fails (``tests/conftest.py``). The hook
cannot be removed once installed (PEP 578), and it applies to the whole process. Subprocesses
that are Python get it too through ``tests/netguard/sitecustomize.py`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

VIOLATIONS: list[str] = []
_INSTALLED = False


class NetworkForbidden(OSError):
    """A test (or the code under test) tried to reach the network."""


def _loopback_literal(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _address_allowed(family: int, address: Any) -> bool:
    if family == socket.AF_UNIX:
        return True
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and address:
        return _loopback_literal(address[0])
    return False


def _refuse(event: str, what: Any) -> None:
    text = f"{event} {what!r}: tests must not touch the network (tests/netguard)"
    VIOLATIONS.append(text)
    raise NetworkForbidden(text)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("socket."):
        return
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if not _address_allowed(getattr(sock, "family", -1), address):
            _refuse(event, address)
    elif event == "socket.getaddrinfo":
        host = args[0]
        if host is not None and not _loopback_literal(host):
            _refuse(event, host)
    elif event == "socket.getnameinfo":
        sockaddr = args[0]
        if not (isinstance(sockaddr, tuple) and sockaddr and _loopback_literal(sockaddr[0])):
            _refuse(event, sockaddr)
    elif event.startswith("socket.gethostby") and not _loopback_literal(args[0]):
        _refuse(event, args[0])


def install() -> None:
    """Install the hook once per process (it cannot be removed)."""
    global _INSTALLED
    if not _INSTALLED:
        sys.addaudithook(_hook)
        _INSTALLED = True
