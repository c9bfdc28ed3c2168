"""Backup-able keys carry CKA_WRAP_WITH_TRUSTED: the user PIN alone cannot wrap them out.

pkcs11-tool is the independent peer: logged in with the user PIN it makes a KEK of its own and
tries to wrap each key with RFC 5649 (CKM_AES_KEY_WRAP_PAD, 0x210A). The same attempt on a key
without the attribute succeeds, so the refusal is the attribute's doing, not the tool's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm, Purpose
from app.domain.keys import TrustedWrap
from app.services.keys import identity_of
from tests.hsm.kit import MODULE, PIN, TOKEN, Station, pkcs11_tool

pytestmark = pytest.mark.hsm

USER_KEK_ID = "eeee"


def _user_kek(station: Station) -> None:
    """A wrapping key anyone with the user PIN can make."""
    pkcs11_tool(
        station.home,
        *["--token-label", TOKEN, "--keygen", "--key-type", "AES:32"],
        *["--id", USER_KEK_ID, "--label", "user-kek", "--usage-wrap"],
    )


def _wrap_with_user_pin(
    station: Station, cka_id: str, out: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *["pkcs11-tool", "--module", MODULE, "--login", "--pin", PIN],
            *["--token-label", TOKEN, "--wrap", "--mechanism", "0x210A"],
            *["--id", USER_KEK_ID, "--application-id", cka_id, "--output-file", str(out)],
        ],
        env={"SOFTHSM2_CONF": str(station.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# pkcs11-tool 0.23 wraps secret keys only; private keys are tried with a raw python-pkcs11
# client in its own process (any PKCS#11 program holding the user PIN).
RAW_WRAP = """
import sys, pkcs11
from pkcs11 import Attribute as A, KeyType, Mechanism, ObjectClass
token = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2])
with token.open(rw=True, user_pin=sys.stdin.readline().strip()) as s:
    kek = s.generate_key(KeyType.AES, 256, template={A.WRAP: True, A.TOKEN: False})
    key = next(s.get_objects({A.CLASS: ObjectClass.PRIVATE_KEY, A.ID: bytes.fromhex(sys.argv[3])}))
    try:
        wrapped = kek.wrap_key(key, mechanism=Mechanism(0x210A))
    except pkcs11.exceptions.KeyNotWrappable:
        print("CKR_KEY_NOT_WRAPPABLE")
        sys.exit(1)
    print("wrapped", len(wrapped))
"""


def _raw_wrap_private(station: Station, cka_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RAW_WRAP, MODULE, TOKEN, cka_id],
        input=PIN + "\n",
        env={"SOFTHSM2_CONF": str(station.home.softhsm_conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("algorithm", [Algorithm.EC_P256, Algorithm.RSA_2048])
def test_user_pin_alone_cannot_wrap_a_backup_able_private_key(
    station: Station, algorithm: Algorithm
) -> None:
    key = station(station.ws.keys.generate, TOKEN, algorithm, "backed", backup_able=True)
    assert key.wrap_trusted is TrustedWrap.OK
    attrs = station(lambda: station.ws.tokens.session(TOKEN).read_key(identity_of(key)))
    assert attrs["PRIVATE_KEY"]["EXTRACTABLE"] is True
    assert attrs["PRIVATE_KEY"]["WRAP_WITH_TRUSTED"] is True
    refused = _raw_wrap_private(station, key.cka_id)
    assert (refused.returncode, refused.stdout.strip()) == (1, "CKR_KEY_NOT_WRAPPABLE"), (
        refused.stderr
    )


def test_raw_client_wraps_a_private_key_without_the_attribute(station: Station) -> None:
    """The control for the raw client: it does wrap an extractable key that lacks it."""
    pkcs11_tool(
        station.home,
        *["--token-label", TOKEN, "--keypairgen", "--key-type", "EC:prime256v1"],
        *["--id", "0303", "--label", "open-ec", "--extractable"],
    )
    result = _raw_wrap_private(station, "0303")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrapped ")


@pytest.mark.parametrize("algorithm", [Algorithm.AES_128, Algorithm.AES_256])
def test_user_pin_alone_cannot_wrap_a_backup_able_key(
    station: Station, tmp_path: Path, algorithm: Algorithm
) -> None:
    key = station(station.ws.keys.generate, TOKEN, algorithm, "backed", backup_able=True)
    assert key.wrap_trusted is TrustedWrap.OK
    attrs = station(lambda: station.ws.tokens.session(TOKEN).read_key(identity_of(key)))
    assert attrs["SECRET_KEY"]["EXTRACTABLE"] is True
    assert attrs["SECRET_KEY"]["WRAP_WITH_TRUSTED"] is True
    _user_kek(station)

    out = tmp_path / "stolen.bin"
    result = _wrap_with_user_pin(station, key.cka_id, out)
    assert result.returncode != 0
    assert "CKR_KEY_NOT_WRAPPABLE" in result.stderr
    assert not out.exists() or out.stat().st_size == 0


def test_the_same_wrap_succeeds_on_a_key_without_the_attribute(
    station: Station, tmp_path: Path
) -> None:
    """The control: an extractable key made without CKA_WRAP_WITH_TRUSTED is wrapped out by
    the user PIN alone — the hole the attribute closes."""
    pkcs11_tool(
        station.home,
        *["--token-label", TOKEN, "--keygen", "--key-type", "AES:32"],
        *["--id", "0101", "--label", "open-aes", "--extractable"],
    )
    _user_kek(station)
    out = tmp_path / "stolen.bin"
    result = _wrap_with_user_pin(station, "0101", out)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size == 40  # RFC 5649 of 32 bytes: 8-byte block + 32


def test_a_key_that_is_not_backup_able_is_never_extractable(station: Station) -> None:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_256, "kept")
    assert key.wrap_trusted is TrustedWrap.NOT_APPLICABLE
    attrs = station(lambda: station.ws.tokens.session(TOKEN).read_key(identity_of(key)))
    assert attrs["SECRET_KEY"]["EXTRACTABLE"] is False
    assert attrs["SECRET_KEY"]["WRAP_WITH_TRUSTED"] is False


def test_an_adopted_open_key_is_tried_at_the_next_login_and_the_refusal_recorded(
    station: Station,
) -> None:
    """A backup-able key without the attribute (adopted here; recorded before schema 5 in
    real life) is 'pending'; the next login asks the token to set it. SoftHSM 2.6.1 allows it
    only at creation, so the key is marked 'refused' and the refusal is in the audit log."""
    pkcs11_tool(
        station.home,
        *["--token-label", TOKEN, "--keygen", "--key-type", "AES:32"],
        *["--id", "0202", "--label", "open-aes", "--extractable"],
    )
    # pkcs11-tool's AES key is not sensitive and extractable: adopted with the purpose chosen
    # and the exposure acknowledged (issue 9).
    key = station(
        station.ws.keys.adopt, TOKEN, "0202", purpose=Purpose.ENCRYPTION, accept_exposure=True
    )
    assert key.extractable and key.wrap_trusted is TrustedWrap.PENDING

    station.unlock()
    after = station(station.ws.keys.resolve, key.id)
    assert after.wrap_trusted is TrustedWrap.REFUSED
    events = station.events("key.wrap-trusted", f"key:{key.id}")
    assert [(e.outcome, e.details["wrap_with_trusted"]) for e in events] == [("denied", "refused")]
    assert "anyone with the user PIN" in events[0].details["reason"]

    station.unlock()  # settled: not tried (nor recorded) again
    assert len(station.events("key.wrap-trusted", f"key:{key.id}")) == 1


def test_a_pending_key_that_already_carries_it_is_marked_ok(station: Station) -> None:
    key = station(station.ws.keys.generate, TOKEN, Algorithm.AES_128, "b", backup_able=True)

    def mark_pending() -> None:
        with station.ws.db.transaction():
            station.ws.db.execute(
                "UPDATE keys SET wrap_trusted = 'pending' WHERE id = ?", (key.id,)
            )

    station(mark_pending)
    station.unlock()
    assert station(station.ws.keys.resolve, key.id).wrap_trusted is TrustedWrap.OK
    events = station.events("key.wrap-trusted", f"key:{key.id}")
    assert [(e.outcome, e.details["wrap_with_trusted"]) for e in events] == [("success", "ok")]
