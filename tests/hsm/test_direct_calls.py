"""The backup's direct PKCS#11 calls (app/hsm/direct.py) against python-pkcs11 on a real
SoftHSM token: the same handles, attribute values and RFC 5649 blobs; answers longer than the
buffer read again in full; CKR codes raised as python-pkcs11's exceptions. And ``wrap_all``
built on them: blobs that ``cryptography`` unwraps, under the KEK, to keys with the recorded
KCVs and public keys; a CKA_ID held twice refused before anything is wrapped."""

from __future__ import annotations

import os
from typing import Any

import pkcs11.exceptions as px
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from app.domain.algorithms import Algorithm, Purpose
from app.errors import TokenError
from app.hsm import direct as direct_module
from app.hsm.backup_wrap import trusted_kek
from app.hsm.direct import DirectSession
from app.hsm.errors import ckr_name
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Station

pytestmark = pytest.mark.hsm

WRAP = int(Mechanism.AES_KEY_WRAP_PAD)
SIZES: dict[int, int] = {Attribute.ID: 256, Attribute.CHECK_VALUE: 64, Attribute.VALUE: 64}


def _kcv(value: bytes) -> str:
    encryptor = Cipher(algorithms.AES(value), modes.ECB()).encryptor()  # noqa: S305 (KCV)
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:3].hex().upper()


def _der(data: bytes) -> bytes:
    """A DER SEQUENCE cut at its own length (SoftHSM zero-pads what it wraps)."""
    if data[1] & 0x80:
        size = data[1] & 0x7F
        return data[: 2 + size + int.from_bytes(data[2 : 2 + size], "big")]
    return data[: 2 + data[1]]


def _keys(station: Station) -> tuple[list[Any], Any]:
    gen = station.ws.keys.generate
    aes = [station(gen, TOKEN, Algorithm.AES_256, f"k{i}", backup_able=True) for i in range(3)]
    aes.append(station(gen, TOKEN, Algorithm.AES_128, "short", backup_able=True))
    station(gen, TOKEN, Algorithm.AES_256, "stays")  # not extractable
    pair = station(gen, TOKEN, Algorithm.EC_P256, "sig", Purpose.SIGNING, True)
    return aes, pair


def test_direct_calls_answer_as_python_pkcs11_does(station: Station) -> None:
    _keys(station)

    def check() -> int:
        session = station.ws.tokens.session(TOKEN)
        with trusted_kek(session.module, session.info, os.urandom(32), SO_PIN, PIN) as ks:
            raw, kek = ks._session, ks._kek
            calls = DirectSession(session.module.path, raw)
            objects = list(raw.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
            assert sorted(calls.find(int(ObjectClass.SECRET_KEY))) == sorted(
                int(o.handle) for o in objects
            )
            kek_handle = int(kek.handle)
            wrapped = 0
            for obj in objects:
                handle = int(obj.handle)
                expected = obj.get_attributes([Attribute.ID, Attribute.CHECK_VALUE])
                got = calls.attributes(handle, SIZES)
                assert got[Attribute.ID] == bytes(expected[Attribute.ID])
                assert got[Attribute.CHECK_VALUE] == bytes(expected[Attribute.CHECK_VALUE])
                assert got[Attribute.VALUE] is None  # sensitive: unavailable, not an error
                # Buffers too small: read again, in full.
                tiny: dict[int, int] = {Attribute.ID: 1, Attribute.CHECK_VALUE: 1}
                small = calls.attributes(handle, tiny)
                assert small == {k: got[k] for k in small}
                if obj[Attribute.EXTRACTABLE]:
                    blob = bytes(kek.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP_PAD))
                    assert calls.wrap(WRAP, kek_handle, handle, 4096) == blob
                    assert calls.wrap(WRAP, kek_handle, handle, 8) == blob
                    wrapped += 1
                else:
                    with pytest.raises(px.KeyUnextractable):
                        calls.wrap(WRAP, kek_handle, handle, 4096)
        session.login_changed()
        return wrapped

    assert station(check) == 4


def test_an_unmapped_code_reads_as_python_pkcs11_words_it() -> None:
    with pytest.raises(px.PKCS11Error) as caught:
        direct_module._check(0x1B)
    assert ckr_name(caught.value) == "CKR_ACTION_PROHIBITED"
    with pytest.raises(px.KeyNotWrappable):
        direct_module._check(0x69)
    direct_module._check(0)


def test_wrap_all_blobs_unwrap_to_the_recorded_keys(station: Station) -> None:
    aes, pair = _keys(station)
    kek = os.urandom(32)
    ids = [k.cka_id for k in aes] + [pair.cka_id]
    steps: list[int] = []

    def wrap() -> list[Any]:
        session = station.ws.tokens.session(TOKEN)
        with trusted_kek(session.module, session.info, kek, SO_PIN, PIN) as ks:
            result = ks.wrap_all(ids, steps.append, frozenset({pair.cka_id}))
        session.login_changed()
        return result

    wrapped = station(wrap)
    assert [w.cka_id for w in wrapped] == ids and steps == [1, 2, 3, 4, 5]
    for key, blob in zip(aes, wrapped[:-1], strict=True):
        assert blob.value_len == key.algorithm.spec.bits // 8 and blob.kcv == key.kcv
        value = aes_key_unwrap_with_padding(kek, blob.wrapped)[: blob.value_len]
        assert _kcv(value) == key.kcv
    assert wrapped[-1].value_len == 0 and wrapped[-1].kcv is None
    private = serialization.load_der_private_key(
        _der(aes_key_unwrap_with_padding(kek, wrapped[-1].wrapped)), None
    )
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == station(station.ws.keys.repo.spki, pair.id)


def test_a_cka_id_held_twice_is_refused_before_anything_is_wrapped(station: Station) -> None:
    aes, _pair = _keys(station)
    steps: list[int] = []

    def wrap() -> None:
        session = station.ws.tokens.session(TOKEN)
        try:
            with trusted_kek(session.module, session.info, os.urandom(32), SO_PIN, PIN) as ks:
                # A session object another tool could have made, with k1's CKA_ID.
                ks._session.generate_key(
                    KeyType.AES,
                    256,
                    store=False,
                    template={
                        Attribute.ID: bytes.fromhex(aes[1].cka_id),
                        Attribute.EXTRACTABLE: True,
                        Attribute.SENSITIVE: True,
                    },
                )
                ks.wrap_all([k.cka_id for k in aes], steps.append)
        finally:
            session.login_changed()

    with pytest.raises(TokenError, match=f"holds 2 keys with CKA_ID {aes[1].cka_id}"):
        station(wrap)
    assert steps == []
    with pytest.raises(TokenError, match="holds 0 keys with CKA_ID 00ff"):
        station(lambda: _wrap_ids(station, ["00ff"]))


def _wrap_ids(station: Station, ids: list[str]) -> None:
    session = station.ws.tokens.session(TOKEN)
    try:
        with trusted_kek(session.module, session.info, os.urandom(32), SO_PIN, PIN) as ks:
            ks.wrap_all(ids)
    finally:
        session.login_changed()
