"""A STUN client transaction whose timer fires late (the process was stopped, the event loop
stalled) keeps the RFC 5389 §7.2.1 intervals from then on instead of sending the rest of its
requests and giving up at once — a UA frozen past a NAT timeout (RFC 5626 §4.4.2) must still
get the answer that shows the new binding."""

from __future__ import annotations

import pytest

from sipstack.transport import stun


def test_a_late_timer_shifts_the_rest_of_the_schedule() -> None:
    request, tid = stun.binding_request()
    tx = stun.StunTransaction(request, tid, rto=0.1, rc=3, rm=4)  # sends at 0, 0.1, 0.3; gives up at 0.7
    tx.start(0.0)
    assert tx.handle_timer(5.0) == request  # 4.9 s late: the second request, now
    assert tx.get_timer() == pytest.approx(5.2)  # the third 0.2 s later, not at once
    assert tx.handle_timer(5.0) is None and not tx.done
    assert tx.handle_timer(5.2) == request
    assert tx.get_timer() == pytest.approx(5.6)  # then rm * rto of waiting for an answer
    reply = stun.decode(stun.answer(request, "192.0.2.1", 7000) or b"")
    assert tx.receive(reply) and tx.result is not None


def test_a_late_timer_still_times_out_after_the_whole_schedule() -> None:
    request, tid = stun.binding_request()
    tx = stun.StunTransaction(request, tid, rto=0.1, rc=2, rm=4)
    tx.start(0.0)
    assert tx.handle_timer(9.0) == request
    assert tx.handle_timer(9.0 + 0.4) is None and isinstance(tx.error, stun.StunTimeout)
