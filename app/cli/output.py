"""Records to JSON-ready dicts and to aligned text tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.domain.keys import InventoryItem, KeyRecord
from app.hsm.module import TokenInfo
from app.services.keys import KeyDetails
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
        "tags": list(key.tags),
        "notes": key.notes,
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
    for key in ("reason", "refusal", "error", "successor_name"):
        if details.get(key):
            parts.append(f"{key}: {details[key]}")
    return "; ".join(parts)


def item_dict(item: InventoryItem) -> dict[str, Any]:
    if item.record is not None:
        return {**key_dict(item.record), "presence": item.presence.value}
    obj = item.token_object
    if obj is None:
        raise ValueError("an inventory item has a record or a token object")
    return {
        "id": None,
        "name": obj.label,
        "algorithm": obj.algorithm.value if obj.algorithm else obj.key_type,
        "size": obj.algorithm.spec.size_label if obj.algorithm else "",
        "purpose": None,
        "state": None,
        "token": obj.token_label,
        "token_serial": obj.token_serial,
        "cka_id": obj.cka_id,
        "kcv": None,
        "fingerprint": None,
        "created_at": None,
        "created_by": None,
        "presence": item.presence.value,
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
    }


def details_dict(details: KeyDetails) -> dict[str, Any]:
    return {
        **key_dict(details.record),
        "presence": details.presence.value,
        "identifier_words": details.identifier_words,
        "token_attributes": details.token_attributes,
    }


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Aligned text: ``columns`` are (key, heading)."""
    cells = [[heading for _, heading in columns]]
    cells += [["" if r.get(k) is None else str(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
