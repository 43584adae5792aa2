"""The non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8), Timer J, transport
errors (§17.2.4), and RFC 4320 §4.1/§4.2 on provisional responses to non-INVITE requests:
no provisional but 100, no 100 over an unreliable transport before the client's Timer E
reaches T2, and a 100 sent then (on any transport) if nothing else was."""

from __future__ import annotations

import pytest
from txkit import (
    UAC_TCP,
    UAC_UDP,
    advance,
    kinds,
    lines,
    request,
    sends,
    step,
    terminated,
)

from sipstack.message import make_response
from sipstack.net import Address
from sipstack.transaction import ServerNonInviteTransaction, State, TimerConfig, TransactionLayer

TO_UDP = Address("UDP", "192.0.2.20", 5070)
TO_TCP = Address("TCP", "192.0.2.20", 5070, 11)

TRYING = "SIP/2.0 100 Trying"
OK = "SIP/2.0 200 OK"

# T1 + 2*T1 + 4*T1 with the default timers: when the client's Timer E reaches T2 (4 s).
E_AT_T2 = 3.5


def receive(layer: TransactionLayer, source=UAC_UDP, now: float = 0.0, method: str = "OPTIONS"):
    req = request(method, transport=source.transport)
    layer.receive_request(req, source, now)
    events = layer.drain_events()
    return req, events[0].transaction, events


def answer(layer, tx, req, code, now):
    layer.respond(tx, make_response(req, code, to_tag=None if code == 100 else "srv1"), now)
    return layer.drain_events()


# -- Trying -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["OPTIONS", "BYE", "REGISTER", "CANCEL", "MESSAGE", "NOTIFY"])
def test_new_request_goes_to_the_tu_with_a_transaction_in_trying(layer, method):
    req, tx, events = receive(layer, method=method)
    assert kinds(events) == ["RequestReceived"]
    assert events[0].request == req and events[0].source == UAC_UDP
    assert isinstance(tx, ServerNonInviteTransaction)
    assert tx.kind == "NIST"
    assert tx.state is State.TRYING
    assert tx.address == TO_UDP


def test_retransmissions_in_trying_are_discarded(layer):
    """§17.2.2: in Trying, request retransmissions are discarded."""
    req, tx, _ = receive(layer)
    for now in (0.5, 1.5):
        layer.receive_request(req, UAC_UDP, now)
        assert layer.drain_events() == []
    assert tx.state is State.TRYING


@pytest.mark.parametrize(("source", "to"), [(UAC_UDP, TO_UDP), (UAC_TCP, TO_TCP)], ids=["udp", "tcp"])
def test_100_is_sent_when_timer_e_would_reach_t2_if_nothing_else_was(layer, source, to):
    """RFC 4320 §4.2: without regard to transport, an element MUST respond with a 100 if it
    has not otherwise responded after the time it takes the client's Timer E to be reset
    to T2 (T1 + 2*T1 + 4*T1 = 3.5 s)."""
    req, tx, _ = receive(layer, source)
    recs = advance(layer, 100.0)
    assert [(r.time, r.kind, r.detail) for r in recs] == [(E_AT_T2, "SendMessage", TRYING)]
    assert tx.state is State.PROCEEDING
    layer.receive_request(req, source, 4.0)
    events = layer.drain_events()
    assert lines(events) == [TRYING] and events[0].address == to


def test_early_100_from_the_tu_is_not_sent_over_udp(layer):
    """RFC 4320 §4.1: MUST NOT respond with a 100 over an unreliable transport before the
    client's Timer E is reset to T2; the automatic 100 still goes out then."""
    req, tx, _ = receive(layer)
    for now in (0.0, 1.0, 3.4):
        assert answer(layer, tx, req, 100, now) == []
    assert tx.state is State.TRYING
    recs = advance(layer, 100.0)
    assert [(r.time, r.detail) for r in recs] == [(E_AT_T2, TRYING)]


def test_100_from_the_tu_over_udp_is_sent_once_timer_e_reached_t2(layer):
    req, tx, _ = receive(layer)
    events = answer(layer, tx, req, 100, E_AT_T2)
    assert lines(events) == [TRYING]
    assert tx.state is State.PROCEEDING
    assert advance(layer, 100.0) == []


def test_100_from_the_tu_over_tcp_is_sent_at_once(layer):
    """RFC 4320 §4.1: a 100 MAY be sent over a reliable transport at any time."""
    req, tx, _ = receive(layer, UAC_TCP)
    events = answer(layer, tx, req, 100, 0.1)
    assert lines(events) == [TRYING] and events[0].address == TO_TCP
    assert tx.state is State.PROCEEDING
    assert advance(layer, 100.0) == []


@pytest.mark.parametrize("source", [UAC_UDP, UAC_TCP], ids=["udp", "tcp"])
@pytest.mark.parametrize("code", [180, 181, 182, 183, 199])
def test_provisional_other_than_100_is_never_sent(layer, source, code):
    """RFC 4320 §4.1: an element MUST NOT send any provisional response other than 100 to a
    non-INVITE request."""
    req, tx, _ = receive(layer, source)
    assert answer(layer, tx, req, code, 0.1) == []
    assert tx.state is State.TRYING
    assert [r.detail for r in advance(layer, 10.0)] == [TRYING]
    assert answer(layer, tx, req, code, 10.0) == []


# -- Completed ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 202, 302, 401, 404, 481, 500, 603])
def test_final_in_trying_is_sent_and_enters_completed_without_a_100(layer, code):
    """§17.2.2: a final response from the TU in Trying is sent and the transaction enters
    Completed; Timer J is 64*T1 over unreliable transports."""
    req, tx, _ = receive(layer)
    events = answer(layer, tx, req, code, 1.0)
    assert len(events) == 1 and events[0].address == TO_UDP and events[0].transaction is tx
    assert lines(events)[0].startswith(f"SIP/2.0 {code} ")
    assert tx.state is State.COMPLETED
    recs = advance(layer, 200.0)
    assert [(r.time, r.kind) for r in recs] == [(33.0, "TransactionTerminated")]


def test_final_in_proceeding_is_sent_and_enters_completed(layer):
    req, tx, _ = receive(layer)
    advance(layer, E_AT_T2)
    assert tx.state is State.PROCEEDING
    assert lines(answer(layer, tx, req, 200, 4.0)) == [OK]
    assert tx.state is State.COMPLETED


def test_retransmissions_in_completed_get_the_final_response_again(layer):
    """§17.2.2: in Completed each request retransmission makes the final response go out
    again; retransmissions are not passed to the TU."""
    req, tx, _ = receive(layer)
    final = sends(answer(layer, tx, req, 200, 1.0))[0].data
    for now in (1.5, 2.5, 4.5):
        layer.receive_request(req, UAC_UDP, now)
        events = layer.drain_events()
        assert [e.data for e in sends(events)] == [final]
        assert kinds(events) == ["SendMessage"]


@pytest.mark.parametrize("code", [100, 200, 486])
def test_completed_ignores_further_responses_from_the_tu(layer, code):
    """§17.2.2: any other final responses passed by the TU in Completed are discarded."""
    req, tx, _ = receive(layer)
    answer(layer, tx, req, 200, 4.0)
    assert answer(layer, tx, req, code, 5.0) == []


def test_timer_j_is_zero_over_a_reliable_transport(layer):
    """§17.2.2: Timer J is zero seconds for reliable transports."""
    req, tx, _ = receive(layer, UAC_TCP)
    answer(layer, tx, req, 200, 1.0)
    assert layer.get_timer() == 1.0
    assert kinds(step(layer, 1.0)) == ["TransactionTerminated"]
    assert layer.get_timer() is None


def test_retransmission_after_timer_j_is_a_new_request(layer):
    req, tx, _ = receive(layer)
    answer(layer, tx, req, 200, 1.0)
    advance(layer, 100.0)
    layer.receive_request(req, UAC_UDP, 40.0)
    events = layer.drain_events()
    assert kinds(events) == ["RequestReceived"] and events[0].transaction is not tx


# -- transport errors ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [100, 200], ids=["proceeding", "completed"])
def test_transport_error_informs_the_tu_and_terminates(layer, code):
    """Figure 8 / §17.2.4: Proceeding and Completed --Trnsprt Err. / Inform TU-->
    Terminated."""
    req, tx, _ = receive(layer)
    answer(layer, tx, req, code, E_AT_T2)
    layer.transport_error(tx, 4.0)
    events = layer.drain_events()
    assert kinds(events) == ["TransactionTransportError", "TransactionTerminated"]
    assert all(e.transaction is tx for e in events)
    assert advance(layer, 100.0) == []
    layer.transport_error(tx, 5.0)
    assert layer.drain_events() == []


# -- lifecycle ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", [UAC_UDP, UAC_TCP], ids=["udp", "tcp"])
@pytest.mark.parametrize("code", [100, 200, 404, "error"])
def test_transaction_terminated_is_emitted_exactly_once(layer, source, code):
    req, tx, events = receive(layer, source)
    if code == "error":
        layer.transport_error(tx, 0.1)
    else:
        events += answer(layer, tx, req, code, 4.0)
        if code != 100:
            events += answer(layer, tx, req, 200, 4.0)
            events += answer(layer, tx, req, 200, 4.1)
    events += layer.drain_events()
    recs = advance(layer, 500.0)
    if code == 100:  # a transaction in Proceeding waits for its TU's final response
        events += answer(layer, tx, req, 200, 500.0)
        recs += advance(layer, 1000.0)
    layer.transport_error(tx, 2000.0)
    events += layer.drain_events()
    assert terminated(events) + terminated(recs) == 1
    assert len(layer) == 0 and layer.get_timer() is None


# -- custom timers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timers", "at"),
    [
        (TimerConfig(T1=0.1, T2=0.4, T4=1.0), 0.3),  # T1 + 2*T1, then E is reset to T2
        (TimerConfig(T1=1.0, T2=4.0), 3.0),
        (TimerConfig(T1=0.5, T2=3.0), 3.5),  # 0.5 + 1 + 2, then MIN(4, 3) = T2
        (TimerConfig(T1=0.5, T2=8.0), 7.5),
    ],
)
def test_automatic_100_follows_the_clients_timer_e(timers, at):
    layer = TransactionLayer(timers)
    _req, _tx, _ = receive(layer)
    assert timers.trying_nict == pytest.approx(at)
    recs = advance(layer, 1000.0)
    assert recs[0].time == pytest.approx(at) and recs[0].detail == TRYING


@pytest.mark.parametrize("t1", [4.0, 6.0])
def test_no_100_over_udp_before_timer_e_first_fires_when_t1_is_at_least_t2(t1):
    """RFC 3261 §17.1.2.2: Timer E starts at T1 and on firing is reset to MIN(2*T1, T2) —
    T2 when T1 >= T2 — so with such timers Timer E reaches T2 at T1, not at once."""
    timers = TimerConfig(T1=t1, T2=4.0)
    layer = TransactionLayer(timers)
    req, tx, _ = receive(layer)
    assert answer(layer, tx, req, 100, 0.0) == []
    recs = advance(layer, 1000.0)
    assert recs[0].time == pytest.approx(t1)


def test_custom_t1_scales_timer_j(fast):
    layer = TransactionLayer(fast)
    req, tx, _ = receive(layer)
    answer(layer, tx, req, 200, 0.0)
    assert [(r.time, r.kind) for r in advance(layer, 100.0)] == [
        (pytest.approx(6.4), "TransactionTerminated")
    ]
