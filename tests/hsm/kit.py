"""The test kit for real-token tests: sentinels, an injectable clock, a workstation harness that
always ends locked, and OpenSC's pkcs11-tool as the independent PKCS#11 client.

Sentinels are fixed fake secrets that must never appear on disk, in logs or in output.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from app.hsm.softhsm import find_softhsm_module
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.events import StoredEvent, list_events
from app.storage.keyslots import KdfCost
from tests.support import WITNESS, WITNESS_PASS, with_witness

__all__ = ["WITNESS", "WITNESS_PASS"]

PASSPHRASE = "SENTINEL-passphrase-b41c"
PIN = "SENTINEL-pin-6d1f"
SO_PIN = "SENTINEL-sopin-93e2"
WRONG_PIN = "SENTINEL-wrongpin-0c77"
KEY_NAME = "SENTINEL-KEYNAME-7f3a"
SECRETS = (PASSPHRASE, PIN, SO_PIN, WRONG_PIN)
OPERATOR = "officer"
TOKEN = "Keystead Test Token"
FAST_KDF = KdfCost(1024, 1, 1)
MODULE = find_softhsm_module() or "/usr/lib/softhsm/libsofthsm2.so"

# The DER of each curve's OID, written out here independently of app.hsm.templates.
CURVE_OID_DER = {
    "P-256": "06082a8648ce3d030107",
    "P-384": "06052b81040022",
    "Ed25519": "06032b6570",
}


class Clock:
    """An injectable clock; tests move it forward, it never moves by itself."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Station:
    """A workstation in its own home, driven on the core thread.

    ``station(fn, *args)`` runs ``fn`` on the core thread. ``ws`` is the open workstation;
    ``lock``/``unlock`` go through here so that ``close`` (the fixture's teardown) always locks
    whatever is open, which also finalises the PKCS#11 module.
    """

    def __init__(self, home: Home, core: CoreExecutor, clock: Clock) -> None:
        self.home = home
        self.core = core
        self.clock = clock
        self._ws: Workstation | None = None
        self.serial = ""

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.core.call(fn, *args, **kwargs)

    @property
    def ws(self) -> Workstation:
        if self._ws is None:
            raise AssertionError("the workstation is locked")
        return self._ws

    @property
    def is_open(self) -> bool:
        return self._ws is not None

    def initialize(
        self,
        soft_token: bool = True,
        login: bool = True,
        operator: str = OPERATOR,
        passphrase: str = PASSPHRASE,
        witness: bool = True,
    ) -> Workstation:
        def create() -> Workstation:
            ws = Workstation.initialize(
                self.home,
                operator,
                passphrase,
                passphrase,
                SoftTokenRequest(TOKEN, SO_PIN, PIN) if soft_token else None,
                cost=FAST_KDF,
                clock=self.clock,
            )
            if soft_token:
                self.serial = ws.tokens.find(TOKEN).serial
                if login:
                    ws.tokens.login(TOKEN, PIN)
                    if witness:
                        with_witness(ws)  # the second person of dual control, when asked
                else:
                    ws.tokens.logout(self.serial)
            return ws

        self._ws = self(create)
        return self._ws

    def lock(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            self(ws.lock)

    def unlock(
        self, operator: str = OPERATOR, passphrase: str = PASSPHRASE, login: bool = True
    ) -> Workstation:
        """Lock what is open, then unlock as ``operator`` (and log in to the test token)."""
        self.lock()
        self._ws = with_witness(
            self(Workstation.unlock, self.home, operator, passphrase, clock=self.clock)
        )
        if login:
            self(self._ws.tokens.login, TOKEN, PIN)
        return self._ws

    def close(self) -> None:
        self.lock()

    # --- reading the record ----------------------------------------------------------------

    def events(self, action: str | None = None, subject: str | None = None) -> list[StoredEvent]:
        found = self(list_events, self.ws.db, subject)
        return [e for e in found if action is None or e.action == action]

    def key_count(self) -> int:
        return int(self(self.ws.keys.repo.count))


# --- pkcs11-tool, the independent client -----------------------------------------------------


def pkcs11_tool(home: Home | Path, *args: str | bytes, pin: str | None = PIN) -> str:
    """Run pkcs11-tool on the workstation's embedded SoftHSM store; returns its stdout.
    Arguments may be raw bytes (a label that is not UTF-8, as a shell passes it); output
    that is not UTF-8 comes back with backslash escapes."""
    conf = home.softhsm_conf if isinstance(home, Home) else Home(home).softhsm_conf
    login = ["--login", "--pin", pin] if pin is not None else []
    result = subprocess.run(
        ["pkcs11-tool", "--module", MODULE, *login, *args],
        env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        errors="backslashreplace",
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"pkcs11-tool {args!r} failed: {result.stderr}")
    return result.stdout


@dataclass(frozen=True)
class PeerKey:
    """One key object as pkcs11-tool prints it in ``--list-objects``."""

    kind: str  # "Secret", "Private" or "Public"
    key_type: str  # "AES", "RSA", "EC", "EC_EDWARDS", "GENERIC"...
    header: str  # the rest of the header line, e.g. "AES length 32", "RSA 2048 bits"
    label: str
    cka_id: str
    usage: frozenset[str]
    access: frozenset[str]
    ec_params: str  # hex DER of the curve (public EC keys)
    ec_point: str  # hex of CKA_EC_POINT as printed (public EC keys)


def _words(text: str) -> frozenset[str]:
    if text.strip() in ("", "none"):
        return frozenset()
    return frozenset(word.strip() for word in text.split(",") if word.strip())


def peer_keys(home: Home | Path, token: str = TOKEN, pin: str = PIN) -> list[PeerKey]:
    """Every key object pkcs11-tool lists on ``token`` after logging in."""
    out = pkcs11_tool(home, "--token-label", token, "--list-objects", pin=pin)
    found = []
    for block in re.split(r"\n(?=\S)", out):
        head = re.match(r"(Secret|Private|Public) Key Object; *(.*)", block)
        if not head:
            continue
        rest = head.group(2).strip()
        key_type = "GENERIC" if rest.startswith("Generic secret") else rest.split()[0]

        def field(name: str, text: str = block) -> str:
            match = re.search(rf"^[ \t]+{name}:[ \t]*(.*)$", text, re.MULTILINE)
            return match.group(1).strip() if match else ""

        found.append(
            PeerKey(
                kind=head.group(1),
                key_type=key_type,
                header=rest,
                label=field("label"),
                cka_id=field("ID"),
                usage=_words(field("Usage")),
                access=_words(field("Access")),
                ec_params=field("EC_PARAMS").split(" ")[0],
                ec_point=field("EC_POINT"),
            )
        )
    return found


def peer_public_key(
    home: Home, cka_id: str, out: Path, token: str = TOKEN, pin: str = PIN
) -> PublicKeyTypes:
    """The public key pkcs11-tool exports for ``cka_id`` (DER SPKI; PEM for Ed25519 keys).

    pkcs11-tool 0.23 cannot export P-384 keys ("cannot create EVP_PKEY"); use
    ``public_key_from_point`` with the EC_POINT it lists instead."""
    pkcs11_tool(
        home,
        "--token-label",
        token,
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        cka_id,
        "--output-file",
        str(out),
        pin=pin,
    )
    data = out.read_bytes()
    if data.startswith(b"-----BEGIN"):
        return serialization.load_pem_public_key(data)
    return serialization.load_der_public_key(data)


def public_key_from_point(obj: PeerKey, curve: str) -> PublicKeyTypes:
    """The public key of an EC or Ed25519 object, from the EC_POINT pkcs11-tool lists (a DER
    OCTET STRING around the point)."""
    raw = bytes.fromhex(obj.ec_point)
    assert raw[0] == 0x04, obj.ec_point
    header = 3 if raw[1] == 0x81 else 2
    assert len(raw) - header == (raw[2] if header == 3 else raw[1])
    point = raw[header:]
    if curve == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(point)
    named = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[curve]
    return ec.EllipticCurvePublicKey.from_encoded_point(named, point)


def spki(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())
