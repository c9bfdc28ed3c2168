"""Write-ahead intents reconciled after a "kill": the intent is committed and the token changed
as a killed process would have left them (the token call done, the database change never
committed), then the next login or unlock completes or rolls back each one and records it.
Real kills are in tests/crash; these pin each reconciliation down."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from pkcs11 import ObjectClass

from app.domain.algorithms import Algorithm, default_purpose, usage_for
from app.domain.keys import KeyState
from app.domain.lifecycle import Action
from app.hsm.templates import KeySpec
from app.services import intents as intents_module
from app.services.keys import identity_of
from tests.hsm.kit import PIN, SO_PIN, TOKEN, Station, peer_keys

pytestmark = pytest.mark.hsm


def _resolutions(station: Station) -> list[dict[str, object]]:
    return [dict(e.details) for e in station.events("intent.resolve")]


def _orphan_generation(station: Station, name: str) -> str:
    """A generation killed after the token made the key: intent pending, object on token."""
    ws = station.ws
    spec = KeySpec(
        algorithm=Algorithm.AES_128,
        label=name,
        cka_id=secrets.token_bytes(16),
        usage=usage_for(Algorithm.AES_128, default_purpose(Algorithm.AES_128)),
        extractable=False,
    )
    cka_id = spec.cka_id.hex()
    station(
        ws.tokens.intents.begin,
        "key.generate",
        station.serial,
        f"key:{name}",
        {"subject": f"key:{name}", "name": name, "cka_id": cka_id},
    )
    station(lambda: ws.tokens.session(TOKEN).generate(spec))
    return cka_id


def test_a_generation_killed_after_the_token_acted_is_rolled_back_at_the_next_login(
    station: Station,
) -> None:
    cka_id = _orphan_generation(station, "half-made")
    assert cka_id in {p.cka_id for p in peer_keys(station.home)}
    station.unlock()  # the next login reconciles
    assert cka_id not in {p.cka_id for p in peer_keys(station.home)}
    assert station(station.ws.tokens.intents.pending) == []
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "rolled-back" and resolved["objects_destroyed"] == 1
    aborted = station.events("key.generate")[-1]
    assert aborted.outcome == "aborted" and aborted.details["cka_id"] == cka_id


def test_a_flag_change_killed_before_the_commit_is_rolled_back_to_the_recorded_state(
    station: Station,
) -> None:
    ws = station.ws
    key = station(ws.keys.generate, TOKEN, Algorithm.AES_128, "flags")
    station(ws.lifecycle.transition, key.id, Action.ACTIVATE)
    station(
        ws.tokens.intents.begin,
        "key.transition",
        station.serial,
        f"key:{key.id}",
        {
            "subject": f"key:{key.id}",
            "transition": "suspend",
            "changes": [{"key": key.id, "cka_id": key.cka_id, "from": "ACTIVE", "to": "SUSPENDED"}],
        },
    )
    station(lambda: ws.tokens.session(TOKEN).set_usage(identity_of(key), frozenset(), frozenset()))
    (obj,) = [p for p in peer_keys(station.home) if p.cka_id == key.cka_id]
    assert obj.usage == frozenset()  # the token says suspended, the database says active
    station.unlock()
    (obj,) = [p for p in peer_keys(station.home) if p.cka_id == key.cka_id]
    assert obj.usage == {"encrypt", "decrypt"}
    assert station(station.ws.keys.resolve, key.id).state is KeyState.ACTIVE
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "rolled-back"


def test_a_destroy_killed_after_the_token_acted_is_completed_and_recorded(
    station: Station,
) -> None:
    ws = station.ws
    key = station(ws.keys.generate, TOKEN, Algorithm.EC_P256, "going")
    station(
        ws.tokens.intents.begin,
        "key.transition",
        station.serial,
        f"key:{key.id}",
        {
            "subject": f"key:{key.id}",
            "transition": "destroy",
            "changes": [
                {"key": key.id, "cka_id": key.cka_id, "from": "PRE_ACTIVE", "to": "DESTROYED"}
            ],
        },
    )
    # killed between the private key and the public half
    private = ObjectClass.PRIVATE_KEY
    station(
        lambda: ws.tokens.session(TOKEN)
        ._session.get_key(object_class=private, id=bytes.fromhex(key.cka_id))
        .destroy()
    )
    station.unlock()
    assert station(station.ws.keys.resolve, key.id).state is KeyState.DESTROYED
    assert key.cka_id not in {p.cka_id for p in peer_keys(station.home)}  # the half went too
    destroyed = [e for e in station.events("key.destroy") if e.outcome == "success"]
    assert len(destroyed) == 1 and destroyed[0].mac is not None
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "completed"


def test_a_half_made_embedded_token_is_removed_at_the_next_unlock_and_the_label_is_free(
    station: Station,
) -> None:
    ws = station.ws

    def half_made() -> None:
        module = next(iter(ws.tokens.modules.values()))
        ws.tokens.intents.begin(
            "token.create-soft",
            "",
            "token-label:second",
            {
                "subject": "token-label:second",
                "label": "second",
                "dirs_before": sorted(
                    p.name for p in station.home.softhsm_tokens.iterdir() if p.is_dir()
                ),
            },
        )
        free = [t for t in module.tokens(include_uninitialized=True) if not t.initialized]
        module.init_token(free[0].slot_id, SO_PIN, "second")  # killed before C_InitPIN

    station(half_made)
    station.unlock()
    assert [t.label for t in station(station.ws.tokens.present)] == [TOKEN]
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "rolled-back" and len(resolved["tokens_removed"]) == 1
    assert list(station.home.softhsm_quarantine.iterdir())  # moved aside, never deleted
    created = station(station.ws.tokens.create_soft_token, "second", SO_PIN, PIN)
    assert created.label == "second"


def test_an_intent_of_a_process_still_running_is_left_alone(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        owner = f"{sleeper.pid}:{intents_module._start_time(sleeper.pid)}"
        monkeypatch.setattr(intents_module, "OWNER", owner)
        cka_id = _orphan_generation(station, "in-flight")
        monkeypatch.undo()
        station.unlock()
        assert cka_id in {p.cka_id for p in peer_keys(station.home)}
        assert len(station(station.ws.tokens.intents.pending)) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    station.unlock()  # its writer is gone now
    assert station(station.ws.tokens.intents.pending) == []
    assert cka_id not in {p.cka_id for p in peer_keys(station.home)}


# --- objects a generation left without its template (no CKA_ID, no label) -----------------
#
# SoftHSM 2.6.1 creates the object file with the class and key type first and commits the
# template (ID, label, value) last; a kill in between leaves a key object with neither ID nor
# label. SoftHSM itself leaves the same object when it refuses a template attribute after
# creating the object (CreateObject does not delete it), which makes the state reproducible
# here: the "killed" generation is a refused one.


def _blank_generation(station: Station, name: str, algorithm: Algorithm) -> None:
    """A generation's intent (with the token's files before the call), then the object a kill
    inside C_GenerateKey(Pair) leaves: no CKA_ID, no label."""
    ws = station.ws
    session = station(ws.tokens.session, TOKEN)
    before = station(session.object_files)
    assert before is not None
    station(
        ws.tokens.intents.begin,
        "key.generate",
        station.serial,
        f"key:{name}",
        {
            "subject": f"key:{name}",
            "name": name,
            "label": name,
            "cka_id": secrets.token_hex(16),
            "algorithm": algorithm.value,
        },
        evidence={"token_files": sorted(before)},
    )
    _leave_blank(station, algorithm)


def _leave_blank(station: Station, algorithm: Algorithm) -> None:
    from pkcs11 import Attribute, KeyType
    from pkcs11.exceptions import AttributeTypeInvalid

    raw = station(lambda: station.ws.tokens.session(TOKEN)._session)
    with pytest.raises(AttributeTypeInvalid):
        if algorithm is Algorithm.AES_128:
            station(
                raw.generate_key, KeyType.AES, 128, store=True, template={Attribute.MODULUS: b"x"}
            )
        else:
            station(
                raw.generate_keypair,
                KeyType.EC,
                store=True,
                public_template={
                    Attribute.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107"),
                    Attribute.MODULUS: b"x",
                },
            )


def _blank_objects(station: Station) -> list[object]:
    return [p for p in peer_keys(station.home) if not p.cka_id and not p.label]


@pytest.mark.parametrize("algorithm", [Algorithm.AES_128, Algorithm.EC_P256])
def test_an_object_left_without_id_or_label_by_a_killed_generation_is_destroyed_and_recorded(
    station: Station, algorithm: Algorithm
) -> None:
    _blank_generation(station, "blank", algorithm)
    assert len(_blank_objects(station)) == 1
    station.unlock()  # the next login reconciles
    assert _blank_objects(station) == []
    assert station(station.ws.tokens.intents.pending) == []
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "rolled-back"
    assert resolved["blank_objects_destroyed"] == 1
    assert resolved["blank_objects_left_for_officer"] == 0
    aborted = station.events("key.generate")[-1]
    assert aborted.outcome == "aborted"
    assert aborted.details["token_object"] == "destroyed (created without its template)"


def test_a_blank_object_that_was_there_before_the_generation_is_left_for_the_officer(
    station: Station,
) -> None:
    _leave_blank(station, Algorithm.AES_128)  # a foreign tool's, before Keystead's try
    _blank_generation(station, "blank", Algorithm.AES_128)
    assert len(_blank_objects(station)) == 2
    station.unlock()
    assert len(_blank_objects(station)) == 2  # not provably ours: nothing destroyed
    (resolved,) = _resolutions(station)
    assert resolved["blank_objects_destroyed"] == 0
    assert resolved["blank_objects_left_for_officer"] == 2
    assert station(station.ws.tokens.intents.pending) == []
    listed = station(station.ws.keys.inventory)
    unmanaged = [i.token_object for i in listed if i.record is None and i.token_object]
    assert sum(1 for obj in unmanaged if not obj.cka_id and not obj.label) == 2


def test_a_blank_object_of_another_key_type_or_without_evidence_is_left_alone(
    station: Station,
) -> None:
    _leave_blank(station, Algorithm.EC_P256)  # an EC public key object without ID or label
    ws = station.ws
    station(
        ws.tokens.intents.begin,
        "key.generate",
        station.serial,
        "key:old",
        {"subject": "key:old", "name": "old", "cka_id": secrets.token_hex(16),
         "algorithm": Algorithm.AES_128.value},
    )  # an intent of a version before the evidence: no token_files
    _leave_blank(station, Algorithm.AES_128)
    station.unlock()
    (resolved,) = _resolutions(station)
    assert resolved["blank_objects_destroyed"] == 0
    assert resolved["blank_objects_left_for_officer"] == 1
    assert len(_blank_objects(station)) == 2


# --- a blank slot's initialisation (tokens init-blank) ---------------------------------------


def _init_blank_intent(station: Station, slot_id: int, label: str) -> None:
    from tests.hsm.kit import MODULE

    station(
        station.ws.tokens.intents.begin,
        "token.init-blank",
        f"{MODULE}#slot{slot_id}",
        f"{MODULE}#slot{slot_id}",
        {
            "subject": f"{MODULE}#slot{slot_id}",
            "module": MODULE,
            "slot": slot_id,
            "new_label": label,
            "user_pin_set": True,
        },
    )


def _blank_slot(station: Station) -> int:
    (slot,) = station(station.ws.tokens.blank_slots)
    return int(slot.slot_id)


def test_a_blank_slot_initialisation_killed_after_c_inittoken_is_completed_and_recorded(
    station: Station,
) -> None:
    from tests.hsm.kit import MODULE

    slot_id = _blank_slot(station)
    _init_blank_intent(station, slot_id, "fresh")
    station(lambda: station.ws.tokens.modules[MODULE].init_token(slot_id, SO_PIN, "fresh"))
    station.unlock()  # killed before C_InitPIN and the commit; the next unlock reconciles
    assert station(station.ws.tokens.intents.pending) == []
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "completed" and resolved["label"] == "fresh"
    assert resolved["user_pin_set"] is False and "tokens init-pin" in str(resolved["note"])
    assert "fresh" in [t.label for t in station(station.ws.tokens.present)]


def test_a_blank_slot_initialisation_killed_before_the_token_acted_is_rolled_back(
    station: Station,
) -> None:
    slot_id = _blank_slot(station)
    _init_blank_intent(station, slot_id, "never")
    station.unlock()
    assert station(station.ws.tokens.intents.pending) == []
    (resolved,) = _resolutions(station)
    assert resolved["resolution"] == "rolled-back" and resolved["slot_now"] == "blank"
