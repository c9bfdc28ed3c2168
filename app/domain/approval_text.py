"""What an approver reads: a request's parameters as labelled lines in words, the same at the
terminal (``app/cli/approvers.py``) and in the GUI's approval dialog.

``ApprovalRequest.parameters`` keeps each value as the service gave it, turned into text
(``str``), because the request's SHA-256 covers exactly that text. This module only changes how
it is *shown*: a list becomes one item per line, ``True`` / ``False`` become words, and each
name gets a label an officer reads without knowing the code (the new-user trial found
``passphrase: True`` and a Python list of bare UUIDs in the dialog). Nothing is left out: a
value this module does not know is shown under its own name, as given.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

# (label, in the order shown); a name not listed comes after these, under its own name.
LABELS: dict[str, str] = {
    "transition": "Transition",
    "key": "Key",
    "also_changes": "Also changes",
    "key_names": "Keys (name and KCV)",
    "algorithm": "Algorithm",
    "purpose": "Purpose",
    "kcv": "KCV",
    "fingerprint": "Fingerprint (SHA-256)",
    "state": "State now",
    "token": "Token",
    "key_id": "Key ID",
    "cka_id": "CKA_ID",
    "reason": "Reason",
    "compromise_date": "Compromise date",
    "serial": "Token serial",
    "new_label": "New label",
    "name": "Operator",
    "roles": "Roles",
    "target": "Written to",
    "generation": "Backup generation",
    "newest": "Newest generation recorded",
    "backup_id": "Backup",
    "custodians": "Share custodians",
    "threshold": "Shares needed to restore",
    "passphrase": "Recovery passphrase",
    "rebind": "Keys bound again (IDs)",
    "renamed": "Renamed on restore",
    "recipient": "Recipient",
    "recipient_name": "Recipient",
    "setting": "Setting",
    "current": "Value now",
    "value": "New value",
    "keys": "Key IDs",
}

# Values that read differently for one parameter (name -> shown value -> words).
_WORDS: dict[str, dict[str, str]] = {
    "passphrase": {
        "True": "required as well (a second way to open the backup)",
        "False": "none (the custodians' shares alone open it)",
    },
}


def _items(value: str) -> list[str] | None:
    """The items of a value that is a Python list, tuple or dict literal, else None."""
    if value[:1] not in ("[", "(", "{"):
        return None
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(parsed, dict):
        return [f"{k} → {v}" for k, v in parsed.items()]
    if isinstance(parsed, list | tuple):
        return [str(item) for item in parsed]
    return None


def parameter_lines(parameters: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``(label, lines)`` for each non-empty parameter, known names first in ``LABELS``'s
    order; a list value gives one line per item (an empty list gives "none"), booleans give
    "yes" / "no" or the parameter's own words, and the custodians' threshold reads "2 of 3"
    when the custodians are among the parameters."""
    given = dict(parameters)
    order = list(LABELS)
    ranked = sorted(
        (p for p in parameters if p[1] != ""),
        key=lambda p: order.index(p[0]) if p[0] in order else len(order),
    )
    shown: list[tuple[str, list[str]]] = []
    for name, value in ranked:
        label = LABELS.get(name, name)
        if value in _WORDS.get(name, {}):
            shown.append((label, [_WORDS[name][value]]))
            continue
        items = _items(value)
        if items is not None:
            shown.append((label, items or ["none"]))
        elif value in ("True", "False"):
            shown.append((label, ["yes" if value == "True" else "no"]))
        elif name == "threshold" and (custodians := _items(given.get("custodians", ""))):
            shown.append((label, [f"{value} of {len(custodians)}"]))
        else:
            shown.append((label, [value]))
    return shown
