"""The suite's network guard (tests/netguard) refuses what could leave the machine and lets
only Unix sockets and numeric loopback through — in this process and in Python subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import network_guard
import pytest


@pytest.fixture
def forget_violations():
    """These tests trip the guard on purpose; the autouse check must not fail them for it."""
    before = len(network_guard.VIOLATIONS)
    yield
    del network_guard.VIOLATIONS[before:]


@pytest.mark.usefixtures("forget_violations")
@pytest.mark.parametrize(
    "call",
    [
        lambda: socket.getaddrinfo("deb.example.org", 80),
        lambda: socket.getaddrinfo("localhost", 80),
        lambda: socket.gethostbyname("example.org"),
        lambda: socket.create_connection(("192.0.2.1", 9), timeout=1),
        lambda: socket.socket(socket.AF_INET6).connect(("2001:db8::1", 9)),
        lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 9)),
    ],
    ids=["lookup", "lookup-localhost-by-name", "gethostbyname", "tcp", "tcp6", "udp"],
)
def test_network_calls_are_refused_before_they_happen(call) -> None:
    before = len(network_guard.VIOLATIONS)
    with pytest.raises(network_guard.NetworkForbidden):
        call()
    assert len(network_guard.VIOLATIONS) == before + 1


def test_loopback_and_unix_sockets_are_allowed(tmp_path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    server.close()
    assert socket.getaddrinfo("127.0.0.1", port)
    unix = socket.socket(socket.AF_UNIX)
    with pytest.raises(OSError) as refused:
        unix.connect(str(tmp_path / "none"))  # reaches the OS: no such socket
    assert not isinstance(refused.value, network_guard.NetworkForbidden)
    unix.close()


def test_python_subprocesses_are_guarded_too() -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('example.org', 443)\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=os.environ.copy(),
    )
    assert result.stdout.strip() == "NetworkForbidden"
