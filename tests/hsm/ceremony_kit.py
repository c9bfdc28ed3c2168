"""Ceremony test support: a bench with a Rehearsal SoftHSM token, a scripted desk, and helpers
that drive a ceremony to its end on the core thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.ceremony import script as scripts
from app.ceremony.runner import Ceremonies, CeremonyRun
from app.ceremony.templates import template_dir
from app.services.prompter import SecretKind
from tests.support import PIN, SO_PIN, WITNESS, WITNESS_PASS, Bench, enrol_witness

REHEARSAL = "Rehearsal"
EXTERNAL = ("Eve Example", "Example Audit LLP")


class ScriptedDesk:
    """The front end of a test: PINs from a table, share cards kept for the drill."""

    def __init__(self) -> None:
        self.secrets = {
            SecretKind.SO_PIN: SO_PIN,
            SecretKind.USER_PIN: PIN,
            SecretKind.NEW_USER_PIN: PIN,
        }
        self.cards: list[Any] = []
        self.asked: list[str] = []

    def secret(self, kind: SecretKind, prompt: str) -> str | None:
        self.asked.append(prompt)
        return self.secrets.get(kind)

    def deliver_shares(self, card: Any) -> None:
        self.cards.append(card)

    def collect_shares(self, needed: int | None) -> tuple[str, ...]:
        mnemonics = self.cards[-1].share_set.mnemonics
        return tuple(mnemonics[: needed or len(mnemonics)])


def rehearsal_bench(bench: Bench) -> Bench:
    """A second embedded token labelled Rehearsal, logged in, and the witness enrolled."""

    def make() -> None:
        enrol_witness(bench.ws)
        bench.ws.tokens.create_soft_token(REHEARSAL, SO_PIN, PIN)
        bench.ws.tokens.login(REHEARSAL, PIN)

    bench(make)
    return bench


def template(name: str) -> scripts.Script:
    return scripts.load(template_dir() / f"{name}.toml")


def write_csr(directory: Path, name: str = "intermediate.csr") -> Path:
    key = ec.generate_private_key(ec.SECP384R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "Example Intermediate CA"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Organisation"),
                ]
            )
        )
        .sign(key, hashes.SHA384())
    )
    path = directory / name
    path.write_bytes(request.public_bytes(serialization.Encoding.PEM))
    return path


def begin(
    bench: Bench, script: scripts.Script, workdir: Path, profile: str = "rehearsal"
) -> CeremonyRun:
    return bench(Ceremonies(bench.ws).begin, script, profile, workdir)


def register_all(bench: Bench, run: CeremonyRun, script: scripts.Script) -> None:
    """Three participants: the officer (administrator), the enrolled witness operator (as
    custodian when the script needs one, else as witness) and an external witness."""
    if script.custodians:
        bench(run.register_operator, WITNESS, "custodian", WITNESS_PASS)
    else:
        bench(run.register_operator, WITNESS, "witness", WITNESS_PASS)
    bench(run.register_external, EXTERNAL[0], EXTERNAL[1], "witness")


def sign_now(run: CeremonyRun) -> None:
    """(Core thread.) Sign the current step by as many participants as its quorum needs."""
    step = run.current
    assert step is not None
    for person in run.eligible_signers(step)[: step.quorum]:
        if person.kind == "external":
            run.sign_off(person.name, person.name, None)
        else:
            run.sign_off(person.name, "WI", WITNESS_PASS)


def sign(bench: Bench, run: CeremonyRun) -> None:
    bench(sign_now, run)


def run_to_end(bench: Bench, run: CeremonyRun, desk: ScriptedDesk) -> None:
    def drive() -> None:
        run.start()
        while run.current is not None:
            run.perform(desk)
            sign_now(run)

    bench(drive)
