"""Bounds on an Argon2id cost read from a file (RFC 9106).

A keyslot or a backup manifest carries the Argon2id cost it was made with, so the cost can be
raised later. Read back, that cost is attacker-controlled input: an edited keyslot file, or a
manifest re-signed by someone else, could name a cost that hangs the machine or exhausts its
memory before any check fails. These bounds are far above what Keystead writes (64 MiB,
3 passes, 4 lanes) and below what a 2-core workstation can finish in about a minute.
"""

from __future__ import annotations

MIN_MEMORY_KIB_PER_LANE = 8  # RFC 9106 section 3.1: m >= 8 * p
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_ITERATIONS = 16
MAX_LANES = 16


def kdf_cost_problem(memory_kib: object, iterations: object, lanes: object) -> str | None:
    """Why an Argon2id cost read from a file is refused, or None when it is within bounds.

    ``memory_kib`` in KiB, ``iterations`` the number of passes, ``lanes`` the parallelism;
    each must be an ``int`` (``bool`` is not one). The words name the field and the bound.
    """
    for name, value in (("memory_kib", memory_kib), ("iterations", iterations), ("lanes", lanes)):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"its Argon2id {name} is not a whole number"
    if not (isinstance(memory_kib, int) and isinstance(iterations, int) and isinstance(lanes, int)):
        return "its Argon2id cost is not whole numbers"  # (unreachable; narrows the types)
    if not 1 <= lanes <= MAX_LANES:
        return f"its Argon2id lanes ({lanes}) are outside 1..{MAX_LANES}"
    if not 1 <= iterations <= MAX_ITERATIONS:
        return f"its Argon2id iterations ({iterations}) are outside 1..{MAX_ITERATIONS}"
    if not MIN_MEMORY_KIB_PER_LANE * lanes <= memory_kib <= MAX_MEMORY_KIB:
        return (
            f"its Argon2id memory ({memory_kib} KiB) is outside "
            f"{MIN_MEMORY_KIB_PER_LANE * lanes}..{MAX_MEMORY_KIB} KiB"
        )
    return None
