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
from pkcs11 import Mechanism
from pkcs11.mechanisms import MGF, GCMParams

from app.domain.identity import KeyIdentity
from app.domain.usage import SignatureMechanism
from app.hsm.errors import pkcs11_errors, translate
from app.hsm.session import TokenSession

_HASH_MECHANISM = {
    "sha256": (Mechanism.SHA256, MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, MGF.SHA512, 64),
}

GCM_TAG_BYTES = 16
GCM_NONCE_BYTES = 12


class AuthenticationFailed(Exception):
    """AES-GCM refused a ciphertext (tag mismatch): tampered, truncated or another key."""


class KeyInUse:
    """One key's object on a logged-in token, found once for one operation."""

    def __init__(self, session: TokenSession, identity: KeyIdentity) -> None:
        """Find the key's object by its full identity (``TokenSession.key_for_use``).

        Raises AmbiguousKey when several objects could be the key and TokenError when it is
        not on the token or cannot be proven to be the record's key."""
        self.session = session
        self.cka_id = identity.cka_id
        self._object: Any = session.key_for_use(identity)

    # --- signatures ------------------------------------------------------------------------

    def sign_digest(self, mechanism: SignatureMechanism, digest: bytes) -> bytes:
        """The signature of a precomputed ``digest`` under ``mechanism`` (not Ed25519).

        Returns the RSA signature (modulus length) or a DER ECDSA signature.
        """
        hash_name = mechanism.hash_name
        if hash_name is None:
            raise ValueError("Ed25519 signs the message itself; use sign_message")
        hash_mech, mgf, salt = _HASH_MECHANISM[hash_name]
        with pkcs11_errors("signing on the token"):
            if mechanism.pss:
                return bytes(
                    self._object.sign(
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
                return bytes(self._object.sign(info, mechanism=Mechanism.RSA_PKCS))
            raw = bytes(self._object.sign(digest, mechanism=Mechanism.ECDSA))
        half = len(raw) // 2
        return bytes(
            encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )
        )

    def sign_message(self, message: bytes) -> bytes:
        """Ed25519 (PureEdDSA) signature of the whole ``message``: 64 bytes."""
        with pkcs11_errors("signing on the token"):
            return bytes(self._object.sign(message, mechanism=Mechanism.EDDSA))

    # --- AES-GCM ---------------------------------------------------------------------------

    def gcm_encrypt(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """AES-GCM (SP 800-38D) on the token: ciphertext ‖ 16-byte tag."""
        with pkcs11_errors("encrypting on the token"):
            return bytes(
                self._object.encrypt(
                    plaintext,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, aad, GCM_TAG_BYTES * 8),
                )
            )

    def gcm_decrypt(self, nonce: bytes, aad: bytes, sealed: bytes) -> bytes:
        """The plaintext of ciphertext ‖ tag; raises AuthenticationFailed on a bad tag."""
        try:
            return bytes(
                self._object.decrypt(
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
            raise translate(exc, "decrypting on the token") from exc
