"""Ceremony scripts: every shipped template parses; every bad input of the issue (and its
siblings) is a typed refusal with a rule id; fuzzing the parser gives typed errors only."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ceremony import script as scripts
from app.ceremony.registry import all_specs
from app.ceremony.templates import templates
from app.errors import CeremonyScriptError

GOOD = b"""schema = 1
name = "demo"
title = "Demo"

[profiles.rehearsal]
token_label = "Rehearsal"
[profiles.production]
token_serial = "9a1b2c3d4e5f6a7b"

[[steps]]
id = "check"
type = "token.check"
instruction = "Show the token."

[[steps]]
id = "gen"
type = "key.generate"
instruction = "Generate."
[steps.params]
name = "k1"
algorithm = "AES-256"
"""

ALGO = b'algorithm = "AES-256"\n'
TEMPLATES = {
    "init-token",
    "generate-kek",
    "root-ca",
    "rotate-key",
    "backup",
    "restore-drill",
    "destroy-key",
}


def refused(data: bytes) -> CeremonyScriptError:
    with pytest.raises(CeremonyScriptError) as caught:
        scripts.parse(data)
    return caught.value


def test_a_good_script_and_every_template_parse() -> None:
    parsed = scripts.parse(GOOD)
    assert [s.type for s in parsed.steps] == ["token.check", "key.generate"]
    assert parsed.sha256_hex == __import__("hashlib").sha256(GOOD).hexdigest()
    assert len(parsed.words) == 32
    assert parsed.selector("production") == ("token_serial", "9a1b2c3d4e5f6a7b")
    shipped = {t.name: t for t in templates()}
    assert set(shipped) == TEMPLATES
    for template in shipped.values():
        assert template.script.name == template.name
        rehearsal = template.script.profiles["rehearsal"]
        production = template.script.profiles["production"]
        assert set(rehearsal) == {"token_label"} and set(production) == {"token_serial"}


def test_a_syntax_error_names_line_and_column() -> None:
    error = refused(GOOD.replace(b'title = "Demo"', b'title = "Demo'))
    assert error.rule == scripts.RULE_SYNTAX
    assert (error.line, error.column) == (3, 14)  # the end of the line
    assert "line 3, column 14" in error.message
    for sibling in (b"schema = = 1", b"[[steps]\n", b"a = 1\na = 2\n", b"\xff\xfe"):
        assert refused(sibling).rule == scripts.RULE_SYNTAX


def test_an_unknown_step_type_is_refused_with_its_line() -> None:
    error = refused(GOOD.replace(b'type = "key.generate"', b'type = "key.generat"'))
    assert error.rule == scripts.RULE_STEP_TYPE and error.step == "gen"
    assert error.line == 15
    assert "key.generate" in error.message  # the known types are listed


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ((b'algorithm = "AES-256"\n', b""), scripts.RULE_PARAM_MISSING),
        ((b'name = "k1"', b'name = "k1"\ncolour = "red"'), scripts.RULE_PARAM_UNKNOWN),
        ((b'name = "k1"', b"name = 7"), scripts.RULE_PARAM_TYPE),
        ((b"schema = 1", b"schema = 2"), scripts.RULE_SCHEMA),
        ((b"schema = 1", b"schema = true"), scripts.RULE_SCHEMA),
        ((b'token_label = "Rehearsal"', b'token_serial = "x"'), scripts.RULE_PROFILE),
        (
            (b'[profiles.production]\ntoken_serial = "9a1b2c3d4e5f6a7b"\n', b""),
            scripts.RULE_PROFILE,
        ),
        (
            (b'token_label = "Rehearsal"', b'token_label = "Rehearsal"\nmodule = "/x.so"'),
            scripts.RULE_PROFILE,
        ),
        ((b'id = "gen"', b'id = "check"'), scripts.RULE_FIELD),
        ((b'id = "gen"', b'id = "Gen Step"'), scripts.RULE_FIELD),
        ((b'instruction = "Generate."', b""), scripts.RULE_FIELD),
        ((b'name = "demo"', b'name = "demo"\nsurprise = 1'), scripts.RULE_FIELD),
        ((ALGO, ALGO + b'[steps.expect]\ncolour = "x"\n'), scripts.RULE_EXPECT),
        ((ALGO, ALGO + b'[steps.expect]\nkcv = "@nowhere.kcv"\n'), scripts.RULE_EXPECT),
        ((ALGO, ALGO + b"[steps.expect]\nkcv = 7\n"), scripts.RULE_EXPECT),
    ],
)
def test_structural_faults_are_refused(change: tuple[bytes, bytes], rule: str) -> None:
    old, new = change
    assert old in GOOD
    assert refused(GOOD.replace(old, new, 1)).rule == rule


@pytest.mark.parametrize(
    "insert",
    [
        b'pin = "123456"',
        b'so_pin = "27182818"',
        b'user-pin = "x"',
        b'passphrase = "correct horse"',
        b'Password = "hunter2"',
        b'share = "x"',
        b'shares = ["a", "b"]',
        b'mnemonic = "x"',
        b'secret = "x"',
        b'note = "pin=123456"',
        b'note = "passphrase = hunter2"',
        b'note = "123456"',
        b'note = "' + b" ".join([b"academic"] * 20) + b'"',
    ],
)
def test_anything_that_looks_like_a_secret_is_refused(insert: bytes) -> None:
    text = GOOD.replace(b'name = "k1"', b'name = "k1"\n' + insert, 1)
    error = refused(text)
    assert error.rule == scripts.RULE_SECRET, error.message
    # Also in the profiles and at the top level: everywhere.
    top = GOOD.replace(b'title = "Demo"', b'title = "Demo"\n' + insert, 1)
    assert refused(top).rule == scripts.RULE_SECRET


def test_public_identifiers_are_not_taken_for_secrets() -> None:
    text = GOOD.replace(ALGO, ALGO + b'[steps.expect]\nkcv = "000000"\n', 1)
    assert scripts.parse(text).steps[1].expect == {"kcv": "000000"}
    serial = GOOD.replace(b'"9a1b2c3d4e5f6a7b"', b'"1234567890"')
    assert scripts.parse(serial).profiles["production"]["token_serial"] == "1234567890"
    words = GOOD.replace(b'"Show the token."', b'"Type the user PIN when asked: never aloud."')
    assert scripts.parse(words)


def test_every_step_type_declares_what_it_needs() -> None:
    for spec in all_specs():
        assert spec.required <= set(spec.params), spec.name
        assert spec.varying <= set(spec.outputs), spec.name
        assert spec.prechecked <= set(spec.outputs), spec.name


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzzed_bytes_give_typed_errors_only(data: bytes) -> None:
    try:
        scripts.parse(data)
    except CeremonyScriptError as exc:
        assert exc.rule.startswith("KS-CEREMONY-")


_TOML_VALUES = st.recursive(
    st.one_of(
        st.integers(-5, 10**6),
        st.booleans(),
        st.text(max_size=30),
        st.sampled_from(["token.check", "key.generate", "AES-256", "@gen.kcv", "rehearsal"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["id", "type", "name", "params", "x"]), inner, max_size=4),
    ),
    max_leaves=12,
)


def _toml(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["schema", "name", "title", "profiles", "steps", "participants"]),
        _TOML_VALUES,
        max_size=6,
    ),
    st.sampled_from(["steps", "profiles", "participants"]),
)
def test_fuzzed_structures_give_typed_errors_only(doc: dict[str, object], mutate: str) -> None:
    base = scripts.parse(GOOD)
    lines = [f"{key} = {_toml(value)}" for key, value in doc.items()]
    try:
        parsed = scripts.parse("\n".join(lines).encode())
    except CeremonyScriptError as exc:
        assert exc.rule.startswith("KS-CEREMONY-")
    else:
        assert parsed.steps and base.steps


@pytest.mark.parametrize(
    "line",
    [
        b"# PIN=44556677 SO-PIN: 99887766\n",  # a comment: its bytes reach the transcript
        b"# the user PIN is 44556677\n",
        b'instruction2 = "The user PIN is 44556677."\n',
        b'note = "SO PIN 99887766, user PIN 11223344"\n',
        b'note = "passphrase: correct horse battery staple"\n',
    ],
)
def test_a_secret_in_a_comment_or_in_prose_is_refused(line: bytes) -> None:
    script = GOOD.replace(b'title = "Demo"\n', b'title = "Demo"\n' + line)
    error = refused(script)
    assert error.rule == scripts.RULE_SECRET, error.message


def test_prose_about_pins_without_a_pin_still_parses() -> None:
    for template in templates():
        assert template.script.steps  # the shipped words ("types the SO PIN") pass
    script = GOOD.replace(
        b'instruction = "Show the token."',
        b'instruction = "Type the SO PIN, then the user PIN twice; approvers give a passphrase."',
    )
    assert scripts.parse(script).steps[0].instruction.startswith("Type the SO PIN")


# --- secrets in prose (outside testers, F23) ---------------------------------------------------


def _share(secret: bytes, index: int = 0) -> str:
    from shamir_mnemonic import generate_mnemonics

    return generate_mnemonics(1, [(2, 3)], secret, iteration_exponent=0)[0][index]


REAL_SHARE = _share(bytes(range(32)))  # a 256-bit KEK gives 33 words, as backup create prints


@pytest.mark.parametrize(
    "line",
    [
        # the reproductions
        b'note = "type 123456 as the PIN"\n',
        b'note = "Enter 7731 when asked for the user PIN"\n',
        b'note = "passphrase AlicePassphrase-Zq91"\n',
        b'note = "Custodian alice share: ' + REAL_SHARE.encode() + b'"\n',
        # siblings: other orders, words and places
        b'note = "the SO-PIN, 27182818, is on the envelope"\n',
        b'note = "PIN for the token: 0000"\n',
        b'note = "use 4242 4242 as the passcode"\n',
        b"# the password Tr0ub4dor&3 opens the safe\n",
        b'note = "Passphrase: \\"Correct-Horse-7\\""\n',
        b"# share of bob: " + REAL_SHARE.upper().encode() + b"\n",  # case does not matter
        b"# " + ", ".join(REAL_SHARE.split()[:12]).encode() + b"\n",  # a partial share, commas
        # a share wrapped over several lines (a multi-line string and comment lines)
        b'note = """first custodian:\n' + "\n".join(REAL_SHARE.split()).encode() + b'\n"""\n',
        b"# "
        + " ".join(REAL_SHARE.split()[:10]).encode()
        + b"\n# "
        + " ".join(REAL_SHARE.split()[10:]).encode()
        + b"\n",
    ],
)
def test_pins_passphrases_and_shares_written_as_prose_are_refused(line: bytes) -> None:
    script = GOOD.replace(b'title = "Demo"\n', b'title = "Demo"\n' + line)
    error = refused(script)
    assert error.rule == scripts.RULE_SECRET, error.message
    # in a step's instruction too
    if line.startswith(b'note = "') and line.endswith(b'"\n') and b'"""' not in line:
        inside = line[len(b'note = "') : -2]
        step = GOOD.replace(b'"Show the token."', b'"' + inside + b'"')
        assert refused(step).rule == scripts.RULE_SECRET


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    secret=st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    index=st.integers(0, 2),
    start=st.integers(0, 8),
    prefix=st.sampled_from(["", "Custodian A: ", "share ", "Read this aloud - "]),
    where=st.sampled_from(["instruction", "comment", "title"]),
)
def test_any_run_of_a_generated_share_is_refused(
    secret: bytes, index: int, start: int, prefix: str, where: str
) -> None:
    """Real SLIP-39 shares (20 words for 128 bits, 33 for 256) and any 12 of their words in a
    row, wherever they are written."""
    words = _share(secret, index).split()
    text = prefix + " ".join(words[start : start + max(12, len(words) - start)])
    assert scripts.mnemonic_run(text) is not None
    if where == "instruction":
        script = GOOD.replace(b'"Show the token."', b'"' + text.encode() + b'"')
    elif where == "comment":
        script = GOOD.replace(b'title = "Demo"\n', b'title = "Demo"\n# ' + text.encode() + b"\n")
    else:
        script = GOOD.replace(b'title = "Demo"', b'title = "' + text.encode() + b'"')
    assert refused(script).rule == scripts.RULE_SECRET


@pytest.mark.parametrize(
    "instruction",
    [
        b"Type your passphrase (KEYSTEAD_PASSPHRASE) when asked.",
        b"The security officer types the SO PIN and the user PIN; step 2 follows.",
        b"Check the key pin-2026 on token 12345678; its KCV is read aloud.",
        b"The PIN pad shows 8 digits; type the PIN when asked.",
        b"Each custodian in turn reads their share alone and writes it on their card.",
    ],
)
def test_prose_about_pins_and_shares_without_one_still_parses(instruction: bytes) -> None:
    assert scripts.parse(GOOD.replace(b"Show the token.", instruction))


# --- quorum against the participants the script requires (outside testers, F7) --------------


@pytest.mark.parametrize(
    ("participants", "signers", "quorum"),
    [
        ("witnesses = 1", '["witness"]', 5),  # the reproduction
        ("witnesses = 1", '["witness"]', 2),
        ("witnesses = 1\ncustodians = 1", '["witness", "custodian"]', 3),
        ("witnesses = 2\nauditor = true", '["auditor"]', 2),
        ("witnesses = 1\ncustodians = 2", '["custodian"]', 3),
    ],
)
def test_a_quorum_the_required_participants_cannot_meet_is_refused(
    participants: str, signers: str, quorum: int
) -> None:
    script = _with_participants(GOOD, participants, signers, quorum)
    error = refused(script)
    assert error.rule == "KS-CEREMONY-QUORUM", error.message
    assert f"quorum {quorum} needs {quorum} sign-offs" in error.message
    assert "raise [participants] or lower the quorum" in error.message


@pytest.mark.parametrize(
    ("participants", "signers", "quorum"),
    [
        ("witnesses = 2", '["witness"]', 2),
        ("witnesses = 1\ncustodians = 1", '["witness", "custodian"]', 2),
        ("witnesses = 1\nauditor = true", '["witness", "auditor"]', 2),
    ],
)
def test_a_quorum_the_required_participants_meet_parses(
    participants: str, signers: str, quorum: int
) -> None:
    parsed = scripts.parse(_with_participants(GOOD, participants, signers, quorum))
    assert parsed.steps[1].quorum == quorum


def _with_participants(base: bytes, participants: str, signers: str, quorum: int) -> bytes:
    text = base.replace(
        b'title = "Demo"\n', b'title = "Demo"\n\n[participants]\n' + participants.encode() + b"\n"
    )
    return text.replace(
        b'instruction = "Generate."\n',
        b'instruction = "Generate."\nsigners = '
        + signers.encode()
        + b"\nquorum = "
        + str(quorum).encode()
        + b"\n",
    )
