"""The encrypted database: distinct errors for a wrong passphrase and a damaged file, the file
left as it was, keyslots for two operators, and nothing readable in any file under the home."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.domain.algorithms import Algorithm
from app.errors import DatabaseDamaged, UnknownOperator, WrongPassphrase
from app.services.workstation import Workstation
from tests.support import FAST_KDF, OPERATOR, PASS, PIN, SO_PIN, Bench

pytestmark = pytest.mark.hsm

KEY_NAME = "SENTINEL-KEYNAME-7f3a"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_wrong_passphrase_leaves_file_and_no_journal(bench: Bench) -> None:
    bench(bench.ws.lock)
    before = bench.home.database.read_bytes()
    with pytest.raises(WrongPassphrase):
        bench(Workstation.unlock, bench.home, OPERATOR, PASS + "x")
    with pytest.raises(UnknownOperator):
        bench(Workstation.unlock, bench.home, "nobody", PASS)
    assert bench.home.database.read_bytes() == before
    leftovers = [p.name for p in bench.home.root.iterdir() if p.name.startswith("keystead.db-")]
    assert leftovers == []
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS)


@pytest.mark.parametrize("where", ["first page", "middle", "last byte"])
def test_flipped_byte_is_damage_and_file_is_untouched(bench: Bench, where: str) -> None:
    bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, "k")
    bench(bench.ws.lock)
    data = bytearray(bench.home.database.read_bytes())
    offset = {"first page": 100, "middle": len(data) // 2, "last byte": len(data) - 1}[where]
    data[offset] ^= 0x40
    bench.home.database.write_bytes(bytes(data))
    with pytest.raises(DatabaseDamaged, match="damaged") as caught:
        bench(Workstation.unlock, bench.home, OPERATOR, PASS)
    assert "untouched" in caught.value.message
    assert bench.home.database.read_bytes() == bytes(data)
    data[offset] ^= 0x40
    bench.home.database.write_bytes(bytes(data))
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS)  # repaired copy opens


def test_truncated_by_a_page_is_damage(bench: Bench) -> None:
    for i in range(40):
        bench(bench.ws.keys.generate, "Life", Algorithm.AES_128, f"k{i}")
    bench(bench.ws.lock)
    data = bench.home.database.read_bytes()
    bench.home.database.write_bytes(data[:-4096])
    with pytest.raises(DatabaseDamaged):
        bench(Workstation.unlock, bench.home, OPERATOR, PASS)
    bench.home.database.write_bytes(data)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS)


def test_two_operators_each_with_their_keyslot(bench: Bench) -> None:
    bench(
        bench.ws.add_operator,
        "second officer",
        "second passphrase!",
        "second passphrase!",
        cost=FAST_KDF,
    )
    bench(bench.ws.lock)
    assert Workstation.operators(bench.home) == [OPERATOR, "second officer"]
    bench.ws = bench(Workstation.unlock, bench.home, "second officer", "second passphrase!")
    assert bench.ws.operator == "second officer"
    bench(bench.ws.lock)
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS)


def test_nothing_readable_under_the_home(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bench(bench.ws.keys.generate, "Life", Algorithm.EC_P256, KEY_NAME)
    bench(bench.ws.keys.generate, "Life", Algorithm.AES_256, KEY_NAME + "-aes", None, True)
    bench(bench.ws.lock)
    assert not bench.home.database.read_bytes().startswith(b"SQLite format 3")
    sentinels = [
        KEY_NAME.encode(),
        PASS.encode(),
        PIN.encode(),
        SO_PIN.encode(),
        KEY_NAME.encode("utf-16-le"),
    ]
    for path in files_under(bench.home.root):
        data = path.read_bytes()
        for sentinel in sentinels:
            assert sentinel not in data, f"{sentinel!r} in clear in {path}"
    logged = caplog.text
    assert PASS not in logged and SO_PIN not in logged and f" {PIN}" not in logged
    bench.ws = bench(Workstation.unlock, bench.home, OPERATOR, PASS)
