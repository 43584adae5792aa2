"""The INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) as updated by RFC 6026 §7.1
and §8 (Accepted state, Timer L), Timers G, H, I and L, the 100 Trying of §17.2.1 and
transport errors (§17.2.4)."""

from __future__ import annotations

import pytest
from txkit import (
    UAC_TCP,
    UAC_UDP,
    RequestReceived,
    ack_for,
    advance,
    approx,
    fresh_branch,
    gaps,
    kinds,
    lines,
    of,
    request,
    sends,
    sent,
    step,
    terminated,
)

from sipstack.message import make_response, parse
from sipstack.net import Address
from sipstack.transaction import ServerInviteTransaction, State, TimerConfig, TransactionLayer

# Where responses go: the UAC's address (its Via sent-by over UDP, the connection over TCP).
TO_UDP = Address("UDP", "192.0.2.20", 5070)
TO_TCP = Address("TCP", "192.0.2.20", 5070, 11)

OK = "SIP/2.0 200 OK"
TRYING = "SIP/2.0 100 Trying"
RINGING = "SIP/2.0 180 Ringing"
BUSY = "SIP/2.0 486 Busy Here"


def receive(layer: TransactionLayer, source=UAC_UDP, now: float = 0.0, **kw):
    invite = request("INVITE", transport=source.transport, **kw)
    layer.receive_request(invite, source, now)
    events = layer.drain_events()
    tx = events[0].transaction
    return invite, tx, events


def answer(layer, tx, invite, code, now, **kw):
    layer.respond(tx, make_response(invite, code, to_tag=None if code == 100 else "srv1", **kw), now)
    return layer.drain_events()


# -- Proceeding ---------------------------------------------------------------------------


def test_new_invite_goes_to_the_tu_with_a_server_transaction_in_proceeding(layer):
    invite, tx, events = receive(layer)
    assert kinds(events) == ["RequestReceived"]
    assert events[0].request == invite and events[0].source == UAC_UDP
    assert isinstance(tx, ServerInviteTransaction)
    assert tx.kind == "IST"
    assert tx.state is State.PROCEEDING
    assert tx.address == TO_UDP
    assert layer.server_transactions == 1


def test_100_trying_is_sent_after_200_ms_if_the_tu_has_not_answered(layer):
    """§17.2.1: the server transaction MUST generate a 100 (Trying) unless the TU
    generates a provisional or final response within 200 ms."""
    invite, tx, _ = receive(layer)
    assert layer.get_timer() == 0.2
    events = step(layer, 0.2)
    assert lines(events) == [TRYING]
    assert events[0].address == TO_UDP and events[0].transaction is tx
    trying = parse(events[0].data)
    assert trying.to.tag is None
    assert trying.header_values("via") == invite.header_values("via")
    assert tx.state is State.PROCEEDING


def test_100_trying_copies_the_timestamp(layer):
    """§8.2.6.1: a 100 (Trying) to a request with Timestamp copies it."""
    _invite, _tx, _ = receive(layer, extra=[("Timestamp", "54.21 0.3")])
    (trying,) = sends(step(layer, 0.2))
    assert parse(trying.data).header("timestamp") == "54.21 0.3"


def test_invite_trying_delay_zero_sends_the_100_at_once():
    layer = TransactionLayer(invite_trying_delay=0)
    _invite, _tx, events = receive(layer)
    assert kinds(events) == ["RequestReceived", "SendMessage"]
    assert lines(events) == [TRYING]
    assert advance(layer, 31.0) == []


def test_invite_trying_delay_none_never_sends_a_100():
    layer = TransactionLayer(invite_trying_delay=None)
    _invite, tx, _ = receive(layer)
    assert layer.get_timer() is None
    assert advance(layer, 100.0) == []
    assert tx.state is State.PROCEEDING


def test_invite_trying_delay_is_configurable():
    layer = TransactionLayer(invite_trying_delay=0.05)
    receive(layer)
    recs = advance(layer, 10.0)
    assert [(r.time, r.detail) for r in recs] == [(0.05, TRYING)]


@pytest.mark.parametrize("code", [180, 183, 200, 486])
def test_no_100_trying_when_the_tu_answered_within_200_ms(layer, code):
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, code, 0.1)
    assert TRYING not in [r.detail for r in advance(layer, 100.0)]


def test_provisional_responses_from_the_tu_are_sent_and_stay_in_proceeding(layer):
    invite, tx, _ = receive(layer)
    events = answer(layer, tx, invite, 180, 0.1) + answer(layer, tx, invite, 183, 0.3)
    assert lines(events) == [RINGING, "SIP/2.0 183 Session Progress"]
    assert all(e.address == TO_UDP for e in events)
    assert tx.state is State.PROCEEDING


def test_invite_retransmission_in_proceeding_resends_the_latest_provisional(layer):
    """§17.2.1: a request retransmission in Proceeding makes the most recent provisional
    response from the TU go to the transport again; it is not passed to the TU."""
    invite, tx, _ = receive(layer)
    step(layer, 0.2)
    layer.receive_request(invite, UAC_UDP, 0.5)
    assert lines(layer.drain_events()) == [TRYING]
    answer(layer, tx, invite, 180, 0.7)
    layer.receive_request(invite, UAC_UDP, 1.5)
    events = layer.drain_events()
    assert lines(events) == [RINGING]
    assert of(events, RequestReceived) == []


def test_invite_retransmission_before_any_provisional_is_absorbed(layer):
    invite, _tx, _ = receive(layer)
    layer.receive_request(invite, UAC_UDP, 0.1)
    assert layer.drain_events() == []
    assert layer.server_transactions == 1


# -- Accepted (RFC 6026) ------------------------------------------------------------------


@pytest.mark.parametrize("provisional", [None, 180])
def test_2xx_from_the_tu_is_sent_once_and_enters_accepted(layer, provisional):
    """RFC 6026 §8.5: a 2xx from the TU in Proceeding is passed to the transport, is not
    retransmitted by the server transaction, and the transaction enters Accepted."""
    invite, tx, _ = receive(layer)
    if provisional:
        answer(layer, tx, invite, provisional, 0.1)
    events = answer(layer, tx, invite, 200, 0.5)
    assert lines(events) == [OK]
    assert events[0].address == TO_UDP and events[0].transaction is tx
    assert tx.state is State.ACCEPTED
    assert sent(advance(layer, 100.0)) == []


def test_invite_retransmissions_in_accepted_are_absorbed(layer):
    """RFC 6026 §8.6: INVITE retransmissions in Accepted match the transaction and are
    absorbed: not passed to the TU, and no response is sent."""
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 200, 0.1)
    for now in (0.5, 1.5, 3.5):
        layer.receive_request(invite, UAC_UDP, now)
        assert layer.drain_events() == []
    assert tx.state is State.ACCEPTED


def test_2xx_retransmissions_from_the_tu_in_accepted_are_sent(layer):
    """RFC 6026 §8.6: each 2xx the TU passes in Accepted goes to the transport."""
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 200, 0.1)
    for now in (0.6, 1.6, 3.6):
        events = answer(layer, tx, invite, 200, now)
        assert lines(events) == [OK]
        assert events[0].address == TO_UDP
    assert tx.state is State.ACCEPTED


@pytest.mark.parametrize("code", [180, 486])
def test_accepted_sends_nothing_but_2xx(layer, code):
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 200, 0.1)
    assert answer(layer, tx, invite, code, 0.2) == []


def test_ack_matching_the_transaction_in_accepted_goes_to_the_tu(layer):
    """RFC 6026 §8.7: an ACK received in Accepted is passed up to the TU."""
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 200, 0.1)
    final = tx.last_response
    ack = ack_for(invite, final)  # same branch as the INVITE
    layer.receive_request(ack, UAC_UDP, 0.3)
    events = layer.drain_events()
    assert kinds(events) == ["RequestReceived"]
    assert events[0].request == ack and events[0].transaction is tx
    assert tx.state is State.ACCEPTED


def test_ack_for_a_2xx_with_its_own_branch_is_a_stray_ack_for_the_tu(layer):
    """§17.1.1.3 / §13.2.2.4: the ACK for a 2xx is its own transaction; it matches no server
    transaction and reaches the TU with transaction None."""
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 200, 0.1)
    ack = ack_for(invite, tx.last_response, branch=fresh_branch())
    layer.receive_request(ack, UAC_UDP, 0.3)
    events = layer.drain_events()
    assert kinds(events) == ["RequestReceived"]
    assert events[0].transaction is None and events[0].source == UAC_UDP
    assert layer.server_transactions == 1


@pytest.mark.parametrize(("source", "to"), [(UAC_UDP, TO_UDP), (UAC_TCP, TO_TCP)], ids=["udp", "tcp"])
def test_timer_l_ends_accepted_after_64_t1_on_every_transport(layer, source, to):
    """RFC 6026 §8.7: Timer L (64*T1) is set on entering Accepted; when it fires the
    transaction moves to Terminated."""
    invite, tx, _ = receive(layer, source)
    answer(layer, tx, invite, 200, 1.0)
    recs = advance(layer, 200.0)
    assert [(r.time, r.kind) for r in recs] == [(33.0, "TransactionTerminated")]
    layer.receive_request(invite, source, 40.0)
    events = layer.drain_events()
    assert kinds(events) == ["RequestReceived"] and events[0].transaction is not tx


# -- Completed / Confirmed ----------------------------------------------------------------


def test_timer_g_retransmits_the_final_doubling_to_t2_until_timer_h(layer):
    """§17.2.1: on a 300-699 the transaction enters Completed; over unreliable transports
    Timer G (T1, then MIN(2*T1, T2), doubling, capped at T2) retransmits the response;
    Timer H (64*T1) without an ACK informs the TU of a failure."""
    invite, tx, _ = receive(layer)
    events = answer(layer, tx, invite, 486, 1.0)
    assert lines(events) == [BUSY]
    assert tx.state is State.COMPLETED
    recs = advance(layer, 200.0)
    times = [1.0, *sent(recs, BUSY)]
    assert times == approx([1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5])
    assert gaps(times) == approx([0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4])
    assert [(r.time, r.kind, r.detail) for r in recs if r.kind != "SendMessage"] == [
        (33.0, "TransactionTimeout", "H"),
        (33.0, "TransactionTerminated", None),
    ]
    assert all(r.detail == BUSY for r in recs if r.kind == "SendMessage")


def test_timer_h_timeout_carries_the_transaction(layer):
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 0.0)
    advance(layer, 31.9)
    events = step(layer, 32.0)
    assert [type(e).__name__ for e in events] == ["TransactionTimeout", "TransactionTerminated"]
    assert events[0].transaction is tx and events[0].timer == "H"


def test_invite_retransmission_in_completed_resends_the_final(layer):
    """§17.2.1: in Completed a request retransmission makes the response go out again."""
    invite, tx, _ = receive(layer)
    first = sends(answer(layer, tx, invite, 486, 0.1))[0].data
    layer.receive_request(invite, UAC_UDP, 0.3)
    events = layer.drain_events()
    assert [e.data for e in sends(events)] == [first]
    assert of(events, RequestReceived) == []


def test_ack_in_completed_enters_confirmed_stops_timer_g_and_timer_i_is_t4(layer):
    """§17.2.1: an ACK in Completed moves to Confirmed; Timer G is ignored (no more
    retransmissions); Timer I is T4 for unreliable transports; Confirmed absorbs ACKs."""
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 1.0)
    advance(layer, 2.0)
    ack = ack_for(invite, tx.last_response)
    layer.receive_request(ack, UAC_UDP, 3.0)
    assert layer.drain_events() == []
    assert tx.state is State.CONFIRMED
    for now in (3.5, 4.0):
        layer.receive_request(ack, UAC_UDP, now)
        assert layer.drain_events() == []
    recs = advance(layer, 200.0)
    assert [(r.time, r.kind) for r in recs] == [(8.0, "TransactionTerminated")]


def test_confirmed_absorbs_invite_retransmissions(layer):
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 1.0)
    layer.receive_request(ack_for(invite, tx.last_response), UAC_UDP, 1.2)
    layer.receive_request(invite, UAC_UDP, 1.5)
    assert layer.drain_events() == []


def test_no_final_retransmission_over_a_reliable_transport_but_timer_h_fires(layer):
    """§17.2.1: Timer G only for unreliable transports; Timer H for all transports."""
    invite, tx, _ = receive(layer, UAC_TCP)
    events = answer(layer, tx, invite, 486, 1.0)
    assert lines(events) == [BUSY] and events[0].address == TO_TCP
    recs = advance(layer, 200.0)
    assert [(r.time, r.kind, r.detail) for r in recs] == [
        (33.0, "TransactionTimeout", "H"),
        (33.0, "TransactionTerminated", None),
    ]


def test_timer_i_is_zero_over_a_reliable_transport(layer):
    """§17.2.1: Timer I is zero seconds for reliable transports."""
    invite, tx, _ = receive(layer, UAC_TCP)
    answer(layer, tx, invite, 486, 1.0)
    layer.receive_request(ack_for(invite, tx.last_response), UAC_TCP, 2.0)
    assert layer.drain_events() == []
    assert tx.state is State.CONFIRMED
    assert layer.get_timer() == 2.0
    assert kinds(step(layer, 2.0)) == ["TransactionTerminated"]
    assert layer.get_timer() is None


@pytest.mark.parametrize("code", [180, 200, 603])
def test_completed_sends_nothing_more_from_the_tu(layer, code):
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 0.1)
    assert answer(layer, tx, invite, code, 0.2) == []


# -- transport errors ---------------------------------------------------------------------


@pytest.mark.parametrize("final", [None, 486], ids=["proceeding", "completed"])
def test_transport_error_informs_the_tu_and_terminates(layer, final):
    """Figure 7 / §17.2.4: Proceeding and Completed --Transport Err. / Inform TU-->
    Terminated."""
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, final or 180, 0.1)
    layer.transport_error(tx, 0.2)
    events = layer.drain_events()
    assert kinds(events) == ["TransactionTransportError", "TransactionTerminated"]
    assert all(e.transaction is tx for e in events)
    assert advance(layer, 100.0) == []
    layer.transport_error(tx, 1.0)
    assert layer.drain_events() == []
    assert len(layer) == 0


# -- lifecycle ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", [UAC_UDP, UAC_TCP], ids=["udp", "tcp"])
@pytest.mark.parametrize("path", ["accepted", "timer-h", "confirmed", "error"])
def test_transaction_terminated_is_emitted_exactly_once(layer, source, path):
    invite, tx, events = receive(layer, source)
    if path == "accepted":
        events += answer(layer, tx, invite, 200, 0.1)
        layer.receive_request(ack_for(invite, tx.last_response), source, 0.2)
    elif path in ("timer-h", "confirmed"):
        events += answer(layer, tx, invite, 486, 0.1)
        if path == "confirmed":
            layer.receive_request(ack_for(invite, tx.last_response), source, 0.2)
    else:
        layer.transport_error(tx, 0.1)
    events += layer.drain_events()
    recs = advance(layer, 500.0)
    layer.transport_error(tx, 600.0)
    events += layer.drain_events()
    assert terminated(events) + terminated(recs) == 1
    assert len(layer) == 0 and layer.get_timer() is None


# -- custom timers ------------------------------------------------------------------------


def test_custom_timers_scale_g_and_h(fast):
    layer = TransactionLayer(fast, invite_trying_delay=None)
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 0.0)
    recs = advance(layer, 100.0)
    times = sent(recs, BUSY)
    assert gaps([0.0, *times])[:5] == approx([0.1, 0.2, 0.4, 0.4, 0.4])
    assert times[-1] == pytest.approx(6.3)
    assert [(r.time, r.detail) for r in recs if r.kind == "TransactionTimeout"] == [(pytest.approx(6.4), "H")]


def test_custom_t4_scales_timer_i(fast):
    layer = TransactionLayer(fast, invite_trying_delay=None)
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 0.0)
    layer.receive_request(ack_for(invite, tx.last_response), UAC_UDP, 0.05)
    assert [(r.time, r.kind) for r in advance(layer, 100.0)] == [
        (pytest.approx(1.05), "TransactionTerminated")
    ]


def test_custom_t1_scales_timer_l(fast):
    layer = TransactionLayer(fast, invite_trying_delay=None)
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 200, 0.0)
    assert [(r.time, r.kind) for r in advance(layer, 100.0)] == [
        (pytest.approx(6.4), "TransactionTerminated")
    ]


def test_t2_below_2_t1_caps_the_first_reset_of_timer_g():
    """§17.2.1: after the first firing Timer G is set to MIN(2*T1, T2)."""
    layer = TransactionLayer(TimerConfig(T1=0.5, T2=0.75), invite_trying_delay=None)
    invite, tx, _ = receive(layer)
    answer(layer, tx, invite, 486, 0.0)
    times = sent(advance(layer, 3.0), BUSY)
    assert gaps([0.0, *times])[:4] == approx([0.5, 0.75, 0.75, 0.75])
