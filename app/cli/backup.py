"""``keystead media`` and ``keystead backup``: removable volumes, and encrypted offline
backups (create, list, verify, restore).

Shares are shown at the terminal one custodian at a time, each after a keypress, with the
screen cleared between; ``--shares-out FILE`` (automation only) writes them to FILE instead,
and ``--shares-in FILE`` reads them back for verify/restore.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import output
from app.cli.secrets import ask_secret, interactive, require_secret
from app.cli.terminal import clear_screen
from app.domain.names import validate_name
from app.errors import OperationCancelled, ValidationError
from app.services.prompter import SecretKind

if TYPE_CHECKING:
    from app.services.workstation import Workstation

MAX_SHARES_FILE = 1 << 20  # a SLIP-39 share set is a few KiB; more is not a shares file


def register(sub: Any) -> None:
    media = sub.add_parser("media", help="removable volumes for backups").add_subparsers(
        dest="action", required=True
    )
    media.add_parser("list", help="mounted removable volumes").set_defaults(run=cmd_media_list)

    backup = sub.add_parser("backup", help="encrypted offline backups").add_subparsers(
        dest="action", required=True
    )
    create = backup.add_parser("create", help="write a new verified backup to a directory")
    create.add_argument("--to", required=True, type=Path, help="directory (e.g. a USB stick)")
    create.add_argument("--token", help="token whose keys to back up (default: the audit token)")
    create.add_argument("--keys", help="comma-separated key names or ids (default: all)")
    create.add_argument("--shares", help="M-of-N, e.g. 3-of-5")
    create.add_argument("--custodians", help="comma-separated names, one per share")
    create.add_argument(
        "--passphrase",
        action="store_true",
        help="also protect the KEK with a recovery passphrase (prompt or "
        "KEYSTEAD_RECOVERY_PASSPHRASE)",
    )
    create.add_argument(
        "--shares-out", type=Path, help="automation only: write the shares to this new file"
    )
    create.set_defaults(run=cmd_create)
    backup.add_parser("list", help="backups this workstation made").set_defaults(run=cmd_list)
    verify = backup.add_parser("verify", help="check a backup without restoring it")
    verify.add_argument("dir", type=Path)
    verify.add_argument(
        "--drill", action="store_true", help="with shares: unwrap every key on the token, compare"
    )
    verify.add_argument("--token", help="token for the drill (default: the audit token)")
    verify.add_argument("--shares-in", type=Path, help="automation only: shares from this file")
    verify.add_argument(
        "--passphrase", action="store_true", help="use the recovery passphrase instead of shares"
    )
    verify.set_defaults(run=cmd_verify)
    restore = backup.add_parser("restore", help="bring a backup's keys onto a token")
    restore.add_argument("dir", type=Path)
    restore.add_argument("--token", help="token to restore onto (default: the audit token)")
    restore.add_argument("--shares-in", type=Path, help="automation only: shares from this file")
    restore.add_argument(
        "--passphrase", action="store_true", help="use the recovery passphrase instead of shares"
    )
    restore.add_argument(
        "--override-generation",
        action="store_true",
        help="disaster recovery: restore an older generation (needs its own approval)",
    )
    restore.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="restore the backup's key OLD as NEW (its name is taken here); repeatable, recorded",
    )
    restore.set_defaults(run=cmd_restore)


def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _threshold(text: str | None, custodians: list[str]) -> int:
    if text is None:
        if custodians:
            raise ValidationError("Give --shares M-of-N with --custodians.")
        return 0
    parts = text.lower().split("-of-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValidationError(f"--shares is M-of-N (e.g. 3-of-5), not '{text}'.")
    m, n = int(parts[0]), int(parts[1])
    if n != len(custodians):
        raise ValidationError(
            f"--shares says {n} shares but {len(custodians)} custodians are named."
        )
    return m


def cmd_media_list(args: argparse.Namespace) -> int:
    from app.backup.media import removable_volumes

    rows = [
        {
            "device": v.device,
            "mountpoint": v.mountpoint,
            "label": v.label,
            "uuid": v.uuid,
            "filesystem": v.fstype,
            "free_bytes": v.free_bytes,
            "total_bytes": v.total_bytes,
        }
        for v in removable_volumes()
    ]
    if args.json:
        output.print_json(rows)
    elif not rows:
        print("No removable volume is mounted. Insert one, or give any directory with --to.")
    else:
        output.print_table(
            rows,
            [
                ("label", "LABEL"),
                ("filesystem", "FS"),
                ("free_bytes", "FREE"),
                ("device", "DEVICE"),
                ("mountpoint", "MOUNTED AT"),
            ],
        )
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from app.cli.session import _login, _login_audit_token, _with_workstation

    custodians = [validate_name(c, "Custodian name") for c in _split_list(args.custodians)]
    threshold = _threshold(args.shares, custodians)
    if args.shares_out is not None and args.shares_out.exists():
        raise ValidationError(f"{args.shares_out} exists; shares are never written over a file.")
    if args.shares_out is None and custodians and not interactive():
        raise ValidationError(
            "Shares are shown at a terminal, one custodian at a time; for automation give "
            "--shares-out FILE."
        )
    target = args.to.resolve()
    wrote_shares = False

    def body(ws: Workstation) -> Any:
        nonlocal wrote_shares
        _login_audit_token(ws, required=True, names=args.token)
        token = args.token or ws.audit.token_serial or ""
        _login(ws, token)
        so_pin = require_secret(SecretKind.SO_PIN, "SO PIN of the token (marks the KEK trusted)")
        user_pin = require_secret(SecretKind.USER_PIN, "User PIN of the token")
        passphrase = None
        if args.passphrase:
            passphrase = require_secret(
                SecretKind.RECOVERY_PASSPHRASE, "Recovery passphrase", confirm=True
            )
        share_passphrase = (
            ask_secret(
                SecretKind.SHARE_PASSPHRASE, "Share passphrase (Enter for none)", optional=True
            )
            if custodians
            else None
        )
        chosen = set(_split_list(args.keys)) or None

        def deliver(card: Any) -> None:
            nonlocal wrote_shares
            if args.shares_out is not None:
                _write_shares(args.shares_out, card)
                wrote_shares = True
            else:
                _show_shares(card)

        volume = next((v for v in _volumes() if target.is_relative_to(v.mountpoint)), None)
        return ws.backup.create(
            target,
            token,
            so_pin,
            user_pin,
            threshold=threshold,
            custodians=custodians,
            recovery_passphrase=passphrase,
            chosen=chosen,
            share_passphrase=(share_passphrase or "").encode("utf-8"),
            volume=volume,
            deliver=deliver,
        )

    try:
        created = _with_workstation(args, body)
    except BaseException:
        if args.shares_out is not None and wrote_shares:
            args.shares_out.unlink(missing_ok=True)  # shares of a backup that was not written
        raise
    manifest = created.manifest
    summary = {
        "directory": str(created.directory),
        "backup_id": manifest.backup_id,
        "generation": manifest.generation,
        "keys": [e.name for e in manifest.keys],
        "not_backed_up": [{"key": r.name, "reason": r.reason} for r in created.refused],
        "kek_check_value": manifest.kek_check_value,
        "signer_fingerprint": manifest.signer_fingerprint,
        "verified": True,
    }
    if args.json:
        output.print_json(summary)
    else:
        for refusal in created.refused:
            print(f"Not in this backup: {refusal.name}: {refusal.reason}.")
        print(
            f"Backup generation {manifest.generation} written and verified: "
            f"{len(manifest.keys)} keys in {created.directory}."
        )
        print(f"KEK check value {manifest.kek_check_value}; signer {manifest.signer_fingerprint}.")
        print("Safe to remove the medium now (every file was synced and read back).")
    return 0


def _volumes() -> list[Any]:
    from app.backup.media import removable_volumes

    return removable_volumes()


def _write_shares(path: Path, card: Any) -> None:
    share_set = card.share_set
    doc = {
        "backup_id": card.backup_id,
        "kek_check_value": card.kek_check_value,
        "signer_fingerprint": card.signer_fingerprint,
        "shares": [
            {"custodian": c, "index": i + 1, "words": m}
            for i, (c, m) in enumerate(zip(share_set.custodians, share_set.mnemonics, strict=True))
        ],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _show_shares(card: Any) -> None:
    """One share card per custodian, each after a keypress, the screen cleared between. Runs
    before anything is written: stopping here writes nothing."""
    share_set = card.share_set
    total = len(share_set.mnemonics)
    try:
        for index, (custodian, words) in enumerate(
            zip(share_set.custodians, share_set.mnemonics, strict=True), start=1
        ):
            input(f"Hand the terminal to custodian '{custodian}', then press Enter.")
            clear_screen()
            print(f"Share card - custodian {custodian}, share {index} of {total}")
            print(f"Backup {card.backup_id} (generation {card.generation})")
            print(f"Needs {share_set.threshold} of {total} shares.")
            print(f"KEK check value {card.kek_check_value}")
            print(f"Manifest signed by key {card.signer_fingerprint}")
            listed = words.split()
            for row in range(0, len(listed), 6):
                print(
                    "  "
                    + " ".join(
                        f"{n + 1:>2}. {w:<10}"
                        for n, w in enumerate(listed[row : row + 6], start=row)
                    )
                )
            input("Write the words down, check them, then press Enter to clear the screen.")
            clear_screen()
    except (EOFError, KeyboardInterrupt) as exc:
        clear_screen()
        raise OperationCancelled(
            "Share display stopped; nothing was written. Destroy any share card already "
            f"written for backup {card.backup_id}."
        ) from exc


def _read_shares(path: Path | None, needed: int | None) -> tuple[str, ...]:
    if path is not None:
        try:
            from app.storage.files import read_regular

            doc = json.loads(read_regular(path, "shares file", MAX_SHARES_FILE).decode("utf-8"))
            if isinstance(doc, dict):
                return tuple(str(s["words"]) for s in doc["shares"])
            return tuple(str(s) for s in doc)
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ValidationError(f"{path} is not a shares file ({type(exc).__name__}).") from None
    if not interactive():
        raise ValidationError("Shares are typed at a terminal; for automation give --shares-in.")
    collected: list[str] = []
    import getpass

    while needed is None or len(collected) < needed:
        words = getpass.getpass(
            f"Share {len(collected) + 1}{f' of {needed}' if needed else ''} (words, not shown): "
        )
        if not words.strip():
            break
        collected.append(words)
    return tuple(collected)


def _kek_secret(args: argparse.Namespace, directory: Path) -> Any:
    from app.backup import format as fmt
    from app.services.backup import KekSecret, refuse_a_medium

    if directory.is_dir() and not (directory / fmt.MANIFEST).exists():
        refuse_a_medium(directory)  # the folder backups were written to: name them
    try:
        from app.storage.files import read_regular

        manifest = fmt.Manifest.parse(
            read_regular(directory / fmt.MANIFEST, "backup manifest", fmt.MAX_MANIFEST)
        )
    except OSError as exc:
        raise ValidationError(f"{directory} holds no readable manifest.json.") from exc
    if args.passphrase:
        return KekSecret(
            recovery_passphrase=require_secret(
                SecretKind.RECOVERY_PASSPHRASE, "Recovery passphrase"
            )
        )
    needed = int(manifest.shares["threshold"]) if manifest.shares else None
    share_passphrase = ask_secret(
        SecretKind.SHARE_PASSPHRASE, "Share passphrase (Enter for none)", optional=True
    )
    return KekSecret(
        mnemonics=_read_shares(args.shares_in, needed),
        share_passphrase=(share_passphrase or "").encode("utf-8"),
    )


def cmd_restore(args: argparse.Namespace) -> int:
    from app.cli.session import _login, _login_audit_token, _with_workstation

    directory = args.dir.resolve()
    renames: dict[str, str] = {}
    for pair in args.rename:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new or old in renames:
            raise ValidationError(
                f"--rename takes OLD=NEW, each backup key once; got {pair!r}. Nothing was touched."
            )
        renames[old] = new

    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False, names=args.token)
        token = args.token or ws.audit.token_serial or ""
        _login(ws, token)
        return ws.backup.restore(
            directory, _kek_secret(args, directory), token, args.override_generation, renames
        )

    report = _with_workstation(args, body)
    row = {
        "backup_id": report.manifest.backup_id,
        "generation": report.manifest.generation,
        "restored": [k.name for k in report.restored],
        "rebound": [k.name for k in report.rebound],
        "renamed": dict(report.renamed),
        "skipped": [
            {"key": s.name, "reason": s.reason, "needs_action": s.needs_action}
            for s in report.skipped
        ],
        "audit_entries": report.audit_entries,
        "complete": not report.incomplete,
    }
    if args.json:
        output.print_json(row)
    else:
        for skip in report.skipped:
            print(f"Not restored: {skip.name}: {skip.reason}.")
        for old, new in report.renamed:
            print(f"Restored '{old}' as '{new}'.")
        for key in report.rebound:
            print(f"Restored '{key.name}', which was missing on its token; its record now points "
                  f"at token '{key.token_label}'.")
        print(
            f"Restored {len(report.restored)} keys from generation {report.manifest.generation}; "
            f"its audit history ({report.audit_entries} entries) verified and kept."
        )
    if report.incomplete:
        left = [s.name for s in report.skipped if s.needs_action]
        print(
            f"keystead: error: {len(left)} key(s) of the backup were not restored and need you "
            f"to act: {', '.join(left)} (see above); the others were restored.",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from app.backup import format as fmt
    from app.cli.session import _login, _login_audit_token, _with_workstation

    directory = args.dir.resolve()

    def body(ws: Workstation) -> Any:
        _login_audit_token(ws, required=False, names=args.token if args.drill else None)
        secret = None
        if args.drill or args.shares_in is not None or args.passphrase:
            secret = _kek_secret(args, directory)
        drill = None
        if args.drill:
            drill = args.token or ws.audit.token_serial or ""
            _login(ws, drill)
        return ws.backup.verify(directory, secret, drill)

    report = _with_workstation(args, body)
    manifest = report.manifest
    row = {
        "directory": str(directory),
        "backup_id": manifest.backup_id,
        "generation": manifest.generation,
        "created_at": manifest.created_at,
        "keys": len(manifest.keys),
        "signature": "valid",
        "signer_fingerprint": manifest.signer_fingerprint,
        "signer_is_this_workstation": report.signer_known,
        "kek_checked": report.kek_checked,
        "drilled": report.drilled,
    }
    if args.json:
        output.print_json(row)
    else:
        print(
            f"Backup generation {manifest.generation} of {manifest.created_at}: signature, "
            f"structure and {len(fmt.DATA_FILES)} file hashes verified ({len(manifest.keys)} keys)."
        )
        if report.signer_known is None:
            print(f"Signed by key {manifest.signer_fingerprint}: compare it with the share card.")
        if report.kek_checked:
            print("KEK recovered and checked; metadata and audit history decrypt.")
        if report.drilled:
            print(
                f"Restore drill: {report.drilled} keys unwrapped on the token, KCVs match, "
                "destroyed."
            )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from app.cli.session import _with_workstation

    def body(ws: Workstation) -> list[dict[str, Any]]:
        return [
            {
                "generation": b.generation,
                "id": b.id,
                "created_at": b.created_at,
                "keys": b.keys,
                "custodians": ", ".join(b.custodians),
                "threshold": b.threshold,
                "passphrase": b.passphrase,
                "volume": b.volume_label or b.volume_uuid,
                "directory": b.directory,
                "verified_at": b.verified_at,
            }
            for b in ws.backup.backups()
        ]

    rows = _with_workstation(args, body)
    if args.json:
        output.print_json(rows)
    elif not rows:
        print("No backup has been made on this workstation.")
    else:
        output.print_table(
            rows,
            [
                ("generation", "GEN"),
                ("created_at", "CREATED"),
                ("keys", "KEYS"),
                ("custodians", "CUSTODIANS"),
                ("volume", "VOLUME"),
                ("directory", "DIRECTORY"),
            ],
        )
    return 0
