"""Trials on a token: which generation templates it accepts, and whether it enforces usage flags.

Both make real objects and destroy them before returning. Session objects (CKA_TOKEN false)
are tried first; a module that refuses them (tpm2-pkcs11 1.9 does, for every key) is tried
with token objects, which carry a random CKA_ID and the label ``keystead-probe`` and are looked
up by that CKA_ID and destroyed however the trial ends. The result says which kind was used.

``generation_trial`` answers "can this token make a key of this algorithm for this purpose with
exactly the purpose's usage flags — and if not, with what more?": the candidates are the exact
template, then the same with the signing and decryption flags of a key pair both granted (the
combination tpm2-pkcs11 insists on). Nothing wider is ever tried.

``usage_enforced`` answers "does the token refuse an operation whose usage flag was cleared?":
a signing key pair is generated (with the template the token accepts), CKA_SIGN is cleared on
the private key and a signature is asked for. Only a refusal counts as enforcement.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pkcs11
import pkcs11.exceptions as px
from pkcs11 import Attribute, KeyType, Mechanism

from app.domain.algorithms import Algorithm, Family, Purpose, Usage, UsagePlan, usage_for
from app.hsm.errors import describe, translate
from app.hsm.templates import (
    GENERATE_MECHANISM,
    KEY_TYPE,
    KeySpec,
    private_template,
    public_template,
    secret_template,
)

log = logging.getLogger(__name__)

PROBE_LABEL = "keystead-probe"

# The session or the token itself is gone: not an answer about templates.
_FATAL = (
    px.UserNotLoggedIn,
    px.SessionReadOnly,
    px.DeviceRemoved,
    px.DeviceError,
    px.TokenNotPresent,
    px.TokenNotRecognised,
    px.SessionHandleInvalid,
    px.SessionClosed,
)

# Usage flags granted on top of the purpose's in the one wider candidate (key pairs only).
WIDER_PAIR = UsagePlan(
    private=frozenset({Usage.SIGN, Usage.DECRYPT}), public=frozenset({Usage.VERIFY, Usage.ENCRYPT})
)


@dataclass(frozen=True)
class TrialResult:
    """How a token answered a generation of ``algorithm`` for ``purpose``.

    ``outcome``: "exact" (the purpose's flags only), "wider" (only with ``extra`` flags more,
    e.g. ("DECRYPT", "ENCRYPT") for a signing key on tpm2-pkcs11) or "refused" (no candidate
    was accepted; ``reason`` names the errors). ``objects``: "session" or "token".
    """

    algorithm: str
    purpose: str
    outcome: str
    extra: tuple[str, ...]
    reason: str
    objects: str

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "extra": list(self.extra),
            "reason": self.reason,
            "objects": self.objects,
        }

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> TrialResult:
        algorithm, _, purpose = key.partition("/")
        extra = data.get("extra", [])
        if data.get("outcome") not in ("exact", "wider", "refused") or not isinstance(extra, list):
            raise ValueError(f"capabilities: malformed generation answer for {key}")
        return cls(
            algorithm,
            purpose,
            str(data["outcome"]),
            tuple(str(e) for e in extra),
            str(data.get("reason", "")),
            str(data.get("objects", "")),
        )

    @property
    def key(self) -> str:
        return f"{self.algorithm}/{self.purpose}"

    def sentence(self, label: str) -> str:
        """The answer in words, e.g. for the refusal before a generation."""
        what = f"{self.algorithm} keys for {self.purpose}"
        if self.outcome == "exact":
            return f"Token '{label}' makes {what} with exactly the purpose's usage flags."
        if self.outcome == "wider":
            return (
                f"Token '{label}' makes {what} only with {' and '.join(self.extra)} as well "
                f"({self.reason})."
            )
        return f"Token '{label}' does not make {what} ({self.reason})."


def widened(plan: UsagePlan, family: Family) -> UsagePlan | None:
    """The one wider candidate for a key pair, or None (secret keys, or nothing to add)."""
    if family is Family.AES:
        return None
    wider = UsagePlan(plan.private | WIDER_PAIR.private, plan.public | WIDER_PAIR.public)
    return None if wider == plan else wider


def extra_usages(wanted: UsagePlan, granted: UsagePlan) -> tuple[str, ...]:
    """Usage flag names ``granted`` has beyond ``wanted`` (private first, then public)."""
    extra = [u.value for u in Usage if u in granted.private - wanted.private]
    public = granted.public - wanted.public
    extra += [u.value for u in Usage if u in public and u.value not in extra]
    return tuple(extra)


class _Trial:
    """Make and destroy probe objects, falling back to token objects once if needed."""

    def __init__(self, session: pkcs11.Session) -> None:
        self.session = session
        self.objects = "session"

    def _attempt(self, plan: UsagePlan, algorithm: Algorithm, token: bool) -> list[Any]:
        cka_id = secrets.token_bytes(16)
        spec = KeySpec(algorithm, PROBE_LABEL, cka_id, plan, extractable=False)
        family = algorithm.family
        try:
            if family is Family.AES:
                template = {**secret_template(spec), Attribute.TOKEN: token}
                key = self.session.generate_key(
                    KeyType.AES, algorithm.spec.bits, store=token, template=template
                )
                return [key]
            pub = {**public_template(spec), Attribute.TOKEN: token}
            priv = {**private_template(spec), Attribute.TOKEN: token}
            public, private = self.session.generate_keypair(
                KEY_TYPE[family],
                algorithm.spec.bits if family is Family.RSA else None,
                store=token,
                public_template=pub,
                private_template=priv,
            )
            return [public, private]
        except BaseException:
            if token:
                self._destroy_by_id(cka_id)
            raise

    def _destroy_by_id(self, cka_id: bytes) -> None:
        try:
            for obj in list(self.session.get_objects({Attribute.ID: cka_id})):
                obj.destroy()
        except px.PKCS11Error as exc:
            log.error("could not remove the objects of a failed trial: %s", describe(exc))

    def make(self, plan: UsagePlan, algorithm: Algorithm) -> tuple[list[Any] | None, str]:
        """Objects of ``algorithm`` with ``plan``, or None and the error names."""
        errors = []
        kinds = [False, True] if self.objects == "session" else [True]
        for token in kinds:
            try:
                made = self._attempt(plan, algorithm, token)
            except _FATAL as exc:
                raise translate(exc, "trying a key template on the token") from exc
            except px.PKCS11Error as exc:
                errors.append(f"{describe(exc)} for {'token' if token else 'session'} objects")
                continue
            if token:
                self.objects = "token"
            return made, ""
        return None, "; ".join(errors)

    @staticmethod
    def destroy(objects: list[Any]) -> None:
        for obj in reversed(objects):
            try:
                obj.destroy()
            except px.PKCS11Error as exc:
                log.error("could not destroy a probe object: %s", describe(exc))


def generation_trial(
    session: pkcs11.Session, algorithm: Algorithm, purpose: Purpose
) -> TrialResult:
    """Which template the token accepts for ``algorithm`` and ``purpose`` (see the module)."""
    trial = _Trial(session)
    plan = usage_for(algorithm, purpose)
    mechanism = GENERATE_MECHANISM[algorithm.family]
    listed = {getattr(m, "name", str(m)) for m in session.token.slot.get_mechanisms()}
    if mechanism not in listed:
        return TrialResult(
            algorithm.value, purpose.value, "refused", (), f"{mechanism} not listed", "session"
        )
    reasons = []
    for candidate in (plan, widened(plan, algorithm.family)):
        if candidate is None:
            continue
        made, why = trial.make(candidate, algorithm)
        if made is None:
            reasons.append(why)
            continue
        trial.destroy(made)
        extra = extra_usages(plan, candidate)
        outcome = "exact" if not extra else "wider"
        reason = f"the exact template was refused: {reasons[0]}" if reasons else ""
        return TrialResult(algorithm.value, purpose.value, outcome, extra, reason, trial.objects)
    why = " / ".join(reasons)
    if mechanism in listed:
        why += f", though the token lists {mechanism}"
    return TrialResult(algorithm.value, purpose.value, "refused", (), why, trial.objects)


@dataclass(frozen=True)
class Enforcement:
    """``enforced``: True when the token refused to sign after CKA_SIGN was cleared, False
    when it signed anyway, None when that could not be tried (``note`` says why)."""

    enforced: bool | None
    note: str
    objects: str


def usage_enforced(session: pkcs11.Session) -> Enforcement:
    """Clear CKA_SIGN on a probe signing key and ask for a signature (see the module)."""
    trial = _Trial(session)
    listed = {getattr(m, "name", str(m)) for m in session.token.slot.get_mechanisms()}
    if "EC_KEY_PAIR_GEN" in listed and "ECDSA" in listed:
        algorithm, mechanism = Algorithm.EC_P256, Mechanism.ECDSA
        message = bytes(32)  # a SHA-256-sized digest
    elif "RSA_PKCS_KEY_PAIR_GEN" in listed and "RSA_PKCS" in listed:
        algorithm, mechanism = Algorithm.RSA_2048, Mechanism.RSA_PKCS
        message = bytes(32)
    else:
        return Enforcement(None, "no EC or RSA signing mechanism to test it with", "session")
    plan = usage_for(algorithm, Purpose.SIGNING)
    made = None
    for candidate in (plan, widened(plan, algorithm.family)):
        if candidate is not None:
            made, why = trial.make(candidate, algorithm)
            if made is not None:
                break
    if made is None:
        return Enforcement(None, f"no signing key could be made to test it ({why})", trial.objects)
    try:
        private = made[1]
        return _sign_after_clearing(private, mechanism, message, trial.objects)
    finally:
        trial.destroy(made)


def _sign_after_clearing(
    private: Any, mechanism: Mechanism, message: bytes, objects: str
) -> Enforcement:
    attempt: Callable[[], Any] = lambda: private.sign(message, mechanism=mechanism)  # noqa: E731
    try:
        private[Attribute.SIGN] = False
    except _FATAL as exc:
        raise translate(exc, "testing whether the token enforces usage flags") from exc
    except px.PKCS11Error as exc:
        return Enforcement(None, f"the token refused to clear CKA_SIGN ({describe(exc)})", objects)
    try:
        attempt()
    except _FATAL as exc:
        raise translate(exc, "testing whether the token enforces usage flags") from exc
    except px.PKCS11Error as exc:
        return Enforcement(
            True, f"with CKA_SIGN cleared the token refused to sign ({describe(exc)})", objects
        )
    return Enforcement(False, "with CKA_SIGN cleared the token still signed", objects)
