"""The mechanism table of a real SoftHSM token, checked against pkcs11-tool -M, plus naming,
capability words and filtering (no token needed for those)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pkcs11.exceptions as px
import pytest
from pkcs11 import Mechanism
from pkcs11.types import MechanismInfo

from app.errors import TokenRemoved
from app.hsm import mechanisms
from app.hsm.mechanisms import MechanismRow, filter_rows, mechanism_name, mechanism_table
from tests.support import TOKEN, Bench, pkcs11_tool

# pkcs11-tool's words for CKF_ flags -> ours.
PEER_WORDS = {
    "encrypt": "encrypt",
    "decrypt": "decrypt",
    "sign": "sign",
    "verify": "verify",
    "sign_recover": "sign recover",
    "verify_recover": "verify recover",
    "wrap": "wrap",
    "unwrap": "unwrap",
    "derive": "derive",
    "digest": "digest",
    "generate": "generate",
    "generate_key_pair": "generate key pair",
    "hw": "hardware",
    "EC F_P": "EC F_p",
    "EC F_2M": "EC F_2^m",
    "EC OID": "named curves",
    "EC uncompressed": "uncompressed points",
    "EC compressed": "compressed points",
}
# Where OpenSC's name for a code differs from the PKCS#11 name python-pkcs11 uses.
PEER_ALIASES = {"ECDSA_KEY_PAIR_GEN": "EC_KEY_PAIR_GEN"}

Peer = dict[str, tuple[int | None, int | None, frozenset[str]]]


def peer_mechanisms(bench: Bench) -> Peer:
    """pkcs11-tool -M: name -> (min key, max key, capability words in our vocabulary)."""
    out = pkcs11_tool(bench.home, "--token-label", TOKEN, "-M", pin=None)
    found: Peer = {}
    for line in out.splitlines()[1:]:
        parts = [p.strip() for p in re.split(r",(?![^{]*\})", line.strip()) if p.strip()]
        raw_name, rest = parts[0], parts[1:]
        low = high = None
        if rest and rest[0].startswith("keySize="):
            low, high = (int(n) for n in re.findall(r"\d+", rest.pop(0)))
        unknown = [w for w in rest if w not in PEER_WORDS]
        assert not unknown, f"pkcs11-tool word(s) not mapped by this test: {unknown}"
        if raw_name.startswith("mechtype-"):
            name = mechanism_name(int(raw_name.removeprefix("mechtype-"), 16))
        else:
            name = raw_name.replace("-", "_").upper()
            name = PEER_ALIASES.get(name, name)
        found[name] = (low, high, frozenset(PEER_WORDS[w] for w in rest))
    return found


def table(bench: Bench, module_path: str | None = "given") -> list[MechanismRow]:
    """The table of the bench token, read on the core thread."""
    info = bench(bench.ws.tokens.find, TOKEN)
    module = bench(bench.ws.tokens.module_of, info)
    path = info.module_path if module_path == "given" else module_path

    def read() -> list[MechanismRow]:
        return mechanism_table(module.token(info.serial).slot, path)

    rows: list[MechanismRow] = bench(read)
    return rows


def by_name(rows: Iterable[MechanismRow]) -> dict[str, MechanismRow]:
    return {row.name: row for row in rows}


# --- against the real token ---------------------------------------------------------------


@pytest.mark.hsm
def test_the_table_is_what_pkcs11_tool_lists(bench: Bench) -> None:
    rows = table(bench)
    ours: Peer = {r.name: (r.min_key, r.max_key, frozenset(r.can())) for r in rows}
    peer = peer_mechanisms(bench)
    assert len(peer) == len(rows) == 70
    assert ours == peer
    names = [r.name.lower() for r in rows]
    assert names == sorted(names)
    assert len({r.code for r in rows}) == len(rows)


@pytest.mark.hsm
def test_softhsm_mechanisms_keystead_relies_on(bench: Bench) -> None:
    rows = by_name(table(bench))
    pad = rows["AES_KEY_WRAP_PAD"]
    assert pad.code == 0x210A and pad.can() == ["wrap", "unwrap"]
    assert (pad.min_key, pad.max_key) == (1, 0x80000000)
    pair = rows["RSA_PKCS_KEY_PAIR_GEN"]
    assert pair.code == 0 and pair.can() == ["generate key pair"]
    assert pair.min_key is not None and pair.max_key is not None
    assert pair.min_key <= 2048 and 4096 <= pair.max_key <= 65536  # bits
    assert (rows["AES_KEY_GEN"].min_key, rows["AES_KEY_GEN"].max_key) == (16, 32)  # bytes
    ec = rows["EC_KEY_PAIR_GEN"].can()
    assert ec == ["generate key pair", "EC F_p", "named curves", "uncompressed points"]
    assert (rows["SHA256"].min_key, rows["SHA256"].max_key) == (None, None)
    # The six mechanisms whose flags python-pkcs11 reads as garbage from SoftHSM.
    for name in ("AES_ECB", "AES_CTR", "AES_GCM", "AES_CBC_PAD", "DES3_ECB", "DES3_CBC_PAD"):
        assert rows[name].can() == ["encrypt", "decrypt"], name


@pytest.mark.hsm
def test_without_a_module_path_the_loaded_library_is_found(bench: Bench) -> None:
    assert table(bench, module_path=None) == table(bench)


@pytest.mark.hsm
def test_python_pkcs11_reading_only_ever_adds_flags(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no way to find the library, python-pkcs11's reading is used: the same mechanisms and
    key sizes, and the exact flags plus, at most, garbage bits."""
    exact = table(bench)
    monkeypatch.setattr(mechanisms, "_LIBRARIES", {})
    fallback = table(bench, module_path=None)
    assert [(r.code, r.name, r.min_key, r.max_key) for r in fallback] == [
        (r.code, r.name, r.min_key, r.max_key) for r in exact
    ]
    for ours, theirs in zip(exact, fallback, strict=True):
        assert theirs.flags & ours.flags == ours.flags, ours.name


@pytest.mark.hsm
def test_filtering_the_real_table(bench: Bench) -> None:
    rows = table(bench)
    unwrap = {r.name for r in filter_rows(rows, "  UNWRAP ")}
    assert {"AES_KEY_WRAP", "AES_KEY_WRAP_PAD", "RSA_PKCS", "RSA_PKCS_OAEP"} == unwrap
    pairs = {r.name for r in filter_rows(rows, "key pair")}
    assert pairs == {r.name for r in rows if r.name.endswith("KEY_PAIR_GEN")}
    assert "DH_PKCS_KEY_PAIR_GEN" in pairs
    assert {r.name for r in filter_rows(rows, "sha256_")} == {
        "SHA256_HMAC",
        "SHA256_RSA_PKCS",
        "SHA256_RSA_PKCS_PSS",
    }
    assert filter_rows(rows, "") == rows
    assert filter_rows(rows, "no such thing") == []


# --- naming, words and errors, without a token ----------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x210A, "AES_KEY_WRAP_PAD"),
        (0x0000, "RSA_PKCS_KEY_PAIR_GEN"),
        (0x0120, "DES_KEY_GEN"),  # python-pkcs11 calls it _DES_KEY_GEN
        (0x0210, "MD5"),  # _MD5
        (0x1090, "BLOWFISH_KEY_GEN"),  # not python-pkcs11's alias _AES_KEY_WRAP
        (0x7FFF, "0x7fff"),
        (0x80000000, "vendor 0x80000000"),
        (0x8000001B, "vendor 0x8000001b"),
    ],
)
def test_names(code: int, name: str) -> None:
    assert mechanism_name(code) == name


def test_capability_words() -> None:
    row = MechanismRow(0x1041, "ECDSA", 256, 521, 0x01902801)
    assert row.can() == ["sign", "verify", "hardware", "EC F_p", "named curves",
                         "uncompressed points"]  # fmt: skip
    assert MechanismRow(1, "X", None, None, 0).can() == []
    odd = MechanismRow(1, "X", None, None, 0x00000100 | 0x7FFE00000000)
    assert odd.can() == ["encrypt", "other flags 0x7ffe00000000"]
    assert filter_rows([odd], "other flags") == [odd]


class FakeSlot:
    """A python-pkcs11 Slot look-alike: mechanisms it cannot name come back as ints."""

    slot_id = 9
    slot_description = "fake"
    manufacturer_id = "fake"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def get_mechanisms(self) -> set[Any]:
        if self.fail:
            raise px.TokenNotPresent()
        return {Mechanism.AES_KEY_GEN, 0x7FFF0001, 0x80000123}

    def get_mechanism_info(self, mechanism: Any) -> MechanismInfo:
        sizes = (16, 32) if mechanism == Mechanism.AES_KEY_GEN else (0, 0)
        return MechanismInfo(self, mechanism, *sizes, flags=0x00008000)  # type: ignore[arg-type]


def test_unnamed_and_vendor_mechanisms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mechanisms, "_LIBRARIES", {})
    rows = mechanism_table(FakeSlot())  # type: ignore[arg-type]
    assert [(r.name, r.code, r.min_key, r.max_key, r.can()) for r in rows] == [
        ("0x7fff0001", 0x7FFF0001, None, None, ["generate"]),
        ("AES_KEY_GEN", 0x1080, 16, 32, ["generate"]),
        ("vendor 0x80000123", 0x80000123, None, None, ["generate"]),
    ]


def test_pkcs11_errors_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mechanisms, "_LIBRARIES", {})
    with pytest.raises(TokenRemoved, match="reading the mechanism list"):
        mechanism_table(FakeSlot(fail=True))  # type: ignore[arg-type]
