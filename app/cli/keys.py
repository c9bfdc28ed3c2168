"""``keystead keys …``: the inventory, generation, adoption, the lifecycle actions, re-binding,
history and due dates; the use, distribution and export-public commands register here too (their
modules hold them)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from app.cli import args as cli_args
from app.cli import certs, distribution, output, use
from app.cli.secrets import interactive
from app.cli.session import (
    _login,
    _login_all_optional,
    _login_audit_token,
    _login_if_present,
    _with_workstation,
)
from app.domain.algorithms import Algorithm
from app.domain.keys import TokenSync
from app.domain.lifecycle import Action
from app.domain.usage import UsageTally
from app.errors import KeysteadError, TokenNotLoggedIn, ValidationError
from app.services.prompter import SecretKind

if TYPE_CHECKING:  # imported where used, so the parser (and --help) stays light
    from app.domain.keys import InventoryItem
    from app.services.workstation import Workstation

log = logging.getLogger("keystead")


def register(sub: Any) -> None:
    """Add the ``keys`` command group to the top-level subparsers ``sub``."""
    keys = sub.add_parser("keys", help="managed keys").add_subparsers(dest="action", required=True)
    lst = keys.add_parser("list", help="inventory, reconciled with the logged-in tokens")
    lst.add_argument("--filter", default="", help="show rows containing TEXT in any column")
    lst.set_defaults(run=cmd_keys_list)
    gen = keys.add_parser("generate", help="generate a key on a token")
    gen.add_argument("--token", required=True, help="token label or serial")
    gen.add_argument(
        "--algorithm",
        required=True,
        type=cli_args.algorithm,
        help=", ".join(a.value for a in Algorithm),
    )
    gen.add_argument("--name", required=True)
    gen.add_argument(
        "--purpose", type=cli_args.purpose, help="encryption, signing, key-wrapping or mac"
    )
    gen.add_argument(
        "--backup-able", action="store_true", help="EXTRACTABLE, so it can be wrapped for backup"
    )
    gen.add_argument(
        "--allow-wider-usage",
        action="store_true",
        help="accept the extra usage flags a token insists on (e.g. tpm2-pkcs11: sign+decrypt); "
        "recorded in the audit entry",
    )
    gen.set_defaults(run=cmd_keys_generate)
    show = keys.add_parser("show", help="one key with its live token attributes")
    show.add_argument("key", help="uuid or name")
    show.set_defaults(run=cmd_keys_show)
    adopt = keys.add_parser("adopt", help="manage a key found on a token")
    adopt.add_argument("--token", required=True)
    adopt.add_argument("--id", dest="cka_id", help="CKA_ID in hex")
    adopt.add_argument(
        "--key", dest="identifier", help="KCV or fingerprint (prefix) when the ID is shared or none"
    )
    adopt.add_argument("--name")
    adopt.add_argument("--purpose", type=cli_args.purpose, help="confirm or choose the purpose")
    adopt.add_argument(
        "--accept-exposed",
        action="store_true",
        help="adopt a key whose value may have been outside the token (stays marked exposed)",
    )
    adopt.add_argument(
        "--new-id", action="store_true", help="give the key's objects a fresh CKA_ID (recorded)"
    )
    adopt.add_argument(
        "--dry-run", action="store_true", help="show what adoption would do; change nothing"
    )
    adopt.set_defaults(run=cmd_keys_adopt)
    for action in Action:
        command = keys.add_parser(action.value, help=f"{action.title.lower()} a key")
        command.add_argument("key", help="uuid or name")
        if action.needs_reason:
            command.add_argument("--reason", required=True)
        if action is Action.COMPROMISE:
            command.add_argument(
                "--date",
                type=cli_args.start_date,
                help="compromise date (ISO 8601); without it the key's creation time, the "
                "earliest it can have been compromised (SP 800-57: assume the worst)",
            )
            command.add_argument(
                "--revoke-certificates",
                action="store_true",
                help="also revoke every certificate issued here for this key (key_compromise)",
            )
        if action is Action.DESTROY:
            command.add_argument(
                "--confirm", required=True, metavar="NAME", help="the key's name, typed again"
            )
        command.set_defaults(run=cmd_keys_transition, lifecycle_action=action)
    keys.add_parser(
        "rebind-candidates",
        help="keys whose copy was found, by KCV or public key, on another token",
    ).set_defaults(run=cmd_keys_rebind_candidates)
    rebind = keys.add_parser("rebind", help="bind a key to its copy on a replacement token")
    rebind.add_argument("key", help="uuid or name")
    rebind.add_argument("--token", required=True, help="the replacement token (label or serial)")
    rebind.add_argument("--confirm", metavar="NAME", help="the key's name, typed again")
    rebind.set_defaults(run=cmd_keys_rebind)
    rotate = keys.add_parser("rotate", help="generate a PRE_ACTIVE successor (re-key)")
    rotate.add_argument("key")
    rotate.set_defaults(run=cmd_keys_rotate)
    history = keys.add_parser("history", help="the recorded events of a key")
    history.add_argument("key")
    history.set_defaults(run=cmd_keys_history)
    use.register(keys)
    distribution.register(keys)
    certs.register(sub, keys)
    due = keys.add_parser("due", help="keys whose deactivation date is near or past")
    due.add_argument("--days", type=cli_args.days, help="window in days (default: the policy's)")
    due.set_defaults(run=cmd_keys_due)


def _candidate_dict(candidate: Any) -> dict[str, Any]:
    return {
        "id": candidate.key.id,
        "name": candidate.key.name,
        "from_token": candidate.key.token_serial,
        "to_token": candidate.token_serial,
        "to_label": candidate.token_label,
        "cka_id": candidate.cka_id,
        "matched_by": candidate.matched_by,
    }


def cmd_keys_rebind_candidates(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        _login_all_optional(ws)
        return [_candidate_dict(c) for c in ws.rebind.candidates()]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [("name", "KEY"), ("from_token", "FROM"), ("to_label", "TO"), ("matched_by", "MATCH")],
        )
    return 0


def cmd_keys_rebind(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False, names=args.token)
        _login(ws, args.token, kind=SecretKind.USER_PIN)
        key = ws.keys.resolve(args.key)
        confirm = args.confirm
        if confirm is None:
            if not interactive():
                raise ValidationError(f"Confirm with --confirm '{key.name}' (the key's name).")
            confirm = input(f"Type the key's name '{key.name}' to re-bind it: ")
        if confirm != key.name:
            raise ValidationError(f"Type the key's name '{key.name}' exactly; nothing was changed.")
        return ws.rebind.rebind(key.id, args.token)

    key = _with_workstation(args, body)
    if args.json:
        output.print_json(output.key_dict(key))
    else:
        print(f"'{key.name}' is now bound to token '{key.token_label}' ({key.token_serial}).")
    return 0


def _matches(row: dict[str, Any], needle: str) -> bool:
    return not needle or any(needle in str(v).lower() for v in row.values() if v is not None)


def cmd_keys_list(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[InventoryItem]:
        _login_all_optional(ws)
        return ws.keys.inventory()

    items = _with_workstation(args, body)
    needle = args.filter.lower()
    rows = [r for r in (output.item_dict(i) for i in items) if _matches(r, needle)]
    if args.json:
        output.print_json(rows)
    else:
        for row in rows:
            row["identifier"] = row.get("kcv") or (row.get("fingerprint") or "")[:16]
            row["what"] = _what(row)
        output.print_table(
            rows,
            [
                ("name", "NAME"),
                ("algorithm", "ALGORITHM"),
                ("purpose", "PURPOSE"),
                ("state", "STATE"),
                ("token", "TOKEN"),
                ("identifier", "KCV/FPR"),
                ("presence", "ON TOKEN"),
                ("what", "OBJECT"),
                ("cka_id", "CKA_ID"),
                ("id", "ID"),
            ],
            cut=("name", "token", "what", "cka_id"),  # labels and IDs other tools chose
        )
    return 0


def _what(row: dict[str, Any]) -> str:
    """The OBJECT column: the kind of token object and what is odd about it."""
    parts = [row.get("object_kind") or ""]
    if row.get("shared_id"):
        parts.append("ID SHARED")
    elif row.get("object_kind") and not row.get("object_cka_id"):
        parts.append("NO ID")
    if row.get("exposure"):
        parts.append("EXPOSED")
    if row.get("related"):
        parts.append(f"+{len(row['related'])} related")
    return ", ".join(p for p in parts if p)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False, names=args.token)
        _login(ws, args.token)
        return output.key_dict(
            ws.keys.generate(
                args.token,
                args.algorithm,
                args.name,
                args.purpose,
                args.backup_able,
                allow_wider=args.allow_wider_usage,
            )
        )

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
    else:
        ident = (row["kcv"] and f"KCV {row['kcv']}") or f"SHA-256 {row['fingerprint']}"
        # Purpose and backup-ability never change after generation: said, not only implied
        # (the new-user trial could not tell which purpose a key without --purpose got).
        backup = "can be backed up" if row["extractable"] else "can never be backed up"
        print(
            f"Generated {row['algorithm']} key '{row['name']}' ({row['id']}) on token "
            f"'{row['token']}', state {row['state']}, {ident}; purpose {row['purpose']}, "
            f"{backup}."
        )
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        key = ws.keys.resolve(args.key)
        try:
            _login(ws, key.token_serial, optional=True)
        except KeysteadError as exc:
            if not isinstance(exc, TokenNotLoggedIn):
                log.debug("no live attributes: %s", exc)
        row = output.details_dict(ws.keys.details(key.id))
        from app.services import usage_counts
        from app.storage.distributions import DistributionRepository

        row["usage_count"] = usage_counts.tallies(ws.db, key.id).get(key.id, UsageTally()).uses
        row["distribution"] = distribution.distribution_rows(
            DistributionRepository(ws.db).for_key(key.id)
        )
        return row

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
        return 0
    for field in (
        "id",
        "name",
        "algorithm",
        "size",
        "purpose",
        "state",
        "token",
        "token_serial",
        "cka_id",
        "extractable",
        "wrap_trusted_text",
        "kcv",
        "fingerprint",
        "created_at",
        "created_by",
        "activation_date",
        "deactivation_date",
        "compromise_date",
        "replaces",
        "replaced_by",
        "presence",
        "usage_count",
    ):
        if row.get(field) is not None:
            label = field.removesuffix("_text").replace("_", " ")
            value = row[field]
            if field in ("kcv", "fingerprint"):  # as the ceremony and the GUI show them
                from app.domain.fingerprints import identifier_text

                value = identifier_text(bytes.fromhex(value))
            print(f"{label:>14}: {value}")
    if row["identifier_words"]:
        print(f"{'read aloud':>14}: {' '.join(row['identifier_words'])}")
    distribution.print_distribution(row["distribution"])
    for cls, attrs in row["token_attributes"].items():
        print(f"{cls}:")
        for name, value in attrs.items():
            print(f"{'':>4}{name:<18} {value}")
    return 0


def cmd_keys_adopt(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        _login_audit_token(ws, required=False, names=args.token)
        _login(ws, args.token)
        candidate = ws.keys.adoption_candidate(args.token, args.cka_id, args.identifier)
        shown = output.candidate_dict(candidate)
        if args.dry_run:
            return {"candidate": shown}
        key = ws.keys.adopt(
            args.token,
            args.cka_id,
            args.name,
            purpose=args.purpose,
            accept_exposure=args.accept_exposed,
            new_id=args.new_id,
            identifier=args.identifier,
        )
        return {"candidate": shown, "key": output.key_dict(key)}

    result = _with_workstation(args, body)
    candidate = result["candidate"]
    if args.json:
        output.print_json(result.get("key", candidate))
        return 0
    if "key" not in result and candidate["managed_as"] is not None:
        print(
            f"Already adopted: the {candidate['object_kind']} with CKA_ID {candidate['cka_id']} "
            f"on token '{candidate['token']}' is managed as key '{candidate['managed_as']}' "
            f"(keystead keys show '{candidate['managed_as']}'). Adopting it would change nothing."
        )
        return 0
    if "key" not in result:
        _print_candidate(candidate)
        return 0
    row = result["key"]
    cleared = candidate["cleared_on_activation"].get(row["purpose"], [])
    if candidate["exposure_text"]:
        print(f"Exposed (acknowledged): {'; '.join(candidate['exposure_text'])}.")
    if cleared:
        print(f"Activating it for {row['purpose']} will clear: {', '.join(cleared)} (recorded).")
    if row["cka_id"] != candidate["cka_id"]:
        print(f"Gave its objects the fresh CKA_ID {row['cka_id']} (recorded).")
    print(
        f"Adopted {row['algorithm']} key '{row['name']}' ({row['id']}) for {row['purpose']} "
        f"as {row['state']}."
    )
    return 0


def _print_candidate(row: dict[str, Any]) -> None:
    print(f"{row['object_kind']} on token '{row['token']}', CKA_ID {row['cka_id'] or '(none)'}")
    for line in row["objects"]:
        print(f"  object: {line}")
    for line in row["related"]:
        print(f"  related (kept): {line}")
    print(f"  identifier: {row['identifier'] or '(none)'}")
    if row["refusal"]:
        print(f"  cannot be adopted: {row['refusal']}")
        return
    inferred = ", ".join(row["inferred_purposes"]) or "none fits exactly"
    print(f"  purposes its usage flags fit: {inferred}")
    for purpose, cleared in row["cleared_on_activation"].items():
        print(f"  activating for {purpose} clears: {', '.join(cleared) or 'nothing'}")
    for text in row["exposure_text"]:
        print(f"  EXPOSED: {text}")
    if row["needs_new_id"]:
        print("  needs a fresh CKA_ID (--new-id): its ID is missing or shared with another key")


def cmd_keys_transition(args: argparse.Namespace) -> int:
    action: Action = args.lifecycle_action

    def body(ws: Workstation) -> dict[str, Any]:
        key = ws.keys.resolve(args.key)
        _login_audit_token(ws, required=False, names=key.token_serial or None)
        if action is Action.DESTROY and key.token_serial:
            _login(ws, key.token_serial)
        elif key.token_serial:  # an imported public key has no token
            _login_if_present(ws, key.token_serial)
        from app.services.lifecycle import TransitionRequest

        reason = getattr(args, "reason", "") or ""
        also = ws.lifecycle.also_changed(key, TransitionRequest(key.id, action, reason))
        changed = ws.lifecycle.transition(
            key.id,
            action,
            reason,
            compromise_date=getattr(args, "date", None),
            confirm_name=getattr(args, "confirm", None),
        )
        row = output.key_dict(changed)
        # The other keys the change moved (an activated successor's predecessor), as they are.
        row["also_changed"] = [output.key_dict(ws.keys.resolve(k.id)) for k in also]
        if action is Action.COMPROMISE:
            if args.revoke_certificates:
                revoked = ws.certs.revoke_key_certificates(changed.id)
                row["revoked_certificates"] = [c.serial for c in revoked]
                row["crl_issuers"] = sorted({c.issuer_key_id for c in revoked})
            else:
                row["unrevoked_certificates"] = [c.serial for c in ws.certs.revocable_for(key.id)]
        return row

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
    else:
        note = "" if row["token_sync"] == TokenSync.OK.value else f" ({row['token_sync_text']})"
        print(f"Key '{row['name']}' is now {row['state']}{note}.")
        for other in row["also_changed"]:
            print(f"Key '{other['name']}', the key it replaces, is now {other['state']}.")
        if action is Action.COMPROMISE:
            given = getattr(args, "date", None) is not None
            print(
                f"Compromise date: {row['compromise_date']}"
                + ("." if given else " (the key's creation: no --date was given, so everything "
                   "it ever protected is treated as exposed).")
            )
        if row.get("revoked_certificates"):
            print(
                f"Revoked {len(row['revoked_certificates'])} certificate(s) of this key "
                f"(key_compromise): {', '.join(row['revoked_certificates'])}. Issue a new CRL "
                "from each issuer ('certs crl') to publish it."
            )
        elif row.get("unrevoked_certificates"):
            print(
                f"This key still has {len(row['unrevoked_certificates'])} unrevoked "
                f"certificate(s) issued here ({', '.join(row['unrevoked_certificates'])}); "
                "revoke each with 'keystead certs revoke SERIAL --reason key_compromise'."
            )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> dict[str, Any]:
        key = ws.keys.resolve(args.key)
        _login_audit_token(ws, required=False, names=key.token_serial or None)
        _login(ws, key.token_serial)
        return output.key_dict(ws.lifecycle.rotate(key.id))

    row = _with_workstation(args, body)
    if args.json:
        output.print_json(row)
    else:
        print(
            f"Generated successor '{row['name']}' ({row['id']}) in state {row['state']}; "
            "activating it deactivates its predecessor."
        )
    return 0


def cmd_keys_history(args: argparse.Namespace) -> int:
    events = _with_workstation(args, lambda ws: ws.lifecycle.history(args.key))
    rows = [output.event_dict(e) for e in events]
    if args.json:
        output.print_json(rows)
    else:
        output.print_events(rows, subject=False)
    return 0


def cmd_keys_due(args: argparse.Namespace) -> int:
    def body(ws: Workstation) -> list[dict[str, Any]]:
        by_period = ws.lifecycle.due(args.days)
        rows = [{**output.key_dict(k), "reason": "end of cryptoperiod"} for k in by_period]
        listed = {k.id for k in by_period}
        keys = ws.keys.repo.all()
        by_usage = ws.use.usage_due(keys)
        for key in keys:
            if key.id in by_usage and key.id not in listed:
                rows.append({**output.key_dict(key), "reason": by_usage[key.id]})
            elif key.id in by_usage:
                row = next(r for r in rows if r["id"] == key.id)
                row["reason"] += "; " + by_usage[key.id]
        return rows

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    else:
        output.print_table(
            rows,
            [
                ("name", "NAME"),
                ("state", "STATE"),
                ("deactivation_date", "DEACTIVATION (UTC)"),
                ("reason", "WHY"),
                ("token", "TOKEN"),
                ("id", "ID"),
            ],
        )
    return 0
