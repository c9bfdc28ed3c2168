"""A logged-in session on one token: generate, enumerate, read and destroy key objects.

Objects are found by CKA_ID, never by handle. Results are plain data (``GeneratedKey``,
``TokenObject``, attribute dicts keyed by name); no python-pkcs11 object leaves ``app/hsm``.
``TokenSession`` is the one entry point; the parts it calls live beside it: the audit key and
checkpoint handles in ``audit_objects``, reading and proving objects in ``enumeration``, the
attribute lists, SPKI and algorithm in ``key_attributes``, and its ``writes``/``recovering``
decorators in ``decorators``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pkcs11
import pkcs11.exceptions as px
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.constants import TokenFlag

from app.domain.algorithms import Algorithm, Family, Purpose, Usage
from app.domain.identity import KeyIdentity, TokenEntry, group_objects, select_key
from app.domain.keys import TokenObject
from app.errors import (
    AmbiguousKey,
    KeysteadError,
    TemplateMismatch,
    TokenError,
    TokenNotLoggedIn,
    TokenNotPresent,
    TokenRemoved,
    UnsupportedAlgorithm,
)
from app.hsm.attributes import untrusted_mapper
from app.hsm.audit_objects import AUDIT_MAC_ID as AUDIT_MAC_ID  # re-exported
from app.hsm.audit_objects import AuditObjects
from app.hsm.audit_objects import audit_keys_refusal as audit_keys_refusal  # re-exported
from app.hsm.audit_objects import (  # re-exported
    public_checkpoint_documents as public_checkpoint_documents,
)
from app.hsm.decorators import (
    HANDLE_STALE,
    is_stale,
    recovering,
    recovering_handle_only,
    writes,
)
from app.hsm.enumeration import objects_of_key, prove_pairs, read_entries, signature_proof
from app.hsm.errors import describe, pkcs11_errors, translate, unmapped_code
from app.hsm.key_attributes import (
    KEY_CLASSES,
    SHOWN_ATTRIBUTES,
    named_attributes,
    spki_of,
)
from app.hsm.module import USER_STATES, Pkcs11Module, TokenInfo
from app.hsm.templates import (
    GENERATE_MECHANISM,
    KEY_TYPE,
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

if TYPE_CHECKING:  # the trials are imported where a generation needs one (issue 17)
    from app.hsm.trials import Enforcement, TrialResult

log = logging.getLogger(__name__)

_CLASS_USAGES = {
    ObjectClass.SECRET_KEY: SECRET_USAGES,
    ObjectClass.PRIVATE_KEY: PRIVATE_USAGES,
    ObjectClass.PUBLIC_KEY: PUBLIC_USAGES,
}


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
class BlankKeys:
    """What ``clear_blank_keys`` did: objects destroyed, and objects left for the officer."""

    destroyed: int
    left: int


@dataclass(frozen=True)
class GeneratedKey:
    """What generation produced, read back from the token."""

    cka_id: str
    kcv: str | None
    spki: bytes | None
    fingerprint: str | None
    attributes: dict[str, dict[str, Any]]  # object class name -> attribute name -> value


class TokenSession:
    """A read-write user session on one token, owned by the core thread."""

    def __init__(self, module: Pkcs11Module, info: TokenInfo, session: pkcs11.Session) -> None:
        self.module = module
        self.info = info
        self._session = session
        self._audit = AuditObjects(info.label)  # audit key and checkpoint handles
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
            # C_Login rewrites token.object (its PIN flags), right or wrong, and nothing else.
            module.wrote(token_object_only=True)
        return cls(module, info, session)

    def reopen(self) -> None:
        """Replace a stale session handle with a new session (no PIN: the login is the
        module's, shared by this process's sessions, and survives if it is still there)."""
        log.warning("session on token %s is no longer valid; reopening it", self.info.serial)
        self._forget_audit_objects()
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
        except (px.RandomNoRNG, px.FunctionNotSupported, *HANDLE_STALE):
            return
        except px.PKCS11Error as exc:
            self.lost = True
            raise TokenRemoved(
                f"Token '{self.info.label}' stopped answering: its module still lists it, but a "
                f"call that reaches the device failed ({describe(exc)}). Nothing was changed; "
                "reconnect the device and log in again."
            ) from exc

    def close(self) -> None:
        self._forget_audit_objects()
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
                shown[ObjectClass(actual[Attribute.CLASS]).name] = named_attributes(actual)
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
        from app.hsm.trials import generation_trial

        return generation_trial(self._session, algorithm, purpose)

    @recovering
    def usage_enforced(self) -> Enforcement:
        """Whether the token refuses to sign once CKA_SIGN is cleared (``app.hsm.trials``)."""
        from app.hsm.trials import usage_enforced

        return usage_enforced(self._session)

    # --- enumeration and reads -------------------------------------------------------------

    @recovering
    def key_objects(self) -> list[TokenObject]:
        """Every object on the token, listed honestly (``app.domain.identity.group_objects``):
        secret keys, pairs, lone halves, certificates and data objects."""
        with pkcs11_errors(f"listing the objects on token '{self.info.label}'"):
            entries = prove_pairs(self._session, read_entries(self._session))
        self.still_present()  # an absent SoftHSM token answers the search with nothing
        return group_objects([e for _o, e in entries], self.info.serial, self.info.label)

    @recovering
    def key_for_use(self, identity: KeyIdentity) -> Any:
        """The python-pkcs11 key object of exactly this key, for one signature or encryption
        (``app.hsm.operations.KeyInUse``; never leaves ``app/hsm``).

        The object must be *proven* to be the record's key, not only share its CKA_ID: a secret
        key's KCV must equal the record's, an RSA private key's public values must give the
        record's SPKI fingerprint, and an EC/EdDSA private key (which carries no public value)
        must sign a random challenge that the record's public half on the token verifies.
        Raises AmbiguousKey when more than one object could be the key, TokenError when the
        key is not on the token or its object cannot be proven to be it; nothing is used then.
        """
        with pkcs11_errors("finding the key on the token"):
            chosen = objects_of_key(self._session, identity)
        if not chosen:
            self._check_logged_in()
            self.still_present()
            raise TokenError(
                f"The key (CKA_ID {identity.cka_id}) is not on token '{self.info.label}'; it "
                "may have been deleted or replaced by another tool. Nothing was done."
            )
        obj, entry = chosen[0]
        kcv = entry.kcv
        if entry.object_class == ObjectClass.SECRET_KEY.name and kcv is None and identity.kcv:
            # SoftHSM sets no CKA_CHECK_VALUE on unwrapped keys (restored from a backup) and
            # refuses one in the unwrap template: the KCV is computed inside the token, as the
            # token does (AES-ECB of a zero block, first 3 bytes), when the key may encrypt.
            kcv = _computed_kcv(obj)
        proven = (
            kcv == identity.kcv
            if entry.object_class == ObjectClass.SECRET_KEY.name
            else entry.fingerprint == identity.fingerprint
        )
        if not proven and entry.fingerprint is None and identity.fingerprint:
            halves = [e for _o, e in chosen[1:] if e.fingerprint == identity.fingerprint]
            with pkcs11_errors("checking the key on the token"):
                proven = (
                    bool(halves)
                    and signature_proof(self._session, obj, entry, halves) == identity.fingerprint
                )
        if not proven or (identity.kcv is None and identity.fingerprint is None):
            raise TokenError(
                f"The object with the key's CKA_ID {identity.cka_id} on token "
                f"'{self.info.label}' cannot be proven to be this key (its check value or public "
                "key does not match the record, or its public half is missing); Keystead will "
                "not use it. Nothing was done."
            )
        return obj

    @recovering
    def entries_with_id(self, cka_id: str) -> list[TokenEntry]:
        """Every object with this CKA_ID as read (keys, certificates, data objects)."""
        with pkcs11_errors("finding the key's objects"):
            found = read_entries(self._session, {Attribute.ID: bytes.fromhex(cka_id)})
            return [e for _o, e in prove_pairs(self._session, found)]

    @recovering
    def read_key(self, identity: KeyIdentity) -> dict[str, dict[str, Any]]:
        """Live attributes of this key's objects, by object class name."""
        result: dict[str, dict[str, Any]] = {}
        with pkcs11_errors("reading key attributes"):
            for obj, entry in objects_of_key(self._session, identity):
                result[entry.object_class] = named_attributes(
                    obj.get_attributes(list(SHOWN_ATTRIBUTES))
                )
        return result

    @recovering
    def entries(self) -> list[TokenEntry]:
        """Every object on the token as read (for adoption: which objects make which key)."""
        with pkcs11_errors(f"listing the objects on token '{self.info.label}'"):
            found = prove_pairs(self._session, read_entries(self._session))
        self.still_present()
        return [e for _o, e in found]

    @recovering
    def attributes_of(self, indexes: list[int]) -> dict[int, dict[str, Any]]:
        """Live attributes of the objects at these places of a fresh enumeration."""
        wanted = set(indexes)
        with pkcs11_errors("reading object attributes"):
            return {
                e.position: named_attributes(o.get_attributes(list(SHOWN_ATTRIBUTES)))
                for o, e in read_entries(self._session)
                if e.position in wanted
            }

    @recovering
    def public_spki(self, entry: TokenEntry) -> bytes | None:
        """DER SubjectPublicKeyInfo of a listed public (or RSA private) key object."""
        if entry.algorithm is None:
            return None
        with pkcs11_errors("reading a public key"):
            for obj, found in read_entries(
                self._session, {Attribute.ID: bytes.fromhex(entry.cka_id)}
            ):
                if (found.object_class, found.fingerprint) == (
                    entry.object_class,
                    entry.fingerprint,
                ) and found.fingerprint:
                    return self._spki(obj, entry.algorithm.family)
        return None

    @writes
    @recovering
    def assign_id(self, entries: list[TokenEntry], new_id: bytes) -> list[TokenEntry]:
        """Give exactly these objects (matched again by class, ID, key type and identity) a new
        CKA_ID. Returns them as they are now. Refuses, changing nothing, if any of them cannot
        be found exactly once or the token will not change the ID."""
        with pkcs11_errors("giving the key a new CKA_ID"):
            current = prove_pairs(self._session, read_entries(self._session))
            targets = []
            for wanted in entries:
                same = [
                    (o, e)
                    for o, e in current
                    if (e.object_class, e.cka_id, e.key_type, e.kcv, e.fingerprint, e.label)
                    == (
                        wanted.object_class,
                        wanted.cka_id,
                        wanted.key_type,
                        wanted.kcv,
                        wanted.fingerprint,
                        wanted.label,
                    )
                ]
                if len(same) != 1:
                    raise AmbiguousKey(
                        f"The token holds {len(same)} objects like {wanted.describe}; Keystead "
                        "cannot tell which one to give the new CKA_ID. Nothing was changed."
                    )
                targets.append(same[0])
            done: list[tuple[Any, bytes]] = []
            try:
                for obj, entry in targets:
                    obj[Attribute.ID] = new_id
                    done.append((obj, bytes.fromhex(entry.cka_id)))
            except px.PKCS11Error:
                for obj, old in reversed(done):
                    with contextlib.suppress(px.PKCS11Error):
                        obj[Attribute.ID] = old
                raise
        return [e._replace(cka_id=new_id.hex()) for _o, e in targets]

    @recovering
    def usage(self, identity: KeyIdentity) -> dict[str, dict[str, bool]]:
        """Current usage flags of this key's objects, by object class name."""
        result: dict[str, dict[str, bool]] = {}
        with pkcs11_errors("reading usage flags"):
            for obj, entry in objects_of_key(self._session, identity):
                cls = ObjectClass[entry.object_class]
                attrs = obj.get_attributes([USAGE_ATTR[u] for u in _CLASS_USAGES[cls]])
                result[cls.name] = {Attribute(a).name: bool(v) for a, v in attrs.items()}
        return result

    @writes
    @recovering
    def set_usage(
        self, identity: KeyIdentity, private: frozenset[Usage], public: frozenset[Usage]
    ) -> bool:
        """Make this key's usage flags exactly these (secret keys get both sets); no other
        object, even one with the same CKA_ID, is touched.

        Returns False when the token refuses to change them (object not modifiable, or
        CKR_ACTION_PROHIBITED): the token then does not enforce the state. Raises on any other
        failure, after putting back the flags it had already changed; AmbiguousKey when the
        key's objects cannot be told apart from others.
        """
        changed: list[tuple[Any, Attribute, bool]] = []
        with pkcs11_errors("finding the key's objects"):
            objects = objects_of_key(self._session, identity)
        try:
            for obj, entry in objects:
                cls = ObjectClass[entry.object_class]
                wanted = {
                    ObjectClass.SECRET_KEY: private | public,
                    ObjectClass.PRIVATE_KEY: private,
                    ObjectClass.PUBLIC_KEY: public,
                }[cls]
                for usage in _CLASS_USAGES[cls]:
                    attribute = USAGE_ATTR[usage]
                    value = usage in wanted
                    if (attribute.name in entry.flags) == value:
                        continue
                    obj[attribute] = value
                    changed.append((obj, attribute, not value))
        except (px.AttributeReadOnly, px.AttributeValueInvalid, px.TemplateInconsistent) as exc:
            self._put_back(changed)
            log.warning(
                "token %s refused usage change on %s: %s",
                self.info.serial,
                identity.cka_id,
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

    # --- the workstation's audit keys (``app.hsm.audit_objects``) ---------------------------

    def _forget_audit_objects(self) -> None:
        """Drop cached object handles (a new session, a changed login, the end)."""
        self._audit.forget()

    @writes
    @recovering
    def ensure_audit_keys(self) -> bool:
        """Create the audit MAC key and checkpoint key pair unless present. True if created
        (``AuditObjects.ensure_keys``)."""
        with pkcs11_errors("creating the audit keys"):
            return self._audit.ensure_keys(self._session)

    @recovering
    def has_audit_keys(self) -> bool:
        with pkcs11_errors("looking for the audit keys"):
            return self._audit.has_keys(self._session)

    @recovering
    def audit_mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` computed inside the token with the audit key."""
        with pkcs11_errors("sealing an audit entry"):
            return self._audit.mac(self._session, data)

    def audit_mac_loop(self) -> Callable[[bytes], bytes]:
        """``audit_mac`` for a loop of many MACs (audit verification, issue 17): the audit key
        is found once and each MAC is one C_Sign, without the per-call recovery and error
        translation layers (a quarter of the time per entry). Any failure of that one call is
        handed to ``audit_mac`` itself, which recovers a stale session or handle, or raises the
        translated error: the answer is always the one ``audit_mac`` gives."""
        try:
            key = self._audit.one(self._session, ObjectClass.SECRET_KEY, AUDIT_MAC_ID)
        except (KeysteadError, px.PKCS11Error):
            key = None
        if key is None:
            return self.audit_mac

        def mac(data: bytes) -> bytes:
            try:
                return bytes(key.sign(data, mechanism=Mechanism.SHA256_HMAC))
            except (px.PKCS11Error, RuntimeError):
                return self.audit_mac(data)

        return mac

    @recovering
    def checkpoint_public_key(self) -> bytes:
        """DER SubjectPublicKeyInfo of the checkpoint signing key."""
        with pkcs11_errors("reading the checkpoint key"):
            return self._spki(self._audit.checkpoint_public_key(self._session), Family.EC)

    @recovering
    def sign_checkpoint(self, message: bytes) -> bytes:
        """DER ECDSA-P256-SHA256 signature of ``message`` by the checkpoint key."""
        with pkcs11_errors("signing an audit checkpoint"):
            return self._audit.sign_checkpoint(self._session, message)

    @writes
    @recovering
    def store_checkpoint(self, seq: int, document: bytes, keep: int = 8) -> None:
        """A new data object per checkpoint; only the newest ``keep`` are kept."""
        with pkcs11_errors("storing an audit checkpoint"):
            self._audit.store_checkpoint(self._session, seq, document, keep)

    @recovering
    def checkpoint_documents(self) -> list[bytes]:
        with pkcs11_errors("reading audit checkpoints"):
            return self._audit.checkpoint_documents(self._session)

    @writes
    @recovering_handle_only
    def set_pin(self, old_pin: str, new_pin: str) -> None:
        """C_SetPIN in this user session. Retried only on a stale session handle, which the
        module refuses before doing anything; never after the token may have acted."""
        try:
            self._session.set_pin(old_pin, new_pin)
        except px.PKCS11Error as exc:
            error = translate(exc, f"changing the user PIN of token '{self.info.label}'")
            if isinstance(error, TokenRemoved) and not is_stale(exc, HANDLE_STALE):
                # The answer was lost: the token may or may not have changed the PIN.
                error = TokenRemoved(
                    f"{error.message} The token may have changed the PIN before it stopped "
                    "answering: if the old PIN is refused at the next login, use the new one."
                )
            raise error from exc

    @writes
    @recovering
    def destroy_key(self, identity: KeyIdentity) -> list[TokenEntry]:
        """Destroy exactly this key's objects (never a certificate, data object or another key
        under the same CKA_ID); returns what was destroyed. Public halves go first and the key
        itself last, so a failure half-way leaves the key whole on the token (and the record
        true) rather than a record of a key that is gone."""
        with pkcs11_errors("destroying a key"):
            objects = list(reversed(objects_of_key(self._session, identity)))  # the key object last
            self._check_logged_in()  # else the private key was not in the answer
            if not objects:
                self.still_present()
            for obj, _entry in objects:
                obj.destroy()
        return [e for _o, e in objects]

    @writes
    @recovering
    def destroy_left_half(self, identity: KeyIdentity) -> list[TokenEntry]:
        """After an interrupted destroy whose key object is gone: destroy the public half it
        left, only when it is provably this key's (same CKA_ID and key type, and the SPKI
        fingerprint the record holds). Returns what was destroyed ([] when nothing is left,
        when the key object is still there, or when the record has no fingerprint)."""
        if not identity.fingerprint:
            return []
        with pkcs11_errors("destroying a key"):
            found = prove_pairs(
                self._session,
                read_entries(self._session, {Attribute.ID: bytes.fromhex(identity.cka_id)}),
            )
            if select_key([e for _o, e in found], identity):
                return []  # the key is whole: not a leftover
            halves = [
                (o, e)
                for o, e in found
                if e.object_class == ObjectClass.PUBLIC_KEY.name
                and e.fingerprint == identity.fingerprint
            ]
            self._check_logged_in()
            for obj, _entry in halves:
                obj.destroy()
        return [e for _o, e in halves]

    @writes
    @recovering
    def destroy_generated(self, cka_id: str) -> int:
        """Destroy every object with this CKA_ID: only for the random CKA_ID Keystead chose for
        one generation of its own (a failed try's leftovers). Returns how many went."""
        with pkcs11_errors("destroying a key"):
            objects = sorted(self._objects_by_id(cka_id), key=_key_part_last)
            self._check_logged_in()
            if not objects:
                self.still_present()
            for obj in objects:
                obj.destroy()
        return len(objects)

    def _objects_by_id(self, cka_id: str) -> list[Any]:
        return list(self._session.get_objects({Attribute.ID: bytes.fromhex(cka_id)}))

    def object_files(self) -> frozenset[str] | None:
        """The object files of this token now, when it is the embedded SoftHSM store (the
        evidence a generation's intent keeps); None for any other token."""
        store = self.module.store
        return None if store is None else store.object_files(self.info.serial)

    @writes
    @recovering
    def clear_blank_keys(self, algorithm: Algorithm, before: frozenset[str] | None) -> BlankKeys:
        """Destroy the key objects a generation cut short inside the token left behind.

        A kill inside SoftHSM's ``C_GenerateKey``/``C_GenerateKeyPair`` can leave an object
        with its class and key type but SoftHSM's defaults for everything else: no CKA_ID, no
        label, no value. They are destroyed only when every such file of this key type in the
        token's directory appeared after ``before`` (the object files the generation's intent
        recorded before the token was asked) and the token shows exactly that many objects
        of this key type with an empty CKA_ID and label. Anything else (another token, an
        object that was there before, a count that does not match) is left and counted for
        the officer: never destroy what is not provably the generation's own."""
        key_type = KEY_TYPE[algorithm.family]
        with pkcs11_errors("looking for objects of an interrupted generation"):
            found = [
                obj
                for obj in self._session.get_objects(
                    {Attribute.KEY_TYPE: key_type, Attribute.ID: b"", Attribute.LABEL: ""}
                )
                if getattr(obj, "object_class", None) in KEY_CLASSES
            ]
            self._check_logged_in()  # else private objects were not in the answer
            if not found:
                return BlankKeys(0, 0)
            store = self.module.store
            files = (
                None
                if store is None or before is None
                else store.blank_key_files(self.info.serial, int(key_type))
            )
            if files is None or before is None or files & before or len(files) != len(found):
                log.warning(
                    "%d key object(s) without ID or label on %s are not provably from an "
                    "interrupted generation; left for the officer",
                    len(found),
                    self.info.serial,
                )
                return BlankKeys(0, len(found))
            for obj in sorted(found, key=_key_part_last):
                obj.destroy()
        log.warning(
            "destroyed %d key object(s) an interrupted generation left on %s",
            len(found),
            self.info.serial,
        )
        return BlankKeys(len(found), 0)

    @recovering
    def holds_key(self, identity: KeyIdentity) -> bool:
        """True if this key's secret or private object is on the token. Raises TokenRemoved if
        the token does not answer (an empty answer is only then trusted)."""
        with pkcs11_errors("looking for a key"):
            if objects_of_key(self._session, identity):
                return True
        self._check_logged_in()
        self.still_present()
        return False

    def login_changed(self) -> None:
        """After a caller changed the application's login on purpose (the backup's SO login):
        cached object handles are dropped (a logout invalidates private objects' handles) and
        the session is marked lost unless it is a user session again."""
        self._forget_audit_objects()
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


def _key_part_last(obj: Any) -> int:
    return 1 if getattr(obj, "object_class", None) in _KEY_PARTS else 0


def _computed_kcv(obj: Any) -> str | None:
    """An AES key's check value computed by the token, or None when the key may not encrypt
    (then nothing can prove it without its CKA_CHECK_VALUE)."""
    try:
        if not obj[Attribute.ENCRYPT]:
            return None
        return bytes(obj.encrypt(bytes(16), mechanism=Mechanism.AES_ECB))[:3].hex().upper()
    except px.PKCS11Error:
        return None
