"""Ceremony scripts: TOML (stdlib ``tomllib``) parsed and validated before anything is done.

Shape (schema 1)::

    schema = 1
    name = "root-ca"                      # [a-z0-9-], the template name
    title = "Root CA and intermediate"
    description = "…"                     # optional

    [participants]                         # optional; minimum numbers present
    witnesses = 1                          # internal (operators) or external
    custodians = 0
    auditor = false

    [profiles.rehearsal]                   # both profiles, differing only in the token selector
    token_label = "Rehearsal"
    [profiles.production]
    token_serial = "…"

    [[steps]]
    id = "root-key"                        # unique, [a-z0-9-]
    type = "key.generate"                  # a registered step type (app.ceremony.registry)
    instruction = "Read aloud: …"
    signers = ["witness"]                  # optional: participant roles that may sign off
    quorum = 1                             # optional: how many distinct sign-offs
    [steps.params]
    name = "root-ca-2026"
    [steps.expect]                         # optional: output → expected value, or "@step.output"
    kcv = "…"

Every refusal is a ``CeremonyScriptError`` with a stable rule id and, where there is one, the
line and column (TOML syntax) or the step. A parameter or value that looks like a secret (a
PIN, passphrase, password, share or mnemonic) is refused: secrets are typed at the ceremony,
never reviewed on paper or kept in a file.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.ceremony.registry import Kind, ParamRefused, Preflight, StepSpec, spec
from app.domain.fingerprints import pgp_words
from app.errors import CeremonyScriptError, ValidationError
from app.storage.files import read_regular

SCHEMA = 1
MAX_BYTES = 256 * 1024
MAX_STEPS = 100

RULE_SYNTAX = "KS-CEREMONY-SYNTAX"
RULE_SCHEMA = "KS-CEREMONY-SCHEMA"
RULE_FIELD = "KS-CEREMONY-FIELD"
RULE_STEP_TYPE = "KS-CEREMONY-STEP-TYPE"
RULE_PARAM_MISSING = "KS-CEREMONY-PARAM-MISSING"
RULE_PARAM_UNKNOWN = "KS-CEREMONY-PARAM-UNKNOWN"
RULE_PARAM_TYPE = "KS-CEREMONY-PARAM-TYPE"
RULE_SECRET = "KS-CEREMONY-SECRET"  # noqa: S105 (a rule id)
RULE_PROFILE = "KS-CEREMONY-PROFILE"
RULE_EXPECT = "KS-CEREMONY-EXPECT"
RULE_QUORUM_FIELD = "KS-CEREMONY-QUORUM"
RULE_PARAM_VALUE = "KS-CEREMONY-PARAM-VALUE"

PROFILES = {"rehearsal": "token_label", "production": "token_serial"}
PARTICIPANT_ROLES = ("witness", "custodian", "auditor")

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SECRET_WORDS = frozenset(
    {
        "pin",
        "pins",
        "sopin",
        "userpin",
        "puk",
        "passphrase",
        "passphrases",
        "password",
        "passwords",
        "passwd",
        "pass",
        "secret",
        "secrets",
        "share",
        "shares",
        "mnemonic",
        "mnemonics",
        "seed",
    }
)
_SECRET_VALUE = re.compile(
    # "pin=…", "passphrase = …", "share=…"
    r"(?i)\b(pin|so[-_ ]?pin|puk|pass(word|phrase)?|secret|share)\s*=\s*\S"
    # "PIN 12345678", "the user PIN is 44556677", "SO-PIN: 99887766"
    r"|(?i:\b(pin|puk)\b)[\s:]*(is\s+|was\s+)?[\"']?\d{4,}"
    # "passphrase: correct horse battery", "the password is hunter two three"
    r"|(?i:\bpass(word|phrase)\b)\s*(is\b|:)\s*[\"']?[^\s\"',.;]+([ -][^\s\"',.;]+){2,}"
)
_WORDS = re.compile(r"^[a-z]+(\s+[a-z]+){19,}$")  # a SLIP-39 / BIP-39 mnemonic's shape
# A run of this many SLIP-39 words in a row anywhere (a share is 20 or 33 of them; prose does
# not string a dozen of them together).
MNEMONIC_RUN = 12
# Words that name a PIN or passphrase; digits within a few words of one read as its value
# ("type 123456 as the PIN", "Enter 7731 when asked for the user PIN").
_PIN_WORDS = frozenset(
    {"pin", "pins", "puk", "sopin", "userpin", "passphrase", "password", "passcode", "passwd"}
)
_NEAR = 8  # words
# Words as people write them: "SO-PIN" and "pin-2026" are one word each (a key named
# "pin-2026" holds no PIN; "SO-PIN 99887766" does).
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")
# "passphrase AlicePassphrase-Zq91", "the PIN: x7Q!p2": a PIN/passphrase word followed by
# one token shaped like a secret (a digit, an inner capital or an inner symbol, 6+ chars).
_NAMED_SECRET = re.compile(
    r"(?i)\b(?:pass(?:word|phrase|code)|pin|puk)\b(?:\s+(?:(?:is|was)\s+)?|\s*[:=]\s*)"
    r"[\"'\u201c\u2018]?(?P<value>[^\s\"'\u201d\u2019]{6,})"
)
_DIGITS = re.compile(r"^\d{4,16}$")  # a PIN's shape
_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_STEPS_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*steps[ \t]*\]\]", re.MULTILINE)


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    instruction: str
    params: Mapping[str, Any]
    expect: Mapping[str, str]
    signers: tuple[str, ...] = ("witness",)
    quorum: int = 1
    line: int | None = None

    @property
    def spec(self) -> StepSpec:
        found = spec(self.type)
        if found is None:  # validated at parsing; only a changed registry gets here
            raise CeremonyScriptError(f"unknown step type '{self.type}'", RULE_STEP_TYPE)
        return found


@dataclass(frozen=True)
class Script:
    """A validated script with the exact bytes that were reviewed."""

    name: str
    title: str
    description: str
    steps: tuple[Step, ...]
    profiles: Mapping[str, Mapping[str, str]]
    witnesses: int = 1
    custodians: int = 0
    auditor: bool = False
    text: bytes = field(default=b"", repr=False)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.text).digest()

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()

    @property
    def words(self) -> list[str]:
        return pgp_words(self.sha256)

    def selector(self, profile: str) -> tuple[str, str]:
        """(``token_label`` | ``token_serial``, value) for ``profile``."""
        if profile not in PROFILES:
            raise CeremonyScriptError(
                f"Unknown profile '{profile}'; use rehearsal or production.", RULE_PROFILE
            )
        key = PROFILES[profile]
        return key, self.profiles[profile][key]


def load(path: Path) -> Script:
    """Read and validate the script at ``path`` (at most 256 KiB)."""
    try:
        data = read_regular(path, "script", MAX_BYTES)  # a FIFO or /dev/zero is refused
    except ValidationError as exc:
        raise CeremonyScriptError(exc.message, RULE_SYNTAX) from exc
    return parse(data)


def parse(data: bytes) -> Script:
    """Parse and validate script bytes; every refusal is a ``CeremonyScriptError``."""
    if len(data) > MAX_BYTES:
        raise CeremonyScriptError("The script is larger than 256 KiB.", RULE_SYNTAX)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise CeremonyScriptError(
            f"The script is not UTF-8 text (line {bad_line}).", RULE_SYNTAX, line=bad_line
        ) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT_LINE.search(str(exc))
        line: int | None = int(found.group(1)) if found else None
        column: int | None = int(found.group(2)) if found else None
        what = _AT_LINE.sub("", str(exc)).strip()
        where = f"line {line}, column {column}" if found else "unknown position"
        raise CeremonyScriptError(
            f"TOML syntax error at {where}: {what}. Fix the script; nothing was done.",
            RULE_SYNTAX,
            line=line,
            column=column,
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise CeremonyScriptError(
            "The script cannot be read as TOML (nested too deeply or malformed).", RULE_SYNTAX
        ) from exc
    _refuse_secrets(doc, "", text)
    _refuse_secret_lines(text)
    return _validate(doc, data, text)


# --- validation -----------------------------------------------------------------------------


def _validate(doc: dict[str, Any], data: bytes, text: str) -> Script:
    known = {"schema", "name", "title", "description", "participants", "profiles", "steps"}
    _no_unknown(doc, known, "the script")
    schema = doc.get("schema")
    if schema != SCHEMA or isinstance(schema, bool):
        raise CeremonyScriptError(
            f"schema must be {SCHEMA} (this Keystead reads ceremony scripts of schema {SCHEMA}); "
            f"got {schema!r}.",
            RULE_SCHEMA,
        )
    name = _text(doc, "name", "the script")
    if not _ID.match(name):
        raise CeremonyScriptError(
            f"name '{name}' must be lower-case letters, digits and '-'.", RULE_FIELD
        )
    title = _text(doc, "title", "the script")
    description = _text(doc, "description", "the script", required=False)
    witnesses, custodians, auditor = _participants(doc.get("participants", {}))
    profiles = _profiles(doc.get("profiles"))
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise CeremonyScriptError("The script has no [[steps]].", RULE_FIELD)
    if len(raw_steps) > MAX_STEPS:
        raise CeremonyScriptError(f"At most {MAX_STEPS} steps.", RULE_FIELD)
    lines = [text[: m.start()].count("\n") + 1 for m in _STEPS_HEADER.finditer(text)]
    steps: list[Step] = []
    for index, raw in enumerate(raw_steps):
        line = lines[index] if index < len(lines) else None
        steps.append(_step(raw, index, line, steps, witnesses, custodians, auditor))
    script = Script(
        name, title, description, tuple(steps), profiles, witnesses, custodians, auditor, data
    )
    check_values(script, Preflight())
    return script


def check_values(script: Script, preflight: Preflight) -> None:
    """Refuse any parameter value a step would refuse when run, with the step's own rules
    (``StepSpec.check``: algorithm, purpose, key name, file names, profiles, shares…), and
    two steps creating the same key or file. With ``preflight`` from a workstation, also a key
    name already taken there or an output file already in the working directory. Raises
    ``CeremonyScriptError`` (``KS-CEREMONY-PARAM-VALUE``) naming the step, its line and the
    field."""
    keys: dict[str, str] = {}
    files: dict[str, str] = {}
    for step in script.steps:
        found = step.spec
        try:
            found.check(step.params, preflight)
            for field_name, seen in [(f, keys) for f in found.new_keys] + [
                (f, files) for f in found.new_files
            ]:
                value = str(step.params.get(field_name, "")).strip()
                if value in seen:
                    what = "key" if seen is keys else "file"
                    raise ParamRefused(
                        field_name, f"step '{seen[value]}' already makes the {what} '{value}'."
                    )
                seen[value] = step.id
        except ParamRefused as exc:
            raise _refused(step, exc) from exc


def check_step(step: Step, preflight: Preflight) -> None:
    """One step's parameter values against its own rules (``check_values`` for one step, as
    the runner applies them again just before the step acts)."""
    try:
        step.spec.check(step.params, preflight)
    except ParamRefused as exc:
        raise _refused(step, exc) from exc


def _refused(step: Step, exc: ParamRefused) -> CeremonyScriptError:
    where = f"step '{step.id}'" + (f" (line {step.line})" if step.line else "")
    return CeremonyScriptError(
        f"{where}, parameter '{exc.field}': {exc.message}",
        RULE_PARAM_VALUE,
        line=step.line,
        step=step.id,
    )


def _participants(raw: Any) -> tuple[int, int, bool]:
    if not isinstance(raw, dict):
        raise CeremonyScriptError("[participants] must be a table.", RULE_FIELD)
    _no_unknown(raw, {"witnesses", "custodians", "auditor"}, "[participants]")
    witnesses = raw.get("witnesses", 1)
    custodians = raw.get("custodians", 0)
    auditor = raw.get("auditor", False)
    for label, value in (("witnesses", witnesses), ("custodians", custodians)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
            raise CeremonyScriptError(
                f"[participants] {label} must be a number from 0 to 10.", RULE_FIELD
            )
    if witnesses < 1:
        raise CeremonyScriptError(
            "[participants] witnesses must be at least 1: every step is witnessed.", RULE_FIELD
        )
    if not isinstance(auditor, bool):
        raise CeremonyScriptError("[participants] auditor must be true or false.", RULE_FIELD)
    return witnesses, custodians, auditor


def _profiles(raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict) or set(raw) != set(PROFILES):
        raise CeremonyScriptError(
            "The script needs exactly two profiles, [profiles.rehearsal] (token_label = …) and "
            "[profiles.production] (token_serial = …).",
            RULE_PROFILE,
        )
    found: dict[str, dict[str, str]] = {}
    for profile, key in PROFILES.items():
        table = raw[profile]
        if not isinstance(table, dict) or set(table) != {key}:
            raise CeremonyScriptError(
                f"[profiles.{profile}] must hold only {key}: the two profiles differ only in "
                "how the token is chosen.",
                RULE_PROFILE,
            )
        value = table[key]
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise CeremonyScriptError(
                f"[profiles.{profile}] {key} must be a non-empty text of at most 64 characters.",
                RULE_PROFILE,
            )
        found[profile] = {key: value}
    return found


def _step(
    raw: Any,
    index: int,
    line: int | None,
    earlier: list[Step],
    witnesses: int,
    custodians: int,
    auditor: bool,
) -> Step:
    where = f"step {index + 1}" + (f" (line {line})" if line else "")
    if not isinstance(raw, dict):
        raise CeremonyScriptError(f"{where} must be a table.", RULE_FIELD, line=line)
    _no_unknown(
        raw, {"id", "type", "instruction", "params", "expect", "signers", "quorum"}, where, line
    )
    step_id = _text(raw, "id", where, line=line)
    if not _ID.match(step_id):
        raise CeremonyScriptError(
            f"{where}: id '{step_id}' must be lower-case letters, digits and '-'.",
            RULE_FIELD,
            line=line,
        )
    if any(s.id == step_id for s in earlier):
        raise CeremonyScriptError(
            f"{where}: id '{step_id}' is used twice.", RULE_FIELD, line=line, step=step_id
        )
    where = f"step '{step_id}'" + (f" (line {line})" if line else "")
    kind = _text(raw, "type", where, line=line)
    found = spec(kind)
    if found is None:
        from app.ceremony.registry import all_specs

        names = ", ".join(s.name for s in all_specs())
        raise CeremonyScriptError(
            f"{where}: unknown step type '{kind}'. Known types: {names}.",
            RULE_STEP_TYPE,
            line=line,
            step=step_id,
        )
    instruction = _text(raw, "instruction", where, line=line)
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise CeremonyScriptError(f"{where}: params must be a table.", RULE_FIELD, line=line)
    for missing in sorted(found.required - set(params)):
        raise CeremonyScriptError(
            f"{where}: step type '{kind}' needs the parameter '{missing}'.",
            RULE_PARAM_MISSING,
            line=line,
            step=step_id,
        )
    for name, value in params.items():
        expected = found.params.get(name)
        if expected is None:
            raise CeremonyScriptError(
                f"{where}: '{kind}' takes no parameter '{name}' (it takes "
                f"{', '.join(sorted(found.params)) or 'none'}).",
                RULE_PARAM_UNKNOWN,
                line=line,
                step=step_id,
            )
        if not _is_kind(value, expected):
            raise CeremonyScriptError(
                f"{where}: parameter '{name}' must be {expected.value}.",
                RULE_PARAM_TYPE,
                line=line,
                step=step_id,
            )
    expect = raw.get("expect", {})
    if not isinstance(expect, dict):
        raise CeremonyScriptError(f"{where}: expect must be a table.", RULE_FIELD, line=line)
    for name, value in expect.items():
        if name not in found.outputs:
            raise CeremonyScriptError(
                f"{where}: '{kind}' has no output '{name}' to expect (outputs: "
                f"{', '.join(found.outputs) or 'none'}).",
                RULE_EXPECT,
                line=line,
                step=step_id,
            )
        if not isinstance(value, str) or not value.strip():
            raise CeremonyScriptError(
                f"{where}: expect.{name} must be a non-empty text.", RULE_EXPECT, line=line
            )
        if value.startswith("@"):
            ref_step, _, ref_output = value[1:].partition(".")
            source = next((s for s in earlier if s.id == ref_step), None)
            if source is None or ref_output not in source.spec.outputs:
                raise CeremonyScriptError(
                    f"{where}: expect.{name} refers to '{value}', which is not an output of an "
                    "earlier step.",
                    RULE_EXPECT,
                    line=line,
                    step=step_id,
                )
    signers = raw.get("signers", ["witness"])
    if (
        not isinstance(signers, list)
        or not signers
        or any(s not in PARTICIPANT_ROLES for s in signers)
    ):
        raise CeremonyScriptError(
            f"{where}: signers must be a list of {', '.join(PARTICIPANT_ROLES)}.",
            RULE_FIELD,
            line=line,
        )
    if "custodian" in signers and signers == ["custodian"] and custodians < 1:
        raise CeremonyScriptError(
            f"{where}: only custodians sign off but [participants] custodians is 0.",
            RULE_FIELD,
            line=line,
        )
    if signers == ["auditor"] and not auditor:
        raise CeremonyScriptError(
            f"{where}: only the auditor signs off but [participants] auditor is false.",
            RULE_FIELD,
            line=line,
        )
    quorum = raw.get("quorum", 1)
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 1 <= quorum <= 10:
        raise CeremonyScriptError(
            f"{where}: quorum must be a number from 1 to 10.", RULE_FIELD, line=line
        )
    # The run refuses to start unless each step's quorum can be met by the participants
    # registered; the script's [participants] are the ones it requires, so they must suffice.
    required = {"witness": witnesses, "custodian": custodians, "auditor": int(auditor)}
    able = sum(required[s] for s in set(signers))
    if quorum > able:
        raise CeremonyScriptError(
            f"{where}: quorum {quorum} needs {quorum} sign-offs by {'/'.join(signers)}, but "
            f"[participants] requires only {able} of them; raise [participants] or lower the "
            "quorum.",
            RULE_QUORUM_FIELD,
            line=line,
        )
    return Step(
        step_id,
        kind,
        instruction,
        dict(params),
        {k: str(v) for k, v in expect.items()},
        tuple(str(s) for s in signers),
        quorum,
        line,
    )


def _is_kind(value: Any, kind: Kind) -> bool:
    if kind is Kind.TEXT:
        return isinstance(value, str) and 0 < len(value) <= 1024
    if kind is Kind.INT:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    return (
        isinstance(value, list)
        and 0 < len(value) <= 32
        and all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
    )


def _text(
    table: Mapping[str, Any], key: str, where: str, required: bool = True, line: int | None = None
) -> str:
    value = table.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise CeremonyScriptError(
            f"{where}: '{key}' must be a non-empty text.", RULE_FIELD, line=line
        )
    if len(value) > 4096:
        raise CeremonyScriptError(f"{where}: '{key}' is too long.", RULE_FIELD, line=line)
    return value


def _no_unknown(
    table: Mapping[str, Any], known: set[str], where: str, line: int | None = None
) -> None:
    for key in table:
        if key not in known:
            raise CeremonyScriptError(
                f"{where}: unknown field '{key}' (known: {', '.join(sorted(known))}).",
                RULE_FIELD,
                line=line,
            )


def _key_is_secret(key: str) -> bool:
    parts = {p for p in re.split(r"[^a-z0-9]+", key.lower()) if p}
    joined = re.sub(r"[^a-z0-9]", "", key.lower())
    return bool(parts & _SECRET_WORDS) or joined in _SECRET_WORDS


def _value_is_secret(value: str, digits_allowed: bool) -> bool:
    text = value.strip()
    return bool(
        looks_like_a_secret(text)
        or _WORDS.match(text.lower())
        or (not digits_allowed and _DIGITS.match(text))
    )


def looks_like_a_secret(text: str) -> bool:
    """True when ``text`` holds something shaped like a PIN, passphrase or share: ``pin=…``
    forms, digits within a few words of a PIN or passphrase word (either order), a PIN or
    passphrase word followed by a secret-shaped token, or a run of SLIP-39 share words."""
    return bool(
        _SECRET_VALUE.search(text)
        or _digits_near_pin_word(text)
        or _named_secret(text)
        or mnemonic_run(text) is not None
    )


def _digits_near_pin_word(text: str) -> bool:
    tokens = _TOKEN.findall(text)
    # "SO-PIN", "user_pin" name one; "pin-2026" is an identifier
    named = [i for i, t in enumerate(tokens) if re.split(r"[-_]", t.lower())[-1] in _PIN_WORDS]
    return any(
        abs(i - j) <= _NEAR
        for j, t in enumerate(tokens)
        if t.isdigit() and len(t) >= 4
        for i in named
    )


def _named_secret(text: str) -> bool:
    for match in _NAMED_SECRET.finditer(text):
        value = match.group("value").strip(".,;:!?()[]{}<>")
        if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", value):
            continue  # an environment variable's name (KEYSTEAD_PASSPHRASE), not its value
        inner = value[1:]
        if len(value) >= 6 and (
            any(c.isdigit() for c in value)
            or (any(c.isupper() for c in inner) and any(c.islower() for c in value))
            or re.search(r"[A-Za-z0-9][^A-Za-z0-9\s][A-Za-z0-9]", value)
        ):
            return True
    return False


def mnemonic_run(text: str) -> int | None:
    """Where (character offset) a run of at least ``MNEMONIC_RUN`` SLIP-39 share words in a
    row begins in ``text`` (case and punctuation between the words ignored), or None."""
    from app.backup.shares import share_words

    words = share_words()
    run = 0
    start = 0
    for match in re.finditer(r"[A-Za-z]+", text):
        if match.group().lower() in words:
            if run == 0:
                start = match.start()
            run += 1
            if run >= MNEMONIC_RUN:
                return start
        else:
            run = 0
    return None


def _refuse_secret_lines(text: str) -> None:
    """Comments too: a script's bytes are kept in its transcript, so a PIN in a comment would
    be printed there. Every line is checked for a secret's shape (``pin=…``, "PIN 1234…")."""
    found = mnemonic_run(text)  # a share may be wrapped over several lines
    if found is not None:
        number = text[:found].count("\n") + 1
        raise CeremonyScriptError(
            f"Line {number} holds a run of SLIP-39 share words (a custodian's share). Shares "
            "are shown to each custodian at the ceremony, never written in a script; remove it.",
            RULE_SECRET,
            line=number,
        )
    for number, line in enumerate(text.splitlines(), start=1):
        if looks_like_a_secret(line):
            raise CeremonyScriptError(
                f"Line {number} looks like it holds a secret (a PIN, passphrase or share), in "
                "a value or a comment. Secrets are typed at the ceremony, never written in a "
                "script; remove it.",
                RULE_SECRET,
                line=number,
            )


def _refuse_secrets(node: Any, path: str, text: str) -> None:
    """Refuse any key named like a secret, and any value shaped like one (``pin=…``, a
    20+-word mnemonic, a run of 4–16 digits). The production token serial and expected
    outputs (check values, fingerprints: public identifiers) are exempt from the digits rule."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if _key_is_secret(str(key)):
                raise CeremonyScriptError(
                    f"'{here}' looks like a secret (PIN, passphrase, password, share). Secrets "
                    "are typed at the ceremony, never written in a script; remove it.",
                    RULE_SECRET,
                    line=_line_of(text, str(key)),
                )
            if here == "profiles.production.token_serial" and isinstance(value, str):
                if looks_like_a_secret(value) or _WORDS.match(value.lower()):
                    raise CeremonyScriptError(
                        f"'{here}' looks like a secret; give the token's serial.", RULE_SECRET
                    )
                continue
            _refuse_secrets(value, here, text)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refuse_secrets(value, f"{path}[{index}]", text)
    elif isinstance(node, str) and _value_is_secret(node, ".expect." in path):
        raise CeremonyScriptError(
            f"The value of '{path}' looks like a secret (a PIN, passphrase or share). Secrets are "
            "typed at the ceremony, never written in a script; remove it.",
            RULE_SECRET,
        )


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^[ \t]*\"?{re.escape(key)}\"?[ \t]*=", text, re.MULTILINE)
    return text[: match.start()].count("\n") + 1 if match else None
