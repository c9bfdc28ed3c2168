"""Ceremony scripts: a parameter value the step would refuse when run is refused by validation
(``scripts.parse``, as ``ceremony validate`` and ``ceremony run`` read a script), with the step,
its line and the field named, by the very rules the services apply (issue: validate accepted DES,
control characters in a key name, ``../`` output paths, which the run then refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ceremony import script as scripts
from app.ceremony.registry import Preflight
from app.domain.names import validate_key_name
from app.errors import CeremonyScriptError, ValidationError

HEAD = """schema = 1
name = "demo"
title = "Demo"

[profiles.rehearsal]
token_label = "Rehearsal"
[profiles.production]
token_serial = "9a1b2c3d4e5f6a7b"
"""


def step(step_id: str, kind: str, **params: object) -> str:
    lines = [
        "",
        "[[steps]]",
        f'id = "{step_id}"',
        f'type = "{kind}"',
        'instruction = "Do it."',
        "[steps.params]",
    ]
    for key, value in params.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(_quoted(v) for v in value)}]")
        else:
            lines.append(f"{key} = {_quoted(str(value))}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def generate(**params: object) -> str:
    return step("gen", "key.generate", **{"name": "k1", "algorithm": "AES-256", **params})


def refused(*steps: str, preflight: Preflight | None = None) -> CeremonyScriptError:
    text = HEAD + "".join(steps)
    with pytest.raises(CeremonyScriptError) as caught:
        script = scripts.parse(text.encode("utf-8"))
        if preflight is not None:
            scripts.check_values(script, preflight)
    return caught.value


def assert_names(error: CeremonyScriptError, step_id: str, field: str) -> None:
    assert error.rule == scripts.RULE_PARAM_VALUE, error.message
    assert error.step == step_id
    assert f"step '{step_id}'" in error.message and f"parameter '{field}'" in error.message
    assert error.line is not None and f"line {error.line}" in error.message


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"algorithm": "DES"}, "algorithm", "Unknown algorithm 'DES'"),
        ({"algorithm": "3DES"}, "algorithm", "Unknown algorithm"),
        ({"algorithm": "RSA-1024"}, "algorithm", "Unknown algorithm"),
        ({"algorithm": "AES-512"}, "algorithm", "Unknown algorithm"),
        ({"purpose": "launch-missiles"}, "purpose", "Unknown purpose"),
        ({"algorithm": "AES-256", "purpose": "signing"}, "purpose", "cannot be used for"),
        ({"algorithm": "ED25519", "purpose": "key-wrapping"}, "purpose", "cannot be used"),
        ({"name": "root\u202ekey"}, "name", "control or invisible"),  # bidi override
        ({"name": "root\x07key"}, "name", "control or invisible"),
        ({"name": "root\u200bkey"}, "name", "control or invisible"),  # zero-width space
        ({"name": "   "}, "name", "empty"),
        ({"name": "k" * 65}, "name", "the limit is 64"),
        ({"name": "0b7c4f0e-58f3-4a4e-9a57-0c1c5b8e9f10"}, "name", "reads as a UUID"),
        ({"algorithm": "ED25519", "backup": True}, "backup", "cannot be made backup-able"),
    ],
)
def test_key_generate_values_the_run_refuses(
    params: dict[str, object], field: str, words: str
) -> None:
    error = refused(generate(**params))
    assert_names(error, "gen", field)
    assert words in error.message


def test_the_same_rule_as_the_key_service() -> None:
    """Validation and generation share the key-name rule: what one refuses, so does the other."""
    for bad in ("root\u202ekey", " ", "k" * 65):
        with pytest.raises(ValidationError) as direct:
            validate_key_name(bad)
        assert direct.value.message in refused(generate(name=bad)).message


@pytest.mark.parametrize(
    "out",
    ["../root.pem", "/etc/root.pem", "sub/root.pem", "..", ".", "a\x1bb.pem", "x" * 300],
)
def test_output_files_must_be_plain_names(out: str) -> None:
    certificate = step(
        "root-cert", "cert.self-sign", key="k1", subject="CN=Root", days=365, out=out
    )
    assert_names(refused(generate(), certificate), "root-cert", "out")
    csr = step("req", "cert.csr", key="k1", subject="CN=Root", out=out)
    assert_names(refused(generate(), csr), "req", "out")


@pytest.mark.parametrize("csr", ["../in.csr", "/tmp/in.csr", "in/x.csr"])
def test_input_files_must_be_plain_names(csr: str) -> None:
    sign = step(
        "sub", "cert.sign-csr", issuer="k1", csr=csr, profile="intermediate-ca", days=30, out="s"
    )
    assert_names(refused(sign), "sub", "csr")


@pytest.mark.parametrize("to", ["../media", "/media/usb", "a/b", ".."])
def test_backup_target_must_be_a_plain_directory_name(to: str) -> None:
    backup = step("bk", "backup.create", to=to, custodians=["Ann", "Bob"], threshold=2)
    assert_names(refused(backup), "bk", "to")


@pytest.mark.parametrize(
    ("custodians", "threshold"),
    [(["Ann", "Bob"], 3), (["Ann", "Bob"], 1), (["Ann", "B\u202eob"], 2), (["Ann", " "], 2)],
)
def test_backup_shares_plan_is_checked(custodians: list[str], threshold: int) -> None:
    backup = step("bk", "backup.create", to="media", custodians=custodians, threshold=threshold)
    assert_names(refused(backup), "bk", "custodians")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"profile": "no-such-profile"}, "profile"),
        ({"profile": "intermediate-ca"}, "profile"),  # not a self-signed profile
        ({"days": 0}, "days"),
        ({"days": 99_999}, "days"),
        ({"subject": "not a DN"}, "subject"),
    ],
)
def test_certificate_values_are_checked(params: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"key": "k1", "subject": "CN=Root", "days": 365, "out": "r.pem"}
    certificate = step("root-cert", "cert.self-sign", **{**values, **params})
    assert_names(refused(generate(), certificate), "root-cert", field)


def test_token_label_is_checked() -> None:
    for label in ("x" * 33, "bad\x00label", "back\\slash"):
        assert_names(refused(step("init", "token.init", label=label)), "init", "label")


def test_two_steps_making_the_same_key_or_file_are_refused() -> None:
    second = step("gen2", "key.generate", name="k1", algorithm="AES-128")
    error = refused(generate(), second)
    assert_names(error, "gen2", "name")
    assert "step 'gen' already makes the key 'k1'" in error.message
    one = step("c1", "cert.csr", key="k1", subject="CN=A", out="same.csr")
    two = step("c2", "cert.csr", key="k1", subject="CN=B", out="same.csr")
    assert_names(refused(generate(), one, two), "c2", "out")


def test_a_workstation_preflight_refuses_taken_names_and_present_files(tmp_path: Path) -> None:
    taken = {"k1"}

    def free_name(name: str) -> str:
        cleaned = validate_key_name(name)
        if cleaned in taken:
            raise ValidationError(f"A key named '{cleaned}' already exists; names are unique.")
        return cleaned

    error = refused(generate(), preflight=Preflight(free_name=free_name))
    assert_names(error, "gen", "name")
    assert "already exists" in error.message
    (tmp_path / "r.pem").write_bytes(b"old")
    certificate = step("cert", "cert.self-sign", key="k1", subject="CN=R", days=30, out="r.pem")
    error = refused(generate(name="k2"), certificate, preflight=Preflight(workdir=tmp_path))
    assert_names(error, "cert", "out")
    assert "never writes over a file" in error.message
    assert (tmp_path / "r.pem").read_bytes() == b"old"


def test_good_values_still_parse() -> None:
    text = HEAD + generate(name="root-ca-2026", algorithm="EC-P384", purpose="signing")
    text += step("cert", "cert.self-sign", key="root-ca-2026", subject="CN=R", days=365, out="r")
    text += step("bk", "backup.create", to="media", custodians=["Ann", "Bob", "Cy"], threshold=2)
    assert len(scripts.parse(text.encode()).steps) == 3
