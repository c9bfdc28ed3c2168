"""Key material this workstation already knows: the one check behind "a key is brought onto
this workstation once, and a retired key never again" (rule KS-DIST-KNOWN-KEY).

Used by every path that puts key material on a token from outside: ``keys import-wrapped``,
``backup restore`` and ``keys adopt``. A key is the same key when it has the same record id,
or the same algorithm and KCV (secret keys; the 3-byte AES check value, as the token computes
it), or the same SubjectPublicKeyInfo SHA-256 (key pairs). NIST SP 800-57 Part 1 §5.3.4: a
compromised key is never used to protect information again; a destroyed key is gone for good.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.domain.algorithms import Algorithm
from app.domain.keys import KeyRecord, KeyState

RULE_KNOWN_KEY = "KS-DIST-KNOWN-KEY"
RETIRED = frozenset({KeyState.COMPROMISED, KeyState.DESTROYED, KeyState.DESTROYED_COMPROMISED})


def material_of(algorithm: Algorithm, kcv: str | None, fingerprint: str | None) -> str | None:
    """The identity of a key's material: "AES-256:KCV" for secret keys, "spki:SHA-256" for key
    pairs; None when it is not known."""
    if algorithm.symmetric:
        return f"{algorithm.value}:{kcv.upper()}" if kcv else None
    return f"spki:{fingerprint.lower()}" if fingerprint else None


@dataclass(frozen=True)
class KnownKey:
    """A record here that holds the same key material, and how it is shown."""

    record: KeyRecord
    identifier: str  # the KCV or fingerprint that matched, as people read it

    @property
    def retired(self) -> bool:
        return self.record.state in RETIRED

    def describe(self) -> str:
        """One clause for a refusal: which key here, and in which state."""
        name = self.record.name
        state = self.record.state.title.lower()
        if self.retired:
            return (
                f"the same key as '{name}' ({self.identifier}), recorded here as {state}; a "
                "retired key is never brought back"
            )
        return (
            f"the same key as '{name}' ({self.identifier}), which this workstation holds "
            f"({state})"
        )


class KnownKeys:
    """This workstation's records indexed by id and by key material (built once: a restore
    checks thousands of keys)."""

    def __init__(self, records: Iterable[KeyRecord]) -> None:
        self._by_id: dict[str, KeyRecord] = {}
        self._by_material: dict[str, list[KeyRecord]] = {}
        for record in records:
            self.add(record)

    def add(self, record: KeyRecord) -> None:
        self._by_id[record.id] = record
        material = material_of(record.algorithm, record.kcv, record.fingerprint)
        if not record.token_serial and record.state not in RETIRED:
            # A live verify-only record (an imported public key) holds no private key: its
            # private half may still be restored or adopted. A retired one's never may.
            return
        if material is not None:
            self._by_material.setdefault(material, []).append(record)

    def holding(
        self,
        algorithm: Algorithm,
        kcv: str | None,
        fingerprint: str | None,
        key_id: str | None = None,
    ) -> KnownKey | None:
        """A record holding this key (the same id, else the same material), a retired one
        first (it decides a refusal); None when the key is new here."""
        same_id = self._by_id.get(key_id) if key_id else None
        material = material_of(algorithm, kcv, fingerprint)
        matches = [*([same_id] if same_id else []), *self._by_material.get(material or "", [])]
        if not matches:
            return None
        found = next((r for r in matches if r.state in RETIRED), matches[0])
        shown = (kcv or "").upper() if algorithm.symmetric else (fingerprint or "")[:16] + "…"
        return KnownKey(found, f"KCV {shown}" if algorithm.symmetric else f"SHA-256 {shown}")
