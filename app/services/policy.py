"""Cryptoperiod policy: default protect-stop periods per purpose, from resources/."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from app.assets import asset_dir
from app.domain.algorithms import Purpose
from app.errors import ValidationError

POLICY_FILE = asset_dir("resources") / "cryptoperiods.toml"
LIMITS_FILE = asset_dir("resources") / "usage-limits.toml"


@dataclass(frozen=True)
class CryptoperiodPolicy:
    originator_usage: dict[Purpose, timedelta]
    due_warning: timedelta

    def deactivation_for(self, purpose: Purpose, activated: datetime) -> datetime:
        return activated + self.originator_usage[purpose]


def load_policy(path: Path = POLICY_FILE) -> CryptoperiodPolicy:
    """Read the policy; a missing purpose or a non-positive period is refused."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        periods = doc["originator_usage_days"]
        usage = {p: timedelta(days=int(periods[p.value])) for p in Purpose}
        warning = timedelta(days=int(doc.get("due_warning_days", 30)))
    except (OSError, KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(
            f"The cryptoperiod policy {path} is unreadable or incomplete: {exc}."
        ) from exc
    if any(period <= timedelta(0) for period in usage.values()) or warning < timedelta(0):
        raise ValidationError(f"The cryptoperiod policy {path} has a period of zero days or less.")
    return CryptoperiodPolicy(usage, warning)


@dataclass(frozen=True)
class UsageLimits:
    """Per-purpose limits on counted uses (resources/usage-limits.toml) and the fraction of a
    limit at which a key is listed as due."""

    limits: dict[Purpose, dict[str, int]]
    warn_fraction: float


def load_usage_limits(path: Path = LIMITS_FILE) -> UsageLimits:
    """Read the usage limits; an unknown purpose or counter, or a non-positive limit, is
    refused."""
    from app.domain.usage import COUNTERS

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        fraction = float(doc.get("warn_fraction", 0.9))
        limits: dict[Purpose, dict[str, int]] = {}
        for purpose_name, table in dict(doc.get("limits", {})).items():
            purpose = Purpose(purpose_name)
            limits[purpose] = {str(name): int(value) for name, value in dict(table).items()}
    except (OSError, KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"The usage limits {path} are unreadable: {exc}.") from exc
    counters = {name for table in limits.values() for name in table}
    if not 0 < fraction <= 1 or counters - set(COUNTERS):
        raise ValidationError(
            f"The usage limits {path} name an unknown counter or a warn_fraction outside (0, 1]."
        )
    if any(value <= 0 for table in limits.values() for value in table.values()):
        raise ValidationError(f"The usage limits {path} hold a limit of zero or less.")
    return UsageLimits(limits, fraction)
