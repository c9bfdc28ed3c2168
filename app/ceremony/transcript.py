"""The ceremony transcript: built from the records, hashed into the audit chain, verified and
compared.

The transcript is canonical JSON (sorted keys, two-space indent, UTF-8, final newline) of::

    {"format": "keystead-ceremony-transcript-v1",
     "ceremony": {id, name, title, profile, token {serial, label}, administrator, state,
                  reason, created_at, started_at, ended_at, workstation},
     "script": {sha256, pgp_words, text},
     "participants": [{name, role, kind, organisation, registered_at}],
     "checkpoints": {"before": {seq, head, time} | null, "after": … | null},
     "steps": [{position, id, type, instruction, params, expect, signers, quorum, state,
                performed_by, performed_at, outputs, signoffs [{name, role, kind, initials,
                at}], reason}]}

Its SHA-256 is written into the chain by the entry that ends the ceremony
(``ceremony.complete`` / ``.fail`` / ``.abandon``, detail ``transcript_sha256``); building it
again from the same records gives the same bytes. ``verify`` finds that entry and compares;
``diff`` sets a rehearsal beside the real run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.domain.fingerprints import pgp_words
from app.errors import AuditIntegrityError, ValidationError
from app.storage.ceremonies import CeremonyRepository, CeremonyRow
from app.storage.events import list_events

if TYPE_CHECKING:
    from app.ceremony.script import Script
    from app.services.workstation import Workstation

FORMAT = "keystead-ceremony-transcript-v1"
ENDINGS = ("ceremony.complete", "ceremony.fail", "ceremony.abandon")


def document(ws: Workstation, row: CeremonyRow, script: Script) -> dict[str, Any]:
    repo = CeremonyRepository(ws.db)
    steps = repo.steps(row.id)
    return {
        "format": FORMAT,
        "ceremony": {
            "id": row.id,
            "name": row.name,
            "title": row.title,
            "profile": row.profile,
            "token": {"serial": row.token_serial, "label": row.token_label},
            "administrator": row.administrator,
            "state": row.state,
            "reason": row.reason,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "workstation": ws.workstation_id,
        },
        "script": {
            "sha256": row.script_sha256,
            "pgp_words": " ".join(pgp_words(bytes.fromhex(row.script_sha256))),
            "text": row.script.decode("utf-8"),
        },
        "participants": [
            {
                "name": p.name,
                "role": p.role,
                "kind": p.kind,
                "organisation": p.organisation,
                "registered_at": p.registered_at,
            }
            for p in repo.participants(row.id)
        ],
        "checkpoints": {"before": row.checkpoint_before, "after": row.checkpoint_after},
        "steps": [
            {
                "position": s.position,
                "id": step.id,
                "type": step.type,
                "title": step.spec.title,
                "instruction": step.instruction,
                "params": dict(step.params),
                "expect": dict(step.expect),
                "signers": list(step.signers),
                "quorum": step.quorum,
                "state": s.state,
                "performed_by": s.performed_by,
                "performed_at": s.performed_at,
                "outputs": s.outputs,
                "signoffs": s.signoffs,
                "reason": s.reason,
            }
            for s, step in zip(steps, script.steps, strict=True)
        ],
    }


def encode(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Verified:
    ceremony_id: str
    sha256: str
    entry_seq: int
    action: str


def verify(ws: Workstation, data: bytes) -> Verified:
    """Check a transcript file against the audit chain: the SHA-256 of ``data`` must be the one
    recorded when its ceremony ended. Raises ``AuditIntegrityError`` when it differs (the file
    was changed) and ``ValidationError`` when it is not a transcript at all. Verify the chain
    itself with ``keystead audit verify``."""
    try:
        doc = json.loads(data.decode("utf-8"))
        ceremony_id = str(doc["ceremony"]["id"])
        if doc.get("format") != FORMAT:
            raise ValueError("format")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ValidationError("This file is not a Keystead ceremony transcript.") from exc
    recorded = None
    for entry in list_events(ws.db, f"ceremony:{ceremony_id}"):
        if entry.action in ENDINGS:
            details = json.loads(entry.details_json)
            if isinstance(details, dict) and "transcript_sha256" in details:
                recorded = (entry, str(details["transcript_sha256"]))
    if recorded is None:
        raise AuditIntegrityError(
            f"The audit chain records no end of ceremony {ceremony_id}: this transcript cannot "
            "be vouched for."
        )
    entry, digest = recorded
    actual = sha256(data)
    if actual != digest:
        raise AuditIntegrityError(
            f"The transcript differs from the one recorded in the audit chain (entry "
            f"{entry.seq}): SHA-256 {actual} here, {digest} recorded. It was changed."
        )
    return Verified(ceremony_id, actual, entry.seq, entry.action)


# --- rehearsal diff --------------------------------------------------------------------------

# Ceremony fields that always differ between two runs.
_EXPECTED_CEREMONY = (
    "id",
    "profile",
    "token",
    "created_at",
    "started_at",
    "ended_at",
    "workstation",
    "administrator",
)


@dataclass
class Difference:
    where: str
    first: Any
    second: Any

    def text(self) -> str:
        return f"{self.where}: {_short(self.first)} → {_short(self.second)}"


@dataclass
class Comparison:
    expected: list[Difference] = field(default_factory=list)
    unexpected: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.unexpected


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 72 else text[:69] + "…"


def diff(first: dict[str, Any], second: dict[str, Any]) -> Comparison:
    """Compare two transcripts step by step. Expected to differ: times, the ceremony id,
    profile and token, checkpoints, and each step's outputs its type declares as varying
    (serials, key ids, check values, fingerprints, certificate hashes). Everything else —
    script hash, steps and their parameters, states, who took which part — is unexpected."""
    from app.ceremony.registry import spec

    result = Comparison()
    a, b = first["ceremony"], second["ceremony"]
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            bucket = result.expected if name in _EXPECTED_CEREMONY else result.unexpected
            bucket.append(Difference(f"ceremony.{name}", a.get(name), b.get(name)))
    if first["script"]["sha256"] != second["script"]["sha256"]:
        result.unexpected.append(
            Difference("script.sha256", first["script"]["sha256"], second["script"]["sha256"])
        )
    if first["checkpoints"] != second["checkpoints"]:
        result.expected.append(Difference("checkpoints", "…", "…"))
    roles_a = sorted(p["role"] for p in first["participants"])
    roles_b = sorted(p["role"] for p in second["participants"])
    if roles_a != roles_b:
        result.unexpected.append(Difference("participants (roles)", roles_a, roles_b))
    elif first["participants"] != second["participants"]:
        result.expected.append(Difference("participants (names, kinds, times)", "…", "…"))
    steps_a, steps_b = first["steps"], second["steps"]
    if len(steps_a) != len(steps_b):
        result.unexpected.append(Difference("steps (count)", len(steps_a), len(steps_b)))
    for sa, sb in zip(steps_a, steps_b, strict=False):
        where = f"step {sa['position'] + 1} '{sa['id']}'"
        for name in (
            "id",
            "type",
            "instruction",
            "params",
            "expect",
            "signers",
            "quorum",
            "state",
            "reason",
        ):
            if sa.get(name) != sb.get(name):
                result.unexpected.append(Difference(f"{where} {name}", sa.get(name), sb.get(name)))
        for name in ("performed_at",):
            if sa.get(name) != sb.get(name):
                result.expected.append(Difference(f"{where} {name}", sa.get(name), sb.get(name)))
        found = spec(str(sa["type"]))
        varying = found.varying if found is not None else frozenset()
        outputs_a, outputs_b = sa.get("outputs", {}), sb.get("outputs", {})
        for name in sorted(set(outputs_a) | set(outputs_b)):
            va, vb = outputs_a.get(name), outputs_b.get(name)
            if va == vb:
                continue
            bucket = (
                result.expected
                if name in varying and va is not None and vb is not None
                else result.unexpected
            )
            bucket.append(Difference(f"{where} output {name}", va, vb))
        if len(sa.get("signoffs", [])) != len(sb.get("signoffs", [])):
            result.unexpected.append(
                Difference(f"{where} sign-offs", len(sa["signoffs"]), len(sb["signoffs"]))
            )
        elif sa.get("signoffs") != sb.get("signoffs"):
            result.expected.append(Difference(f"{where} sign-off times and names", "…", "…"))
    return result
