"""What a token holds, read and proven: one ``TokenEntry`` per object (class, key type,
label, CKA_ID, KCV, SPKI fingerprint, boolean flags) from one batched attribute read, and
which objects are exactly one key (``app.domain.identity``), proven by the token where
attributes cannot tell (an EC/EdDSA private key signs a random challenge).

Functions of a logged-in python-pkcs11 session, called by ``TokenSession`` inside its
``pkcs11_errors`` and ``recovering``; python-pkcs11 errors pass through. The python-pkcs11
objects they return never leave ``app/hsm``.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pkcs11
import pkcs11.exceptions as px
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, Mechanism, ObjectClass

from app.domain.algorithms import Family
from app.domain.identity import KeyIdentity, TokenEntry, select_key
from app.errors import UnsupportedAlgorithm
from app.hsm.audit_objects import AUDIT_IDS, CHECKPOINT_APPLICATION
from app.hsm.key_attributes import (
    ENUMERATION_ATTRIBUTES,
    FLAG_ATTRIBUTES,
    KEY_CLASSES,
    algorithm_of,
    spki_of,
)


def read_entries(
    session: pkcs11.Session, template: dict[Attribute, Any] | None = None
) -> list[tuple[Any, TokenEntry]]:
    """Every object (or those matching ``template``) with what identifies it: one batched
    attribute read per object, a second one for public values. The workstation's own audit
    keys and checkpoint objects are left out. Text is already safe (untrusted mapper)."""
    result: list[tuple[Any, TokenEntry]] = []
    for obj in session.get_objects(template or {}):
        attrs = obj.get_attributes(ENUMERATION_ATTRIBUTES)
        raw_id = bytes(attrs.get(Attribute.ID, b"") or b"")
        if raw_id in AUDIT_IDS:
            continue  # the workstation's own audit keys are not inventory
        cls = attrs.get(Attribute.CLASS)
        if cls == ObjectClass.DATA and str(attrs.get(Attribute.APPLICATION, "")) == (
            CHECKPOINT_APPLICATION
        ):
            continue  # the workstation's own audit checkpoints
        result.append((obj, _entry(len(result), obj, attrs, raw_id)))
    return result


def _entry(index: int, obj: Any, attrs: dict[Attribute, Any], raw_id: bytes) -> TokenEntry:
    cls = attrs.get(Attribute.CLASS)
    class_name = getattr(cls, "name", None) or f"CLASS_0x{int(cls or 0):x}"
    key_type = attrs.get(Attribute.KEY_TYPE)
    is_key = cls in KEY_CLASSES
    algorithm = algorithm_of(attrs) if is_key else None
    kcv = None
    fingerprint = None
    if cls == ObjectClass.SECRET_KEY and attrs.get(Attribute.CHECK_VALUE):
        kcv = bytes(attrs[Attribute.CHECK_VALUE]).hex().upper()
    elif is_key and algorithm is not None:
        family = algorithm.family
        if cls == ObjectClass.PUBLIC_KEY or (
            cls == ObjectClass.PRIVATE_KEY and family is Family.RSA
        ):
            try:
                fingerprint = hashlib.sha256(spki_of(attrs, family)).hexdigest()
            except (KeyError, ValueError, UnsupportedAlgorithm):
                fingerprint = None  # a public value Keystead cannot read: no identity
    return TokenEntry(
        position=index,
        object_class=class_name,
        key_type=(getattr(key_type, "name", None) or str(key_type)) if is_key else "",
        label=str(attrs.get(Attribute.LABEL) or ""),
        cka_id=raw_id.hex(),
        algorithm=algorithm,
        kcv=kcv,
        fingerprint=fingerprint,
        flags=frozenset(a.name for a in FLAG_ATTRIBUTES if attrs.get(a) is True),
    )


def prove_pairs(
    session: pkcs11.Session, found: list[tuple[Any, TokenEntry]]
) -> list[tuple[Any, TokenEntry]]:
    """EC/EdDSA private keys carry no public value. Where one could pair with more than one
    public key (or several share a CKA_ID and curve), the private key signs a random
    challenge and the public key that verifies it gives its fingerprint."""
    out = list(found)
    publics = [(o, e) for o, e in found if e.object_class == "PUBLIC_KEY" and e.fingerprint]
    for position, (obj, entry) in enumerate(found):
        if entry.object_class != "PRIVATE_KEY" or entry.fingerprint or entry.algorithm is None:
            continue
        rivals = [
            e
            for _o, e in found
            if e.object_class == "PRIVATE_KEY"
            and e.cka_id == entry.cka_id
            and e.algorithm is entry.algorithm
        ]
        peers = [
            (o, e)
            for o, e in publics
            if e.cka_id == entry.cka_id and e.algorithm is entry.algorithm
        ]
        if len(rivals) == 1 and len(peers) <= 1:
            continue  # pairs by CKA_ID and curve alone
        proven = signature_proof(session, obj, entry, [e for _o, e in peers])
        if proven:
            out[position] = (obj, entry._replace(fingerprint=proven))
    return out


def signature_proof(
    session: pkcs11.Session, private: Any, entry: TokenEntry, peers: list[TokenEntry]
) -> str | None:
    """The fingerprint of the public key that verifies a signature by ``private``."""
    if "SIGN" not in entry.flags or entry.algorithm is None or not peers:
        return None
    challenge = secrets.token_bytes(32)
    family = entry.algorithm.family
    try:
        if family is Family.EC:
            digest = hashlib.sha256(challenge).digest()
            raw = bytes(private.sign(digest, mechanism=Mechanism.ECDSA))
            half = len(raw) // 2
            signature = encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )
        else:
            signature = bytes(private.sign(challenge, mechanism=Mechanism.EDDSA))
    except px.PKCS11Error:
        return None
    for peer in peers:
        public = _public_by_fingerprint(session, peer)
        if public is None:
            continue
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                public.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
            elif isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(signature, challenge)
            else:
                continue
        except InvalidSignature:
            continue
        return peer.fingerprint
    return None


def _public_by_fingerprint(session: pkcs11.Session, peer: TokenEntry) -> Any:
    for obj in session.get_objects(
        {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: bytes.fromhex(peer.cka_id)}
    ):
        attrs = obj.get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT])
        if peer.algorithm is None:
            return None
        try:
            der = spki_of(attrs, peer.algorithm.family)
        except (KeyError, ValueError, UnsupportedAlgorithm):
            continue
        if hashlib.sha256(der).hexdigest() == peer.fingerprint:
            return serialization.load_der_public_key(der)
    return None


def objects_of_key(session: pkcs11.Session, identity: KeyIdentity) -> list[tuple[Any, TokenEntry]]:
    """The objects of exactly this key (key object first), [] if it is not on the token.
    Raises AmbiguousKey when the token holds more than one object that could be it."""
    found = read_entries(session, {Attribute.ID: bytes.fromhex(identity.cka_id)})
    found = prove_pairs(session, found)
    chosen = select_key([e for _o, e in found], identity)
    by_index = {e.position: o for o, e in found}
    return [(by_index[e.position], e) for e in chosen]
