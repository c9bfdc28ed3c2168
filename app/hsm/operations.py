"""Cryptographic operations with a key inside the token: signatures and AES-GCM.

``KeyInUse`` holds the token object of one managed key for the length of one operation (a
file, a batch of messages): finding an object is a linear scan of the token, so it is found
once, by the key's full identity (object class, CKA_ID, key type and its KCV or public-key
fingerprint; ``TokenSession.key_for_use``), and never outlives the session that found it.
Another object under the same CKA_ID (another tool's key, a replaced key) is never used. No
python-pkcs11 object leaves this module; inputs and outputs are bytes.

Signatures over files are computed over a digest made on the host (hashlib, streamed) and
signed on the token with the raw mechanism — CKM_RSA_PKCS over a DER DigestInfo (RFC 8017
§9.2), CKM_RSA_PKCS_PSS with the hash, MGF1(hash) and salt = hash length, CKM_ECDSA over the
digest (the result converted to DER, RFC 3279). Ed25519 (CKM_EDDSA, RFC 8032 PureEdDSA) needs
the whole message on the token.
"""

from __future__ import annotations

from typing import Any

import pkcs11.exceptions as px
from asn1crypto.algos import DigestAlgorithm, DigestInfo
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import DecryptMixin, EncryptMixin, Mechanism, SignMixin
from pkcs11.mechanisms import MGF, GCMParams

from app.domain.identity import KeyIdentity
from app.domain.usage import SignatureMechanism
from app.errors import KeyUseRefused
from app.hsm.errors import translate, unmapped_code
from app.hsm.session import TokenSession

_HASH_MECHANISM = {
    "sha256": (Mechanism.SHA256, MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, MGF.SHA512, 64),
}

# Operation -> (python-pkcs11's mixin an object permitting it has, the usage attribute, words).
# python-pkcs11 gives an object the methods its CKA_SIGN/ENCRYPT/DECRYPT allow, so a key whose
# flag is off has no such method at all.
_USES: dict[str, tuple[type, str, str]] = {
    "sign": (SignMixin, "CKA_SIGN", "signing"),
    "encrypt": (EncryptMixin, "CKA_ENCRYPT", "encryption"),
    "decrypt": (DecryptMixin, "CKA_DECRYPT", "decryption"),
}
CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68

GCM_TAG_BYTES = 16
GCM_NONCE_BYTES = 12


class AuthenticationFailed(Exception):
    """AES-GCM refused a ciphertext (tag mismatch): tampered, truncated or another key."""


class KeyInUse:
    """One key's object on a logged-in token, found once for one operation."""

    def __init__(self, session: TokenSession, identity: KeyIdentity, name: str = "") -> None:
        """Find the key's object by its full identity (``TokenSession.key_for_use``); ``name``
        is the key's name in errors.

        Raises AmbiguousKey when several objects could be the key and TokenError when it is
        not on the token or cannot be proven to be the record's key."""
        self.session = session
        self.cka_id = identity.cka_id
        self.name = name
        self._object: Any = session.key_for_use(identity)

    def _permitted(self, use: str) -> Any:
        """The key object, checked to permit ``use`` ("sign", "encrypt", "decrypt");
        KeyUseRefused (one line naming the key and the token) when it does not."""
        mixin, _attribute, _words = _USES[use]
        if not isinstance(self._object, mixin):
            raise self.refused(use)
        return self._object

    def refused(self, use: str) -> KeyUseRefused:
        """The refusal of ``use`` by the token, in words: which key, which token, which flag."""
        _mixin, attribute, words = _USES[use]
        key = f"key '{self.name}'" if self.name else f"the key with CKA_ID {self.cka_id}"
        return KeyUseRefused(
            f"Token '{self.session.info.label}' refuses {words} with {key}: its {attribute} is "
            "off on the token (Keystead turns it off when a key is suspended, deactivated or "
            "compromised), so the token's state of the key differs from the record. Run "
            "keystead audit verify; nothing was changed."
        )

    def _translated(self, exc: px.PKCS11Error, use: str, action: str) -> Exception:
        if isinstance(exc, px.KeyTypeInconsistent) or (
            unmapped_code(exc) == CKR_KEY_FUNCTION_NOT_PERMITTED
        ):
            return self.refused(use)
        return translate(exc, action)

    # --- signatures ------------------------------------------------------------------------

    def sign_digest(self, mechanism: SignatureMechanism, digest: bytes) -> bytes:
        """The signature of a precomputed ``digest`` under ``mechanism`` (not Ed25519).

        Returns the RSA signature (modulus length) or a DER ECDSA signature.
        """
        hash_name = mechanism.hash_name
        if hash_name is None:
            raise ValueError("Ed25519 signs the message itself; use sign_message")
        hash_mech, mgf, salt = _HASH_MECHANISM[hash_name]
        key = self._permitted("sign")
        try:
            if mechanism.pss:
                return bytes(
                    key.sign(
                        digest,
                        mechanism=Mechanism.RSA_PKCS_PSS,
                        mechanism_param=(hash_mech, mgf, salt),
                    )
                )
            if mechanism.family.value == "RSA":
                info = DigestInfo(
                    {
                        "digest_algorithm": DigestAlgorithm({"algorithm": hash_name}),
                        "digest": digest,
                    }
                ).dump()
                return bytes(key.sign(info, mechanism=Mechanism.RSA_PKCS))
            raw = bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
        except px.PKCS11Error as exc:
            raise self._translated(exc, "sign", "signing on the token") from exc
        half = len(raw) // 2
        return bytes(
            encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )
        )

    def sign_message(self, message: bytes) -> bytes:
        """Ed25519 (PureEdDSA) signature of the whole ``message``: 64 bytes."""
        key = self._permitted("sign")
        try:
            return bytes(key.sign(message, mechanism=Mechanism.EDDSA))
        except px.PKCS11Error as exc:
            raise self._translated(exc, "sign", "signing on the token") from exc

    # --- AES-GCM ---------------------------------------------------------------------------

    def gcm_encrypt(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """AES-GCM (SP 800-38D) on the token: ciphertext ‖ 16-byte tag."""
        key = self._permitted("encrypt")
        try:
            return bytes(
                key.encrypt(
                    plaintext,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, aad, GCM_TAG_BYTES * 8),
                )
            )
        except px.PKCS11Error as exc:
            raise self._translated(exc, "encrypt", "encrypting on the token") from exc

    def gcm_decrypt(self, nonce: bytes, aad: bytes, sealed: bytes) -> bytes:
        """The plaintext of ciphertext ‖ tag; raises AuthenticationFailed on a bad tag."""
        key = self._permitted("decrypt")
        try:
            return bytes(
                key.decrypt(
                    sealed,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, aad, GCM_TAG_BYTES * 8),
                )
            )
        except (px.EncryptedDataInvalid, px.EncryptedDataLenRange) as exc:
            raise AuthenticationFailed from exc
        except px.GeneralError as exc:
            # SoftHSM 2.6 answers a failed GCM tag check with CKR_GENERAL_ERROR; a token that
            # went away answers the same, so look before calling it a bad tag.
            self.session.still_present()
            raise AuthenticationFailed from exc
        except px.PKCS11Error as exc:
            raise self._translated(exc, "decrypt", "decrypting on the token") from exc
