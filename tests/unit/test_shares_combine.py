"""More shares than the threshold (a whole --shares-out file) still combine: SLIP-39 itself
takes exactly the threshold, so Keystead passes that many."""

from __future__ import annotations

import shamir_mnemonic

from app.backup.shares import combine, parse


def test_all_shares_of_a_set_combine() -> None:
    secret = bytes(range(32))
    [group] = shamir_mnemonic.generate_mnemonics(1, [(2, 3)], secret, b"", iteration_exponent=0)
    identifier = parse(group[0]).identifier
    assert combine(group, identifier) == secret
    assert combine(group[1:], identifier) == secret
