"""The INVITE client transaction: RFC 3261 §17.1.1 (Figure 5) as updated by RFC 6026 §7.2
(Accepted state, Timer M), Timers A, B, D and M of RFC 3261 §A / RFC 6026 §8.4, the ACK
for a non-2xx final response (§17.1.1.3) and transport errors (§17.1.4)."""

from __future__ import annotations

import pytest
from txkit import (
    PEER_TCP,
    PEER_UDP,
    ResponseReceived,
    SendMessage,
    advance,
    approx,
    first_line,
    gaps,
    kinds,
    lines,
    of,
    request,
    response,
    sends,
    sent,
    step,
    terminated,
)

from sipstack.message import parse
from sipstack.transaction import ClientInviteTransaction, State, TimerConfig, TransactionLayer


def start(layer: TransactionLayer, address=PEER_UDP, now: float = 0.0, **kw):
    invite = request("INVITE", transport=address.transport, **kw)
    tx = layer.send_request(invite, address, now)
    return invite, tx, layer.drain_events()


# -- Calling ------------------------------------------------------------------------------


def test_invite_is_passed_to_the_transport_at_once_and_the_transaction_is_calling(layer):
    invite, tx, events = start(layer)
    assert isinstance(tx, ClientInviteTransaction)
    assert tx.kind == "ICT"
    assert tx.state is State.CALLING
    assert kinds(events) == ["SendMessage"]
    assert events[0].data == bytes(invite)
    assert events[0].address == PEER_UDP
    assert events[0].transaction is tx
    assert layer.client_transactions == 1


def test_timer_a_doubles_from_t1_until_timer_b_fires_at_64_t1_over_udp(layer):
    """§17.1.1.2: Timer A starts at T1 and doubles on each retransmission (0.5, 1, 2, 4, 8,
    16 s); Timer B (64*T1 = 32 s) informs the TU of the timeout."""
    _invite, tx, _ = start(layer)
    recs = advance(layer, 100.0)
    times = [0.0, *sent(recs, "INVITE")]
    assert times == approx([0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    assert gaps(times) == approx([0.5, 1, 2, 4, 8, 16])
    assert [(r.time, r.kind, r.detail) for r in recs if r.kind != "SendMessage"] == [
        (32.0, "TransactionTimeout", "B"),
        (32.0, "TransactionTerminated", None),
    ]
    assert tx.state is State.TERMINATED
    assert layer.get_timer() is None
    assert len(layer) == 0


def test_retransmitted_invite_is_identical_and_goes_to_the_same_address(layer):
    invite, tx, _ = start(layer)
    for now in (0.5, 1.5, 3.5):
        events = step(layer, now)
        assert [(e.data, e.address, e.transaction) for e in sends(events)] == [(bytes(invite), PEER_UDP, tx)]


def test_timer_b_timeout_is_reported_once_with_the_transaction(layer):
    _, tx, _ = start(layer)
    advance(layer, 31.9)
    events = step(layer, 32.0)
    assert kinds(events) == ["TransactionTimeout", "TransactionTerminated"]
    assert events[0].transaction is tx and events[0].timer == "B"
    assert events[1].transaction is tx
    assert advance(layer, 1000.0) == []


def test_no_invite_retransmission_over_a_reliable_transport_but_timer_b_still_fires(layer):
    """§17.1.1.2: Timer A only for unreliable transports; Timer B for all."""
    *_, events = start(layer, PEER_TCP)
    assert lines(events) == ["INVITE sip:bob@biloxi.example.com SIP/2.0"]
    assert events[0].address == PEER_TCP
    recs = advance(layer, 100.0)
    assert [(r.time, r.kind, r.detail) for r in recs] == [
        (32.0, "TransactionTimeout", "B"),
        (32.0, "TransactionTerminated", None),
    ]


# -- Proceeding ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [100, 180, 183])
def test_provisional_in_calling_goes_to_the_tu_stops_timer_a_and_enters_proceeding(layer, code):
    """§17.1.1.2: a 1xx in Calling moves to Proceeding and the client SHOULD NOT
    retransmit the request any more; the response goes to the TU."""
    invite, tx, _ = start(layer)
    step(layer, 0.5)
    layer.receive_response(response(invite, code), PEER_UDP, 1.0)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"]
    assert events[0].transaction is tx and events[0].response.status_code == code
    assert events[0].source == PEER_UDP
    assert tx.state is State.PROCEEDING
    assert tx.last_response.status_code == code
    assert tx._data == b""  # the INVITE's bytes are let go: a proxy's ICT lives on up to 32 s
    assert sent(advance(layer, 100.0), "INVITE") == []


def test_timer_b_does_not_end_a_transaction_in_proceeding(layer):
    """§17.1.1.2: Timer B only matters "if the client transaction is still in the Calling
    state"; Proceeding waits for the final response."""
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, 180), PEER_UDP, 1.0)
    layer.drain_events()
    assert advance(layer, 100.0) == []
    assert tx.state is State.PROCEEDING
    assert layer.find_client(tx.key) is tx


def test_every_provisional_in_proceeding_goes_to_the_tu(layer):
    invite, tx, _ = start(layer)
    for now, code in [(1.0, 100), (2.0, 180), (3.0, 180), (4.0, 183)]:
        layer.receive_response(response(invite, code), PEER_UDP, now)
    events = layer.drain_events()
    assert [e.response.status_code for e in of(events, ResponseReceived)] == [100, 180, 180, 183]
    assert all(e.transaction is tx for e in events)
    assert sends(events) == []
    assert tx.state is State.PROCEEDING


# -- Accepted (RFC 6026) ------------------------------------------------------------------


@pytest.mark.parametrize("provisional", [None, 180])
def test_2xx_goes_to_the_tu_and_enters_accepted_without_an_ack(layer, provisional):
    """RFC 6026 §7.2 / §8.4: a 2xx in Calling or Proceeding moves to Accepted and goes to
    the TU; the client transaction MUST NOT generate an ACK to any 2xx on its own."""
    invite, tx, _ = start(layer)
    if provisional:
        layer.receive_response(response(invite, provisional), PEER_UDP, 0.2)
        layer.drain_events()
    layer.receive_response(response(invite, 200), PEER_UDP, 1.0)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"]
    assert events[0].transaction is tx and events[0].response.status_code == 200
    assert tx.state is State.ACCEPTED
    assert sent(advance(layer, 100.0)) == []


def test_2xx_retransmissions_and_forked_2xx_in_accepted_go_to_the_tu(layer):
    """RFC 6026 §8.4: any 2xx matching the transaction received in Accepted MUST be
    passed up to the TU (retransmissions and other branches of a fork)."""
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, 200, to_tag="one"), PEER_UDP, 1.0)
    layer.receive_response(response(invite, 200, to_tag="one"), PEER_UDP, 1.5)
    layer.receive_response(response(invite, 200, to_tag="two"), PEER_UDP, 2.0)
    layer.receive_response(response(invite, 202, to_tag="one"), PEER_UDP, 3.0)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"] * 4
    assert [e.response.to.tag for e in events] == ["one", "one", "two", "one"]
    assert all(e.transaction is tx for e in events)
    assert tx.state is State.ACCEPTED


@pytest.mark.parametrize("code", [180, 486])
def test_accepted_absorbs_provisional_and_non_2xx_responses(layer, code):
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, 200), PEER_UDP, 1.0)
    layer.drain_events()
    layer.receive_response(response(invite, code), PEER_UDP, 2.0)
    assert layer.drain_events() == []
    assert tx.state is State.ACCEPTED


@pytest.mark.parametrize("address", [PEER_UDP, PEER_TCP], ids=["udp", "tcp"])
def test_timer_m_ends_accepted_after_64_t1_on_every_transport(layer, address):
    """RFC 6026 §8.4: Timer M is set to 64*T1 on entering Accepted; when it fires the
    transaction moves to Terminated (no timeout for the TU)."""
    invite, tx, _ = start(layer, address)
    layer.receive_response(response(invite, 200), address, 1.0)
    layer.drain_events()
    recs = advance(layer, 200.0)
    assert [(r.time, r.kind) for r in recs] == [(33.0, "TransactionTerminated")]
    assert tx.state is State.TERMINATED
    assert layer.find_client(tx.key) is None


def test_2xx_after_timer_m_is_a_stray_response_for_the_tu(layer):
    invite, _tx, _ = start(layer)
    layer.receive_response(response(invite, 200), PEER_UDP, 1.0)
    advance(layer, 100.0)
    layer.drain_events()
    layer.receive_response(response(invite, 200), PEER_UDP, 40.0)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"]
    assert events[0].transaction is None


# -- Completed ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [300, 404, 486, 503, 603, 699])
def test_non_2xx_final_in_calling_is_acked_passed_to_the_tu_and_enters_completed(layer, code):
    """§17.1.1.2: a 300-699 in Calling or Proceeding moves to Completed; the response goes
    to the TU and an ACK is generated and sent to where the INVITE went."""
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, code), PEER_UDP, 1.0)
    events = layer.drain_events()
    assert kinds(events) == ["SendMessage", "ResponseReceived"]
    ack = events[0]
    assert first_line(ack.data) == "ACK sip:bob@biloxi.example.com SIP/2.0"
    assert ack.address == PEER_UDP and ack.transaction is tx
    assert events[1].response.status_code == code and events[1].transaction is tx
    assert tx.state is State.COMPLETED
    assert sent(advance(layer, 1.0 + 31.9), "INVITE") == []


def test_non_2xx_final_in_proceeding_is_acked_and_enters_completed(layer):
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, 180), PEER_UDP, 1.0)
    layer.receive_response(response(invite, 486), PEER_UDP, 2.0)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived", "SendMessage", "ResponseReceived"]
    assert tx.state is State.COMPLETED


def test_ack_for_a_non_2xx_is_built_per_17_1_1_3(layer):
    """§17.1.1.3: Request-URI, Call-ID, From and the single Via as the INVITE, To as the
    response, CSeq number of the INVITE with method ACK, the INVITE's Route headers."""
    route = [("Route", "<sip:p1.example.com;lr>"), ("Route", "<sip:p2.example.com;lr>")]
    invite, tx, _ = start(layer, extra=route)
    final = response(invite, 486, to_tag="busy1")
    layer.receive_response(final, PEER_UDP, 1.0)
    ack = parse(sends(layer.drain_events())[0].data)
    assert ack.method == "ACK"
    assert ack.uri_text == invite.uri_text
    assert ack.call_id == invite.call_id
    assert ack.header("from") == invite.header("from")
    assert ack.header("to") == final.header("to") and ack.to.tag == "busy1"
    assert ack.header_values("via") == [invite.header_values("via")[0]]
    assert ack.via[0].branch == tx.branch
    assert (ack.cseq.seq, ack.cseq.method) == (invite.cseq.seq, "ACK")
    assert ack.header_values("route") == invite.header_values("route")


def test_ack_is_generated_even_over_a_reliable_transport(layer):
    """§17.1.1.2: the client MUST generate an ACK "even if the transport is reliable"."""
    invite, _tx, _ = start(layer, PEER_TCP)
    layer.receive_response(response(invite, 404), PEER_TCP, 1.0)
    events = layer.drain_events()
    assert lines(events) == ["ACK sip:bob@biloxi.example.com SIP/2.0"]
    assert events[0].address == PEER_TCP


def test_each_retransmitted_final_is_acked_again_and_not_passed_to_the_tu(layer):
    """§17.1.1.2: retransmissions of the final response in Completed MUST cause the ACK to
    be re-passed to the transport, and MUST NOT be passed up to the TU."""
    invite, tx, _ = start(layer)
    final = response(invite, 486)
    layer.receive_response(final, PEER_UDP, 1.0)
    first = sends(layer.drain_events())[0].data
    for now in (1.5, 2.5, 4.5):
        layer.receive_response(response(invite, 486), PEER_UDP, now)
        events = layer.drain_events()
        assert kinds(events) == ["SendMessage"]
        assert events[0].data == first and events[0].address == PEER_UDP
    assert tx.state is State.COMPLETED


@pytest.mark.parametrize("code", [180, 200])
def test_completed_ignores_provisional_and_2xx_responses(layer, code):
    invite, _tx, _ = start(layer)
    layer.receive_response(response(invite, 486), PEER_UDP, 1.0)
    layer.drain_events()
    layer.receive_response(response(invite, code), PEER_UDP, 2.0)
    assert layer.drain_events() == []


def test_timer_d_keeps_completed_for_32_s_over_udp(layer):
    """§17.1.1.2: Timer D "at least 32 seconds for unreliable transports"; when it fires the
    transaction moves to Terminated."""
    invite, _tx, _ = start(layer)
    layer.receive_response(response(invite, 486), PEER_UDP, 1.0)
    layer.drain_events()
    recs = advance(layer, 200.0)
    assert [(r.time, r.kind) for r in recs] == [(33.0, "TransactionTerminated")]
    layer.receive_response(response(invite, 486), PEER_UDP, 33.5)
    assert of(layer.drain_events(), ResponseReceived)[0].transaction is None


def test_timer_d_is_zero_over_a_reliable_transport(layer):
    """§17.1.1.2: Timer D is zero seconds for reliable transports."""
    invite, _tx, _ = start(layer, PEER_TCP)
    layer.receive_response(response(invite, 486), PEER_TCP, 1.0)
    layer.drain_events()
    assert layer.get_timer() == 1.0
    events = step(layer, 1.0)
    assert kinds(events) == ["TransactionTerminated"]
    assert layer.get_timer() is None


# -- transport errors ---------------------------------------------------------------------


@pytest.mark.parametrize("provisional", [None, 180], ids=["calling", "proceeding"])
def test_transport_error_informs_the_tu_and_terminates(layer, provisional):
    """§17.1.1.2 / §17.1.4: a transport error in Calling informs the TU and the transaction
    moves to Terminated."""
    invite, tx, _ = start(layer)
    if provisional:
        layer.receive_response(response(invite, provisional), PEER_UDP, 0.2)
        layer.drain_events()
    layer.transport_error(tx, 0.3)
    events = layer.drain_events()
    assert kinds(events) == ["TransactionTransportError", "TransactionTerminated"]
    assert all(e.transaction is tx for e in events)
    assert tx.state is State.TERMINATED
    assert advance(layer, 100.0) == []
    layer.transport_error(tx, 1.0)
    assert layer.drain_events() == []


def test_transport_error_in_completed_informs_the_tu_and_terminates(layer):
    """Figure 5 of RFC 3261: Completed --"Transport Err. Inform TU"--> Terminated (the ACK
    could not be sent)."""
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, 486), PEER_UDP, 1.0)
    layer.drain_events()
    layer.transport_error(tx, 1.0)
    events = layer.drain_events()
    assert kinds(events) == ["TransactionTransportError", "TransactionTerminated"]


def test_transport_error_in_completed_terminates(layer):
    invite, tx, _ = start(layer)
    layer.receive_response(response(invite, 486), PEER_UDP, 1.0)
    layer.drain_events()
    layer.transport_error(tx, 1.0)
    events = layer.drain_events()
    assert terminated(events, tx) == 1
    assert tx.state is State.TERMINATED
    assert layer.get_timer() is None


# -- lifecycle ----------------------------------------------------------------------------


def _timeout(layer, invite, address):
    """No answer at all: Timer B."""


def _accepted(layer, invite, address):
    layer.receive_response(response(invite, 180), address, 0.7)
    layer.receive_response(response(invite, 200), address, 1.0)
    layer.receive_response(response(invite, 200), address, 2.0)


def _completed(layer, invite, address):
    layer.receive_response(response(invite, 486), address, 1.0)
    layer.receive_response(response(invite, 486), address, 2.0)


def _transport_error(layer, invite, address):
    layer.transport_error(layer.find_client((invite.via[0].branch, "INVITE")), 0.1)


@pytest.mark.parametrize("address", [PEER_UDP, PEER_TCP], ids=["udp", "tcp"])
@pytest.mark.parametrize("path", [_timeout, _accepted, _completed, _transport_error])
def test_transaction_terminated_is_emitted_exactly_once(layer, path, address):
    invite, tx, events = start(layer, address)
    path(layer, invite, address)
    events += layer.drain_events()
    recs = advance(layer, 500.0)
    layer.transport_error(tx, 600.0)
    events += layer.drain_events()
    assert terminated(events) + terminated(recs) == 1
    assert tx.terminated
    assert len(layer) == 0 and layer.get_timer() is None


# -- custom timers ------------------------------------------------------------------------


def test_custom_t1_scales_timers_a_and_b(fast):
    layer = TransactionLayer(fast)
    start(layer)
    recs = advance(layer, 100.0)
    assert sent(recs, "INVITE") == approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert [(r.time, r.kind) for r in recs if r.kind != "SendMessage"] == [
        (pytest.approx(6.4), "TransactionTimeout"),
        (pytest.approx(6.4), "TransactionTerminated"),
    ]


def test_custom_t1_scales_timer_m(fast):
    layer = TransactionLayer(fast)
    invite, _tx, _ = start(layer)
    layer.receive_response(response(invite, 200), PEER_UDP, 1.0)
    layer.drain_events()
    assert [(r.time, r.kind) for r in advance(layer, 100.0)] == [
        (pytest.approx(7.4), "TransactionTerminated")
    ]


@pytest.mark.parametrize(("t1", "d"), [(0.1, 32.0), (0.5, 32.0), (1.0, 64.0)])
def test_timer_d_is_never_below_32_s_over_udp(t1, d):
    """§17.1.1.2: Timer D is "at least 32 seconds for unreliable transports", whatever T1;
    with T1 above 0.5 s it covers the server's 64*T1 of final-response retransmissions."""
    layer = TransactionLayer(TimerConfig(T1=t1))
    invite, _tx, _ = start(layer)
    layer.receive_response(response(invite, 486), PEER_UDP, 0.0)
    layer.drain_events()
    assert [(r.time, r.kind) for r in advance(layer, 1000.0)] == [(d, "TransactionTerminated")]


def test_timer_values_follow_the_rfc_table():
    """RFC 3261 Table 4 and RFC 6026 §8.4 with T1 0.5 s, T2 4 s, T4 5 s."""
    t = TimerConfig()
    assert (t.T1, t.T2, t.T4) == (0.5, 4.0, 5.0)
    assert {name: getattr(t, name) for name in "ABDEFGHIJKLM"} == {
        "A": 0.5,  # T1
        "B": 32.0,  # 64*T1
        "D": 32.0,  # > 32 s for UDP
        "E": 0.5,  # T1
        "F": 32.0,  # 64*T1
        "G": 0.5,  # T1
        "H": 32.0,  # 64*T1
        "I": 5.0,  # T4
        "J": 32.0,  # 64*T1
        "K": 5.0,  # T4
        "L": 32.0,  # 64*T1
        "M": 32.0,  # 64*T1
    }
    f = TimerConfig(T1=0.1, T2=0.4, T4=1.0)
    scaled = (f.A, f.B, f.E, f.F, f.G, f.H, f.I, f.J, f.K, f.L, f.M)
    assert scaled == pytest.approx((0.1, 6.4, 0.1, 6.4, 0.1, 6.4, 1.0, 6.4, 1.0, 6.4, 6.4))


def test_send_message_events_carry_the_transaction(layer):
    _invite, tx, events = start(layer)
    assert isinstance(events[0], SendMessage)
    for event in step(layer, 0.5):
        assert event.transaction is tx
