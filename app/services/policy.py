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
