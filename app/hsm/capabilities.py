"""What one token can really do, measured rather than taken from its mechanism list.

``probe`` runs known-answer tests and small trials with session objects only (CKA_TOKEN false),
destroys everything it created, and reports plain data (``Capabilities``). Nothing it learns
about key values leaves this module: notes name mechanisms, error names and lengths only.

Why measure: mechanism 0x210A is PKCS#11 2.40's CKM_AES_KEY_WRAP_PAD (PKCS#7 padding, then RFC
3394) on some tokens and RFC 5649 on others, a listed mechanism may still refuse a key type, and
SoftHSM 2.6.1 zero-pads key values to a multiple of 8 bytes before wrapping them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pkcs11
import pkcs11.exceptions as px
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from app.domain.algorithms import Algorithm, Family, Purpose
from app.hsm.errors import describe, translate
from app.hsm.key_attributes import ec_point, spki_of
from app.hsm.templates import CURVE_PARAMS
from app.hsm.trials import TrialResult, generation_trial, usage_enforced

log = logging.getLogger(__name__)

# Fact keys: also the prefix of every note ("AES_KEY_WRAP_PAD: ...").
KW = "AES_KEY_WRAP"
KWP = "AES_KEY_WRAP_PAD"
KWP_UNALIGNED = "AES_KEY_WRAP_PAD_UNALIGNED"
CHECK_VALUE = "CHECK_VALUE"
TRUSTED = "WRAP_WITH_TRUSTED"
EDDSA = "EDDSA"
ENFORCEMENT = "ENFORCEMENT"
PRIVATE_FAMILIES = ("RSA", "EC", "Ed25519")

# Known-answer vectors: the RFC 3394 section 4 KEK and key data, and a 20-byte secret (the
# RFC 5649 section 6 key) for a length that is not a multiple of 8.
KAT_KEK = bytes(range(32))
KAT_AES_128 = bytes.fromhex("00112233445566778899aabbccddeeff")
KAT_AES_192 = bytes.fromhex("00112233445566778899aabbccddeeff0001020304050607")
KAT_SECRET_20 = bytes.fromhex("c37b7e6492584340bed12207808941155068f738")
EDDSA_MESSAGE = b"Keystead capabilities probe"

# Failures that are not about a capability: the session or token itself is gone or unusable.
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
_ACTION = "probing the token's capabilities"

_LABELS = {
    KW: "AES key wrap, RFC 3394 (0x2109)",
    KWP: "RFC 5649 padded wrap (0x210A)",
    KWP_UNALIGNED: "RFC 5649 padded wrap (0x210A) of a 20-byte secret",
}


@dataclass(frozen=True)
class Capabilities:
    """The measured answers for one token; see ``probe``.

    ``wrap_mechanisms``: AES_KEY_WRAP and AES_KEY_WRAP_PAD are True only when the token's output
    equals ``cryptography``'s (RFC 3394 / RFC 5649) for 16- and 24-byte AES keys;
    AES_KEY_WRAP_PAD_UNALIGNED is the same test for a 20-byte secret. ``private_key_wrap``:
    wrapping a sensitive, extractable private key with 0x210A gives a blob that unwraps (RFC 5649)
    to a PKCS#8 key matching the public key. ``notes``: "<FACT KEY>: explanation".
    """

    wrap_mechanisms: dict[str, bool]
    private_key_wrap: dict[str, bool]
    check_value: bool
    trusted_wrapping: bool | None
    eddsa: bool
    notes: tuple[str, ...]
    # True only when the token refused to sign with CKA_SIGN cleared (``trials``); None when
    # not tried. Documents from before this question was asked have None.
    enforces_usage: bool | None = None
    # Which template the token accepts per algorithm and purpose (``trials.TrialResult``).
    generation: tuple[TrialResult, ...] = ()

    def generation_for(self, algorithm: str, purpose: str) -> TrialResult | None:
        return next((g for g in self.generation if g.key == f"{algorithm}/{purpose}"), None)

    def notes_for(self, key: str) -> list[str]:
        """The explanations recorded for one fact, without their key prefix."""
        prefix = f"{key}: "
        return [note.removeprefix(prefix) for note in self.notes if note.startswith(prefix)]

    def _sentence(self, key: str, text: str) -> str:
        why = self.notes_for(key)
        return f"{text} ({'; '.join(why)})." if why else f"{text}."

    def words(self) -> list[str]:
        """One sentence per fact, with the notes that explain it, for the GUI and CLI."""
        out = []
        for key, ok in self.wrap_mechanisms.items():
            label = _LABELS.get(key, key)
            verdict = "works, matches cryptography's output" if ok else "not confirmed"
            out.append(self._sentence(key, f"{label}: {verdict}"))
        for family, ok in self.private_key_wrap.items():
            verdict = "works" if ok else "does not work"
            out.append(
                self._sentence(
                    family, f"Wrapping {_article(family)} {family} private key (0x210A): {verdict}"
                )
            )
        out.append(
            self._sentence(
                CHECK_VALUE,
                "CKA_CHECK_VALUE on generated AES keys: "
                + ("filled in by the token and correct" if self.check_value else "not confirmed"),
            )
        )
        trusted = {
            True: "enforced (an untrusted key cannot wrap such a key)",
            False: "not enforced (an untrusted key can wrap such a key)",
            None: "could not be determined",
        }[self.trusted_wrapping]
        out.append(self._sentence(TRUSTED, f"CKA_WRAP_WITH_TRUSTED: {trusted}"))
        eddsa = "works, signatures verify with cryptography" if self.eddsa else "does not work"
        out.append(self._sentence(EDDSA, f"Ed25519 generation and EdDSA sign/verify: {eddsa}"))
        enforced = {
            True: "enforced by the token",
            False: "NOT enforced: key states are recorded by Keystead, not enforced by this token",
            None: "could not be determined",
        }[self.enforces_usage]
        out.append(self._sentence(ENFORCEMENT, f"Usage flags: {enforced}"))
        for trial in self.generation:
            verdict = {
                "exact": "with exactly the purpose's usage flags",
                "wider": f"only with {' and '.join(trial.extra)} as well",
                "refused": "refused",
            }[trial.outcome]
            why = f" ({trial.reason})" if trial.reason else ""
            out.append(
                f"Generating {trial.algorithm} for {trial.purpose}: {verdict}{why}; tried with "
                f"{trial.objects} objects."
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "wrap_mechanisms": dict(self.wrap_mechanisms),
            "private_key_wrap": dict(self.private_key_wrap),
            "check_value": self.check_value,
            "trusted_wrapping": self.trusted_wrapping,
            "eddsa": self.eddsa,
            "notes": list(self.notes),
            "enforces_usage": self.enforces_usage,
            "generation": {g.key: g.to_json() for g in self.generation},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capabilities:
        """Inverse of ``to_json``; raises ValueError on a malformed document."""

        def flags(name: str) -> dict[str, bool]:
            value = data.get(name)
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
            ):
                raise ValueError(f"capabilities: '{name}' must map names to true/false")
            return dict(value)

        def flag(name: str, optional: bool = False) -> Any:
            value = data.get(name)
            if not isinstance(value, bool) and not (optional and value is None):
                raise ValueError(f"capabilities: '{name}' must be true or false")
            return value

        notes = data.get("notes")
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ValueError("capabilities: 'notes' must be a list of strings")
        generation = data.get("generation", {})
        if not isinstance(generation, dict):
            raise ValueError("capabilities: 'generation' must map keys to answers")
        return cls(
            enforces_usage=flag("enforces_usage", optional=True),
            generation=tuple(TrialResult.from_json(k, v) for k, v in generation.items()),
            wrap_mechanisms=flags("wrap_mechanisms"),
            private_key_wrap=flags("private_key_wrap"),
            check_value=flag("check_value"),
            trusted_wrapping=flag("trusted_wrapping", optional=True),
            eddsa=flag("eddsa"),
            notes=tuple(notes),
        )


def _article(word: str) -> str:
    return "an" if word[0] in "AEIOURSLMNFHX" else "a"  # letters said with a vowel sound


class _Probe:
    """One run of the probe: the session, the objects to destroy, the notes gathered."""

    def __init__(self, session: pkcs11.Session) -> None:
        self.session = session
        self.notes: list[str] = []
        self.mechanisms: set[Any] = set(session.token.slot.get_mechanisms())

    def note(self, key: str, text: str) -> None:
        self.notes.append(f"{key}: {text}")

    def listed(self, key: str, *mechanisms: Mechanism) -> bool:
        missing = [m.name for m in mechanisms if m not in self.mechanisms]
        if missing:
            self.note(key, f"{', '.join(missing)} not listed by the token")
        return not missing

    @contextmanager
    def objects(self) -> Iterator[list[Any]]:
        """A list to put created objects in; all destroyed when the block ends."""
        created: list[Any] = []
        try:
            yield created
        finally:
            for obj in reversed(created):
                try:
                    obj.destroy()
                except px.PKCS11Error as exc:  # a session object still dies with the session
                    log.warning("probe could not destroy a session object: %s", describe(exc))

    def attempt(
        self, fact: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[bool, Any]:
        """Call ``fn``; a PKCS#11 refusal becomes the note '<fact>: <error> while <what>'."""
        try:
            return True, fn(*args, **kwargs)
        except _FATAL as exc:
            raise translate(exc, _ACTION) from exc
        except px.PKCS11Error as exc:
            self.note(fact, f"{describe(exc)} while {what}")
            return False, None

    # --- objects ---------------------------------------------------------------------------

    def secret(
        self,
        value: bytes,
        key_type: KeyType = KeyType.AES,
        extra: dict[Attribute, Any] | None = None,
    ) -> Any:
        template = {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: key_type,
            Attribute.VALUE: value,
            Attribute.TOKEN: False,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: False,
            Attribute.EXTRACTABLE: True,
            Attribute.WRAP: False,
            Attribute.UNWRAP: False,
            **(extra or {}),
        }
        return self.session.create_object(template)

    def kek(self) -> Any:
        return self.secret(KAT_KEK, extra={Attribute.WRAP: True, Attribute.UNWRAP: True})

    def keypair(self, family: str) -> tuple[Any, Any]:
        """A session key pair whose private half is sensitive and extractable."""
        public: dict[Attribute, Any] = {Attribute.TOKEN: False, Attribute.VERIFY: True}
        private = {
            Attribute.TOKEN: False,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: True,
            Attribute.SIGN: True,
        }
        if family == "RSA":
            public[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
            return self.session.generate_keypair(
                KeyType.RSA, 2048, public_template=public, private_template=private
            )
        key_type = KeyType.EC if family == "EC" else KeyType.EC_EDWARDS
        public[Attribute.EC_PARAMS] = CURVE_PARAMS["P-256" if family == "EC" else "Ed25519"]
        return self.session.generate_keypair(
            key_type, public_template=public, private_template=private
        )

    # --- the facts -------------------------------------------------------------------------

    def wrap_known_answers(self, kek: Any) -> dict[str, bool]:
        results = {KW: False, KWP: False, KWP_UNALIGNED: False}
        kw_listed = self.listed(KW, Mechanism.AES_KEY_WRAP)
        kwp_listed = self.listed(KWP, Mechanism.AES_KEY_WRAP_PAD)
        if not kwp_listed:
            self.note(KWP_UNALIGNED, "AES_KEY_WRAP_PAD not listed by the token")
        with self.objects() as created:
            aes = [self.secret(KAT_AES_128), self.secret(KAT_AES_192)]
            created += aes
            if kw_listed:
                results[KW] = self._kat(kek, aes, [KAT_AES_128, KAT_AES_192], KW)
                self._kw_unaligned(kek, created)
            if kwp_listed:
                results[KWP] = self._kat(kek, aes, [KAT_AES_128, KAT_AES_192], KWP)
                odd = self.secret(KAT_SECRET_20, KeyType.GENERIC_SECRET)
                created.append(odd)
                results[KWP_UNALIGNED] = self._kat(kek, [odd], [KAT_SECRET_20], KWP_UNALIGNED)
        return results

    def _kat(self, kek: Any, targets: list[Any], values: list[bytes], key: str) -> bool:
        mechanism = Mechanism.AES_KEY_WRAP if key == KW else Mechanism.AES_KEY_WRAP_PAD
        for target, value in zip(targets, values, strict=True):
            what = f"wrapping a {len(value)}-byte key with {mechanism.name}"
            ok, wrapped = self.attempt(key, what, kek.wrap_key, target, mechanism=mechanism)
            if not ok:
                return False
            expected = (
                aes_key_wrap(KAT_KEK, value)
                if key == KW
                else aes_key_wrap_with_padding(KAT_KEK, value)
            )
            if wrapped != expected:
                self.note(
                    key, f"{self._diagnose(bytes(wrapped), value)} for a {len(value)}-byte key"
                )
                return False
        return True

    @staticmethod
    def _diagnose(wrapped: bytes, value: bytes) -> str:
        """Why a 0x210A output differs from RFC 5649 of ``value`` (no bytes in the answer)."""
        zero_padded = value + bytes(-len(value) % 8)
        try:
            inner = aes_key_unwrap_with_padding(KAT_KEK, wrapped)
        except InvalidUnwrap:
            inner = None
        if inner == zero_padded:
            return (
                f"the token zero-pads the key to {len(zero_padded)} bytes before RFC 5649 "
                f"wrapping, so an unwrap returns {len(zero_padded)} bytes"
            )
        if inner is not None:
            return "RFC 5649 output of other key bytes"
        pkcs7 = value + bytes([8 - len(value) % 8]) * (8 - len(value) % 8)
        try:
            if aes_key_unwrap(KAT_KEK, wrapped) == pkcs7:
                return (
                    "0x210A is PKCS#11 2.40 AES_KEY_WRAP_PAD here (PKCS#7 + RFC 3394), not RFC 5649"
                )
        except (InvalidUnwrap, ValueError):
            pass
        return "output matches neither RFC 5649 nor PKCS#11 2.40 padding"

    def _kw_unaligned(self, kek: Any, created: list[Any]) -> None:
        """RFC 3394 is defined for multiples of 8 bytes only: note a token that pads instead."""
        odd = self.secret(KAT_SECRET_20, KeyType.GENERIC_SECRET)
        created.append(odd)
        try:
            wrapped = kek.wrap_key(odd, mechanism=Mechanism.AES_KEY_WRAP)
        except _FATAL as exc:
            raise translate(exc, _ACTION) from exc
        except px.PKCS11Error:
            return  # refused, as it should be
        try:
            inner = aes_key_unwrap(KAT_KEK, wrapped)
        except InvalidUnwrap:
            inner = b""
        if inner == KAT_SECRET_20 + bytes(4):
            text = "zero-pads it to 24 bytes, so an unwrap returns 24 bytes"
        else:
            text = "produced an output that does not unwrap to it"
        self.note(
            KW, f"accepts a 20-byte key, though RFC 3394 needs a multiple of 8 bytes, and {text}"
        )

    def private_key_wrap(self, kek: Any) -> dict[str, bool]:
        results = dict.fromkeys(PRIVATE_FAMILIES, False)
        generators = {
            "RSA": Mechanism.RSA_PKCS_KEY_PAIR_GEN,
            "EC": Mechanism.EC_KEY_PAIR_GEN,
            "Ed25519": Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
        }
        for family in PRIVATE_FAMILIES:
            if not self.listed(family, Mechanism.AES_KEY_WRAP_PAD, generators[family]):
                continue
            with self.objects() as created:
                ok, pair = self.attempt(
                    family, f"generating a {family} key pair", self.keypair, family
                )
                if not ok:
                    continue
                public, private = pair
                created += [public, private]
                ok, wrapped = self.attempt(
                    family,
                    f"wrapping {_article(family)} {family} private key with AES_KEY_WRAP_PAD",
                    kek.wrap_key,
                    private,
                    mechanism=Mechanism.AES_KEY_WRAP_PAD,
                )
                if ok:
                    results[family] = self._check_wrapped_private(family, public, bytes(wrapped))
        return results

    def _check_wrapped_private(self, family: str, public: Any, wrapped: bytes) -> bool:
        """The blob must unwrap (RFC 5649) to a PKCS#8 key whose public half is ``public``."""
        try:
            inner = aes_key_unwrap_with_padding(KAT_KEK, wrapped)
        except InvalidUnwrap:
            self.note(family, "the wrapped private key is not RFC 5649 output")
            return False
        length = _der_length(inner)
        if length is None:
            self.note(family, "the wrapped private key does not unwrap to DER")
            return False
        if length < len(inner):
            padding = inner[length:]
            kind = "zero bytes" if not any(padding) else "extra bytes"
            self.note(
                family,
                f"the token appends {len(padding)} {kind} to the PKCS#8 key "
                "before wrapping; a strict unwrapper may refuse them",
            )
        try:
            key = serialization.load_der_private_key(inner[:length], password=None)
        except (ValueError, TypeError):
            self.note(family, "the wrapped private key is not a PKCS#8 key cryptography can read")
            return False
        mine = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        attributes = [Attribute.PUBLIC_EXPONENT, Attribute.MODULUS]
        if family != "RSA":
            attributes = [Attribute.EC_PARAMS, Attribute.EC_POINT]
        token_family = {"RSA": Family.RSA, "EC": Family.EC, "Ed25519": Family.EDDSA}[family]
        if mine != spki_of(public.get_attributes(attributes), token_family):
            self.note(family, "the wrapped private key does not match its public key")
            return False
        return True

    def check_value(self) -> bool:
        if not self.listed(CHECK_VALUE, Mechanism.AES_KEY_GEN):
            return False
        with self.objects() as created:
            template = {
                Attribute.TOKEN: False,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
            }
            ok, key = self.attempt(
                CHECK_VALUE,
                "generating an AES-256 key",
                self.session.generate_key,
                KeyType.AES,
                256,
                template=template,
            )
            if not ok:
                return False
            created.append(key)
            ok, values = self.attempt(
                CHECK_VALUE,
                "reading CKA_CHECK_VALUE",
                key.get_attributes,
                [Attribute.CHECK_VALUE, Attribute.VALUE],
            )
            if not ok:
                return False
        check = bytes(values.get(Attribute.CHECK_VALUE) or b"")
        if not check:
            self.note(CHECK_VALUE, "the token leaves it empty; Keystead computes KCVs itself")
            return False
        encryptor = Cipher(algorithms.AES(bytes(values[Attribute.VALUE])), modes.ECB()).encryptor()  # noqa: S305
        expected = (encryptor.update(bytes(16)) + encryptor.finalize())[:3]
        if check != expected:
            self.note(
                CHECK_VALUE, f"the token's {len(check)}-byte value is not AES-ECB of a zero block"
            )
            return False
        return True

    def trusted_wrapping(self, kek: Any, mechanism: Mechanism | None) -> bool | None:
        """Wrap a WRAP_WITH_TRUSTED key with the untrusted KEK, next to a control key."""
        if mechanism is None:
            self.note(TRUSTED, "no AES wrap mechanism works to test it with")
            return None
        with self.objects() as created:
            keys = []
            for trusted in (False, True):
                template = {
                    Attribute.TOKEN: False,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: True,
                    Attribute.WRAP_WITH_TRUSTED: trusted,
                }
                ok, key = self.attempt(
                    TRUSTED,
                    f"generating an AES key with CKA_WRAP_WITH_TRUSTED {str(trusted).lower()}",
                    self.session.generate_key,
                    KeyType.AES,
                    128,
                    template=template,
                )
                if not ok:
                    return None
                created.append(key)
                keys.append(key)
            control, target = keys
            ok, _ = self.attempt(
                TRUSTED,
                "wrapping the control key",
                kek.wrap_key,
                control,
                mechanism=mechanism,
            )
            if not ok:
                return None
            try:
                kek.wrap_key(target, mechanism=mechanism)
            except _FATAL as exc:
                raise translate(exc, _ACTION) from exc
            except px.PKCS11Error as exc:
                if not isinstance(exc, px.KeyNotWrappable):
                    self.note(TRUSTED, f"refused with {describe(exc)}")
                return True
            if not target[Attribute.WRAP_WITH_TRUSTED]:
                self.note(TRUSTED, "the token dropped the attribute from the key")
            return False

    def eddsa(self) -> bool:
        if not self.listed(EDDSA, Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA):
            return False
        with self.objects() as created:
            ok, pair = self.attempt(
                EDDSA, "generating an Ed25519 key pair", self.keypair, "Ed25519"
            )
            if not ok:
                return False
            public, private = pair
            created += [public, private]
            ok, signature = self.attempt(
                EDDSA,
                "signing with EDDSA",
                private.sign,
                EDDSA_MESSAGE,
                mechanism=Mechanism.EDDSA,
            )
            if not ok:
                return False
            ok, verified = self.attempt(
                EDDSA,
                "verifying with EDDSA",
                public.verify,
                EDDSA_MESSAGE,
                signature,
                mechanism=Mechanism.EDDSA,
            )
            if not (ok and verified):
                if ok:
                    self.note(EDDSA, "the token does not verify its own signature")
                return False
            point = ec_point(public[Attribute.EC_POINT])
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(point).verify(signature, EDDSA_MESSAGE)
        except (InvalidSignature, ValueError):
            self.note(EDDSA, "cryptography does not verify the token's signature")
            return False
        return True


def _der_length(blob: bytes) -> int | None:
    """Length of the DER SEQUENCE at the start of ``blob`` (header included), or None."""
    if len(blob) < 2 or blob[0] != 0x30:
        return None
    first = blob[1]
    if first < 0x80:
        size, header = first, 2
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or len(blob) < 2 + count:
            return None
        size, header = int.from_bytes(blob[2 : 2 + count], "big"), 2 + count
    return header + size if header + size <= len(blob) else None


def probe(session: pkcs11.Session) -> Capabilities:
    """Run the probe with a logged-in python-pkcs11 session (read-write).

    Creates session objects (the trials of ``app.hsm.trials`` fall back to token objects
    where the module refuses session objects) and destroys each one before returning. A refused
    operation becomes a False answer and a note; a lost session or token raises a Keystead
    TokenError.
    """
    try:
        run = _Probe(session)
    except px.PKCS11Error as exc:
        raise translate(exc, _ACTION) from exc
    wrap = dict.fromkeys((KW, KWP, KWP_UNALIGNED), False)
    private = dict.fromkeys(PRIVATE_FAMILIES, False)
    trusted: bool | None = None
    with run.objects() as created:
        ok, kek = run.attempt(KW, "creating a session AES key-encryption key", run.kek)
        if ok:
            created.append(kek)
            wrap = run.wrap_known_answers(kek)
            private = run.private_key_wrap(kek)
            usable = [
                m
                for k, m in ((KW, Mechanism.AES_KEY_WRAP), (KWP, Mechanism.AES_KEY_WRAP_PAD))
                if wrap[k]
            ]
            trusted = run.trusted_wrapping(kek, usable[0] if usable else None)
        else:
            run.note(TRUSTED, "no key-encryption key to test it with")
    check_value = run.check_value()
    eddsa = run.eddsa()
    enforcement = usage_enforced(session)
    run.note(ENFORCEMENT, f"{enforcement.note}; tried with {enforcement.objects} objects")
    generation = tuple(
        generation_trial(session, algorithm, purpose) for algorithm, purpose in TRIALS
    )
    return Capabilities(
        wrap_mechanisms=wrap,
        private_key_wrap=private,
        check_value=check_value,
        trusted_wrapping=trusted,
        eddsa=eddsa,
        notes=tuple(run.notes),
        enforces_usage=enforcement.enforced,
        generation=generation,
    )


# The generations the probe tries: one algorithm per family, each purpose it allows.
TRIALS = (
    (Algorithm.AES_256, Purpose.ENCRYPTION),
    (Algorithm.RSA_2048, Purpose.SIGNING),
    (Algorithm.RSA_2048, Purpose.ENCRYPTION),
    (Algorithm.EC_P256, Purpose.SIGNING),
    (Algorithm.ED25519, Purpose.SIGNING),
)
