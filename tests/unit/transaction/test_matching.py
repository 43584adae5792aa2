"""Matching and the helpers around the transactions: responses to client transactions
(RFC 3261 §17.1.3), requests to server transactions (§17.2.3) including the RFC 2543 rules
for branches without the magic cookie (RFC 4475 §3.2.1, §3.4.1), CANCEL matching (§9.2),
ACK and CANCEL construction (§17.1.1.3, §9.1), response addressing (§18.2.2, RFC 3581 §4),
stray messages, and what ``send_request`` refuses."""

from __future__ import annotations

import pytest
from txkit import (
    PEER_TCP,
    PEER_UDP,
    UAC_TCP,
    UAC_UDP,
    ack_for,
    fresh_branch,
    kinds,
    lines,
    request,
    response,
    wire,
)

from sipstack.message import Request, make_response, parse
from sipstack.net import Address
from sipstack.transaction import (
    MAGIC_COOKIE,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TransactionLayer,
    client_key,
    make_ack,
    make_cancel,
    new_branch,
    new_tag,
    response_address,
    server_key,
)


def serve(layer: TransactionLayer, req: Request, source: Address = UAC_UDP, now: float = 0.0):
    layer.receive_request(req, source, now)
    return layer.drain_events()


# -- responses to client transactions (§17.1.3) -------------------------------------------


def test_response_matches_by_top_via_branch_and_cseq_method(layer):
    invite = request("INVITE")
    tx = layer.send_request(invite, PEER_UDP, 0.0)
    layer.drain_events()
    layer.receive_response(response(invite, 180), PEER_UDP, 0.1)
    (event,) = layer.drain_events()
    assert event.transaction is tx
    assert client_key(invite) == client_key(response(invite, 180)) == (invite.via[0].branch, "INVITE")


def test_response_with_another_branch_is_a_stray_response_for_the_tu(layer):
    invite = request("INVITE")
    layer.send_request(invite, PEER_UDP, 0.0)
    layer.drain_events()
    other = request("INVITE")  # another branch
    source = Address("UDP", "198.51.100.7", 5062)
    layer.receive_response(response(other, 200), source, 0.1)
    events = layer.drain_events()
    assert kinds(events) == ["ResponseReceived"]
    assert events[0].transaction is None and events[0].source == source


def test_cancel_shares_the_invite_branch_and_responses_are_told_apart_by_cseq_method(layer):
    """§17.1.3: the CSeq method is needed since a CANCEL is a different transaction that
    shares the branch of the INVITE it cancels."""
    invite = request("INVITE")
    ict = layer.send_request(invite, PEER_UDP, 0.0)
    cancel = wire(make_cancel(invite))
    nict = layer.send_request(cancel, PEER_UDP, 0.2)
    assert ict.branch == nict.branch and ict is not nict
    layer.drain_events()
    layer.receive_response(response(cancel, 200), PEER_UDP, 0.3)
    layer.receive_response(response(invite, 487), PEER_UDP, 0.4)
    events = layer.drain_events()
    received = [(type(e).__name__, e.transaction) for e in events]
    assert ("ResponseReceived", nict) in received and ("ResponseReceived", ict) in received
    assert nict.state is State.COMPLETED and ict.state is State.COMPLETED


def test_response_sent_by_is_not_used_for_matching(layer):
    """§17.1.3 matches on the branch and the CSeq method only."""
    invite = request("INVITE")
    tx = layer.send_request(invite, PEER_UDP, 0.0)
    layer.drain_events()
    resp = make_response(invite, 180)
    resp.set_header("Via", f"SIP/2.0/UDP other.example.com:5999;branch={tx.branch}")
    layer.receive_response(wire(resp), PEER_UDP, 0.1)
    assert layer.drain_events()[0].transaction is tx


# -- requests to server transactions (§17.2.3) --------------------------------------------


def test_request_retransmission_matches_on_branch_sent_by_and_method(layer):
    req = request("OPTIONS")
    (event,) = serve(layer, req)
    assert server_key(req) == (req.via[0].branch, req.via[0].sent_by, "OPTIONS")
    assert serve(layer, wire(req), now=0.5) == []
    assert layer.server_transactions == 1
    assert layer.find_server(req) is event.transaction


def test_same_branch_from_another_sent_by_is_another_transaction(layer):
    branch = fresh_branch()
    a = serve(layer, request("OPTIONS", branch=branch, sent_by="192.0.2.20:5070"))[0].transaction
    b = serve(layer, request("OPTIONS", branch=branch, sent_by="192.0.2.21:5070"))[0].transaction
    assert a is not b and layer.server_transactions == 2


def test_sent_by_host_is_compared_case_insensitively(layer):
    branch = fresh_branch()
    serve(layer, request("OPTIONS", branch=branch, sent_by="UA.Example.COM:5070"))
    assert serve(layer, request("OPTIONS", branch=branch, sent_by="ua.example.com:5070"), now=0.5) == []


def test_same_branch_with_another_method_is_another_transaction(layer):
    """§17.2.3: the method must match (a CANCEL shares its INVITE's branch)."""
    invite = request("INVITE")
    ist = serve(layer, invite)[0].transaction
    events = serve(layer, wire(make_cancel(invite)), now=0.1)
    assert kinds(events) == ["RequestReceived"]
    nist = events[0].transaction
    assert isinstance(ist, ServerInviteTransaction) and isinstance(nist, ServerNonInviteTransaction)
    assert ist.branch == nist.branch


def test_ack_matches_the_invite_transaction(layer):
    """§17.2.3: an ACK matches the transaction whose request was INVITE."""
    invite = request("INVITE")
    tx = serve(layer, invite)[0].transaction
    layer.respond(tx, make_response(invite, 486, to_tag="x1"), 0.1)
    layer.drain_events()
    ack = ack_for(invite, tx.last_response)
    assert server_key(ack) == server_key(invite)
    assert serve(layer, ack, now=0.2) == []
    assert tx.state is State.CONFIRMED


def test_ack_matching_no_transaction_is_a_stray_ack_for_the_tu(layer):
    invite = request("INVITE")
    final = make_response(invite, 200, to_tag="x1")
    ack = ack_for(invite, final, branch=fresh_branch())
    events = serve(layer, ack)
    assert kinds(events) == ["RequestReceived"]
    assert events[0].transaction is None and events[0].request == ack and events[0].source == UAC_UDP
    assert len(layer) == 0


# -- RFC 2543 matching (no magic cookie) --------------------------------------------------


INV2543 = (
    b"INVITE sip:UserB@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP legacy-gw.example.com\r\n"
    b"From: <sip:+13035550100@legacy.client.example.net;user=phone>\r\n"
    b"Record-Route: <sip:UserB@example.com;maddr=ss9.example.com>\r\n"
    b"To: sip:+16505550199@ss9.example.net;user=phone\r\n"
    b"Call-ID: old-style.1718@legacy.client.example.com\r\n"
    b"CSeq: 57 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n"
    b"v=0\r\no=gw 29739 7272940 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0\r\n"
)
GW = Address("UDP", "192.0.2.5", 5060)


def test_rfc4475_inv2543_retransmission_matches_by_the_rfc2543_rules(layer):
    """RFC 4475 §3.4.1: an RFC 2543 INVITE (no branch, no From tag) is handled with the
    RFC 2543 transaction matching of RFC 3261 §17.2.3."""
    invite = parse(INV2543)
    tx = serve(layer, invite, GW)[0].transaction
    assert isinstance(tx, ServerInviteTransaction)
    assert serve(layer, parse(INV2543), GW, 0.5) == []
    layer.respond(tx, make_response(invite, 486, to_tag="gw486"), 0.6)
    assert lines(layer.drain_events()) == ["SIP/2.0 486 Busy Here"]
    assert lines(serve(layer, parse(INV2543), GW, 1.0)) == ["SIP/2.0 486 Busy Here"]
    ack = ack_for(invite, tx.last_response)
    assert serve(layer, ack, GW, 1.1) == []
    assert tx.state is State.CONFIRMED


@pytest.mark.parametrize(
    "change",
    [
        {"uri": "sip:carol@biloxi.example.com"},
        {"from_tag": "other"},
        {"call_id": "another-call@atlanta.example.com"},
        {"cseq": 2},
        {"sent_by": "192.0.2.21:5070"},
        {"to_tag": "some-tag"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_rfc2543_request_matches_only_if_uri_tags_call_id_cseq_and_top_via_match(layer, change):
    """§17.2.3: without the cookie, an INVITE matches if the Request-URI, To tag, From tag,
    Call-ID, CSeq and top Via match those of the INVITE that created the transaction."""
    first = serve(layer, request("INVITE", branch=None))[0].transaction
    assert serve(layer, request("INVITE", branch=None), now=0.1) == []
    events = serve(layer, request("INVITE", branch=None, **change), now=0.2)
    assert kinds(events) == ["RequestReceived"] and events[0].transaction is not first


def test_rfc2543_non_invite_matches_including_the_method(layer):
    """§17.2.3: for other methods the CSeq including the method must match."""
    serve(layer, request("OPTIONS", branch=None))
    assert serve(layer, request("OPTIONS", branch=None), now=0.1) == []
    assert kinds(serve(layer, request("INFO", branch=None), now=0.2)) == ["RequestReceived"]
    assert layer.server_transactions == 2


def test_rfc2543_ack_matches_with_the_to_tag_of_the_response_sent(layer):
    """§17.2.3: the ACK matches if Request-URI, From tag, Call-ID, CSeq number and top Via
    match the INVITE and its To tag is the one of the response the server sent."""
    invite = request("INVITE", branch=None)
    tx = serve(layer, invite)[0].transaction
    layer.respond(tx, make_response(invite, 486, to_tag="srv-486"), 0.1)
    layer.drain_events()
    wrong = ack_for(invite, make_response(invite, 486, to_tag="not-ours"))
    events = serve(layer, wrong, now=0.2)
    assert kinds(events) == ["RequestReceived"] and events[0].transaction is None
    assert tx.state is State.COMPLETED
    assert serve(layer, ack_for(invite, tx.last_response), now=0.3) == []
    assert tx.state is State.CONFIRMED


def test_rfc2543_ack_matches_a_re_invite_carrying_a_to_tag(layer):
    invite = request("INVITE", branch=None, to_tag="dialog-tag")
    tx = serve(layer, invite)[0].transaction
    layer.respond(tx, make_response(invite, 488), 0.1)
    layer.drain_events()
    assert tx.last_response.to.tag == "dialog-tag"
    assert serve(layer, ack_for(invite, tx.last_response), now=0.2) == []
    assert tx.state is State.CONFIRMED


def test_branch_without_the_cookie_uses_the_rfc2543_rules(layer):
    """§17.2.3: the RFC 3261 rules apply only to branches that begin with z9hG4bK."""
    serve(layer, request("OPTIONS", branch="1234abcd", cseq=1))
    events = serve(layer, request("OPTIONS", branch="1234abcd", cseq=2, call_id="x@y"), now=0.1)
    assert kinds(events) == ["RequestReceived"]
    assert layer.server_transactions == 2


def test_rfc4475_badbranch_cookie_only_branch_falls_back_to_rfc2543_matching(layer):
    """RFC 4475 §3.2.1 (badbranch): "z9hG4bK" with no identifier after it identifies no
    transaction; two different requests carrying it are two transactions."""
    first = serve(layer, request("OPTIONS", branch=MAGIC_COOKIE, cseq=8, call_id="cookie-only.1@example.org"))
    second = serve(
        layer, request("OPTIONS", branch=MAGIC_COOKIE, cseq=9, call_id="cookie-only.2@example.org")
    )
    assert kinds(first) == ["RequestReceived"]
    assert kinds(second) == ["RequestReceived"]
    assert second[0].transaction is not first[0].transaction


# -- CANCEL matching (§9.2) ---------------------------------------------------------------


def test_find_invite_matches_a_cancel_to_its_invite_transaction(layer):
    """§9.2: the transaction to cancel is found with the §17.2.3 matching as if the
    CANCEL's method were INVITE."""
    invite = request("INVITE")
    tx = serve(layer, invite)[0].transaction
    cancel = wire(make_cancel(invite))
    assert layer.find_invite(cancel) is tx
    assert layer.find_server(cancel) is None


@pytest.mark.parametrize(
    "change", [{"branch": "z9hG4bK-other"}, {"sent_by": "192.0.2.99:5070"}], ids=["branch", "sent-by"]
)
def test_find_invite_needs_the_same_branch_and_sent_by(layer, change):
    invite = request("INVITE")
    serve(layer, invite)
    base = {"branch": invite.via[0].branch, "sent_by": invite.via[0].sent_by}
    cancel = request("CANCEL", **(base | change))
    assert layer.find_invite(cancel) is None


def test_find_invite_with_rfc2543_matching(layer):
    invite = request("INVITE", branch=None)
    tx = serve(layer, invite)[0].transaction
    assert layer.find_invite(wire(make_cancel(invite))) is tx
    assert layer.find_invite(request("CANCEL", branch=None, cseq=2)) is None


def test_find_invite_ignores_non_invite_transactions(layer):
    options = request("OPTIONS")
    serve(layer, options)
    cancel = request("CANCEL", branch=options.via[0].branch)
    assert layer.find_invite(cancel) is None


# -- make_ack (§17.1.1.3) and make_cancel (§9.1) ------------------------------------------


ROUTES = [("Route", "<sip:p1.example.com;lr>"), ("Route", "<sip:p2.example.com;lr>")]


def test_make_ack_copies_what_17_1_1_3_says():
    invite = request("INVITE", extra=[*ROUTES, ("Contact", "<sip:alice@192.0.2.20>")], body=b"v=0\r\n")
    final = response(invite, 404, to_tag="nf")
    ack = wire(make_ack(invite, final))
    assert ack.method == "ACK"
    assert ack.uri_text == invite.uri_text
    assert ack.call_id == invite.call_id
    assert ack.header("from") == invite.header("from")
    assert ack.header("to") == final.header("to")
    assert ack.header_values("via") == [invite.header_values("via")[0]]
    assert (ack.cseq.seq, ack.cseq.method) == (invite.cseq.seq, "ACK")
    assert ack.header_values("route") == [value for _, value in ROUTES]
    assert ack.max_forwards == 70
    assert ack.body == b""


def test_make_ack_keeps_only_the_top_via():
    invite = request("INVITE", extra=[("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-below")])
    assert len(invite.via) == 2
    ack = wire(make_ack(invite, response(invite, 500)))
    assert ack.header_values("via") == [invite.header_values("via")[0]]


def test_make_cancel_copies_what_9_1_says():
    invite = request("INVITE", extra=[*ROUTES, ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-below")])
    cancel = wire(make_cancel(invite))
    assert cancel.method == "CANCEL"
    assert cancel.uri_text == invite.uri_text
    assert cancel.call_id == invite.call_id
    assert cancel.header("from") == invite.header("from")
    assert cancel.header("to") == invite.header("to")
    assert cancel.header_values("via") == [invite.header_values("via")[0]]
    assert (cancel.cseq.seq, cancel.cseq.method) == (invite.cseq.seq, "CANCEL")
    assert cancel.header_values("route") == [value for _, value in ROUTES]
    assert cancel.max_forwards == 70


def test_make_cancel_of_an_invite_with_compact_headers():
    invite = parse(
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bK-compact\r\n"
        b"f: <sip:alice@atlanta.example.com>;tag=cf\r\n"
        b"t: <sip:bob@biloxi.example.com>\r\n"
        b"i: compact@atlanta.example.com\r\n"
        b"CSeq: 3 INVITE\r\n"
        b"l: 0\r\n\r\n"
    )
    cancel = wire(make_cancel(invite))
    assert cancel.via[0].branch == "z9hG4bK-compact"
    assert cancel.from_.tag == "cf" and cancel.call_id == "compact@atlanta.example.com"
    assert (cancel.cseq.seq, cancel.cseq.method) == (3, "CANCEL")


def test_new_branch_carries_the_magic_cookie_and_is_unique():
    """§8.1.1.7: the branch MUST begin with z9hG4bK and be unique across space and time."""
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE) for b in branches)


def test_new_tag_has_at_least_32_bits_of_randomness():
    """§19.3: tags MUST have at least 32 bits of randomness."""
    tags = {new_tag() for _ in range(1000)}
    assert len(tags) == 1000
    assert all(len(t) * 4 >= 32 for t in tags)


# -- send_request -------------------------------------------------------------------------


def test_send_request_refuses_an_ack(layer):
    """§17: the ACK for a 2xx is not a transaction; an ACK goes out with send_stateless."""
    invite = request("INVITE")
    ack = ack_for(invite, make_response(invite, 200, to_tag="t"), branch=fresh_branch())
    with pytest.raises(ValueError, match="ACK"):
        layer.send_request(ack, PEER_UDP, 0.0)
    assert len(layer) == 0 and layer.drain_events() == []


def test_send_request_refuses_a_branch_already_in_use(layer):
    """§8.1.1.7: the branch identifies the transaction; two with the same branch and method
    cannot be told apart."""
    req = request("OPTIONS")
    first = layer.send_request(req, PEER_UDP, 0.0)
    layer.drain_events()
    with pytest.raises(ValueError, match="branch"):
        layer.send_request(wire(req), PEER_TCP, 0.1)
    assert layer.drain_events() == []
    assert layer.find_client(client_key(req)) is first and layer.client_transactions == 1


def test_send_stateless_queues_a_message_outside_any_transaction(layer):
    invite = request("INVITE")
    ack = ack_for(invite, make_response(invite, 200, to_tag="t"), branch=fresh_branch())
    layer.send_stateless(ack, PEER_UDP)
    (event,) = layer.drain_events()
    assert event.data == bytes(ack) and event.address == PEER_UDP and event.transaction is None
    assert len(layer) == 0 and layer.get_timer() is None


def test_reply_stateless_answers_to_the_response_address(layer):
    req = request("OPTIONS", via_params=";rport")
    source = Address("UDP", "203.0.113.9", 40000)
    layer.reply_stateless(req, source, make_response(req, 400, to_tag="x"))
    (event,) = layer.drain_events()
    assert event.address == source and event.transaction is None
    assert len(layer) == 0


# -- response addressing (§18.2.2, RFC 3581) ----------------------------------------------


NAT = Address("UDP", "203.0.113.9", 40000)


def via(request_via: str) -> Request:
    req = request("OPTIONS")
    req.set_header("Via", request_via)
    return wire(req)


@pytest.mark.parametrize(
    ("top_via", "source", "expected"),
    [
        # §18.2.2: unreliable, no maddr, not receiver-tagged: sent-by port (default 5060).
        ("SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bK1", UAC_UDP, Address("UDP", "192.0.2.20", 5070)),
        (
            "SIP/2.0/UDP 192.0.2.20;branch=z9hG4bK1",
            Address("UDP", "192.0.2.20", 5060),
            Address("UDP", "192.0.2.20", 5060),
        ),
        # received (the source address, §18.2.1) with the sent-by port, or 5060.
        (
            "SIP/2.0/UDP ua.example.com:5070;branch=z9hG4bK1;received=203.0.113.9",
            NAT,
            Address("UDP", "203.0.113.9", 5070),
        ),
        (
            "SIP/2.0/UDP ua.example.com;branch=z9hG4bK1;received=203.0.113.9",
            NAT,
            Address("UDP", "203.0.113.9", 5060),
        ),
        # RFC 3581 §4: rport (empty or filled in) sends to the source IP and port.
        ("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK1;rport", NAT, NAT),
        ("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK1;rport=40000;received=203.0.113.9", NAT, NAT),
        ("SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1;RPORT", NAT, NAT),
        # §18.2.2: maddr, with the sent-by port or 5060; RFC 3581 applies only without maddr.
        (
            "SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK1;maddr=239.255.255.1",
            NAT,
            Address("UDP", "239.255.255.1", 5070),
        ),
        (
            "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1;maddr=192.0.2.77;rport",
            NAT,
            Address("UDP", "192.0.2.77", 5060),
        ),
        (
            "SIP/2.0/UDP [2001:db8::2];branch=z9hG4bK1;maddr=[2001:db8::9]",
            NAT,
            Address("UDP", "2001:db8::9", 5060),
        ),
    ],
    ids=[
        "sent-by-port",
        "sent-by-default-5060",
        "received-sent-by-port",
        "received-default-5060",
        "rport-empty",
        "rport-with-value",
        "rport-case-insensitive",
        "maddr-sent-by-port",
        "maddr-wins-over-rport",
        "maddr-ipv6",
    ],
)
def test_response_address_over_udp(top_via, source, expected):
    assert response_address(via(top_via), source) == expected


@pytest.mark.parametrize(
    ("top_via", "source", "expected"),
    [
        # §18.2.2: reliable: the connection the request came on; should it be gone, the
        # received address and the sent-by port (or the transport's default port).
        ("SIP/2.0/TCP 10.0.0.2:5070;branch=z9hG4bK1", UAC_TCP, Address("TCP", "192.0.2.20", 5070, 11)),
        ("SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK1;rport", UAC_TCP, Address("TCP", "192.0.2.20", 5060, 11)),
        (
            "SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK1;maddr=239.255.255.1",
            UAC_TCP,
            Address("TCP", "192.0.2.20", 5060, 11),
        ),
        (
            "SIP/2.0/TLS ua.example.com;branch=z9hG4bK1",
            Address("TLS", "203.0.113.9", 50123, 4),
            Address("TLS", "203.0.113.9", 5061, 4),
        ),
        (
            "SIP/2.0/tls ua.example.com;branch=z9hG4bK1",
            Address("TLS", "203.0.113.9", 50123, 4),
            Address("TLS", "203.0.113.9", 5061, 4),
        ),
    ],
    ids=[
        "connection-kept",
        "rport-ignored",
        "maddr-ignored",
        "tls-default-5061",
        "transport-case-insensitive",
    ],
)
def test_response_address_over_a_reliable_transport(top_via, source, expected):
    address = response_address(via(top_via), source)
    assert address == expected
    assert address.connection == source.connection


def test_server_transaction_sends_its_responses_to_the_response_address(layer):
    req = via("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK-nat;rport")
    tx = serve(layer, req, NAT)[0].transaction
    assert tx.address == NAT
    layer.respond(tx, make_response(req, 200, to_tag="t"), 0.1)
    assert layer.drain_events()[0].address == NAT


def test_server_transaction_over_tcp_answers_on_the_connection(layer):
    req = request("OPTIONS", transport="TCP")
    tx = serve(layer, req, UAC_TCP)[0].transaction
    layer.respond(tx, make_response(req, 200, to_tag="t"), 0.1)
    (event,) = layer.drain_events()
    assert event.address.connection == UAC_TCP.connection
    assert event.address.reliable
