"""Algorithms and purposes: which purposes each algorithm allows, the exact usage flags each
purpose grants, the refusal of nonsense pairs, parsing, and the explicit PKCS#11 templates.

The expectations are written out here from DESIGN.md, not computed from the code under test.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pkcs11 import Attribute

from app.domain.algorithms import (
    Algorithm,
    Family,
    Purpose,
    Usage,
    allowed_purposes,
    default_purpose,
    parse_algorithm,
    parse_purpose,
    usage_for,
)
from app.errors import ValidationError
from app.hsm import templates
from app.hsm.templates import KeySpec

U = Usage
P = Purpose
A = Algorithm

# algorithm -> (family, bits, curve, allowed purposes in order; the first is the default)
TABLE: dict[Algorithm, tuple[Family, int, str | None, tuple[Purpose, ...]]] = {
    A.AES_128: (Family.AES, 128, None, (P.ENCRYPTION, P.KEY_WRAPPING, P.MAC)),
    A.AES_192: (Family.AES, 192, None, (P.ENCRYPTION, P.KEY_WRAPPING, P.MAC)),
    A.AES_256: (Family.AES, 256, None, (P.ENCRYPTION, P.KEY_WRAPPING, P.MAC)),
    A.RSA_2048: (Family.RSA, 2048, None, (P.SIGNING, P.ENCRYPTION, P.KEY_WRAPPING)),
    A.RSA_3072: (Family.RSA, 3072, None, (P.SIGNING, P.ENCRYPTION, P.KEY_WRAPPING)),
    A.RSA_4096: (Family.RSA, 4096, None, (P.SIGNING, P.ENCRYPTION, P.KEY_WRAPPING)),
    A.EC_P256: (Family.EC, 256, "P-256", (P.SIGNING,)),
    A.EC_P384: (Family.EC, 384, "P-384", (P.SIGNING,)),
    A.ED25519: (Family.EDDSA, 255, "Ed25519", (P.SIGNING,)),
}

# purpose -> (flags of the private half, flags of the public half); a secret key gets both.
USAGE: dict[Purpose, tuple[set[Usage], set[Usage]]] = {
    P.ENCRYPTION: ({U.DECRYPT}, {U.ENCRYPT}),
    P.SIGNING: ({U.SIGN}, {U.VERIFY}),
    P.KEY_WRAPPING: ({U.UNWRAP}, {U.WRAP}),
    P.MAC: ({U.SIGN}, {U.VERIFY}),
}

ALLOWED_PAIRS = [(a, p) for a, row in TABLE.items() for p in row[3]]
REFUSED_PAIRS = [(a, p) for a, p in itertools.product(Algorithm, Purpose) if p not in TABLE[a][3]]


def test_the_table_covers_every_algorithm_and_names_are_the_cli_names() -> None:
    assert set(TABLE) == set(Algorithm)
    assert [a.value for a in Algorithm] == [
        "AES-128",
        "AES-192",
        "AES-256",
        "RSA-2048",
        "RSA-3072",
        "RSA-4096",
        "EC-P256",
        "EC-P384",
        "ED25519",
    ]
    assert len(REFUSED_PAIRS) == 4 * 9 - len(ALLOWED_PAIRS) > 0


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_facts_of_each_algorithm(algorithm: Algorithm) -> None:
    family, bits, curve, purposes = TABLE[algorithm]
    assert algorithm.family is family
    assert algorithm.spec.bits == bits
    assert algorithm.spec.curve == curve
    assert algorithm.symmetric is (family is Family.AES)
    assert allowed_purposes(algorithm) == purposes
    assert default_purpose(algorithm) is purposes[0]
    assert algorithm.spec.size_label == (curve or f"{bits} bits")
    assert algorithm.spec.slow is (algorithm in (A.RSA_3072, A.RSA_4096))


@pytest.mark.parametrize(("algorithm", "purpose"), ALLOWED_PAIRS)
def test_each_allowed_purpose_grants_exactly_its_flags(
    algorithm: Algorithm, purpose: Purpose
) -> None:
    private, public = USAGE[purpose]
    plan = usage_for(algorithm, purpose)
    assert plan.private == private
    assert plan.public == public
    assert plan.secret == private | public
    assert U.DERIVE not in plan.secret  # no purpose grants DERIVE


@pytest.mark.parametrize(("algorithm", "purpose"), REFUSED_PAIRS)
def test_nonsense_pairs_are_refused(algorithm: Algorithm, purpose: Purpose) -> None:
    with pytest.raises(ValidationError, match="cannot be used for") as caught:
        usage_for(algorithm, purpose)
    for allowed in TABLE[algorithm][3]:  # the error lists the sensible choices
        assert allowed.value in caught.value.message


@given(
    st.sampled_from(list(Algorithm)),
    st.lists(st.booleans(), min_size=8, max_size=8),
    st.text(alphabet=" \t", max_size=3),
    st.text(alphabet=" \t", max_size=3),
)
def test_parse_algorithm_round_trips_any_case_and_padding(
    algorithm: Algorithm, upper: list[bool], left: str, right: str
) -> None:
    name = "".join(
        ch.upper() if flip else ch.lower()
        for ch, flip in zip(algorithm.value, itertools.cycle(upper), strict=False)
    )
    assert parse_algorithm(left + name + right) is algorithm
    assert parse_algorithm(algorithm.value) is algorithm


@given(st.text(max_size=20))
def test_parse_algorithm_accepts_only_known_names(text: str) -> None:
    try:
        algorithm = parse_algorithm(text)
    except ValidationError as exc:
        assert "Choose one of: AES-128" in exc.message
        assert text.strip().upper() not in {a.value for a in Algorithm}
    else:
        assert algorithm.value == text.strip().upper()


@pytest.mark.parametrize("text", ["DES3", "AES", "AES-512", "RSA-1024", "EC-P521", "", "ed448"])
def test_unknown_algorithms_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="Unknown algorithm"):
        parse_algorithm(text)


@pytest.mark.parametrize(
    ("text", "purpose"),
    [
        ("encryption", P.ENCRYPTION),
        ("Signing", P.SIGNING),
        ("key-wrapping", P.KEY_WRAPPING),
        ("KEY_WRAPPING", P.KEY_WRAPPING),
        ("key wrapping", P.KEY_WRAPPING),
        (" mac ", P.MAC),
    ],
)
def test_parse_purpose(text: str, purpose: Purpose) -> None:
    assert parse_purpose(text) is purpose


@pytest.mark.parametrize("text", ["wrapping", "sign", "", "derive"])
def test_unknown_purposes_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="key-wrapping"):
        parse_purpose(text)


# --- the templates Keystead sends to the token ------------------------------------------------

SECRET_FLAGS = {
    U.ENCRYPT: Attribute.ENCRYPT,
    U.DECRYPT: Attribute.DECRYPT,
    U.SIGN: Attribute.SIGN,
    U.VERIFY: Attribute.VERIFY,
    U.WRAP: Attribute.WRAP,
    U.UNWRAP: Attribute.UNWRAP,
    U.DERIVE: Attribute.DERIVE,
}
PRIVATE_FLAGS = {u: a for u, a in SECRET_FLAGS.items() if u in (U.DECRYPT, U.SIGN, U.UNWRAP)}
PRIVATE_FLAGS[U.DERIVE] = Attribute.DERIVE
PUBLIC_FLAGS = {u: a for u, a in SECRET_FLAGS.items() if u in (U.ENCRYPT, U.VERIFY, U.WRAP)}
PUBLIC_FLAGS[U.DERIVE] = Attribute.DERIVE


def spec(algorithm: Algorithm, purpose: Purpose, extractable: bool) -> KeySpec:
    return KeySpec(algorithm, "label-1", b"\x01\x02", usage_for(algorithm, purpose), extractable)


@pytest.mark.parametrize(("algorithm", "purpose"), ALLOWED_PAIRS)
@pytest.mark.parametrize("extractable", [False, True])
def test_templates_are_complete_and_explicit(
    algorithm: Algorithm, purpose: Purpose, extractable: bool
) -> None:
    """Every flag is written out true or false (python-pkcs11's defaults are never used)."""
    key = spec(algorithm, purpose, extractable)
    private, public = USAGE[purpose]
    if algorithm.symmetric:
        parts = [(templates.secret_template(key), SECRET_FLAGS, private | public, True)]
    else:
        parts = [
            (templates.private_template(key), PRIVATE_FLAGS, private, True),
            (templates.public_template(key), PUBLIC_FLAGS, public, False),
        ]
    for template, flags, granted, secret_part in parts:
        assert template[Attribute.TOKEN] is True
        assert template[Attribute.PRIVATE] is True  # public halves too: labels hidden at rest
        assert template[Attribute.LABEL] == "label-1"
        assert template[Attribute.ID] == b"\x01\x02"
        for usage, attribute in flags.items():
            assert template[attribute] is (usage in granted), (attribute, template)
        if secret_part:
            assert template[Attribute.SENSITIVE] is True
            assert template[Attribute.EXTRACTABLE] is extractable
            expected = templates.expected_readback(template, True)
            assert expected[Attribute.ALWAYS_SENSITIVE] is True
            assert expected[Attribute.NEVER_EXTRACTABLE] is (not extractable)
        else:
            assert Attribute.SENSITIVE not in template
    if algorithm.family is Family.AES:
        assert parts[0][0][Attribute.VALUE_LEN] == TABLE[algorithm][1] // 8
    elif algorithm.family is Family.RSA:
        public_t = parts[1][0]
        assert public_t[Attribute.MODULUS_BITS] == TABLE[algorithm][1]
        assert public_t[Attribute.PUBLIC_EXPONENT] == b"\x01\x00\x01"
        assert public_t[Attribute.VERIFY_RECOVER] is False
        assert parts[0][0][Attribute.SIGN_RECOVER] is False
    else:
        curve_der = {"P-256": "06082a8648ce3d030107", "P-384": "06052b81040022"}
        curve_der["Ed25519"] = "06032b6570"
        assert parts[1][0][Attribute.EC_PARAMS].hex() == curve_der[TABLE[algorithm][2] or ""]


def test_readback_check_names_every_differing_attribute() -> None:
    template = templates.secret_template(spec(A.AES_256, P.ENCRYPTION, False))
    expected = templates.expected_readback(template, True)
    actual = dict(expected)
    assert templates.mismatches(expected, actual) == []
    actual[Attribute.LABEL] = b"label-1"  # tokens may return the label as bytes
    assert templates.mismatches(expected, actual) == []
    actual[Attribute.WRAP] = True
    actual[Attribute.NEVER_EXTRACTABLE] = False
    del actual[Attribute.SENSITIVE]
    assert templates.mismatches(expected, actual) == ["NEVER_EXTRACTABLE", "SENSITIVE", "WRAP"]
