"""Certificate profiles from resources/cert-profiles.toml: what a certificate of each kind
says (basic constraints, key usage, extended key usage, CRL distribution points, longest
validity)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from app.assets import asset_dir
from app.errors import ValidationError

PROFILE_FILE = asset_dir("resources") / "cert-profiles.toml"
_KEY_USAGES = {
    "digital_signature",
    "non_repudiation",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
}
_EKUS = {
    "server_auth",
    "client_auth",
    "code_signing",
    "email_protection",
    "time_stamping",
    "ocsp_signing",
}


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    self_signed: bool
    ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    extended_key_usage: tuple[str, ...]
    max_days: int
    crl_urls: tuple[str, ...]


def load_profiles(path: Path = PROFILE_FILE) -> dict[str, Profile]:
    """Every profile in the file; a malformed one is refused with its name."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"The certificate profiles {path} are unreadable: {exc}.") from exc
    profiles = {}
    for name, raw in doc.items():
        try:
            usage = frozenset(str(u) for u in raw["key_usage"])
            ekus = tuple(str(u) for u in raw.get("extended_key_usage", []))
            path_length = raw.get("path_length")
            profile = Profile(
                name=name,
                title=str(raw.get("title", name)),
                self_signed=bool(raw.get("self_signed", False)),
                ca=bool(raw["ca"]),
                path_length=None if path_length is None else int(path_length),
                key_usage=usage,
                extended_key_usage=ekus,
                max_days=int(raw["max_days"]),
                crl_urls=tuple(str(u) for u in raw.get("crl_urls", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationError(
                f"Certificate profile '{name}' in {path} is incomplete: {exc}."
            ) from exc
        if not usage <= _KEY_USAGES or not set(ekus) <= _EKUS:
            unknown = sorted((usage - _KEY_USAGES) | (set(ekus) - _EKUS))
            raise ValidationError(f"Certificate profile '{name}' names unknown usages: {unknown}.")
        if profile.max_days <= 0:
            raise ValidationError(f"Certificate profile '{name}' has max_days ≤ 0.")
        profiles[name] = profile
    return profiles


def profile_named(name: str, path: Path = PROFILE_FILE) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ValidationError(
            f"No certificate profile '{name}'. Choose one of: {', '.join(sorted(profiles))}."
        )
    return profiles[name]
