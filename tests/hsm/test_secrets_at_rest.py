"""A scripted workflow with sentinel secrets and a sentinel key name: none of them is in clear in
any file under the home (database, keyslots, SoftHSM's token files) nor in the logs."""

from __future__ import annotations

import logging

import pytest

from app.domain.algorithms import Algorithm
from app.errors import WrongPassphrase, WrongPin
from app.services.workstation import Workstation
from tests.hsm.kit import (
    FAST_KDF,
    KEY_NAME,
    OPERATOR,
    PIN,
    SECRETS,
    TOKEN,
    WRONG_PIN,
    Station,
    files_under,
)

pytestmark = pytest.mark.hsm

SECOND = "second officer"
SECOND_PASSPHRASE = "SENTINEL-second-passphrase-e09d"
WRONG_PASSPHRASE = "SENTINEL-wrong-passphrase-77aa"
KEY_NAMES = [KEY_NAME, f"{KEY_NAME}-ec", f"{KEY_NAME}-ed", f"{KEY_NAME}-rsa"]


def encodings(text: str) -> list[bytes]:
    return [text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")]


def test_no_secret_or_key_name_in_clear_on_disk_or_in_logs(
    bare_station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    station = bare_station
    ws = station.initialize()
    station(ws.tokens.logout, station.serial)
    with pytest.raises(WrongPin):
        station(ws.tokens.login, TOKEN, WRONG_PIN)
    station(ws.tokens.login, TOKEN, PIN)
    station(ws.keys.generate, TOKEN, Algorithm.AES_256, KEY_NAMES[0])
    station(ws.keys.generate, TOKEN, Algorithm.EC_P256, KEY_NAMES[1], None, True)
    station(ws.keys.generate, TOKEN, Algorithm.ED25519, KEY_NAMES[2])
    station(ws.keys.generate, TOKEN, Algorithm.RSA_2048, KEY_NAMES[3])
    station(ws.add_operator, SECOND, SECOND_PASSPHRASE, SECOND_PASSPHRASE, cost=FAST_KDF)
    database_key = ws._database_key
    station.lock()
    with pytest.raises(WrongPassphrase):
        station(Workstation.unlock, station.home, OPERATOR, WRONG_PASSPHRASE)
    station.unlock(SECOND, SECOND_PASSPHRASE)
    station.lock()

    files = files_under(station.home.root)
    token_files = [p for p in files if station.home.softhsm_tokens in p.parents]
    assert len(token_files) >= 10  # every object SoftHSM stores, one file each
    contents = {path: path.read_bytes() for path in files}
    forbidden = [*SECRETS, SECOND_PASSPHRASE, WRONG_PASSPHRASE, *KEY_NAMES]
    for path, data in contents.items():
        for text in forbidden:
            for encoded in encodings(text):
                assert encoded not in data, f"{text!r} in clear in {path}"
        assert database_key not in data and database_key.hex().encode() not in data, path
    # The scan does see clear text where there is some: the token label in SoftHSM's token
    # file, and the operator names (visible labels) in the keyslot file.
    assert any(TOKEN.encode() in data for path, data in contents.items() if path in token_files)
    assert OPERATOR.encode() in contents[station.home.keyslots]
    assert SECOND.encode() in contents[station.home.keyslots]
    assert not contents[station.home.database].startswith(b"SQLite format 3")

    assert any(r.name.startswith("app.") for r in caplog.records)  # logging was captured
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for text in forbidden:
        assert text not in logged, f"{text!r} in the logs"
    assert database_key.hex() not in logged
