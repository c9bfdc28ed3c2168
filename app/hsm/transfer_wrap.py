"""Wrapping a secret key for another HSM and unwrapping one made for this token, inside the
token (docs/key-transfer.md). No python-pkcs11 object leaves this module.

- RSA-OAEP (CKM_RSA_PKCS_OAEP, SHA-1, MGF1-SHA-1, no label): the recipient's RSA public key
  becomes a CKA_TRUSTED session object (SO login; Keystead's backup-able keys carry
  CKA_WRAP_WITH_TRUSTED) and wraps the key; the receiving token unwraps with its private key.
- AES-KWP (CKM_AES_KEY_WRAP_PAD, RFC 5649) under a KEK both tokens hold as managed keys.

Unwrapping always goes twice: first into a session object that can only encrypt, whose KCV is
compared with the file's and which is destroyed at once; only then into a token object with the
full template, read back and compared. A file that does not open, opens to another KCV, or a
token that does not honour the template leaves no object on the token.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import pkcs11
import pkcs11.exceptions as px
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass

from app.domain.algorithms import Usage
from app.domain.transfer import WrapMechanism
from app.errors import NotAuthentic, TemplateMismatch, TokenError
from app.hsm.backup_wrap import trusted_session_object
from app.hsm.errors import ckr_name, pkcs11_errors
from app.hsm.session import TokenSession
from app.hsm.templates import SECRET_USAGES, USAGE_ATTR, mismatches

log = logging.getLogger(__name__)

_OAEP_PARAMS = (Mechanism.SHA_1, MGF.SHA1, None)
# What a token answers for wrapped bytes that are not for this key (SoftHSM: GENERAL_ERROR).
_NOT_OPENED = (
    px.WrappedKeyInvalid,
    px.WrappedKeyLenRange,
    px.EncryptedDataInvalid,
    px.EncryptedDataLenRange,
    px.DataInvalid,
    px.DataLenRange,
    px.GeneralError,
    px.FunctionFailed,
)

# A copy that can only encrypt (to compute its KCV) and be wrapped by a session key (to learn
# its length: SoftHSM leaves CKA_VALUE_LEN at 0 on unwrapped keys), never stored, destroyed.
_DRILL: dict[Attribute, Any] = {
    Attribute.TOKEN: False,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: True,
    Attribute.ENCRYPT: True,
    **{USAGE_ATTR[u]: False for u in SECRET_USAGES if USAGE_ATTR[u] is not Attribute.ENCRYPT},
}


@dataclass(frozen=True)
class WrappedSecret:
    wrapped: bytes
    value_len: int
    kcv: str | None  # as the token states it (CKA_CHECK_VALUE), hex upper case


def _recipient_template(modulus: bytes, exponent: bytes) -> dict[Attribute, Any]:
    return {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.KEY_TYPE: KeyType.RSA,
        Attribute.MODULUS: modulus,
        Attribute.PUBLIC_EXPONENT: exponent,
        Attribute.TOKEN: False,
        Attribute.PRIVATE: False,
        Attribute.MODIFIABLE: False,
        Attribute.LABEL: "keystead-transfer-recipient",
        Attribute.TRUSTED: True,
        Attribute.WRAP: True,
        Attribute.ENCRYPT: False,
        Attribute.VERIFY: False,
        Attribute.VERIFY_RECOVER: False,
        Attribute.DERIVE: False,
    }


def _one_secret(session: pkcs11.Session, cka_id: str, label: str) -> Any:
    found = list(
        session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: bytes.fromhex(cka_id)}
        )
    )
    if len(found) != 1:
        raise TokenError(
            f"Token '{label}' holds {len(found)} secret keys with CKA_ID {cka_id}; nothing was "
            "wrapped."
        )
    return found[0]


def _wrapped(key: Any, wrapping: Any, mechanism: Mechanism, param: Any) -> WrappedSecret:
    attrs = key.get_attributes([Attribute.VALUE_LEN, Attribute.CHECK_VALUE])
    blob = bytes(wrapping.wrap_key(key, mechanism=mechanism, mechanism_param=param))
    check = attrs.get(Attribute.CHECK_VALUE)
    return WrappedSecret(
        blob,
        int(attrs.get(Attribute.VALUE_LEN) or 0),
        bytes(check).hex().upper() if check else None,
    )


def wrap_rsa_oaep(
    token: TokenSession, cka_id: str, modulus: bytes, exponent: bytes, so_pin: str, user_pin: str
) -> WrappedSecret:
    """The secret key ``cka_id`` wrapped with RSA-OAEP (SHA-1) under the recipient's public
    key, by the token. The SO's PIN makes the recipient key CKA_TRUSTED for this session only.
    TokenError (e.g. KEY_NOT_WRAPPABLE for a key that is not extractable), WrongPin."""
    info = token.info
    try:
        with (
            trusted_session_object(
                token.module,
                info,
                _recipient_template(modulus, exponent),
                so_pin,
                user_pin,
                "the recipient's public key",
            ) as (session, recipient),
            pkcs11_errors(f"wrapping the key for the recipient on token '{info.label}'"),
        ):
            key = _one_secret(session, cka_id, info.label)
            return _wrapped(key, recipient, Mechanism.RSA_PKCS_OAEP, _OAEP_PARAMS)
    finally:
        token.login_changed()


def wrap_aes_kwp(token: TokenSession, cka_id: str, kek_cka_id: str) -> WrappedSecret:
    """The secret key ``cka_id`` wrapped under the managed KEK ``kek_cka_id`` (RFC 5649) by
    the token. A key with CKA_WRAP_WITH_TRUSTED needs a KEK the SO marked CKA_TRUSTED; the
    token refuses otherwise (TokenError)."""
    raw: pkcs11.Session = token._session
    with pkcs11_errors(f"wrapping the key under the shared KEK on token '{token.info.label}'"):
        key = _one_secret(raw, cka_id, token.info.label)
        kek = _one_secret(raw, kek_cka_id, token.info.label)
        return _wrapped(key, kek, Mechanism.AES_KEY_WRAP_PAD, None)


def _kcv(key: Any) -> str:
    return bytes(key.encrypt(bytes(16), mechanism=Mechanism.AES_ECB))[:3].hex().upper()


def _length(raw: pkcs11.Session, drill: Any) -> int:
    """The drill copy's value length in bytes: RFC 3394 wrap under a fresh session KEK adds 8
    bytes (the value itself never leaves the token in clear; the KEK dies here)."""
    probe: Any = raw.generate_key(
        KeyType.AES,
        256,
        store=False,
        template={
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.WRAP: True,
            Attribute.UNWRAP: False,
            Attribute.ENCRYPT: False,
            Attribute.DECRYPT: False,
        },
    )
    try:
        return len(bytes(probe.wrap_key(drill, mechanism=Mechanism.AES_KEY_WRAP))) - 8
    finally:
        probe.destroy()


def _unwrapping_key(raw: pkcs11.Session, mechanism: WrapMechanism, cka_id: str, label: str) -> Any:
    cls = (
        ObjectClass.PRIVATE_KEY
        if mechanism is WrapMechanism.RSA_OAEP_SHA1
        else ObjectClass.SECRET_KEY
    )
    found = list(raw.get_objects({Attribute.CLASS: cls, Attribute.ID: bytes.fromhex(cka_id)}))
    if len(found) != 1:
        raise TokenError(
            f"Token '{label}' holds {len(found)} {cls.name.lower().replace('_', ' ')}s with the "
            f"unwrapping key's CKA_ID {cka_id}; nothing was imported."
        )
    return found[0]


def _unwrap(
    unwrapping: Any, mechanism: WrapMechanism, wrapped: bytes, template: dict[Attribute, Any]
) -> Any:
    if mechanism is WrapMechanism.RSA_OAEP_SHA1:
        mech, param = Mechanism.RSA_PKCS_OAEP, _OAEP_PARAMS
    else:
        mech, param = Mechanism.AES_KEY_WRAP_PAD, None
    return unwrapping.unwrap_key(
        ObjectClass.SECRET_KEY,
        KeyType.AES,
        wrapped,
        mechanism=mech,
        mechanism_param=param,
        store=bool(template.get(Attribute.TOKEN)),
        template=template,
    )


def unwrap_secret(
    token: TokenSession,
    mechanism: WrapMechanism,
    unwrapping_cka_id: str,
    wrapped: bytes,
    value_len: int,
    expected_kcv: str,
    template: dict[Attribute, Any],
) -> None:
    """Unwrap an AES key as a token object with ``template`` (TOKEN, PRIVATE, SENSITIVE,
    EXTRACTABLE, LABEL, ID and every usage flag), after a session copy showed KCV
    ``expected_kcv``. NotAuthentic: the bytes do not open with this key (another recipient,
    tampered) or open to another key; TemplateMismatch: the token did not keep the template.
    In every refusal nothing is left on the token."""
    raw: pkcs11.Session = token._session
    label = token.info.label
    with pkcs11_errors(f"finding the unwrapping key on token '{label}'"):
        unwrapping = _unwrapping_key(raw, mechanism, unwrapping_cka_id, label)
    with pkcs11_errors(f"unwrapping on token '{label}'"):
        try:
            drill = _unwrap(unwrapping, mechanism, wrapped, _DRILL)
        except _NOT_OPENED as exc:
            raise NotAuthentic(
                f"Token '{label}' could not unwrap the key ({ckr_name(exc)}): the file was made "
                "for another recipient or its wrapped bytes were altered. Nothing was imported."
            ) from exc
    with pkcs11_errors(f"checking the unwrapped key on token '{label}'"):
        try:
            length = _length(raw, drill)
            kcv = _kcv(drill)
        finally:
            drill.destroy()
    if length != value_len or kcv != expected_kcv.upper():
        raise NotAuthentic(
            f"The wrapped bytes open to a key with KCV {kcv} ({length} bytes), the file "
            f"says {expected_kcv} ({value_len} bytes). Nothing was imported."
        )
    with pkcs11_errors(f"unwrapping the key on token '{label}'"):
        made = _unwrap(unwrapping, mechanism, wrapped, template)
        try:
            actual = made.get_attributes(list(template))
            wrong = mismatches(template, actual)
        except BaseException:
            made.destroy()
            raise
        if wrong:
            made.destroy()
            raise TemplateMismatch(
                f"Token '{label}' did not keep {', '.join(wrong)} as asked on the imported key; "
                "it was destroyed and nothing was imported."
            )
    token.module.wrote()


def import_template(
    label: str, cka_id: bytes, usage: frozenset[Usage], extractable: bool
) -> dict[Attribute, Any]:
    """The full template of an imported secret key: a private, sensitive token object with
    exactly the purpose's usage flags; extractable (and then only by a trusted KEK) as asked."""
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: extractable,
        Attribute.WRAP_WITH_TRUSTED: extractable,
        Attribute.MODIFIABLE: True,
        Attribute.LABEL: label,
        Attribute.ID: cka_id,
        **{USAGE_ATTR[u]: (u in usage) for u in SECRET_USAGES},
    }


def destroy_unrecorded(token: TokenSession, cka_id: str) -> int:
    """Remove an imported object whose record could not be written (by the CKA_ID chosen for
    this import only)."""
    with contextlib.suppress(TokenError):
        return token.destroy_generated(cka_id)
    return 0
