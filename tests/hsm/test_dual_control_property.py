"""Property: no sequence of one operator's own actions completes a dual-control action.

The operator knows only their own name and passphrase (and may guess other names). They
prepare requests of any dual-controlled action class, approve with whatever they have, keep
every approval they got, and present any collection of them for any request. Whatever the
sequence, ``authorise`` never succeeds for a rule that needs an approver.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.approval import DEFAULT_POLICY, Approval, ApprovalRequest, Credential
from app.errors import KeysteadError
from tests.hsm.kit import OPERATOR, PASSPHRASE, Station
from tests.support import WITNESS, enrol_witness

pytestmark = pytest.mark.hsm

DUAL = sorted(a for a, r in DEFAULT_POLICY.items() if r.approvals > 0)

step = st.one_of(
    st.tuples(st.just("prepare"), st.sampled_from(DUAL), st.sampled_from(["k1", "k2"])),
    st.tuples(
        st.just("approve"),
        st.integers(0, 5),
        st.sampled_from(
            [
                (OPERATOR, PASSPHRASE),
                (OPERATOR, "SENTINEL-guess-0000"),
                (WITNESS, PASSPHRASE),  # another's name with one's own passphrase
                ("nobody", PASSPHRASE),
                (f" {OPERATOR} ", PASSPHRASE),
            ]
        ),
    ),
    st.tuples(st.just("authorise"), st.integers(0, 5), st.lists(st.integers(0, 20), max_size=3)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_one_operator_alone_never_completes_a_dual_action(
    station: Station, steps: list[tuple[Any, ...]]
) -> None:
    approvals = station.ws.approvals
    if station(approvals.operators.get, WITNESS) is None:  # someone else exists, not here
        station(enrol_witness, station.ws)
    approvals.source = None
    requests: list[ApprovalRequest] = []
    pool: list[Approval] = []
    for kind, first, second in steps:
        try:
            if kind == "prepare":
                requests.append(station(approvals.prepare, first, f"key:{second}", {"k": second}))
            elif kind == "approve" and requests:
                request = requests[first % len(requests)]
                pool.append(station(approvals.approve, request, Credential(*second)))
            elif kind == "authorise" and requests:
                request = requests[first % len(requests)]
                chosen = [pool[i % len(pool)] for i in second] if pool else []
                result = station(approvals.authorise, request, chosen)
                raise AssertionError(f"authorised alone: {request.action} by {result}")
        except KeysteadError:
            continue
    assert all(a.approver != OPERATOR for a in pool)
