"""The workstation's audit objects on its audit token: the MAC key, the checkpoint key pair and
the signed checkpoint documents (``docs/audit-verification.md``).

``AuditObjects`` keeps their handles for one logged-in ``TokenSession`` (one search per login,
issue 17); the session owns one and passes its current python-pkcs11 session to every call,
because a reopened session replaces it. Errors are python-pkcs11's (the session translates
them with ``pkcs11_errors``), or ``TokenError`` when the token holds no such key. No
python-pkcs11 object leaves ``app/hsm``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
import pkcs11.exceptions as px
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from app.errors import TokenError
from app.hsm.errors import pkcs11_errors
from app.hsm.module import Pkcs11Module, TokenInfo
from app.hsm.templates import CURVE_PARAMS

# The workstation's audit keys, recognised by fixed CKA_IDs.
AUDIT_MAC_ID = b"KEYSTEAD-AUDIT-MAC"
AUDIT_CHECKPOINT_ID = b"KEYSTEAD-AUDIT-CHECKPOINT"
AUDIT_IDS = (AUDIT_MAC_ID, AUDIT_CHECKPOINT_ID)
CHECKPOINT_APPLICATION = "keystead-audit-checkpoint"

# What a kept handle whose object was deleted behind the session answers with.
STALE_HANDLE = (px.ObjectHandleInvalid, px.KeyHandleInvalid)
T = TypeVar("T")

# What holding the audit keys takes (``ensure_audit_keys``): a generic secret for SHA256-HMAC and
# an EC P-256 pair for ECDSA checkpoints, stored as token objects beside CKO_DATA checkpoints.
AUDIT_MECHANISMS = ("GENERIC_SECRET_KEY_GEN", "SHA256_HMAC", "EC_KEY_PAIR_GEN", "ECDSA")


class AuditObjects:
    """The audit key and checkpoint object handles of one token session, found by one search
    per login and kept until ``forget`` (a new session, a changed login, the end)."""

    def __init__(self, label: str) -> None:
        self._label = label  # the token's label, for the words of a TokenError
        self.found: dict[tuple[ObjectClass, bytes], Any] = {}
        # (label, object) of the checkpoint objects, from the audit index; None until built.
        self._checkpoints: list[tuple[str, Any]] | None = None
        self._indexed = False

    def forget(self) -> None:
        """Drop cached object handles (a new session, a changed login, the end)."""
        self.found.clear()
        self._checkpoints = None
        self._indexed = False

    def _index(self, session: pkcs11.Session) -> None:
        """One search per login for everything the audit needs: the MAC key, the checkpoint
        key pair and the checkpoint objects. Finding objects is a linear scan of the token
        (about 0.2 s at 10,000 SoftHSM objects, whatever the template), so this replaces the
        four searches a command made (rollback check, MAC key, checkpoint key, pruning).

        All of them, and nothing Keystead generates for people, are CKA_MODIFIABLE false;
        the few other non-modifiable objects on a token (a backup KEK, foreign objects) are
        told apart by class and CKA_ID / CKA_APPLICATION. The checkpoint list is trusted only
        when the same search found the MAC key: a token that does not match on
        CKA_MODIFIABLE then falls back to the dedicated searches (never to "no
        checkpoints", which would pass a rollback check it should not)."""
        self._indexed = True
        found: dict[tuple[ObjectClass, bytes], Any] = {}
        checkpoints: list[tuple[str, Any]] = []
        for obj in session.get_objects({Attribute.TOKEN: True, Attribute.MODIFIABLE: False}):
            # python-pkcs11 gives key and certificate objects a class of their own, but a data
            # object is a plain Object whose ``object_class`` is None: ask the token then.
            cls = getattr(obj, "object_class", None)
            if cls is None:
                cls = obj[Attribute.CLASS]
            if cls == ObjectClass.DATA:
                if obj[Attribute.APPLICATION] == CHECKPOINT_APPLICATION:
                    checkpoints.append((str(obj[Attribute.LABEL]), obj))
            elif cls in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                cka_id = bytes(obj[Attribute.ID] or b"")
                if cka_id in AUDIT_IDS:
                    found.setdefault((cls, cka_id), obj)
        self.found.update(found)
        if (ObjectClass.SECRET_KEY, AUDIT_MAC_ID) in found:
            self._checkpoints = checkpoints

    def one(self, session: pkcs11.Session, cls: ObjectClass, cka_id: bytes) -> Any | None:
        """The object of this class and CKA_ID; the audit keys come from the one search per
        login (``_index``), other objects from a search of their own."""
        if cka_id in AUDIT_IDS:
            cached = self.found.get((cls, cka_id))
            if cached is None and not self._indexed:
                self._index(session)
                cached = self.found.get((cls, cka_id))
            if cached is not None:
                return cached
        found = list(session.get_objects({Attribute.CLASS: cls, Attribute.ID: cka_id}))
        if found and cka_id in AUDIT_IDS:
            self.found[(cls, cka_id)] = found[0]
        return found[0] if found else None

    def ensure_keys(self, session: pkcs11.Session) -> bool:
        """Create the audit MAC key and checkpoint key pair unless present. True if created.

        The MAC key is a 256-bit generic secret that can only sign and verify, is sensitive,
        never extractable and not modifiable: the database key alone cannot forge a MAC.
        """
        created = False
        if self.one(session, ObjectClass.SECRET_KEY, AUDIT_MAC_ID) is None:
            session.generate_key(
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
        if self.one(session, ObjectClass.PRIVATE_KEY, AUDIT_CHECKPOINT_ID) is None:
            session.generate_keypair(
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

    def has_keys(self, session: pkcs11.Session) -> bool:
        """True if the token holds the audit MAC key."""
        return self.one(session, ObjectClass.SECRET_KEY, AUDIT_MAC_ID) is not None

    def _using(
        self, session: pkcs11.Session, cls: ObjectClass, cka_id: bytes, use: Callable[[Any], T]
    ) -> T:
        """``use(object)`` with this audit object. A kept handle whose object went away
        behind this session (another program deleted it: CKR_OBJECT_HANDLE_INVALID or
        CKR_KEY_HANDLE_INVALID) is dropped with the rest and the token searched again, so the
        answer is the one a new login would get (the object, or ``TokenError`` saying the
        token lacks it), never the stale handle's error."""
        for fresh in (False, True):
            obj = self.one(session, cls, cka_id)
            if obj is None:
                what = "audit key" if cka_id == AUDIT_MAC_ID else "checkpoint key"
                raise TokenError(f"Token '{self._label}' holds no {what}.")
            try:
                return use(obj)
            except STALE_HANDLE:
                if fresh:
                    raise
                self.forget()
        raise AssertionError("unreachable")  # pragma: no cover

    def mac(self, session: pkcs11.Session, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` computed inside the token with the audit key."""
        return self._using(
            session,
            ObjectClass.SECRET_KEY,
            AUDIT_MAC_ID,
            lambda key: bytes(key.sign(data, mechanism=Mechanism.SHA256_HMAC)),
        )

    def checkpoint_public_key(self, session: pkcs11.Session) -> Any:
        """The public key object of the checkpoint signing key (its SPKI is read by the
        session, which builds SPKIs for every key)."""
        return self._using(session, ObjectClass.PUBLIC_KEY, AUDIT_CHECKPOINT_ID, lambda k: k)

    def sign_checkpoint(self, session: pkcs11.Session, message: bytes) -> bytes:
        """DER ECDSA-P256-SHA256 signature of ``message`` by the checkpoint key."""
        digest = hashlib.sha256(message).digest()
        raw = self._using(
            session,
            ObjectClass.PRIVATE_KEY,
            AUDIT_CHECKPOINT_ID,
            lambda key: bytes(key.sign(digest, mechanism=Mechanism.ECDSA)),
        )
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def store_checkpoint(
        self, session: pkcs11.Session, seq: int, document: bytes, keep: int = 8
    ) -> None:
        """A new data object per checkpoint; only the newest ``keep`` are kept."""
        objects = self._checkpoint_objects(session)  # before the new one: no search after it
        created = session.create_object(
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
        try:
            objects.append((f"keystead-checkpoint-{seq:012d}", created))
            objects.sort(key=lambda o: o[0])
            for _label, obj in objects[:-keep]:
                with contextlib.suppress(px.ObjectHandleInvalid):  # already gone
                    obj.destroy()
            del objects[:-keep]
        except BaseException:
            self._checkpoints = None  # unsure what is left: the next use searches again
            raise

    def _checkpoint_objects(self, session: pkcs11.Session) -> list[tuple[str, Any]]:
        """The checkpoint objects of this token, searched once per login and kept up to date
        by ``store_checkpoint`` (the list itself: callers may change it)."""
        if self._checkpoints is None and not self._indexed:
            self._index(session)
        if self._checkpoints is None:  # the token did not answer the index search usefully
            found = session.get_objects(
                {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: CHECKPOINT_APPLICATION}
            )
            self._checkpoints = [(str(obj[Attribute.LABEL]), obj) for obj in found]
        return self._checkpoints

    def checkpoint_documents(self, session: pkcs11.Session) -> list[bytes]:
        """The signed checkpoint documents on the token (CKA_VALUE of each checkpoint object).
        A kept checkpoint another program deleted since the login makes the list be searched
        again (as ``_using`` does for keys)."""
        try:
            return [bytes(o[Attribute.VALUE]) for _label, o in self._checkpoint_objects(session)]
        except STALE_HANDLE:
            self.forget()
        return [bytes(o[Attribute.VALUE]) for _label, o in self._checkpoint_objects(session)]


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
