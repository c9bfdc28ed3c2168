"""What adopting a key from a token written by another tool would mean, before it is done.

``AdoptionCandidate`` is the record the CLI and the GUI's Adopt dialog show: the objects that
make the key with their live attributes, the purpose(s) its usage flags say it has, what
activating it for each purpose would take away, why its value may have been outside the token,
and whether it first needs a fresh CKA_ID. ``KeyService.adoption_candidates`` /
``adoption_candidate`` build them; ``KeyService.adopt`` carries one out.

Rules (issue 9, DESIGN.md "Keys and tokens"):
- the purpose is inferred from the key object's usage flags: a purpose fits when the key object
  (secret key, or private key of a pair) carries every flag that purpose gives it; exactly one
  fit is the inferred purpose, otherwise the officer must choose (``--purpose``);
- adoption never takes a usage away silently: what activation would clear is shown per purpose,
  an inferred purpose that would clear anything still needs the officer's explicit choice, and
  the adoption entry records it;
- an exposed key (not sensitive, once not sensitive, or extractable under any wrapping key) is
  adopted only with an explicit acknowledgement and stays marked;
- a public key alone, an EC private key without its public key, and types Keystead does not
  manage are refused; a key without a CKA_ID or sharing one needs a fresh CKA_ID (consent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.algorithms import Algorithm, Purpose, Usage, allowed_purposes, usage_for
from app.domain.identity import PRIVATE, PUBLIC, SECRET, Exposure, TokenEntry, exposure_of
from app.domain.keys import KeyState, ObjectKind, TokenObject
from app.domain.lifecycle import usage_in_state

_USAGES = {u.value: u for u in Usage}


@dataclass(frozen=True)
class AdoptionCandidate:
    """One unmanaged key on a token, as adoption would take it.

    ``objects`` are the token objects that make the key (key object first), each with its live
    attributes in ``attributes`` (object class name -> attribute name -> value, as the key
    detail panel shows them). ``inferred`` lists the fitting purposes, best first; ``purpose``
    is set only when exactly one fits. ``cleared_on_activation`` maps each purpose allowed for
    the algorithm to the usage flags activation would clear ("PRIVATE_KEY.DECRYPT", ...).
    ``refusal`` is why it cannot be adopted at all; ``needs_new_id`` that it can only be
    adopted after Keystead gives it a fresh CKA_ID; ``managed_as`` the name of the managed key
    it already is (adopted or generated here), so a dry run says so instead of an analysis.
    """

    token_serial: str
    token_label: str
    key: TokenObject
    objects: tuple[TokenEntry, ...]
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    inferred: tuple[Purpose, ...] = ()
    cleared_on_activation: dict[Purpose, tuple[str, ...]] = field(default_factory=dict)
    exposure: tuple[Exposure, ...] = ()
    refusal: str | None = None
    # The managed key these very objects already are (its name): adoption has nothing to do.
    managed_as: str | None = None
    # Set when a record here holds the same key material (KnownKeys): the refusal's rule.
    known_rule: str | None = None

    @property
    def cka_id(self) -> str:
        return self.key.cka_id

    @property
    def algorithm(self) -> Algorithm | None:
        return self.key.algorithm

    @property
    def identifier(self) -> str:
        """KCV or public-key SHA-256 (hex); "" when the token gives neither."""
        return self.key.identifier

    @property
    def purpose(self) -> Purpose | None:
        """The inferred purpose when exactly one fits, else None (the officer chooses)."""
        return self.inferred[0] if len(self.inferred) == 1 else None

    @property
    def needs_new_id(self) -> bool:
        return self.key.needs_new_id

    @property
    def ambiguous_id(self) -> bool:
        return self.key.shared_id

    @property
    def suggested_name(self) -> str | None:
        """The token label as a name, unless it had to be escaped (then a name is asked)."""
        label = self.key.label
        return label if label and "\\" not in label else None

    @property
    def related(self) -> tuple[str, ...]:
        return self.key.related

    def allowed_purposes(self) -> tuple[Purpose, ...]:
        return allowed_purposes(self.key.algorithm) if self.key.algorithm else ()


def candidate_for(
    key: TokenObject, entries: list[TokenEntry], attributes: dict[str, dict[str, Any]]
) -> AdoptionCandidate:
    """The candidate for the listed ``key`` made of ``entries`` (key object first)."""
    refusal = _refusal(key)
    key_part = next((e for e in entries if e.object_class in (SECRET, PRIVATE)), None)
    inferred: tuple[Purpose, ...] = ()
    cleared: dict[Purpose, tuple[str, ...]] = {}
    if refusal is None and key.algorithm is not None and key_part is not None:
        inferred = infer_purposes(key.algorithm, key_part)
        cleared = {
            p: cleared_by_activation(key.algorithm, p, entries)
            for p in allowed_purposes(key.algorithm)
        }
    return AdoptionCandidate(
        token_serial=key.token_serial,
        token_label=key.token_label,
        key=key,
        objects=tuple(entries),
        attributes=attributes,
        inferred=inferred,
        cleared_on_activation=cleared,
        exposure=exposure_of(key_part) if key_part else (),
        refusal=refusal,
    )


def _refusal(key: TokenObject) -> str | None:
    if key.kind is ObjectKind.PUBLIC_ONLY:
        return (
            "No private key with this ID on the token: only a public key is there, and "
            "Keystead adopts keys it can use (a private or secret key)."
        )
    if key.kind in (ObjectKind.CERTIFICATE, ObjectKind.DATA, ObjectKind.OTHER):
        return f"This is a {key.kind.value}, not a key; it is listed, never adopted."
    if key.algorithm is None:
        return "Keystead cannot manage this key's type or size; it manages " + ", ".join(
            a.value for a in Algorithm
        )
    if key.kind is ObjectKind.PRIVATE_ONLY and not key.identifier:
        return (
            "This private key's public key is not on the token (or cannot be matched to it), "
            "so Keystead cannot identify it by its public key. Import the public key under the "
            "same ID first."
        )
    return None


def _key_flags(entry: TokenEntry) -> frozenset[Usage]:
    return frozenset(_USAGES[f] for f in entry.flags if f in _USAGES)


def infer_purposes(algorithm: Algorithm, key_part: TokenEntry) -> tuple[Purpose, ...]:
    """Purposes whose every flag the key object carries (secret key: the purpose's whole set;
    private key: the private key's set), in the algorithm's order of preference."""
    flags = _key_flags(key_part)
    fits = []
    for purpose in allowed_purposes(algorithm):
        plan = usage_for(algorithm, purpose)
        needed = plan.secret if key_part.object_class == SECRET else plan.private
        if needed <= flags:
            fits.append(purpose)
    return tuple(fits)


def cleared_by_activation(
    algorithm: Algorithm, purpose: Purpose, entries: list[TokenEntry]
) -> tuple[str, ...]:
    """The usage flags that are set now and that activating the key for ``purpose`` clears."""
    private, public = usage_in_state(algorithm, purpose, KeyState.ACTIVE)
    keep = {SECRET: private | public, PRIVATE: private, PUBLIC: public}
    out: list[str] = []
    for entry in entries:
        wanted = keep.get(entry.object_class, frozenset())
        out.extend(
            f"{entry.object_class}.{u.value}"
            for u in sorted(_key_flags(entry) - wanted, key=lambda u: u.value)
        )
    return tuple(out)
