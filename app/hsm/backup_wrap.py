"""Wrapping keys out of, and back into, a token under a backup KEK (RFC 5649,
CKM_AES_KEY_WRAP_PAD = 0x210A), entirely inside the token.

Backup-able keys carry CKA_WRAP_WITH_TRUSTED, so the KEK must be CKA_TRUSTED, which only the
security officer may set. The KEK is therefore created as a public *session* object in an SO
login and used after the SO logs out and the user logs in again, in the same session: it never
reaches the token's store (SoftHSM keeps public token objects in clear on disk) and it dies with
the session. Results are plain data; no python-pkcs11 object leaves this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pkcs11
import pkcs11.exceptions as px
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pkcs11 import DEFAULT, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import decode_ec_public_key

from app.domain.algorithms import Usage
from app.errors import BackupIntegrityError, PinLocked, TokenError, WrongPin
from app.hsm.direct import DirectSession
from app.hsm.errors import pkcs11_errors
from app.hsm.module import Pkcs11Module, TokenInfo
from app.hsm.templates import PRIVATE_USAGES, PUBLIC_USAGES, SECRET_USAGES, USAGE_ATTR

log = logging.getLogger(__name__)

WRAP_MECHANISM = Mechanism.AES_KEY_WRAP_PAD  # 0x210A, RFC 5649
_CKR_PIN_INCORRECT = 0xA0
_CKR_PIN_LOCKED = 0xA4


@dataclass(frozen=True)
class WrappedKey:
    cka_id: str
    wrapped: bytes
    # AES: CKA_VALUE_LEN, the unwrapped value is cut to this (SoftHSM zero-pads). Private keys:
    # 0, meaning "a PKCS#8 PrivateKeyInfo, cut at its DER length" (SoftHSM zero-pads it too).
    value_len: int
    kcv: str | None


PRIVATE_VALUE_LEN = 0
# What wrap_all reads of each object in its one C_GetAttributeValue: attribute -> buffer bytes
# (a CKA_ID of any sane length; CK_ULONG; a KCV is 3 bytes). A longer value is read again.
_SECRET_FACTS: dict[int, int] = {
    Attribute.ID: 256,
    Attribute.VALUE_LEN: 8,
    Attribute.CHECK_VALUE: 64,
}
_PRIVATE_FACTS: dict[int, int] = {Attribute.ID: 256}
# An RFC 5649 blob of an AES key is 40 bytes, of an RSA-4096 PKCS#8 key about 2,400.
_WRAP_BUFFER = 4096
# A private key's unwrapped copy in a drill or a restore check: it can only sign, a session
# object, destroyed at once. ENCRYPT / VERIFY / WRAP are not private-key attributes: SoftHSM
# refuses them in the template, so they are left out (python-pkcs11 would otherwise add them).
_PAIR_CHECK_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: False,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
    Attribute.ENCRYPT: DEFAULT,
    Attribute.VERIFY: DEFAULT,
    Attribute.WRAP: DEFAULT,
}
_CHECK_DIGEST = hashlib.sha256(b"keystead backup pair check").digest()


def _private_key_type(spki: bytes) -> KeyType:
    public = serialization.load_der_public_key(spki)
    if isinstance(public, rsa.RSAPublicKey):
        return KeyType.RSA
    if isinstance(public, ec.EllipticCurvePublicKey):
        return KeyType.EC
    raise BackupIntegrityError("Only RSA and EC private keys are in backups.")


def _public_attributes(spki: bytes) -> dict[Attribute, Any]:
    """CLASS, KEY_TYPE and the key material of a public key object, from its
    SubjectPublicKeyInfo (EC: EC_PARAMS and the DER-wrapped EC_POINT; RSA: modulus, exponent)."""
    public = serialization.load_der_public_key(spki)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return decode_ec_public_key(spki)
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.MODULUS: numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"),
            Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"),
        }
    raise BackupIntegrityError("Only RSA and EC public keys are restored.")


def _signature_matches(spki: bytes, key_type: KeyType, signature: bytes) -> bool:
    """Whether ``signature`` over the check digest verifies under the SubjectPublicKeyInfo."""
    public = serialization.load_der_public_key(spki)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey) and key_type is KeyType.EC:
            half = len(signature) // 2
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            public.verify(der, _CHECK_DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            return True
        if isinstance(public, rsa.RSAPublicKey) and key_type is KeyType.RSA:
            public.verify(
                signature, b"keystead backup pair check", padding.PKCS1v15(), hashes.SHA256()
            )
            return True
    except InvalidSignature:
        return False
    return False


def _kek_template(kek: bytes, trusted: bool) -> dict[Attribute, Any]:
    template: dict[Attribute, Any] = {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.AES,
        Attribute.VALUE: kek,
        Attribute.TOKEN: False,
        Attribute.PRIVATE: False,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        Attribute.LABEL: "keystead-backup-kek",
        Attribute.WRAP: True,
        Attribute.UNWRAP: True,
        Attribute.ENCRYPT: False,
        Attribute.DECRYPT: False,
        Attribute.SIGN: False,
        Attribute.VERIFY: False,
        Attribute.DERIVE: False,
    }
    if trusted:
        template[Attribute.TRUSTED] = True
    return template


# A drill's unwrapped copy: a session object that can only encrypt (to compute its KCV),
# destroyed at once.
_DRILL_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: False,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}


def _not_one_key(label: str, cka_id: str, count: int, names: Mapping[str, str]) -> str:
    """Why a backup cannot wrap the key with ``cka_id``, naming it and the way forward."""
    name = names.get(cka_id)
    if name is None:
        return f"Token '{label}' holds {count} keys with CKA_ID {cka_id}; nothing was written."
    others = [n for c, n in names.items() if c != cka_id]
    listed = ",".join(others) if len(others) <= 12 else "KEY,... (the others)"
    then = f" back up the others with --keys {listed}," if others else ""
    if count == 0:
        return (
            f"Key '{name}' is missing on token '{label}' (no key object with its CKA_ID "
            f"{cka_id}); nothing was written:{then} restore it from a backup, or rebind it."
        )
    return (
        f"Token '{label}' holds {count} keys with the CKA_ID of key '{name}' ({cka_id}); "
        f"nothing was written:{then} or remove the impostor."
    )


def _check_login(rv: int, who: str, label: str) -> None:
    if rv == 0:
        return
    if rv == _CKR_PIN_INCORRECT:
        raise WrongPin(f"Token '{label}' rejected the {who} PIN; nothing was written.", failures=0)
    if rv == _CKR_PIN_LOCKED:
        raise PinLocked(f"Token '{label}' has locked its {who} PIN; nothing was written.")
    raise TokenError(f"Token '{label}' refused the {who} login (CKR {rv:#x}); nothing was written.")


class KekSession:
    """An open session holding the backup KEK as a session object."""

    def __init__(self, session: pkcs11.Session, kek: Any, label: str, module_path: str) -> None:
        self._session = session
        self._kek = kek
        self._label = label
        self._module_path = module_path

    def wrap_all(
        self,
        cka_ids: list[str],
        step: Callable[[int], None] | None = None,
        private: frozenset[str] = frozenset(),
        names: Mapping[str, str] | None = None,
    ) -> list[WrappedKey]:
        """RFC 5649 wraps of the secret keys with these CKA_IDs, done by the token, in order.
        The token is searched once per object class (a search by CKA_ID scans every object:
        one per key would be quadratic). TokenError if a CKA_ID matches no key, or more than
        one; then nothing is wrapped. ``step(n)`` is called after each n-th key (it may raise
        to stop). CKA_IDs in ``private`` name RSA / EC private keys: wrapped as PKCS#8
        (``value_len`` 0). ``names`` (CKA_ID -> key name) lets a refusal name the key.

        The loop makes its calls directly (app/hsm/direct.py): one C_GetAttributeValue per
        object for its CKA_ID and the facts kept for the manifest, and one C_WrapKey per key,
        where python-pkcs11 makes each call twice (length, then value) and reads ten more
        attributes per object found."""
        with pkcs11_errors(f"wrapping keys for the backup on token '{self._label}'"):
            direct = DirectSession(self._module_path, self._session)
            found: dict[str, list[tuple[int, dict[int, bytes | None]]]] = {}
            wanted = set(cka_ids)
            for object_class, ids, sizes in (
                (ObjectClass.SECRET_KEY, wanted - private, _SECRET_FACTS),
                (ObjectClass.PRIVATE_KEY, wanted & private, _PRIVATE_FACTS),
            ):
                if not ids:
                    continue
                for handle in direct.find(int(object_class)):
                    attrs = direct.attributes(handle, sizes)
                    cka_id = (attrs[Attribute.ID] or b"").hex()
                    if cka_id in ids:
                        found.setdefault(cka_id, []).append((handle, attrs))
            for cka_id in cka_ids:
                count = len(found.get(cka_id, []))
                if count != 1:
                    raise TokenError(_not_one_key(self._label, cka_id, count, names or {}))
            kek = int(self._kek.handle)
            result = []
            for cka_id in cka_ids:
                handle, attrs = found[cka_id][0]
                wrapped = direct.wrap(int(WRAP_MECHANISM), kek, handle, _WRAP_BUFFER)
                if cka_id in private:
                    value_len = PRIVATE_VALUE_LEN
                else:
                    raw_len = attrs[Attribute.VALUE_LEN]
                    if raw_len is None:
                        raise TokenError(
                            f"Token '{self._label}' gives no CKA_VALUE_LEN for the key with "
                            f"CKA_ID {cka_id}; nothing was written."
                        )
                    value_len = int.from_bytes(raw_len, sys.byteorder)
                check = attrs.get(Attribute.CHECK_VALUE)
                result.append(
                    WrappedKey(cka_id, wrapped, value_len, check.hex().upper() if check else None)
                )
                if step is not None:
                    step(len(result))
        return result

    def ids_on_token(self) -> set[str]:
        """CKA_IDs (hex) of every object this session sees."""
        with pkcs11_errors(f"listing objects on token '{self._label}'"):
            return {
                bytes(obj[Attribute.ID] or b"").hex()
                for obj in self._session.get_objects()
                if obj[Attribute.CLASS]
                in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
            }

    def unwrap_secret(
        self, wrapped: bytes, value_len: int, template: dict[Attribute, Any]
    ) -> tuple[str | None, Any]:
        """Unwrap an AES key with ``template`` (plus CLASS and KEY_TYPE); returns its KCV as
        the token computes it and an opaque handle. AES values are whole 8-byte blocks, so
        a stated length other than ``value_len`` destroys the key
        and TokenError raised. (SoftHSM refuses CKA_VALUE_LEN in an unwrap template.)"""
        with pkcs11_errors(f"unwrapping a backed-up key on token '{self._label}'"):
            key = self._kek.unwrap_key(
                ObjectClass.SECRET_KEY,
                KeyType.AES,
                wrapped,
                mechanism=WRAP_MECHANISM,
                store=bool(template.get(Attribute.TOKEN)),
                template=template,
            )
            attrs = key.get_attributes(
                [Attribute.VALUE_LEN, Attribute.CHECK_VALUE, Attribute.ENCRYPT]
            )
            # SoftHSM 2.6.1 leaves CKA_VALUE_LEN at 0 on unwrapped AES keys; a token that
            # states a length must state the right one. The KCV is the real comparison.
            if int(attrs.get(Attribute.VALUE_LEN) or 0) not in (0, value_len):
                key.destroy()
                raise TokenError(
                    f"An unwrapped key has {attrs[Attribute.VALUE_LEN]} bytes, the manifest "
                    f"says {value_len}; it was destroyed."
                )
            check = attrs.get(Attribute.CHECK_VALUE)
            if not check and attrs.get(Attribute.ENCRYPT):
                # SoftHSM sets no CKA_CHECK_VALUE on unwrapped keys: compute the KCV inside
                # the token, as the token does (AES-ECB of a zero block, first 3 bytes).
                check = bytes(key.encrypt(bytes(16), mechanism=Mechanism.AES_ECB))[:3]
        return (bytes(check).hex().upper() if check else None), key

    def destroy_by_id(self, cka_id: str) -> None:
        """Remove what a failed restore created under this CKA_ID."""
        with pkcs11_errors("removing a partly restored key"):
            for obj in self._session.get_objects({Attribute.ID: bytes.fromhex(cka_id)}):
                obj.destroy()

    def restore_secret(
        self,
        wrapped: bytes,
        value_len: int,
        label: str,
        cka_id: str,
        usage: frozenset[Usage],
        expected_kcv: str,
        taken: set[str],
    ) -> None:
        """Unwrap an AES key as a token object with its full template: TOKEN, PRIVATE,
        SENSITIVE, EXTRACTABLE and WRAP_WITH_TRUSTED kept (it was backup-able), MODIFIABLE,
        its label, CKA_ID and usage flags. A session copy is unwrapped first and its KCV
        compared; on a mismatch nothing is created and BackupIntegrityError is raised.
        ``taken``: CKA_IDs already on the token (``ids_on_token``); one of them is refused."""
        kcv = self.drill(wrapped, value_len)
        if kcv != expected_kcv.upper():
            raise BackupIntegrityError(
                f"Key '{label}' unwraps to KCV {kcv}, the backup says {expected_kcv}; it was "
                "not restored and the restore stopped."
            )
        if cka_id in taken:
            raise TokenError(
                f"Token '{self._label}' already holds an object with CKA_ID {cka_id}; "
                f"key '{label}' was not restored."
            )
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: True,
            Attribute.WRAP_WITH_TRUSTED: True,
            Attribute.MODIFIABLE: True,
            Attribute.LABEL: label,
            Attribute.ID: bytes.fromhex(cka_id),
            **{USAGE_ATTR[u]: (u in usage) for u in SECRET_USAGES},
        }
        self.unwrap_secret(wrapped, value_len, template)

    def check_private(self, wrapped: bytes, spki: bytes, label: str) -> None:
        """Unwrap a private key as a sign-only session copy, sign a fixed digest, destroy the
        copy, and verify the signature under the SubjectPublicKeyInfo the backup recorded.
        BackupIntegrityError when it does not verify (the pair does not match)."""
        key_type = _private_key_type(spki)
        with pkcs11_errors(f"checking backed-up private key '{label}' on token '{self._label}'"):
            key = self._kek.unwrap_key(
                ObjectClass.PRIVATE_KEY,
                key_type,
                wrapped,
                mechanism=WRAP_MECHANISM,
                store=False,
                template=_PAIR_CHECK_TEMPLATE,
            )
            try:
                if key_type is KeyType.EC:
                    signature = bytes(key.sign(_CHECK_DIGEST, mechanism=Mechanism.ECDSA))
                else:
                    signature = bytes(
                        key.sign(b"keystead backup pair check", mechanism=Mechanism.SHA256_RSA_PKCS)
                    )
            finally:
                key.destroy()
        if not _signature_matches(spki, key_type, signature):
            raise BackupIntegrityError(
                f"Private key '{label}' does not match the public key the backup recorded; "
                "it was not restored and the restore stopped."
            )

    def restore_private(
        self,
        wrapped: bytes,
        spki: bytes,
        label: str,
        cka_id: str,
        private_usage: frozenset[Usage],
        public_usage: frozenset[Usage],
        taken: set[str],
    ) -> None:
        """Unwrap an RSA / EC private key as a token object with its full template (TOKEN,
        PRIVATE, SENSITIVE, EXTRACTABLE and WRAP_WITH_TRUSTED kept, its usage flags, label and
        CKA_ID), after ``check_private``; then its public key object from the recorded
        SubjectPublicKeyInfo, with the same label and CKA_ID."""
        self.check_private(wrapped, spki, label)
        if cka_id in taken:
            raise TokenError(
                f"Token '{self._label}' already holds an object with CKA_ID {cka_id}; "
                f"key '{label}' was not restored."
            )
        key_type = _private_key_type(spki)
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: True,
            Attribute.WRAP_WITH_TRUSTED: True,
            Attribute.MODIFIABLE: True,
            Attribute.LABEL: label,
            Attribute.ID: bytes.fromhex(cka_id),
            **{USAGE_ATTR[u]: (u in private_usage) for u in PRIVATE_USAGES},
            Attribute.ENCRYPT: DEFAULT,
            Attribute.VERIFY: DEFAULT,
            Attribute.WRAP: DEFAULT,
        }
        public: dict[Attribute, Any] = {
            **_public_attributes(spki),
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.MODIFIABLE: True,
            Attribute.LABEL: label,
            Attribute.ID: bytes.fromhex(cka_id),
            **{USAGE_ATTR[u]: (u in public_usage) for u in PUBLIC_USAGES},
        }
        with pkcs11_errors(f"restoring private key '{label}' on token '{self._label}'"):
            self._kek.unwrap_key(
                ObjectClass.PRIVATE_KEY,
                key_type,
                wrapped,
                mechanism=WRAP_MECHANISM,
                store=True,
                template=template,
            )
            self._session.create_object(public)

    def drill(self, wrapped: bytes, value_len: int) -> str | None:
        """Unwrap into a session object that can do nothing, read its KCV, destroy it."""
        kcv, key = self.unwrap_secret(wrapped, value_len, _DRILL_TEMPLATE)
        with pkcs11_errors("destroying a drill key"):
            key.destroy()
        return kcv


@contextlib.contextmanager
def trusted_kek(
    module: Pkcs11Module, info: TokenInfo, kek: bytes, so_pin: str, user_pin: str
) -> Iterator[KekSession]:
    """The KEK as a CKA_TRUSTED session object on ``info``'s token, in a user session.

    The process's user login on the token is ended for the SO's login and restored with
    ``user_pin`` afterwards (login state is per application). Whatever happens, the KEK is
    destroyed and the user logged in again before this returns or raises; if that last login
    fails, TokenNotLoggedIn is raised.
    """
    with trusted_session_object(
        module, info, _kek_template(kek, trusted=True), so_pin, user_pin, "the trusted backup KEK"
    ) as (session, kek_object):
        yield KekSession(session, kek_object, info.label, module.path)


@contextlib.contextmanager
def trusted_session_object(
    module: Pkcs11Module,
    info: TokenInfo,
    template: dict[Attribute, Any],
    so_pin: str,
    user_pin: str,
    what: str,
) -> Iterator[tuple[pkcs11.Session, Any]]:
    """A session object made from ``template`` (which sets CKA_TRUSTED) in an SO login, then
    usable in the same session after the user logs in again: (session, object).

    Only a CKA_TRUSTED key may wrap a key with CKA_WRAP_WITH_TRUSTED, and only the SO may set
    CKA_TRUSTED. The object is a session object (never in the token's store) and is destroyed,
    the session closed and the user logged in again before this returns or raises."""
    token = module.token(info.serial)
    with pkcs11_errors(f"opening a session on token '{info.label}'"):
        session = token.open(rw=True)
    handle = int(getattr(session, "handle"))  # noqa: B009
    made: Any = None
    try:
        module.logout_handle(handle)  # the user's login (or none)
        try:
            _check_login(module.login_handle(handle, True, so_pin), "SO", info.label)
            try:
                with pkcs11_errors(f"creating {what} on token '{info.label}'"):
                    made = session.create_object(template)
            finally:
                module.logout_handle(handle)
        finally:
            _check_login(module.login_handle(handle, False, user_pin), "user", info.label)
        yield session, made
    finally:
        if made is not None:
            try:
                made.destroy()
            except px.PKCS11Error:
                log.error("could not destroy %s on %s", what, info.serial)
        with contextlib.suppress(px.PKCS11Error):
            session.close()  # opened without a PIN: python-pkcs11 does not log out here
        # Logins rewrote token.object, and nothing else of the store changed (the object is
        # a session object): its shadow follows, without a stat of every object file.
        module.wrote(token_object_only=True)


@contextlib.contextmanager
def user_kek(module: Pkcs11Module, info: TokenInfo, kek: bytes) -> Iterator[KekSession]:
    """The KEK as an untrusted session object in a new session of the logged-in user (for
    unwrapping: restore and drills need no SO)."""
    token = module.token(info.serial)
    with pkcs11_errors(f"opening a restore session on token '{info.label}'"):
        session = token.open(rw=True)
    kek_object: Any = None
    try:
        with pkcs11_errors(f"loading the backup KEK into token '{info.label}'"):
            kek_object = session.create_object(_kek_template(kek, trusted=False))
        yield KekSession(session, kek_object, info.label, module.path)
    finally:
        if kek_object is not None:
            with contextlib.suppress(px.PKCS11Error):
                kek_object.destroy()
        with contextlib.suppress(px.PKCS11Error):
            session.close()
        module.wrote()  # restored keys are new token files: their shadow copies follow


def token_random(module: Pkcs11Module, info: TokenInfo, size: int) -> bytes:
    """``size`` bytes from the token's RNG (C_GenerateRandom; no login needed)."""
    token = module.token(info.serial)
    with pkcs11_errors(f"drawing random bytes from token '{info.label}'"):
        session = token.open(rw=False)
        try:
            return bytes(session.generate_random(size * 8))
        finally:
            with contextlib.suppress(px.PKCS11Error):
                session.close()
