"""The policy "no activation before a verified backup", per purpose (OpenDNSSEC's rule that a
key is not used until it is backed up).

The purposes it covers are kept in the database (``meta``, key ``policy.backup-before-activation``,
a comma-separated list of purpose values), beside issue 12's approval policy, and changed only
through ``set_required`` (a ``policy.set`` approval). The lifecycle asks ``check_activation``
before every activation, manual or automatic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from app.domain.algorithms import Purpose
from app.domain.keys import KeyRecord
from app.errors import PolicyError, ValidationError
from app.services.audit import Outcome, record
from app.storage.backups import BackupRepository
from app.storage.database import Database
from app.storage.repository import SettingsRepository

SETTING = "policy.backup-before-activation"
RULE = "KS-BACKUP-BEFORE-ACTIVATION"

Guard = Callable[[str, str], None]
Obtain = Callable[[str, str, Mapping[str, object]], tuple[str, ...]]


def required_purposes(db: Database) -> frozenset[Purpose]:
    """The purposes whose keys need a verified backup before activation."""
    text = SettingsRepository(db).get(SETTING) or ""
    found = set()
    for value in filter(None, text.split(",")):
        try:
            found.add(Purpose(value))
        except ValueError:
            continue  # a purpose this version no longer has
    return frozenset(found)


def check_activation(db: Database, key: KeyRecord) -> None:
    """PolicyError (``KS-BACKUP-BEFORE-ACTIVATION``) when the key's purpose needs a verified
    backup and the key is in none. The message names the fix."""
    if key.purpose not in required_purposes(db):
        return
    if key.id in BackupRepository(db).newest_per_key():
        return
    if not key.extractable:
        raise PolicyError(
            f"Key '{key.name}' cannot be activated: the policy requires a verified backup "
            f"before activating {key.purpose.value} keys, and this key was generated not "
            "backup-able (it can never be backed up). Generate a backup-able key, or a "
            "security officer changes the policy: keystead policy backup-before-activation "
            f"{key.purpose.value} --off. Nothing was changed.",
            RULE,
        )
    raise PolicyError(
        f"Key '{key.name}' cannot be activated yet: the policy requires a verified backup "
        f"before activating {key.purpose.value} keys, and this key is in none. Back it up "
        "first (Backup page, or keystead backup create), then activate it. Nothing was changed.",
        RULE,
    )


def set_required(
    db: Database,
    purpose: Purpose,
    required: bool,
    guard: Guard,
    obtain: Obtain,
    when: Callable[[], datetime],
) -> frozenset[Purpose]:
    """Turn the rule on or off for ``purpose``: the initiator's role and the approvals of
    ``policy.set`` first, then one transaction with its ``policy.set`` entry. Returns the
    purposes covered afterwards."""
    subject = f"policy:backup-before-activation:{purpose.value}"
    guard("policy.set", subject)
    current = required_purposes(db)
    wanted = current | {purpose} if required else current - {purpose}
    if wanted == current:
        raise ValidationError(
            f"Activation of {purpose.value} keys already "
            f"{'needs' if required else 'does not need'} a verified backup; nothing changed."
        )
    who = obtain(
        "policy.set",
        subject,
        {"rule": "backup before activation", "purpose": purpose.value, "required": required},
    )
    with db.transaction():
        SettingsRepository(db).put(SETTING, ",".join(sorted(p.value for p in wanted)))
        record(
            db,
            when=when(),
            operators=who,
            action="policy.set",
            subject=subject,
            outcome=Outcome.SUCCESS,
            details={"required": required, "purposes": sorted(p.value for p in wanted)},
        )
    return wanted
