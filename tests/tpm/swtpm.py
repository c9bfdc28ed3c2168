"""A TPM 2.0 simulated by swtpm, behind the tpm2-abrmd resource manager, for tpm2-pkcs11.

Processes are started here and stopped by their own PID (never by name). Everything listens on
127.0.0.1 only, on ports the kernel just handed out, and keeps its state in a temporary
directory.

Why a resource manager: a TPM holds three transient objects (swtpm's TPM2_PT_HR_TRANSIENT_MIN
is 3). tpm2-pkcs11 1.9.0 talking to swtpm directly leaves its objects loaded: measured here, one
process can generate one key pair and the next generation fails with "out of memory for object
contexts" — and a failed generation leaves its objects loaded for the next process too. Real
installations reach the TPM through the kernel's resource manager (/dev/tpmrm0) or tpm2-abrmd,
which swap objects out and flush a client's objects when it disconnects. The tests do the same
with tpm2-abrmd on a private D-Bus session bus, so no test can exhaust the TPM for the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
PROGRAMS = ("swtpm", "tpm2-abrmd", "dbus-daemon", "tpm2_getrandom")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def program(name: str) -> str | None:
    for folder in SBIN:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return None


def missing() -> list[str]:
    """What this machine lacks to run the TPM tests (scripts/setup.sh installs all of it)."""
    absent = [name for name in PROGRAMS if program(name) is None]
    if not Path(MODULE).is_file():
        absent.append(MODULE)
    return absent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and its neighbour, for the control
    channel, is checked by swtpm itself: it fails to start if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: be sent SIGTERM when the test process dies (PR_SET_PDEATHSIG),
    so a killed or timed-out test run leaves no simulator or daemon behind."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Bus:
    """A private D-Bus session bus for the resource managers."""

    root: Path
    address: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Bus:
        self.process = subprocess.Popen(
            [program("dbus-daemon") or "dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            preexec_fn=_die_with_parent,
        )
        assert self.process.stdout is not None
        self.address = self.process.stdout.readline().decode().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon printed no address")
        return self

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class SwTpm:
    """One simulated TPM with its resource manager. ``env`` reaches it through tpm2-pkcs11
    (with ``store`` as tpm2-pkcs11's own object store) and through tpm2-tools."""

    root: Path
    bus: Bus
    name: str = "tpm"
    port: int = 0
    swtpm: subprocess.Popen[bytes] | None = None
    abrmd: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.root / f"{self.name}-state"

    @property
    def store(self) -> Path:
        return self.root / f"{self.name}-store"

    @property
    def bus_name(self) -> str:
        return f"com.keystead.test.{self.name}"

    def start(self) -> SwTpm:
        self.state.mkdir(parents=True, exist_ok=True)
        self.store.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # a port taken between free_port() and swtpm's bind: try another
            self.port = free_port()
            self.swtpm = subprocess.Popen(
                [
                    program("swtpm") or "swtpm",
                    "socket",
                    "--tpm2",
                    "--tpmstate",
                    f"dir={self.state}",
                    "--server",
                    f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                    "--ctrl",
                    f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                    "--flags",
                    "not-need-init,startup-clear",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.root,
                preexec_fn=_die_with_parent,
            )
            time.sleep(0.3)
            if self.swtpm.poll() is None:
                break
        else:
            raise RuntimeError("swtpm did not start")
        self.start_manager()
        return self

    def start_manager(self) -> None:
        command = [
            program("tpm2-abrmd") or "tpm2-abrmd",
            "--session",
            f"--dbus-name={self.bus_name}",
            f"--tcti=swtpm:host=127.0.0.1,port={self.port}",
            "--flush-all",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.abrmd = subprocess.Popen(
            command,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.bus.address},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            preexec_fn=_die_with_parent,
        )
        tcti = f"tabrmd:bus_name={self.bus_name},bus_type=session"
        self.env = {
            "DBUS_SESSION_BUS_ADDRESS": self.bus.address,
            "TPM2_PKCS11_TCTI": tcti,
            "TPM2TOOLS_TCTI": tcti,
            "TPM2_PKCS11_STORE": str(self.store),
        }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # bounded: the manager needs a moment on the bus
            if self.abrmd.poll() is not None:
                raise RuntimeError("tpm2-abrmd exited at start")
            if self.tools("tpm2_getrandom", "--hex", "8").returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("tpm2-abrmd did not answer within 30 s")

    def tools(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a tpm2-tools command against this TPM (through its resource manager)."""
        return subprocess.run(
            list(args),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def kill(self) -> None:
        """SIGKILL the simulator: the device is gone, the resource manager and store stay."""
        if self.swtpm is not None and self.swtpm.poll() is None:
            os.kill(self.swtpm.pid, signal.SIGKILL)
            self.swtpm.wait(timeout=10)

    def stop(self) -> None:
        _stop(self.abrmd)
        _stop(self.swtpm)


def tpm_tool(device: SwTpm, *args: str, pin: str | None = None) -> str:
    """pkcs11-tool on tpm2-pkcs11 (this TPM and its store), the independent PKCS#11 client."""
    login = ["--login", "--pin", pin] if pin is not None else []
    result = subprocess.run(
        ["pkcs11-tool", "--module", MODULE, *login, *args],
        env={"PATH": "/usr/bin:/bin", **device.env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"pkcs11-tool {args} failed: {result.stderr}")
    return result.stdout
