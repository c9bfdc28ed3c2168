"""A logged-in session on one token: generate, enumerate, read and destroy key objects.

Objects are found by CKA_ID, never by handle. Results are plain data (``GeneratedKey``,
``TokenObject``, attribute dicts keyed by name); no python-pkcs11 object leaves this module.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import sys
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import pkcs11
import pkcs11.exceptions as px
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.constants import TokenFlag

from app.domain.algorithms import Algorithm, Family, Purpose, Usage
from app.domain.keys import TokenObject
from app.errors import (
    KeysteadError,
    TemplateMismatch,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    TokenRemoved,
    UnsupportedAlgorithm,
)
from app.hsm.attributes import untrusted_mapper
from app.hsm.errors import describe, pkcs11_errors, translate, unmapped_code
from app.hsm.module import USER_STATES, Pkcs11Module, TokenInfo
from app.hsm.templates import (
    CURVE_PARAMS,
    GENERATE_MECHANISM,
    KEY_TYPE,
    PARAMS_CURVE,
    PRIVATE_USAGES,
    PUBLIC_USAGES,
    SECRET_USAGES,
    USAGE_ATTR,
    KeySpec,
    expected_readback,
    mismatches,
    private_template,
    public_template,
    secret_template,
)
from app.hsm.trials import Enforcement, TrialResult, generation_trial, usage_enforced

log = logging.getLogger(__name__)

# What the detail panel and the read-back show, in this order.
SHOWN_ATTRIBUTES = (
    Attribute.CLASS,
    Attribute.KEY_TYPE,
    Attribute.LABEL,
    Attribute.ID,
    Attribute.TOKEN,
    Attribute.PRIVATE,
    Attribute.MODIFIABLE,
    Attribute.SENSITIVE,
    Attribute.EXTRACTABLE,
    Attribute.WRAP_WITH_TRUSTED,
    Attribute.ALWAYS_SENSITIVE,
    Attribute.NEVER_EXTRACTABLE,
    Attribute.ENCRYPT,
    Attribute.DECRYPT,
    Attribute.SIGN,
    Attribute.VERIFY,
    Attribute.WRAP,
    Attribute.UNWRAP,
    Attribute.DERIVE,
    Attribute.LOCAL,
)
# One batched read per object during enumeration.
_ENUMERATION_ATTRIBUTES = [
    Attribute.CLASS,
    Attribute.KEY_TYPE,
    Attribute.ID,
    Attribute.LABEL,
    Attribute.VALUE_LEN,
    Attribute.MODULUS_BITS,
    Attribute.EC_PARAMS,
]
# The workstation's audit keys, recognised by fixed CKA_IDs.
AUDIT_MAC_ID = b"KEYSTEAD-AUDIT-MAC"
AUDIT_CHECKPOINT_ID = b"KEYSTEAD-AUDIT-CHECKPOINT"
AUDIT_IDS = (AUDIT_MAC_ID, AUDIT_CHECKPOINT_ID)
CHECKPOINT_APPLICATION = "keystead-audit-checkpoint"

_KEY_CLASSES = {ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY}
_CLASS_USAGES = {
    ObjectClass.SECRET_KEY: SECRET_USAGES,
    ObjectClass.PRIVATE_KEY: PRIVATE_USAGES,
    ObjectClass.PUBLIC_KEY: PUBLIC_USAGES,
}


# A session the module no longer knows, or a device that dropped off and may be back: reopen
# once and re-find objects by CKA_ID. Reopening fails as "removed" when the token is not there,
# and as "log in again" when the login went with the old session.
_STALE = (px.SessionHandleInvalid, px.SessionClosed, px.DeviceRemoved)
# Codes that say the call never reached the token: the only retry a PIN change allows.
_HANDLE_STALE = (px.SessionHandleInvalid, px.SessionClosed)

P = ParamSpec("P")
R = TypeVar("R")


def _is_stale(exc: BaseException, stale: tuple[type[BaseException], ...] = _STALE) -> bool:
    return isinstance(exc, stale) or (
        isinstance(exc, KeysteadError) and isinstance(exc.__cause__, stale)
    )


def _drop_stale_finalizer(previous: Callable[[Any], object], unraisable: Any) -> None:
    """python-pkcs11 ends an abandoned object search in ``__del__``; on a stale handle that
    fails again and would print a traceback. Expected here, so it is only logged."""
    if isinstance(unraisable.exc_value, _STALE):
        log.debug("ending a search on a stale session failed, as expected")
        return
    previous(unraisable)


def _drop_stale_print(previous: Callable[..., object], kind: Any, value: Any, tb: Any) -> None:
    """Cython prints a failing ``__del__`` through ``sys.excepthook`` too; same filter."""
    if isinstance(value, _STALE):
        return
    previous(kind, value, tb)


def _release_frames(exc: BaseException | None) -> None:
    while exc is not None:
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def writes(
    method: Callable[Concatenate[TokenSession, P], R],
) -> Callable[Concatenate[TokenSession, P], R]:
    """A method that can change the token's files: when it returns or fails, the module's
    store guard brings its verified shadow copies up to date (``app.hsm.filestore``)."""

    @functools.wraps(method)
    def wrapper(self: TokenSession, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.module.wrote()

    return wrapper


def recovering(
    method: Callable[Concatenate[TokenSession, P], R],
) -> Callable[Concatenate[TokenSession, P], R]:
    """Run a session method; if the module says the session is stale (or the device dropped
    off), reopen the session once and run it again (objects are found by CKA_ID, so nothing
    else is kept). For calls that are safe to repeat."""
    return _recovering(method, _STALE)


def recovering_handle_only(
    method: Callable[Concatenate[TokenSession, P], R],
) -> Callable[Concatenate[TokenSession, P], R]:
    """Like ``recovering``, but only when the call cannot have reached the token (a stale
    handle): for calls that must not happen twice, such as a PIN change."""
    return _recovering(method, _HANDLE_STALE)


def _recovering(
    method: Callable[Concatenate[TokenSession, P], R],
    stale: tuple[type[BaseException], ...],
) -> Callable[Concatenate[TokenSession, P], R]:
    def wrapper(self: TokenSession, /, *args: P.args, **kwargs: P.kwargs) -> R:
        previous, previous_except = sys.unraisablehook, sys.excepthook
        sys.unraisablehook = functools.partial(_drop_stale_finalizer, previous)
        sys.excepthook = functools.partial(_drop_stale_print, previous_except)
        try:
            return method(self, *args, **kwargs)
        except (KeysteadError, px.PKCS11Error) as exc:
            if not _is_stale(exc, stale):
                if isinstance(exc, (TokenNotLoggedIn, px.UserNotLoggedIn)):
                    self.lost = True  # the token says the login is gone: ask for the PIN again
                elif isinstance(exc, TokenError) and not isinstance(exc, TokenRemoved):
                    self.still_present()  # a vague failure of a token that went away
                raise
            _release_frames(exc)  # end abandoned searches now, while their noise is dropped
        finally:
            sys.unraisablehook, sys.excepthook = previous, previous_except
        self.reopen()
        try:
            return method(self, *args, **kwargs)
        except TokenNotLoggedIn:
            self.lost = True
            raise TokenNotLoggedIn(
                f"Token '{self.info.label}' forgot the login (it was removed or went to sleep). "
                "Log in again; nothing was changed."
            ) from None
        except TokenRemoved:
            self.lost = True
            raise

    functools.update_wrapper(wrapper, method)
    return wrapper


@dataclass(frozen=True)
class PinState:
    """What the token says about its user PIN (CK_TOKEN_INFO flags)."""

    locked: bool  # CKF_USER_PIN_LOCKED: C_Login will fail until an SO resets the PIN
    final_try: bool  # CKF_USER_PIN_FINAL_TRY: the next wrong PIN locks it
    count_low: bool  # CKF_USER_PIN_COUNT_LOW: a wrong PIN was given since the last success
    must_change: bool  # CKF_USER_PIN_TO_BE_CHANGED: default, expired or reset by the SO

    @classmethod
    def of(cls, info: TokenInfo) -> PinState:
        flags = info.flags
        return cls(
            locked=bool(flags & TokenFlag.USER_PIN_LOCKED),
            final_try=bool(flags & TokenFlag.USER_PIN_FINAL_TRY),
            count_low=bool(flags & TokenFlag.USER_PIN_COUNT_LOW),
            must_change=bool(flags & TokenFlag.USER_PIN_TO_BE_CHANGED),
        )


@dataclass(frozen=True)
class GeneratedKey:
    """What generation produced, read back from the token."""

    cka_id: str
    kcv: str | None
    spki: bytes | None
    fingerprint: str | None
    attributes: dict[str, dict[str, Any]]  # object class name -> attribute name -> value


def _named(attributes: dict[Attribute, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in SHOWN_ATTRIBUTES:
        if attribute in attributes:
            value = attributes[attribute]
            if isinstance(value, bytes) and attribute is Attribute.ID:
                value = value.hex()
            elif hasattr(value, "name"):
                value = value.name
            out[attribute.name] = value
    return out


def _ec_point(raw: bytes) -> bytes:
    """CKA_EC_POINT is normally a DER OCTET STRING; some tokens give the raw point."""
    try:
        return bytes(OctetString.load(raw).native)
    except ValueError:
        return raw


def spki_of(public: dict[Attribute, Any], family: Family) -> bytes:
    """DER SubjectPublicKeyInfo built from a public key's attributes."""
    key: Any
    if family is Family.RSA:
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        )
        key = numbers.public_key()
    elif family is Family.EC:
        curve_name = PARAMS_CURVE.get(public[Attribute.EC_PARAMS])
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}.get(curve_name or "")
        if curve is None:
            raise UnsupportedAlgorithm("The key's elliptic curve is not one Keystead manages.")
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            curve, _ec_point(public[Attribute.EC_POINT])
        )
    else:
        key = ed25519.Ed25519PublicKey.from_public_bytes(_ec_point(public[Attribute.EC_POINT]))
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def algorithm_of(attributes: dict[Attribute, Any]) -> Algorithm | None:
    """Keystead's algorithm for an object's type and size, or None if it manages no such key."""
    key_type = attributes.get(Attribute.KEY_TYPE)
    if key_type == KeyType.AES:
        return {16: Algorithm.AES_128, 24: Algorithm.AES_192, 32: Algorithm.AES_256}.get(
            attributes.get(Attribute.VALUE_LEN, 0)
        )
    if key_type == KeyType.RSA:
        return {2048: Algorithm.RSA_2048, 3072: Algorithm.RSA_3072, 4096: Algorithm.RSA_4096}.get(
            attributes.get(Attribute.MODULUS_BITS, 0)
        )
    if key_type in (KeyType.EC, KeyType.EC_EDWARDS):
        curve = PARAMS_CURVE.get(attributes.get(Attribute.EC_PARAMS, b""))
        return {
            "P-256": Algorithm.EC_P256,
            "P-384": Algorithm.EC_P384,
            "Ed25519": Algorithm.ED25519,
        }.get(curve or "")
    return None


class TokenSession:
    """A read-write user session on one token, owned by the core thread."""

    def __init__(self, module: Pkcs11Module, info: TokenInfo, session: pkcs11.Session) -> None:
        self.module = module
        self.info = info
        self._session = session
        self._found: dict[tuple[ObjectClass, bytes], Any] = {}
        self.lost = False  # the token forgot the login or went away; log in again
        # CKA_IDs (hex) of failed generations whose objects could not be looked for and
        # destroyed: the token may hold a key nobody recorded. A retry clears them first.
        self.unsettled: set[str] = set()

    @classmethod
    def login(cls, module: Pkcs11Module, info: TokenInfo, pin: str) -> TokenSession:
        """Open a read-write session and log in. A login left over from before (the module
        answers USER_ALREADY_LOGGED_IN, e.g. after sleep) is ended and the PIN tried afresh,
        so the PIN is always checked."""
        token = module.token(info.serial)
        try:
            with pkcs11_errors(f"logging in to token '{info.label}'"):
                try:
                    session = token.open(rw=True, user_pin=pin, attribute_mapper=untrusted_mapper())
                except px.UserAlreadyLoggedIn:
                    log.warning(
                        "stale login on %s; closing its sessions and logging in again",
                        info.serial,
                    )
                    module.close_all_sessions(int(token.slot.slot_id))
                    session = token.open(rw=True, user_pin=pin, attribute_mapper=untrusted_mapper())
        finally:
            module.wrote()  # C_Login rewrites token.object (its PIN flags), right or wrong
        return cls(module, info, session)

    def reopen(self) -> None:
        """Replace a stale session handle with a new session (no PIN: the login is the
        module's, shared by this process's sessions, and survives if it is still there)."""
        log.warning("session on token %s is no longer valid; reopening it", self.info.serial)
        self._found.clear()
        try:
            token = self.module.token(self.info.serial)
        except TokenNotPresent as exc:
            self.lost = True
            raise TokenRemoved(
                f"Token '{self.info.label}' was removed. Nothing was changed; re-insert it and "
                "log in again."
            ) from exc
        with pkcs11_errors(f"reopening a session on token '{self.info.label}'"):
            session = token.open(rw=True, attribute_mapper=untrusted_mapper())
        if self.module.session_state(int(getattr(session, "handle"))) not in USER_STATES:  # noqa: B009
            # The login ended with the old session: without it, searches quietly return the
            # public objects only. Do not go on as if logged in.
            self.lost = True
            with contextlib.suppress(pkcs11.PKCS11Error):
                session.close()
            raise TokenNotLoggedIn(
                f"Token '{self.info.label}' forgot the login (it was removed or went to sleep). "
                "Log in again; nothing was changed."
            )
        self._session = session

    def still_present(self) -> None:
        """Raise TokenRemoved unless the token still answers. SoftHSM with its token
        directory gone answers object searches with nothing at all, so an empty or short
        answer is only trusted after this check."""
        try:
            self.module.token(self.info.serial)
        except TokenNotPresent as exc:
            self.lost = True
            raise TokenRemoved(
                f"Token '{self.info.label}' stopped answering (removed?). Nothing was changed; "
                "re-insert it and log in again."
            ) from exc
        self.reaches_device()

    def reaches_device(self) -> None:
        """Raise TokenRemoved unless a call that needs the device itself works: C_GenerateRandom
        on this session. tpm2-pkcs11 answers C_GetSlotList, C_GetTokenInfo, object searches
        and attribute changes from its own store after the TPM is gone; this call fails then
        (measured: CKR_GENERAL_ERROR, "tcti:IO failure"). A token without a random number
        generator, or a stale session handle (reopened by ``recovering``), proves nothing."""
        try:
            self._session.generate_random(64)
        except (px.RandomNoRNG, px.FunctionNotSupported, *_HANDLE_STALE):
            return
        except px.PKCS11Error as exc:
            self.lost = True
            raise TokenRemoved(
                f"Token '{self.info.label}' stopped answering: its module still lists it, but a "
                f"call that reaches the device failed ({describe(exc)}). Nothing was changed; "
                "reconnect the device and log in again."
            ) from exc

    def close(self) -> None:
        self._found.clear()
        try:
            self._session.close()
        except pkcs11.PKCS11Error:
            log.debug("closing a session on %s failed (token gone?)", self.info.serial)

    # --- generation ------------------------------------------------------------------------

    def check_supported(self, algorithm: Algorithm) -> None:
        """Refuse an algorithm whose generation mechanism the token does not list."""
        family = algorithm.family
        mechanism = GENERATE_MECHANISM[family]
        available = self.module.mechanisms(self.info.serial)
        if mechanism not in available:
            raise UnsupportedAlgorithm(
                f"Token '{self.info.label}' cannot generate {algorithm.value} keys: it does not "
                f"offer {mechanism}."
            )
        if family is Family.RSA:
            low, high = self.module.mechanism_range(self.info.serial, mechanism)
            bits = algorithm.spec.bits
            if (low and bits < low) or (high and bits > high):
                raise UnsupportedAlgorithm(
                    f"Token '{self.info.label}' generates RSA keys of {low}-{high} bits only."
                )

    @writes
    @recovering
    def generate(self, spec: KeySpec) -> GeneratedKey:
        """Generate the key, read it back, and destroy it if it differs from the template.

        Whatever fails once the token was asked, the objects carrying the new CKA_ID are looked
        up and destroyed: the token may have made the key and lost the answer, and a stale
        session handle cannot destroy by handle. If that cannot be done the CKA_ID stays in
        ``unsettled`` (a retry on a reopened session clears it before generating again).
        """
        self.check_supported(spec.algorithm)
        cka_id = spec.cka_id.hex()
        if cka_id in self.unsettled:
            self._discard(cka_id)  # what the try before this one may have left
        try:
            objects = self._generate_objects(spec)
            return self._verify_generated(spec, objects)
        except BaseException:
            self._discard(cka_id)
            raise

    def _generate_objects(self, spec: KeySpec) -> list[tuple[Any, dict[Attribute, Any]]]:
        family = spec.algorithm.family
        with pkcs11_errors(f"generating {spec.algorithm.value} key '{spec.label}'"):
            if family is Family.AES:
                secret_t = secret_template(spec)
                key = self._session.generate_key(
                    KeyType.AES, spec.algorithm.spec.bits, store=True, template=secret_t
                )
                objects: list[tuple[Any, dict[Attribute, Any]]] = [
                    (key, expected_readback(secret_t, True))
                ]
            else:
                pub_t, priv_t = public_template(spec), private_template(spec)
                public, private = self._session.generate_keypair(
                    KEY_TYPE[family],
                    spec.algorithm.spec.bits if family is Family.RSA else None,
                    store=True,
                    public_template=pub_t,
                    private_template=priv_t,
                )
                objects = [
                    (private, expected_readback(priv_t, True)),
                    (public, expected_readback(pub_t, False)),
                ]
        return objects

    def _verify_generated(
        self, spec: KeySpec, objects: list[tuple[Any, dict[Attribute, Any]]]
    ) -> GeneratedKey:
        shown: dict[str, dict[str, Any]] = {}
        kcv = spki = None
        with pkcs11_errors(f"reading back key '{spec.label}'"):
            for obj, expected in objects:
                actual = obj.get_attributes([*SHOWN_ATTRIBUTES, Attribute.CHECK_VALUE])
                wrong = mismatches(expected, actual)
                if wrong:
                    raise TemplateMismatch(
                        f"The token created key '{spec.label}' with attributes other than asked "
                        f"for ({', '.join(wrong)}); it was destroyed and nothing was recorded."
                    )
                shown[ObjectClass(actual[Attribute.CLASS]).name] = _named(actual)
                if spec.algorithm.symmetric:
                    check = actual.get(Attribute.CHECK_VALUE)
                    kcv = bytes(check).hex().upper() if check else None
                elif obj.object_class == ObjectClass.PUBLIC_KEY:
                    spki = self._spki(obj, spec.algorithm.family)
        return GeneratedKey(
            cka_id=spec.cka_id.hex(),
            kcv=kcv,
            spki=spki,
            fingerprint=hashlib.sha256(spki).hexdigest() if spki else None,
            attributes=shown,
        )

    def _spki(self, public: Any, family: Family) -> bytes:
        if family is Family.RSA:
            attrs = public.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
        else:
            attrs = public.get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT])
        return spki_of(attrs, family)

    def _discard(self, cka_id: str) -> None:
        """Destroy every object with this CKA_ID (a failed generation's). If the token cannot
        be searched or does not answer, the CKA_ID goes to ``unsettled``."""
        try:
            found = self._objects_by_id(cka_id)
            self._check_logged_in()  # else private objects were not in the answer
            for obj in found:
                obj.destroy()
            if not found:
                self.still_present()  # an absent SoftHSM token answers searches with nothing
        except (pkcs11.PKCS11Error, KeysteadError):
            log.error(
                "could not look for or destroy the objects of a failed generation on %s",
                self.info.serial,
            )
            self.unsettled.add(cka_id)
            return
        if found:
            log.warning(
                "destroyed %d object(s) of a failed generation on %s", len(found), self.info.serial
            )
        self.unsettled.discard(cka_id)

    @recovering
    def generation_trial(self, algorithm: Algorithm, purpose: Purpose) -> TrialResult:
        """Which template the token accepts for this algorithm and purpose (probe objects,
        destroyed again; see ``app.hsm.trials``)."""
        return generation_trial(self._session, algorithm, purpose)

    @recovering
    def usage_enforced(self) -> Enforcement:
        """Whether the token refuses to sign once CKA_SIGN is cleared (``app.hsm.trials``)."""
        return usage_enforced(self._session)

    # --- enumeration and reads -------------------------------------------------------------

    @recovering
    def key_objects(self) -> list[TokenObject]:
        """Every key on the token, key pairs grouped by CKA_ID; one batched read per object."""
        grouped: dict[str, list[dict[Attribute, Any]]] = defaultdict(list)
        anonymous: list[dict[Attribute, Any]] = []
        with pkcs11_errors(f"listing the keys on token '{self.info.label}'"):
            for obj in self._session.get_objects():
                attrs = obj.get_attributes(_ENUMERATION_ATTRIBUTES)
                if attrs.get(Attribute.CLASS) not in _KEY_CLASSES:
                    continue
                raw_id = bytes(attrs.get(Attribute.ID, b""))
                if raw_id in AUDIT_IDS:
                    continue  # the workstation's own audit keys are not inventory
                cka_id = raw_id.hex()
                (grouped[cka_id] if cka_id else anonymous).append(attrs)
        self.still_present()  # an absent SoftHSM token answers the search with nothing
        result = [self._token_object(cka_id, group) for cka_id, group in grouped.items()]
        result.extend(self._token_object("", [attrs]) for attrs in anonymous)
        return result

    def _token_object(self, cka_id: str, group: list[dict[Attribute, Any]]) -> TokenObject:
        first = group[0]
        label = first.get(Attribute.LABEL) or ""
        key_type = first.get(Attribute.KEY_TYPE)
        classes = tuple(sorted(ObjectClass(a[Attribute.CLASS]).name for a in group))
        merged: dict[Attribute, Any] = {}
        for attrs in group:
            merged.update({k: v for k, v in attrs.items() if v not in (None, b"")})
        return TokenObject(
            token_serial=self.info.serial,
            token_label=self.info.label,
            cka_id=cka_id,
            label=str(label),
            key_type=getattr(key_type, "name", str(key_type)),
            classes=classes,
            algorithm=algorithm_of(merged),
        )

    def _objects_by_id(self, cka_id: str) -> list[Any]:
        return list(self._session.get_objects({Attribute.ID: bytes.fromhex(cka_id)}))

    @recovering
    def read_key(self, cka_id: str) -> dict[str, dict[str, Any]]:
        """Live attributes of each object with this CKA_ID, by object class name."""
        result: dict[str, dict[str, Any]] = {}
        with pkcs11_errors("reading key attributes"):
            for obj in self._objects_by_id(cka_id):
                attrs = obj.get_attributes(list(SHOWN_ATTRIBUTES))
                if attrs.get(Attribute.CLASS) in _KEY_CLASSES:
                    result[ObjectClass(attrs[Attribute.CLASS]).name] = _named(attrs)
        return result

    @recovering
    def identify(
        self, cka_id: str
    ) -> tuple[Algorithm | None, str | None, bytes | None, dict[str, dict[str, Any]]]:
        """For adoption: algorithm, KCV, SPKI and live attributes of the key with this CKA_ID."""
        kcv: str | None = None
        spki: bytes | None = None
        algorithm: Algorithm | None = None
        with pkcs11_errors("reading the key to adopt"):
            objects = self._objects_by_id(cka_id)
            for obj in objects:
                attrs = obj.get_attributes([*_ENUMERATION_ATTRIBUTES, Attribute.CHECK_VALUE])
                if attrs.get(Attribute.CLASS) not in _KEY_CLASSES:
                    continue
                algorithm = algorithm or algorithm_of(attrs)
                if attrs[Attribute.CLASS] == ObjectClass.SECRET_KEY and attrs.get(
                    Attribute.CHECK_VALUE
                ):
                    kcv = bytes(attrs[Attribute.CHECK_VALUE]).hex().upper()
                if attrs[Attribute.CLASS] == ObjectClass.PUBLIC_KEY and algorithm is not None:
                    spki = self._spki(obj, algorithm.family)
        if not objects:
            raise TokenError(f"No key with CKA_ID {cka_id} on token '{self.info.label}'.")
        return algorithm, kcv, spki, self.read_key(cka_id)

    @recovering
    def usage(self, cka_id: str) -> dict[str, dict[str, bool]]:
        """Current usage flags of each object with this CKA_ID, by object class name."""
        result: dict[str, dict[str, bool]] = {}
        with pkcs11_errors("reading usage flags"):
            for obj in self._objects_by_id(cka_id):
                cls = ObjectClass(obj[Attribute.CLASS])
                if cls not in _KEY_CLASSES:
                    continue
                attrs = obj.get_attributes([USAGE_ATTR[u] for u in _CLASS_USAGES[cls]])
                result[cls.name] = {Attribute(a).name: bool(v) for a, v in attrs.items()}
        return result

    @writes
    @recovering
    def set_usage(self, cka_id: str, private: frozenset[Usage], public: frozenset[Usage]) -> bool:
        """Make the objects' usage flags exactly these (secret keys get both sets).

        Returns False when the token refuses to change them (object not modifiable, or
        CKR_ACTION_PROHIBITED): the token then does not enforce the state. Raises on any other
        failure, after putting back the flags it had already changed.
        """
        before = self.usage(cka_id)
        changed: list[tuple[Any, Attribute, bool]] = []
        try:
            for obj in self._objects_by_id(cka_id):
                cls = ObjectClass(obj[Attribute.CLASS])
                if cls not in _KEY_CLASSES:
                    continue
                wanted = {
                    ObjectClass.SECRET_KEY: private | public,
                    ObjectClass.PRIVATE_KEY: private,
                    ObjectClass.PUBLIC_KEY: public,
                }[cls]
                for usage in _CLASS_USAGES[cls]:
                    attribute = USAGE_ATTR[usage]
                    value = usage in wanted
                    if before[cls.name].get(attribute.name) == value:
                        continue
                    obj[attribute] = value
                    changed.append((obj, attribute, not value))
        except (px.AttributeReadOnly, px.AttributeValueInvalid, px.TemplateInconsistent) as exc:
            self._put_back(changed)
            log.warning(
                "token %s refused usage change on %s: %s",
                self.info.serial,
                cka_id,
                type(exc).__name__,
            )
            return False
        except px.PKCS11Error as exc:
            if unmapped_code(exc) == 0x1B:  # CKR_ACTION_PROHIBITED
                self._put_back(changed)
                return False
            self._put_back(changed)
            raise translate(exc, "changing the key's usage flags") from exc
        return True

    @writes
    @recovering
    def require_trusted_wrap(self, cka_id: str) -> bool:
        """Set CKA_WRAP_WITH_TRUSTED on the extractable key objects with this CKA_ID, so that
        only a KEK marked CKA_TRUSTED (by the SO) can wrap them out. The attribute can only
        go from false to true (PKCS#11 v2.40 4.4).

        Returns True when every such object carries it afterwards, False when the token
        refuses to set it (SoftHSM 2.6.1 treats it as settable only at creation). Raises on
        any other failure, or TokenError when the key is not on the token.
        """
        with pkcs11_errors("protecting a backup-able key"):
            objects = [
                obj for obj in self._objects_by_id(cka_id) if obj[Attribute.CLASS] in _KEY_PARTS
            ]
            if not objects:
                self.still_present()
                raise TokenError(f"No key with CKA_ID {cka_id} on token '{self.info.label}'.")
            for obj in objects:
                if not obj[Attribute.EXTRACTABLE] or obj[Attribute.WRAP_WITH_TRUSTED]:
                    continue
                try:
                    obj[Attribute.WRAP_WITH_TRUSTED] = True
                except (px.AttributeReadOnly, px.AttributeValueInvalid, px.TemplateInconsistent):
                    log.warning(
                        "token %s refused CKA_WRAP_WITH_TRUSTED on %s", self.info.serial, cka_id
                    )
                    return False
                except px.PKCS11Error as exc:
                    if unmapped_code(exc) == 0x1B:  # CKR_ACTION_PROHIBITED
                        return False
                    raise
            return all(
                bool(obj[Attribute.WRAP_WITH_TRUSTED])
                for obj in objects
                if obj[Attribute.EXTRACTABLE]
            )

    def _put_back(self, changed: list[tuple[Any, Attribute, bool]]) -> None:
        for obj, attribute, value in reversed(changed):
            try:
                obj[attribute] = value
            except pkcs11.PKCS11Error:
                log.error("could not restore %s on token %s", attribute.name, self.info.serial)

    # --- the workstation's audit keys ------------------------------------------------------

    def _one(self, cls: ObjectClass, cka_id: bytes) -> Any | None:
        """The object of this class and CKA_ID; the audit keys are looked up once per session
        (finding an object is a linear scan of the token: about 0.25 s at 10,000 objects)."""
        cached = self._found.get((cls, cka_id))
        if cached is not None:
            return cached
        found = list(self._session.get_objects({Attribute.CLASS: cls, Attribute.ID: cka_id}))
        if found and cka_id in AUDIT_IDS:
            self._found[(cls, cka_id)] = found[0]
        return found[0] if found else None

    @writes
    @recovering
    def ensure_audit_keys(self) -> bool:
        """Create the audit MAC key and checkpoint key pair unless present. True if created.

        The MAC key is a 256-bit generic secret that can only sign and verify, is sensitive,
        never extractable and not modifiable: the database key alone cannot forge a MAC.
        """
        created = False
        with pkcs11_errors("creating the audit keys"):
            if self._one(ObjectClass.SECRET_KEY, AUDIT_MAC_ID) is None:
                self._session.generate_key(
                    KeyType.GENERIC_SECRET,
                    256,
                    store=True,
                    template={
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.MODIFIABLE: False,
                        Attribute.LABEL: "keystead-audit-mac",
                        Attribute.ID: AUDIT_MAC_ID,
                        Attribute.SIGN: True,
                        Attribute.VERIFY: True,
                        Attribute.ENCRYPT: False,
                        Attribute.DECRYPT: False,
                        Attribute.WRAP: False,
                        Attribute.UNWRAP: False,
                        Attribute.DERIVE: False,
                    },
                )
                created = True
            if self._one(ObjectClass.PRIVATE_KEY, AUDIT_CHECKPOINT_ID) is None:
                self._session.generate_keypair(
                    KeyType.EC,
                    None,
                    store=True,
                    public_template={
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: False,
                        Attribute.MODIFIABLE: False,
                        Attribute.LABEL: "keystead-audit-checkpoint",
                        Attribute.ID: AUDIT_CHECKPOINT_ID,
                        Attribute.VERIFY: True,
                        Attribute.ENCRYPT: False,
                        Attribute.WRAP: False,
                        Attribute.DERIVE: False,
                        Attribute.EC_PARAMS: CURVE_PARAMS["P-256"],
                    },
                    private_template={
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.MODIFIABLE: False,
                        Attribute.LABEL: "keystead-audit-checkpoint",
                        Attribute.ID: AUDIT_CHECKPOINT_ID,
                        Attribute.SIGN: True,
                        Attribute.DECRYPT: False,
                        Attribute.UNWRAP: False,
                        Attribute.DERIVE: False,
                    },
                )
                created = True
        return created

    @recovering
    def has_audit_keys(self) -> bool:
        with pkcs11_errors("looking for the audit keys"):
            return self._one(ObjectClass.SECRET_KEY, AUDIT_MAC_ID) is not None

    @recovering
    def audit_mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` computed inside the token with the audit key."""
        with pkcs11_errors("sealing an audit entry"):
            key = self._one(ObjectClass.SECRET_KEY, AUDIT_MAC_ID)
            if key is None:
                raise TokenError(f"Token '{self.info.label}' holds no audit key.")
            return bytes(key.sign(data, mechanism=Mechanism.SHA256_HMAC))

    @recovering
    def checkpoint_public_key(self) -> bytes:
        """DER SubjectPublicKeyInfo of the checkpoint signing key."""
        with pkcs11_errors("reading the checkpoint key"):
            public = self._one(ObjectClass.PUBLIC_KEY, AUDIT_CHECKPOINT_ID)
            if public is None:
                raise TokenError(f"Token '{self.info.label}' holds no checkpoint key.")
            return self._spki(public, Family.EC)

    @recovering
    def sign_checkpoint(self, message: bytes) -> bytes:
        """DER ECDSA-P256-SHA256 signature of ``message`` by the checkpoint key."""
        digest = hashlib.sha256(message).digest()
        with pkcs11_errors("signing an audit checkpoint"):
            private = self._one(ObjectClass.PRIVATE_KEY, AUDIT_CHECKPOINT_ID)
            if private is None:
                raise TokenError(f"Token '{self.info.label}' holds no checkpoint key.")
            raw = bytes(private.sign(digest, mechanism=Mechanism.ECDSA))
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    @writes
    @recovering
    def store_checkpoint(self, seq: int, document: bytes, keep: int = 8) -> None:
        """A new data object per checkpoint; only the newest ``keep`` are kept."""
        with pkcs11_errors("storing an audit checkpoint"):
            self._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    # Public: a signed statement, no secret; readable before any login, so a
                    # rolled-back database is refused before this run writes anything.
                    Attribute.PRIVATE: False,
                    Attribute.MODIFIABLE: False,
                    Attribute.APPLICATION: CHECKPOINT_APPLICATION,
                    Attribute.LABEL: f"keystead-checkpoint-{seq:012d}",
                    Attribute.VALUE: document,
                }
            )
            objects = sorted(self._checkpoint_objects(), key=lambda o: o[0])
            for _label, obj in objects[:-keep]:
                obj.destroy()

    def _checkpoint_objects(self) -> list[tuple[str, Any]]:
        found = self._session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: CHECKPOINT_APPLICATION}
        )
        return [(str(obj[Attribute.LABEL]), obj) for obj in found]

    @recovering
    def checkpoint_documents(self) -> list[bytes]:
        with pkcs11_errors("reading audit checkpoints"):
            return [bytes(obj[Attribute.VALUE]) for _label, obj in self._checkpoint_objects()]

    @writes
    @recovering_handle_only
    def set_pin(self, old_pin: str, new_pin: str) -> None:
        """C_SetPIN in this user session. Retried only on a stale session handle, which the
        module refuses before doing anything; never after the token may have acted."""
        try:
            self._session.set_pin(old_pin, new_pin)
        except px.PKCS11Error as exc:
            error = translate(exc, f"changing the user PIN of token '{self.info.label}'")
            if isinstance(error, TokenRemoved) and not _is_stale(exc, _HANDLE_STALE):
                # The answer was lost: the token may or may not have changed the PIN.
                error = TokenRemoved(
                    f"{error.message} The token may have changed the PIN before it stopped "
                    "answering: if the old PIN is refused at the next login, use the new one."
                )
            raise error from exc

    @writes
    @recovering
    def destroy_key(self, cka_id: str) -> int:
        """Destroy every object with this CKA_ID; returns how many were destroyed. Public
        halves go first and the key itself last, so a failure half-way leaves the key whole
        on the token (and the record true) rather than a record of a key that is gone."""
        with pkcs11_errors("destroying a key"):
            objects = sorted(self._objects_by_id(cka_id), key=_key_part_last)
            self._check_logged_in()  # else the private key was not in the answer
            if not objects:
                self.still_present()
            for obj in objects:
                obj.destroy()
        return len(objects)

    @recovering
    def holds_key(self, cka_id: str) -> bool:
        """True if the secret or private key with this CKA_ID is on the token. Raises
        TokenRemoved if the token does not answer (an empty answer is only then trusted)."""
        with pkcs11_errors("looking for a key"):
            classes = {getattr(o, "object_class", None) for o in self._objects_by_id(cka_id)}
        if classes & set(_KEY_PARTS):
            return True
        self._check_logged_in()
        self.still_present()
        return False

    def login_changed(self) -> None:
        """After a caller changed the application's login on purpose (the backup's SO login):
        cached object handles are dropped (a logout invalidates private objects' handles) and
        the session is marked lost unless it is a user session again."""
        self._found.clear()
        with contextlib.suppress(TokenNotLoggedIn):
            self._check_logged_in()

    def _check_logged_in(self) -> None:
        """Raise TokenNotLoggedIn unless this session is a user session: without the login a
        search quietly leaves out the private objects, so its answer proves nothing. Call
        after a search succeeded (the handle is then known to be valid)."""
        if self.module.session_state(int(getattr(self._session, "handle"))) not in USER_STATES:  # noqa: B009
            self.lost = True
            raise TokenNotLoggedIn(
                f"Token '{self.info.label}' forgot the login (it was removed or went to sleep). "
                "Log in again."
            )


_KEY_PARTS = (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY)

# What holding the audit keys takes (``ensure_audit_keys``): a generic secret for SHA256-HMAC and
# an EC P-256 pair for ECDSA checkpoints, stored as token objects beside CKO_DATA checkpoints.
AUDIT_MECHANISMS = ("GENERIC_SECRET_KEY_GEN", "SHA256_HMAC", "EC_KEY_PAIR_GEN", "ECDSA")


def audit_keys_refusal(module: Pkcs11Module, info: TokenInfo) -> str | None:
    """Why ``info`` cannot hold the workstation's audit keys, going by its mechanism list
    (None when it lists everything they need). tpm2-pkcs11 1.9 lists no
    GENERIC_SECRET_KEY_GEN (it generates no secret keys at all)."""
    listed = module.mechanisms(info.serial)
    missing = [m for m in AUDIT_MECHANISMS if m not in listed]
    if not missing:
        return None
    return (
        f"Token '{info.label}' cannot hold the audit keys: it does not offer "
        f"{', '.join(missing)} (the audit log needs an HMAC secret key and an EC P-256 "
        "signing key on its token)"
    )


def public_checkpoint_documents(module: Pkcs11Module, serial: str) -> list[bytes]:
    """The checkpoint documents a token shows without a login (a read-only session; nothing is
    written to the token). Raises TokenNotPresent / TokenError."""
    token = module.token(serial)
    with pkcs11_errors("reading audit checkpoints"), token.open(rw=False) as session:
        found = session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: CHECKPOINT_APPLICATION}
        )
        return [bytes(obj[Attribute.VALUE]) for obj in found]


def _key_part_last(obj: Any) -> int:
    return 1 if getattr(obj, "object_class", None) in _KEY_PARTS else 0
