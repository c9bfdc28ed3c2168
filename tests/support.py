"""Shared test support: a workstation on a real SoftHSM token, driven on the core thread,
an injectable clock, and pkcs11-tool as the independent peer."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.approval import ApprovalRequest, Credential, PolicyRule
from app.domain.roles import FIRST_OPERATOR_ROLES
from app.hsm.softhsm import find_softhsm_module
from app.paths import Home
from app.services.executor import CoreExecutor
from app.services.workstation import SoftTokenRequest, Workstation
from app.storage.events import StoredEvent, list_events
from app.storage.keyslots import KdfCost

# Sentinels: fixed fake secrets that must never appear on disk, in logs or in output.
PASS = "SENTINEL-passphrase-6d1f"
PIN = "314159"
SO_PIN = "27182818"
TOKEN = "Life"
OPERATOR = "officer"
FAST_KDF = KdfCost(1024, 1, 1)
MODULE = find_softhsm_module() or "/usr/lib/softhsm/libsofthsm2.so"


# The second person of dual control in tests: enrolled at set-up (the sole officer may enrol
# one operator alone), and answering every approval through a scripted source. The default
# policy stays as shipped; tests that need one person get this witness, not a weaker policy.
WITNESS = "witness"
WITNESS_PASS = "SENTINEL-witness-pass-91c2"


class Witness:
    """An approval source answering as the witness, enrolled the first time it is asked (the
    sole operator of a new workstation may enrol one operator alone), so tests that never
    need a second person see a workstation with one operator, as ``init`` leaves it."""

    def __init__(self, ws: Workstation, cost: KdfCost = FAST_KDF) -> None:
        self.ws, self.cost = ws, cost
        self.asked: list[ApprovalRequest] = []

    def credentials(self, request: ApprovalRequest, rule: PolicyRule) -> list[Credential]:
        self.asked.append(request)
        enrol_witness(self.ws, self.cost)
        return [Credential(WITNESS, WITNESS_PASS)]


def enrol_witness(ws: Workstation, cost: KdfCost = FAST_KDF) -> None:
    """Enrol the witness (security officer + key custodian) unless it is there."""
    if ws.approvals.operators.get(WITNESS) is None:
        ws.roster.cost = cost
        ws.roster.add(WITNESS, FIRST_OPERATOR_ROLES, WITNESS_PASS, WITNESS_PASS)


def with_witness(ws: Workstation) -> Workstation:
    """Let the witness approve what this session asks."""
    ws.approvals.source = Witness(ws)
    return ws


class Clock:
    """An injectable clock that tests move forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class PeerObject:
    """One key object as pkcs11-tool prints it."""

    kind: str  # Secret, Private, Public
    key_type: str  # AES, EC, RSA, EC_EDWARDS...
    label: str
    cka_id: str
    usage: set[str]
    access: set[str]


def pkcs11_tool(home: Home, *args: str, pin: str | None = PIN) -> str:
    """Run pkcs11-tool against the workstation's embedded SoftHSM store."""
    login = ["--login", "--pin", pin] if pin is not None else []
    result = subprocess.run(
        ["pkcs11-tool", "--module", MODULE, *login, *args],
        env={"SOFTHSM2_CONF": str(home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _words(text: str) -> set[str]:
    return set() if text.strip() == "none" else {w.strip() for w in text.split(",") if w.strip()}


AUDIT_IDS = (b"KEYSTEAD-AUDIT-MAC".hex(), b"KEYSTEAD-AUDIT-CHECKPOINT".hex())


def peer_objects(
    home: Home, token: str = TOKEN, audit: bool = False, pin: str = PIN
) -> list[PeerObject]:
    """Every key object pkcs11-tool lists on ``token`` (the workstation's audit keys only
    with ``audit``)."""
    out = pkcs11_tool(home, "--token-label", token, "--list-objects", pin=pin)
    found = []
    for block in re.split(r"\n(?=\S)", out):
        head = re.match(r"(Secret|Private|Public) Key Object;\s+(\w+)", block)
        if not head:
            continue

        def field(name: str, text: str = block) -> str:
            match = re.search(rf"^\s+{name}:\s+(.*)$", text, re.MULTILINE)
            return match.group(1).strip() if match else ""

        found.append(
            PeerObject(
                head.group(1),
                head.group(2),
                field("label"),
                field("ID"),
                _words(field("Usage")),
                _words(field("Access")),
            )
        )
    return [o for o in found if audit or o.cka_id not in AUDIT_IDS]


class Bench:
    """A workstation with a logged-in embedded token; ``bench(fn, ...)`` runs on the core."""

    def __init__(self, home: Home, core: CoreExecutor, clock: Clock) -> None:
        self.home, self.core, self.clock = home, core, clock
        self.ws: Workstation = core.call(self._create)

    def _create(self) -> Workstation:
        ws = Workstation.initialize(
            self.home,
            OPERATOR,
            PASS,
            PASS,
            SoftTokenRequest(TOKEN, SO_PIN, PIN),
            cost=FAST_KDF,
            clock=self.clock,
        )
        ws.tokens.login(TOKEN, PIN)
        with_witness(ws)
        return ws

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.core.call(fn, *args, **kwargs)

    def reopen(self, login: bool = True) -> None:
        self(self.ws.lock)
        self.ws = with_witness(
            self(Workstation.unlock, self.home, OPERATOR, PASS, clock=self.clock)
        )
        if login:
            self(self.ws.tokens.login, TOKEN, PIN)

    def peer_usage(self) -> dict[tuple[str, str], str]:
        """pkcs11-tool's view: (object kind, CKA_ID) -> its usage words, comma-joined."""
        return {
            (o.kind, o.cka_id): ", ".join(sorted(o.usage)) or "none"
            for o in peer_objects(self.home)
        }

    def events(self, key_id: str | None = None) -> list[StoredEvent]:
        subject = None if key_id is None else f"key:{key_id}"
        return self(list_events, self.ws.db, subject)
