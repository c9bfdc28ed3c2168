"""Token administration on real SoftHSM tokens, confirmed by pkcs11-tool: initialise a token
(typed label, refused for live keys and the audit token), set the user PIN as SO, change the
user and SO PINs, the token's PIN length limits, and the audit entry of every try."""

from __future__ import annotations

import subprocess

import pytest

from app.domain.algorithms import Algorithm
from app.errors import PolicyError, ValidationError, WrongPin
from app.services.token_admin import RULE_AUDIT_TOKEN, RULE_LIVE_KEYS
from tests.hsm.kit import MODULE, PIN, SO_PIN, TOKEN, Station, pkcs11_tool

pytestmark = pytest.mark.hsm

OTHER = "Rehearsal"
OTHER_SO = "SENTINEL-otherso-51aa"
OTHER_PIN = "SENTINEL-otherpin-2b7c"


def peer(station: Station, *args: str) -> subprocess.CompletedProcess[str]:
    """pkcs11-tool without the harness's login, for checking PINs (a failure is an answer)."""
    return subprocess.run(
        ["pkcs11-tool", "--module", MODULE, *args],
        env={"SOFTHSM2_CONF": str(station.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def user_pin_works(station: Station, label: str, pin: str) -> bool:
    result = peer(station, "--token-label", label, "--login", "--pin", pin, "--list-objects")
    return result.returncode == 0


def so_pin_works(station: Station, label: str, so_pin: str) -> bool:
    """pkcs11-tool logs in as SO (read-write: SoftHSM refuses SO beside a read-only session)
    and sets the user PIN to a throwaway value; only the right SO PIN can."""
    result = peer(
        station,
        "--token-label",
        label,
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        so_pin,
        "--init-pin",
        "--new-pin",
        "SENTINEL-peerpin-0101",
    )
    return result.returncode == 0


def outcomes(station: Station, action: str) -> list[str]:
    return [e.outcome for e in station.events(action)]


@pytest.fixture
def other(station: Station) -> str:
    """A second embedded token with a user PIN; returns its serial."""
    info = station(station.ws.tokens.create_soft_token, OTHER, OTHER_SO, OTHER_PIN)
    return str(info.serial)


def test_initialise_erases_the_token_after_the_typed_label(station: Station, other: str) -> None:
    admin = station.ws.admin
    # An object another tool put there: Keystead does not manage it, initialising loses it.
    pkcs11_tool(
        station.home,
        "--token-label",
        OTHER,
        "--keygen",
        "--key-type",
        "AES:16",
        "--label",
        "foreign",
        "--id",
        "0a0b",
        pin=OTHER_PIN,
    )
    station(station.ws.tokens.login, OTHER, OTHER_PIN)
    impact = station(admin.init_impact, OTHER)
    assert impact.objects_seen == 1 and not impact.live_keys and impact.refusal is None

    with pytest.raises(ValidationError, match="Type the token's label"):
        station(admin.init_token, OTHER, "rehearsal", "Fresh", OTHER_SO)
    assert outcomes(station, "token.init") == ["denied"]
    assert "foreign" in pkcs11_tool(station.home, "--token-label", OTHER, "-O", pin=OTHER_PIN)

    with pytest.raises(WrongPin, match="SO PIN"):
        station(admin.init_token, OTHER, OTHER, "Fresh", "SENTINEL-wrongso-0000")
    assert outcomes(station, "token.init") == ["denied", "failed"]
    assert "foreign" in pkcs11_tool(station.home, "--token-label", OTHER, "-O", pin=OTHER_PIN)

    # Initialising ends the token's session first (C_InitToken wants none), so log in again to
    # let Keystead count what is lost.
    station(station.ws.tokens.login, OTHER, OTHER_PIN)
    station(admin.init_token, OTHER, OTHER, "Fresh", OTHER_SO)
    assert outcomes(station, "token.init") == ["denied", "failed", "success"]
    listing = pkcs11_tool(station.home, "-L", pin=None)
    assert "Fresh" in listing and OTHER not in listing
    # A freshly initialised token has no user PIN until the SO sets one.
    fresh = next(t for t in station(station.ws.tokens.present) if t.label == "Fresh")
    assert "user PIN initialised" not in fresh.flag_words
    assert so_pin_works(station, "Fresh", OTHER_SO)
    station(admin.init_pin, "Fresh", OTHER_SO, "SENTINEL-newpin-77")
    assert user_pin_works(station, "Fresh", "SENTINEL-newpin-77")
    assert "foreign" not in pkcs11_tool(
        station.home, "--token-label", "Fresh", "-O", pin="SENTINEL-newpin-77"
    )
    done = station.events("token.init")[-1]
    assert done.details["old_label"] == OTHER and done.details["new_label"] == "Fresh"
    assert done.details["objects_seen"] == 1
    # The test token and its keys were not touched.
    assert user_pin_works(station, TOKEN, PIN)


def test_initialise_is_refused_for_live_keys_and_for_the_audit_token(
    station: Station, other: str
) -> None:
    admin = station.ws.admin
    with pytest.raises(PolicyError, match="audit keys") as caught:
        station(admin.init_token, TOKEN, TOKEN, "Gone", SO_PIN)
    assert caught.value.rule == RULE_AUDIT_TOKEN

    station(station.ws.tokens.login, OTHER, OTHER_PIN)
    key = station(station.ws.keys.generate, OTHER, Algorithm.AES_256, "payments-kek")
    with pytest.raises(PolicyError, match="payments-kek") as caught:
        station(admin.init_token, OTHER, OTHER, "Gone", OTHER_SO)
    assert caught.value.rule == RULE_LIVE_KEYS
    assert outcomes(station, "token.init") == ["denied", "denied"]
    assert station(station.ws.tokens.find, OTHER).label == OTHER
    assert key.cka_id in pkcs11_tool(station.home, "--token-label", OTHER, "-O", pin=OTHER_PIN)


def test_change_user_pin_is_confirmed_by_pkcs11_tool(station: Station) -> None:
    admin = station.ws.admin
    new = "SENTINEL-changed-9c1d"
    with pytest.raises(ValidationError, match="4 to 255"):
        station(admin.change_pin, TOKEN, PIN, "123")  # shorter than the token allows
    station(admin.change_pin, TOKEN, PIN, new)
    assert user_pin_works(station, TOKEN, new)
    assert not user_pin_works(station, TOKEN, PIN)
    assert outcomes(station, "token.change-pin") == ["success"]
    # The audit token stayed logged in: the entry is sealed.
    assert station.events("token.change-pin")[-1].mac is not None
    with pytest.raises(WrongPin):
        station(admin.change_pin, TOKEN, "SENTINEL-notit-0000", "SENTINEL-other-1111")
    assert outcomes(station, "token.change-pin") == ["success", "failed"]
    assert user_pin_works(station, TOKEN, new)


def test_change_user_pin_when_logged_out_logs_in_and_counts_a_wrong_old_pin(
    station: Station, other: str
) -> None:
    admin = station.ws.admin
    with pytest.raises(WrongPin) as caught:
        station(admin.change_pin, OTHER, "SENTINEL-notit-0000", "SENTINEL-other-1111")
    assert caught.value.failures == 1  # counted like any wrong PIN
    station(admin.change_pin, OTHER, OTHER_PIN, "SENTINEL-other-1111")
    assert user_pin_works(station, OTHER, "SENTINEL-other-1111")


def test_so_pin_change_and_user_pin_reset(station: Station, other: str) -> None:
    admin = station.ws.admin
    new_so = "SENTINEL-newso-3e3e"
    with pytest.raises(WrongPin, match="SO PIN"):
        station(admin.change_so_pin, OTHER, "SENTINEL-wrongso-0000", new_so)
    station(admin.change_so_pin, OTHER, OTHER_SO, new_so)
    assert so_pin_works(station, OTHER, new_so) and not so_pin_works(station, OTHER, OTHER_SO)
    # The SO resets a forgotten user PIN (the "unblock" of a token that locks).
    station(admin.init_pin, OTHER, new_so, "SENTINEL-reset-4f4f")
    assert user_pin_works(station, OTHER, "SENTINEL-reset-4f4f")
    assert not user_pin_works(station, OTHER, OTHER_PIN)
    assert outcomes(station, "token.change-so-pin") == ["failed", "success"]
    assert outcomes(station, "token.init-pin") == ["success"]
    for event in station.events():
        for secret in (new_so, OTHER_SO, OTHER_PIN, "SENTINEL-reset-4f4f"):
            assert secret not in str(event)


def test_so_work_on_the_audit_token_is_recorded_unsealed_and_the_token_can_be_used_again(
    station: Station,
) -> None:
    admin = station.ws.admin
    station(admin.init_pin, TOKEN, SO_PIN, "SENTINEL-reset-5a5a")
    entry = station.events("token.init-pin")[-1]
    assert entry.outcome == "success" and entry.mac is None  # no user session: no seal
    assert not station(station.ws.audit.__class__.sealing.fget, station.ws.audit)
    station(station.ws.tokens.login, TOKEN, "SENTINEL-reset-5a5a")
    report = station(station.ws.audit.verify)
    assert report.ok, report
