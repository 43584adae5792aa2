"""The non-INVITE client transaction: RFC 3261 §17.1.2 (Figure 6), Timers E, F and K of
RFC 3261 §A, transport errors (§17.1.4)."""

from __future__ import annotations

import pytest
from txkit import (
    PEER_TCP,
    PEER_UDP,
    advance,
    approx,
    gaps,
    kinds,
    lines,
    request,
    response,
    sends,
    sent,
    step,
    terminated,
)

from sipstack.transaction import ClientNonInviteTransaction, State, TimerConfig, TransactionLayer

METHODS = ["OPTIONS", "BYE", "REGISTER", "CANCEL", "INFO", "MESSAGE", "PRACK", "SUBSCRIBE", "NOTIFY"]


def start(layer: TransactionLayer, address=PEER_UDP, now: float = 0.0, method: str = "OPTIONS"):
    req = request(method, transport=address.transport)
    tx = layer.send_request(req, address, now)
    return req, tx, layer.drain_events()


def schedule(recs):
    return [(r.time, r.kind, r.detail) for r in recs if r.kind != "SendMessage"]


# -- Trying -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_request_is_passed_to_the_transport_at_once_and_the_transaction_is_trying(layer, method):
    req, tx, events = start(layer, method=method)
    assert isinstance(tx, ClientNonInviteTransaction)
    assert tx.kind == "NICT"
    assert tx.state is State.TRYING
    assert kinds(events) == ["SendMessage"]
    assert events[0].data == bytes(req) and events[0].address == PEER_UDP and events[0].transaction is tx


def test_timer_e_doubles_from_t1_up_to_t2_then_stays_at_t2_until_timer_f(layer):
    """§17.1.2.2: Timer E starts at T1 and is reset to MIN(2*T1, T2), MIN(4*T1, T2) …
    (0.5, 1, 2, 4, 4, 4 … s); Timer F (64*T1) informs the TU of the timeout."""
    _req, tx, _ = start(layer)
    recs = advance(layer, 100.0)
    times = [0.0, *sent(recs, "OPTIONS")]
    assert times == approx([0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    assert gaps(times) == approx([0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4])
    assert schedule(recs) == [(32.0, "TransactionTimeout", "F"), (32.0, "TransactionTerminated", None)]
    assert tx.state is State.TERMINATED
    assert len(layer) == 0 and layer.get_timer() is None


def test_retransmitted_request_is_identical(layer):
    req, _tx, _ = start(layer)
    for now in (0.5, 1.5, 3.5, 7.5):
        assert [(e.data, e.address) for e in sends(step(layer, now))] == [(bytes(req), PEER_UDP)]


def test_timer_f_timeout_is_reported_with_the_transaction(layer):
    _, tx, _ = start(layer)
    advance(layer, 31.9)
    events = step(layer, 32.0)
    assert kinds(events) == ["TransactionTimeout", "TransactionTerminated"]
    assert events[0].transaction is tx and events[0].timer == "F"


def test_no_retransmission_over_a_reliable_transport_but_timer_f_still_fires(layer):
    """§17.1.2.2: Timer E only for unreliable transports; Timer F always."""
    _req, _tx, events = start(layer, PEER_TCP)
    assert lines(events) == ["OPTIONS sip:bob@biloxi.example.com SIP/2.0"]
    recs = advance(layer, 100.0)
    assert [(r.time, r.kind, r.detail) for r in recs] == [
        (32.0, "TransactionTimeout", "F"),
        (32.0, "TransactionTerminated", None),
    ]


# -- Proceeding ---------------------------------------------------------------------------


def test_provisional_goes_to_the_tu_and_enters_proceeding(layer):
    """§17.1.2.2: a provisional response in Trying MUST be passed to the TU, and the
    transaction SHOULD move to Proceeding."""
    req, tx, _ = start(layer)
    layer.receive_response(response(req, 100), PEER_UDP, 0.2)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"]
    assert events[0].transaction is tx and events[0].response.status_code == 100
    assert tx.state is State.PROCEEDING


def test_timer_e_fires_at_t2_in_proceeding(layer):
    """§17.1.2.2: when Timer E fires in Proceeding the request is retransmitted and Timer E
    reset to T2; Timer F still informs the TU in Proceeding."""
    req, _tx, _ = start(layer)
    layer.receive_response(response(req, 100), PEER_UDP, 0.2)
    layer.drain_events()
    recs = advance(layer, 100.0)
    times = sent(recs, "OPTIONS")
    assert times == approx([0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5])
    assert schedule(recs) == [(32.0, "TransactionTimeout", "F"), (32.0, "TransactionTerminated", None)]


def test_provisional_late_in_trying_leaves_the_pending_timer_e_then_t2(layer):
    """The pending Timer E (2 s after 1.5 s) fires at 3.5 s; only then is it reset to T2."""
    req, _tx, _ = start(layer)
    advance(layer, 1.5)
    layer.receive_response(response(req, 100), PEER_UDP, 2.0)
    layer.drain_events()
    times = sent(advance(layer, 100.0), "OPTIONS")
    assert times == approx([3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])


def test_every_provisional_in_proceeding_goes_to_the_tu(layer):
    req, tx, _ = start(layer)
    for now in (0.1, 0.2, 0.3):
        layer.receive_response(response(req, 100), PEER_UDP, now)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"] * 3
    assert tx.state is State.PROCEEDING


# -- Completed ----------------------------------------------------------------------------


@pytest.mark.parametrize("provisional", [None, 100], ids=["trying", "proceeding"])
@pytest.mark.parametrize("code", [200, 202, 302, 401, 404, 408, 500, 603])
def test_final_response_goes_to_the_tu_and_enters_completed(layer, code, provisional):
    """§17.1.2.2: a final response (200-699) in Trying or Proceeding MUST be passed to the
    TU and the transaction MUST move to Completed; no more retransmissions, no timeout."""
    req, tx, _ = start(layer)
    if provisional:
        layer.receive_response(response(req, provisional), PEER_UDP, 0.2)
        layer.drain_events()
    layer.receive_response(response(req, code), PEER_UDP, 1.0)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"]
    assert events[0].transaction is tx and events[0].response.status_code == code
    assert tx.state is State.COMPLETED
    assert tx.last_response.status_code == code
    assert tx._data == b""  # the request's bytes are let go while Timer K runs
    recs = advance(layer, 100.0)
    assert sent(recs) == []
    assert [(r.time, r.kind) for r in recs] == [(6.0, "TransactionTerminated")]


def test_completed_absorbs_response_retransmissions_for_timer_k_t4(layer):
    """§17.1.2.2: Timer K is T4 on unreliable transports; in Completed retransmitted
    responses are not passed to the TU."""
    req, tx, _ = start(layer)
    layer.receive_response(response(req, 200), PEER_UDP, 1.0)
    layer.drain_events()
    for now in (1.5, 3.0, 5.9):
        layer.receive_response(response(req, 200), PEER_UDP, now)
        assert layer.drain_events() == []
    assert tx.state is State.COMPLETED
    assert [(r.time, r.kind) for r in advance(layer, 100.0)] == [(6.0, "TransactionTerminated")]
    layer.receive_response(response(req, 200), PEER_UDP, 6.5)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"] and events[0].transaction is None


def test_timer_k_is_zero_over_a_reliable_transport(layer):
    """§17.1.2.2: Timer K is zero seconds for reliable transports."""
    req, _tx, _ = start(layer, PEER_TCP)
    layer.receive_response(response(req, 200), PEER_TCP, 1.0)
    layer.drain_events()
    assert layer.get_timer() == 1.0
    assert kinds(step(layer, 1.0)) == ["TransactionTerminated"]
    assert layer.get_timer() is None


# -- transport errors ---------------------------------------------------------------------


@pytest.mark.parametrize("provisional", [None, 100], ids=["trying", "proceeding"])
def test_transport_error_informs_the_tu_and_terminates(layer, provisional):
    """Figure 6 / §17.1.4: Trying and Proceeding --Transport Err. / inform TU--> Terminated."""
    req, tx, _ = start(layer)
    if provisional:
        layer.receive_response(response(req, provisional), PEER_UDP, 0.2)
        layer.drain_events()
    layer.transport_error(tx, 0.4)
    events = layer.drain_events()
    assert kinds(events) == ["TransactionTransportError", "TransactionTerminated"]
    assert all(e.transaction is tx for e in events)
    assert advance(layer, 100.0) == []
    layer.transport_error(tx, 1.0)
    assert layer.drain_events() == []


# -- lifecycle ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", [PEER_UDP, PEER_TCP], ids=["udp", "tcp"])
@pytest.mark.parametrize("answer", [None, 100, 200, 404, "error"])
def test_transaction_terminated_is_emitted_exactly_once(layer, address, answer):
    req, tx, events = start(layer, address)
    if answer == "error":
        layer.transport_error(tx, 0.1)
    elif answer is not None:
        layer.receive_response(response(req, answer), address, 0.1)
        layer.receive_response(response(req, answer), address, 0.2)
    events += layer.drain_events()
    recs = advance(layer, 500.0)
    layer.transport_error(tx, 600.0)
    events += layer.drain_events()
    assert terminated(events) + terminated(recs) == 1
    assert len(layer) == 0 and layer.get_timer() is None


# -- custom timers ------------------------------------------------------------------------


def test_custom_t1_t2_scale_timers_e_and_f(fast):
    layer = TransactionLayer(fast)
    start(layer)
    recs = advance(layer, 100.0)
    times = sent(recs, "OPTIONS")
    assert times == approx(
        [0.1, 0.3, 0.7, 1.1, 1.5, 1.9, 2.3, 2.7, 3.1, 3.5, 3.9, 4.3, 4.7, 5.1, 5.5, 5.9, 6.3]
    )
    assert gaps([0.0, *times])[:4] == approx([0.1, 0.2, 0.4, 0.4])
    assert [(r.time, r.detail) for r in recs if r.kind == "TransactionTimeout"] == [(pytest.approx(6.4), "F")]


def test_custom_t2_is_the_proceeding_interval(fast):
    layer = TransactionLayer(fast)
    req, _tx, _ = start(layer)
    layer.receive_response(response(req, 100), PEER_UDP, 0.05)
    layer.drain_events()
    times = sent(advance(layer, 1.0), "OPTIONS")
    assert times == approx([0.1, 0.5, 0.9])


def test_custom_t4_scales_timer_k(fast):
    layer = TransactionLayer(fast)
    req, _tx, _ = start(layer)
    layer.receive_response(response(req, 200), PEER_UDP, 0.05)
    layer.drain_events()
    assert [(r.time, r.kind) for r in advance(layer, 100.0)] == [
        (pytest.approx(1.05), "TransactionTerminated")
    ]


def test_t2_below_2_t1_caps_the_first_reset_of_timer_e():
    """§17.1.2.2: the first reset is MIN(2*T1, T2)."""
    layer = TransactionLayer(TimerConfig(T1=0.5, T2=0.75))
    start(layer)
    times = sent(advance(layer, 3.0), "OPTIONS")
    assert gaps([0.0, *times])[:4] == approx([0.5, 0.75, 0.75, 0.75])


def test_a_wait_grid_delays_timer_k_to_the_grid_never_earlier_and_at_most_a_sixteenth():
    """A layer with ``wait_grid`` (the endpoint's) fires the wait-only timers on that grid:
    a transaction completed at 1.03 s ends at 6.1 s (T4 = 5 s, grid 0.1 s), not at 6.03 s and
    not later than 1.03 + 5 + 5/16; Timers E and F, which act, stay exact."""
    layer = TransactionLayer(wait_grid=0.1)
    req, tx, _ = start(layer, now=0.0)
    assert layer.get_timer() == pytest.approx(0.5)  # Timer E, exact
    layer.receive_response(response(req, 200), PEER_UDP, 1.03)
    layer.drain_events()
    assert tx.state is State.COMPLETED
    due = layer.get_timer()
    assert due == pytest.approx(6.1) and 1.03 + 5.0 <= due <= 1.03 + 5.0 + 5.0 / 16
    layer.handle_timer(6.05)
    assert tx.state is State.COMPLETED
    layer.handle_timer(due)
    assert tx.state is State.TERMINATED
