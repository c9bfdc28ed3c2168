"""Records to JSON-ready dicts and to aligned text tables."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from app.cli.terminal import one_line as one_line  # re-exported

if TYPE_CHECKING:  # shapes only: `keystead --help` must not import the layers below
    from datetime import datetime

    from app.domain.keys import InventoryItem, KeyRecord, TokenObject
    from app.hsm.capabilities import Capabilities
    from app.hsm.mechanisms import MechanismRow
    from app.hsm.module import TokenInfo
    from app.services.adoption import AdoptionCandidate
    from app.services.keys import KeyDetails
    from app.services.token_admin import InitImpact
    from app.services.token_inspect import TokenView
    from app.services.tokens import TokenStatus
    from app.storage.events import StoredEvent


def key_dict(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "algorithm": key.algorithm.value,
        "size": key.algorithm.spec.size_label,
        "purpose": key.purpose.value,
        "state": key.state.value,
        "token": key.token_label,
        "token_serial": key.token_serial,
        "cka_id": key.cka_id,
        "extractable": key.extractable,
        "kcv": key.kcv,
        "fingerprint": key.fingerprint,
        "created_at": key.created_at.isoformat(),
        "created_by": key.created_by,
        "activation_date": _iso(key.activation_date),
        "deactivation_date": _iso(key.deactivation_date),
        "compromise_date": _iso(key.compromise_date),
        "replaces": key.replaces,
        "replaced_by": key.replaced_by,
        "token_sync": key.token_sync.value,
        "token_sync_text": key.token_sync.title,
        "wrap_trusted": key.wrap_trusted.value,
        "wrap_trusted_text": key.wrap_trusted.title,
        "tags": list(key.tags),
        "notes": key.notes,
        "exposure": list(key.exposure),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def event_dict(event: StoredEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "time": event.ts,
        "operators": ", ".join(event.operators),
        "action": event.action,
        "subject": event.subject,
        "outcome": event.outcome,
        "details": event.details,
    }


def event_summary(row: dict[str, Any]) -> str:
    details = row["details"]
    parts = []
    if "from" in details:
        parts.append(f"{details['from']} -> {details['to']}")
    if "setting" in details and "value" in details:
        # A policy switch (e.g. policy.airgap): what it was and what it became.
        before = f"{details['previous']} -> " if "previous" in details else ""
        parts.append(f"{details['setting']}: {before}{details['value']}")
    if "fault" in details and "repair" in details:  # token.store-repair: what, and done how
        where = "/".join(str(details[k]) for k in ("token_dir", "file") if details.get(k))
        parts.append(f"{where}: {details['fault']}, {details['repair']}".lstrip(": "))
    for key in ("rule", "reason", "refusal", "error", "successor_name"):
        if details.get(key):
            parts.append(f"{key}: {details[key]}")
    approval = details.get("approval")
    if isinstance(approval, dict):
        approvers = approval.get("approvers") or []
        policy = str(approval.get("policy") or "")
        if approvers:
            parts.append(f"approved by: {', '.join(str(a) for a in approvers)}")
        elif "bootstrap" in policy:
            parts.append("approval: none (sole operator enrols the second)")
    return "; ".join(parts)


def _object_fields(obj: TokenObject | None) -> dict[str, Any]:
    """What the token says about a listed object: its kind, identifier, whether its CKA_ID is
    shared, related certificates/data objects, exposure and live usage flags."""
    if obj is None:
        return {"object_kind": None, "shared_id": False, "related": [], "token_usage": []}
    return {
        "object_kind": obj.kind.value,
        "object_classes": list(obj.classes),
        "object_label": obj.label,
        "object_cka_id": obj.cka_id,
        "identifier": obj.identifier,
        "shared_id": obj.shared_id,
        "needs_new_id": obj.needs_new_id,
        "related": list(obj.related),
        "token_exposure": list(obj.exposure),
        "token_usage": list(obj.usage),
    }


def item_dict(item: InventoryItem) -> dict[str, Any]:
    if item.record is not None:
        return {
            **key_dict(item.record),
            "presence": item.presence.value,
            **_object_fields(item.token_object),
        }
    obj = item.token_object
    if obj is None:
        raise ValueError("an inventory item has a record or a token object")
    return {
        **_object_fields(obj),
        "id": None,
        "name": obj.label,
        "algorithm": obj.algorithm.value if obj.algorithm else obj.key_type,
        "size": obj.algorithm.spec.size_label if obj.algorithm else "",
        "purpose": None,
        "state": None,
        "token": obj.token_label,
        "token_serial": obj.token_serial,
        "cka_id": obj.cka_id,
        "kcv": obj.identifier if obj.algorithm and obj.algorithm.symmetric else None,
        "fingerprint": obj.identifier if obj.algorithm and not obj.algorithm.symmetric else None,
        "created_at": None,
        "created_by": None,
        "presence": item.presence.value,
        "exposure": list(obj.exposure),
    }


def candidate_dict(candidate: AdoptionCandidate) -> dict[str, Any]:
    """An adoption candidate as the CLI shows it (``keys adopt --dry-run``)."""
    return {
        **_object_fields(candidate.key),
        "token": candidate.token_label,
        "token_serial": candidate.token_serial,
        "cka_id": candidate.cka_id,
        "label": candidate.key.label,
        "algorithm": candidate.algorithm.value if candidate.algorithm else candidate.key.key_type,
        "suggested_name": candidate.suggested_name,
        "inferred_purposes": [p.value for p in candidate.inferred],
        "purpose": candidate.purpose.value if candidate.purpose else None,
        "cleared_on_activation": {
            p.value: list(c) for p, c in candidate.cleared_on_activation.items()
        },
        "exposure_text": [e.title for e in candidate.exposure],
        "refusal": candidate.refusal,
        "managed_as": candidate.managed_as,
        "objects": [e.describe for e in candidate.objects],
        "attributes": candidate.attributes,
    }


def token_dict(status: TokenStatus) -> dict[str, Any]:
    info: TokenInfo = status.info
    return {
        "label": info.label,
        "serial": info.serial,
        "manufacturer": info.manufacturer,
        "model": info.model,
        "slot": info.slot_id,
        "module": info.module_path,
        "flags": info.flag_words,
        "logged_in": status.logged_in,
        "pin_failures": status.pin_failures,
        "reported_serial": info.reported_serial,
        "ambiguous": status.ambiguous,
    }


def details_dict(details: KeyDetails) -> dict[str, Any]:
    return {
        **key_dict(details.record),
        "presence": details.presence.value,
        "identifier_words": details.identifier_words,
        "token_attributes": details.token_attributes,
    }


# --- the terminal boundary ---------------------------------------------------------------------


def print_json(value: Any) -> None:
    import json  # not needed for --help

    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


MAX_CELL = 80  # characters of one table cell; longer values end in "…"


def _cell(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    indent: str = "",
    cut: Collection[str] = (),
) -> None:
    """Aligned text: ``columns`` are (key, heading). A cell of a column in ``cut`` longer
    than ``MAX_CELL`` characters (a 5,000-byte label or 4 KB CKA_ID another tool gave an
    object) ends in "…" so one row cannot widen every other; ``--json`` keeps every value
    whole. Columns not in ``cut`` (audit details, reasons) are never shortened."""
    cells = [[heading for _, heading in columns]]
    cells += [
        [
            ""
            if r.get(k) is None
            else _cell(one_line(str(r.get(k)))) if k in cut else one_line(str(r.get(k)))
            for k, _ in columns
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print(indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def token_view_dict(
    view: TokenView, mechanisms: Sequence[MechanismRow], capabilities: Capabilities | None
) -> dict[str, Any]:
    """One token for ``tokens show``: info, details, mechanisms, capabilities."""
    details = view.details
    return {
        **token_dict(view.status),
        "manufacturer": view.status.info.manufacturer,
        "hardware_version": view.status.info.hardware_version,
        "firmware_version": view.status.info.firmware_version,
        "objects": view.objects,
        "details": details.words() if details else [view.details_error or "not reported"],
        "pin_length": [details.min_pin, details.max_pin] if details else None,
        "mechanisms": [
            {
                "name": m.name,
                "code": f"{m.code:#x}",
                "min_key": m.min_key,
                "max_key": m.max_key,
                "can": m.can(),
            }
            for m in mechanisms
        ],
        "capabilities": capabilities.to_json() if capabilities else None,
        "capability_words": (
            capabilities.words() if capabilities else ["not probed yet: log in to the token"]
        ),
        "probed_at": view.probed_at,
    }


def print_token_view(shown: dict[str, Any]) -> None:
    print(f"{shown['label']}  (serial {shown['serial']})")
    print(
        f"  {shown['manufacturer']} {shown['model']}, hardware {shown['hardware_version']}, "
        f"firmware {shown['firmware_version']}"
    )
    print(f"  module: {shown['module']}")
    print(
        f"  logged in: {'yes' if shown['logged_in'] else 'no'}; objects: "
        f"{'?' if shown['objects'] is None else shown['objects']}; "
        f"wrong PINs in a row: {shown['pin_failures']}"
    )
    print(f"  flags: {', '.join(shown['flags'])}")
    for line in shown["details"]:
        print(f"  {line}")
    print("Capabilities" + (f" (probed {shown['probed_at']})" if shown["probed_at"] else "") + ":")
    for line in shown["capability_words"]:
        print(f"  {line}")
    print(f"Mechanisms ({len(shown['mechanisms'])}):")
    rows = [
        {
            **m,
            "range": "" if m["min_key"] is None else f"{m['min_key']}-{m['max_key']}",
            "can_text": ", ".join(m["can"]),
        }
        for m in shown["mechanisms"]
    ]
    print_table(
        rows,
        [("name", "NAME"), ("code", "CODE"), ("range", "KEY SIZE"), ("can_text", "CAN")],
        indent="  ",
    )


def init_impact_text(impact: InitImpact) -> str:
    """What initialising a token erases, said before the confirmation."""
    seen = (
        "an unknown number of objects (log in to count them)"
        if impact.objects_seen is None
        else f"{impact.objects_seen} object(s)"
    )
    lines = [
        f"Initialising token '{impact.token.label}' (serial {impact.token.serial}) erases "
        f"{seen} on it, for good."
    ]
    if impact.tombstones:
        lines.append(f"{impact.tombstones} destroyed key record(s) keep their history.")
    return "\n".join(lines)


def print_events(rows: list[dict[str, Any]], subject: bool = True) -> None:
    """Audit entries as an aligned table, with a one-line summary of their details."""
    for row in rows:
        row["summary"] = event_summary(row)
    columns = [
        ("seq", "SEQ"),
        ("time", "TIME (UTC)"),
        ("operators", "BY"),
        ("action", "ACTION"),
        *([("subject", "SUBJECT")] if subject else []),
        ("outcome", "OUTCOME"),
        ("summary", "DETAILS"),
    ]
    print_table(rows, columns)
