"""Re-binding keys to a replacement token.

Keys are bound to token serial + CKA_ID. When a token is replaced (a new HSM holding restored
keys, a re-initialised token restored from backup), the records still name the old serial. A
record is offered for re-binding only when an unmanaged object on a logged-in token is the
same key: equal KCV (CKA_CHECK_VALUE) for secret keys, equal SHA-256 of the
SubjectPublicKeyInfo for key pairs. Labels, IDs and slot numbers are never evidence. The
officer confirms each re-binding; it is recorded with the old and new binding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.domain.keys import KeyRecord, KeyState, ObjectKind, Presence
from app.errors import NotFoundError, ValidationError
from app.services.audit import Outcome, record, record_alone
from app.services.executor import assert_core_thread
from app.services.guard import Guard, unguarded
from app.services.keys import KeyService
from app.services.tokens import TokenService
from app.storage.database import Database

log = logging.getLogger(__name__)

_DEAD = (KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED)


@dataclass(frozen=True)
class RebindCandidate:
    """A managed key whose object was found, by its identity, on another token."""

    key: KeyRecord
    token_serial: str
    token_label: str
    cka_id: str
    matched_by: str  # "KCV 1A2B3C" or "public key SHA-256 ab12…"


class RebindService:
    """Core-thread service: find and confirm re-bindings."""

    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        keys: KeyService,
        operator: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.tokens = tokens
        self.keys = keys
        self.operator = operator
        self.clock = clock
        self.guard: Guard = unguarded  # the role check (wired by the workstation)

    def candidates(self) -> list[RebindCandidate]:
        """Records whose object is gone or whose token is absent, matched by identity with
        unmanaged objects on the logged-in tokens."""
        assert_core_thread()
        items = self.keys.inventory()
        present = {t.serial for t in self.tokens.present()}
        orphans = [
            i.record
            for i in items
            if i.record is not None
            and i.record.state not in _DEAD
            and (i.presence is Presence.MISSING or i.record.token_serial not in present)
        ]
        if not orphans:
            return []
        found: dict[str, tuple[str, str, str]] = {}  # identifier -> (serial, label, cka_id)
        for item in items:
            obj = item.token_object
            if item.presence is not Presence.UNMANAGED or obj is None or not obj.cka_id:
                continue
            # Only a key the token can use (a secret key or a private key with its public
            # key), under a CKA_ID no other key shares: never a public key alone.
            if obj.algorithm is None or obj.kind not in (ObjectKind.SECRET, ObjectKind.PAIR):
                continue
            if obj.shared_id:
                continue
            identifier = obj.identifier
            if identifier:
                found.setdefault(
                    identifier.lower(), (obj.token_serial, obj.token_label, obj.cka_id)
                )
        result = []
        for key in orphans:
            identifier = (key.kcv or key.fingerprint or "").lower()
            match = found.get(identifier) if identifier else None
            if match is None:
                continue
            serial, label, cka_id = match
            matched_by = f"KCV {key.kcv}" if key.kcv else f"public key SHA-256 {identifier[:16]}…"
            result.append(RebindCandidate(key, serial, label, cka_id, matched_by))
        return result

    def rebind(self, key_ref: str, token_ref: str) -> KeyRecord:
        """Bind ``key_ref`` to its twin on ``token_ref`` (after the officer confirmed)."""
        assert_core_thread()
        self.guard("key.rebind", f"key:{key_ref}")
        key = self.keys.resolve(key_ref)
        info = self.tokens.find(token_ref)
        match = next(
            (c for c in self.candidates() if c.key.id == key.id and c.token_serial == info.serial),
            None,
        )
        if match is None:
            record_alone(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.rebind",
                subject=f"key:{key.id}",
                outcome=Outcome.DENIED,
                details={"token": info.serial, "reason": "no object with this key's identity"},
            )
            raise NotFoundError(
                f"Token '{info.label}' holds no unmanaged key with the KCV or public key of "
                f"'{key.name}' (log in to it first). Nothing was changed."
            )
        if match.token_serial == key.token_serial and match.cka_id == key.cka_id:
            raise ValidationError(f"'{key.name}' is already bound to that object.")
        rebound = key._replace(
            token_serial=match.token_serial, token_label=match.token_label, cka_id=match.cka_id
        )
        with self.db.transaction():
            self.keys.repo.rebind(rebound)
            record(
                self.db,
                when=self.clock(),
                operators=(self.operator,),
                action="key.rebind",
                subject=f"key:{key.id}",
                outcome=Outcome.SUCCESS,
                details={
                    "from": {"token": key.token_serial, "cka_id": key.cka_id},
                    "to": {"token": match.token_serial, "cka_id": match.cka_id},
                    "matched_by": match.matched_by,
                },
            )
        log.info("key %s re-bound to token %s", key.id, match.token_serial)
        return rebound
