"""Dialogs (RFC 3261 §12) built from real messages (each parsed from its wire form): UAC and
UAS creation, route sets (reversed Record-Route at the UAC), remote target refresh, CSeq
rules, in-dialog requests with loose and strict routers (§12.2.1.1), termination."""

from __future__ import annotations

import pytest

from sipstack.dialog import (
    Dialog,
    DialogId,
    DialogState,
    uac_dialog_id,
    uas_dialog_id,
)
from sipstack.message import Request, Response, make_response, parse

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def req(text: str = INVITE, **replace: str) -> Request:
    for old, new in replace.items():
        text = text.replace(old, new)
    message = parse(text.encode())
    assert isinstance(message, Request)
    return message


def reply(
    request: Request,
    status: int,
    *,
    tag: str | None = "8321234356",
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    response = make_response(request, status, to_tag=tag, headers=headers or [])
    parsed = parse(bytes(response))
    assert isinstance(parsed, Response)
    return parsed


def wire(request: Request) -> Request:
    """``request`` as sent: the transport adds the Via; the peer parses it."""
    sent = request.copy()
    sent.prepend_header("Via", "SIP/2.0/UDP 192.0.2.100:5060;branch=z9hG4bKwire")
    parsed = parse(bytes(sent))
    assert isinstance(parsed, Request)
    return parsed


RR = [
    ("Record-Route", "<sip:p2.biloxi.example.com;lr>"),
    ("Record-Route", "<sip:p1.atlanta.example.com;lr>"),
]
BOB_CONTACT = ("Contact", "<sip:bob@192.0.2.4>")


# -- UAC side (§12.1.2) --------------------------------------------------------------------


def test_uac_dialog_from_2xx() -> None:
    invite = req()
    ok = reply(invite, 200, headers=[*RR, BOB_CONTACT])
    dialog = Dialog.from_response(invite, ok)
    assert dialog.state is DialogState.CONFIRMED and dialog.role == "UAC"
    assert dialog.id == DialogId("3848276298220188511@atlanta.example.com", "9fxced76sl", "8321234356")
    assert dialog.id == uac_dialog_id(ok)
    # Route set: the Record-Route list reversed (the proxy nearest to us first).
    assert dialog.route_set == ["<sip:p1.atlanta.example.com;lr>", "<sip:p2.biloxi.example.com;lr>"]
    assert dialog.remote_target == "sip:bob@192.0.2.4"
    assert (dialog.local_seq, dialog.remote_seq) == (1, None)
    assert dialog.local_contact == "<sip:alice@client.atlanta.example.com;transport=udp>"
    assert not dialog.secure


def test_in_dialog_request_with_loose_routes() -> None:
    invite = req()
    dialog = Dialog.from_response(invite, reply(invite, 200, headers=[*RR, BOB_CONTACT]))
    bye = wire(dialog.create_request("BYE"))
    assert bye.uri_text == "sip:bob@192.0.2.4"
    assert bye.header_values("route") == ["<sip:p1.atlanta.example.com;lr>", "<sip:p2.biloxi.example.com;lr>"]
    assert bye.from_.tag == "9fxced76sl" and bye.from_.display_name == "Alice"
    assert bye.to.tag == "8321234356" and str(bye.to.uri) == "sip:bob@biloxi.example.com"
    assert bye.call_id == invite.call_id
    assert bye.cseq == (2, "BYE")
    assert not bye.has_header("contact")  # BYE is not a target refresh
    reinvite = wire(dialog.create_request("INVITE"))
    assert reinvite.cseq == (3, "INVITE")
    assert reinvite.header("contact") == "<sip:alice@client.atlanta.example.com;transport=udp>"


def test_ack_for_2xx_takes_the_invite_cseq_and_the_dialog_route() -> None:
    invite = req()
    dialog = Dialog.from_response(invite, reply(invite, 200, headers=[*RR, BOB_CONTACT]))
    ack = wire(dialog.create_ack(1))
    assert ack.cseq == (1, "ACK") and ack.uri_text == "sip:bob@192.0.2.4"
    assert len(ack.route) == 2
    assert dialog.local_seq == 1  # ACK does not consume a number
    with pytest.raises(ValueError):
        dialog.create_request("ACK")
    with pytest.raises(ValueError):
        dialog.create_request("CANCEL")


def test_strict_router_first_in_the_route_set() -> None:
    """§12.2.1.1: the first route without lr goes to the Request-URI (method parameter and
    headers stripped); the rest follows in Route, then the remote target."""
    invite = req()
    rr = [
        ("Record-Route", "<sip:p2.example.com;lr>"),
        ("Record-Route", "<sip:strict.example.com;method=INVITE;maddr=192.0.2.7?X-Y=z>"),
    ]
    dialog = Dialog.from_response(invite, reply(invite, 200, headers=[*rr, BOB_CONTACT]))
    bye = wire(dialog.create_request("BYE"))
    assert bye.uri_text == "sip:strict.example.com;maddr=192.0.2.7"
    assert bye.header_values("route") == ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]


def test_no_record_route_means_empty_route_set_even_if_invite_had_routes() -> None:
    invite = req(INVITE.replace("Max-Forwards", "Route: <sip:outbound.example.com;lr>\r\nMax-Forwards"))
    dialog = Dialog.from_response(invite, reply(invite, 200, headers=[BOB_CONTACT]))
    assert dialog.route_set == []
    bye = wire(dialog.create_request("BYE"))
    assert not bye.has_header("route") and bye.uri_text == "sip:bob@192.0.2.4"


def test_early_dialog_confirmed_by_2xx_recomputes_route_set_and_target() -> None:
    invite = req()
    ringing = reply(invite, 180, headers=[RR[0], ("Contact", "<sip:bob@192.0.2.5>")])
    dialog = Dialog.from_response(invite, ringing)
    assert dialog.early and dialog.remote_target == "sip:bob@192.0.2.5"
    assert dialog.route_set == ["<sip:p2.biloxi.example.com;lr>"]
    dialog.confirm(reply(invite, 200, headers=[*RR, BOB_CONTACT]))
    assert dialog.confirmed and dialog.remote_target == "sip:bob@192.0.2.4"
    assert dialog.route_set == ["<sip:p1.atlanta.example.com;lr>", "<sip:p2.biloxi.example.com;lr>"]


def test_responses_that_create_no_dialog() -> None:
    invite = req()
    for status in (100, 486):
        with pytest.raises(ValueError):
            Dialog.from_response(invite, reply(invite, status))


def test_target_refresh_and_termination_on_481_or_408() -> None:
    invite = req()
    dialog = Dialog.from_response(invite, reply(invite, 200, headers=[BOB_CONTACT]))
    update = wire(dialog.create_request("UPDATE"))
    dialog.receive_response(
        update, reply(update, 200, tag=None, headers=[("Contact", "<sip:bob@192.0.2.99>")])
    )
    assert dialog.remote_target == "sip:bob@192.0.2.99"
    info = wire(dialog.create_request("INFO"))
    dialog.receive_response(info, reply(info, 200, tag=None, headers=[("Contact", "<sip:bob@192.0.2.1>")]))
    assert dialog.remote_target == "sip:bob@192.0.2.99"  # INFO does not refresh the target
    dialog.receive_response(info, reply(info, 481, tag=None))
    assert dialog.terminated
    with pytest.raises(ValueError):
        dialog.create_request("BYE")
    other = Dialog.from_response(invite, reply(invite, 200, headers=[BOB_CONTACT]))
    other.receive_response(info, reply(info, 408, tag=None))
    assert other.terminated


def test_sips_request_uri_makes_a_secure_dialog() -> None:
    invite = req(INVITE.replace("INVITE sip:bob", "INVITE sips:bob"))
    assert Dialog.from_response(invite, reply(invite, 200, headers=[BOB_CONTACT])).secure


# -- UAS side (§12.1.1, §12.2.2) -----------------------------------------------------------


def test_uas_dialog_from_request() -> None:
    invite = req(
        INVITE.replace(
            "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\n" + "".join(f"{n}: {v}\r\n" for n, v in RR)
        )
    )
    dialog = Dialog.from_request(invite, "8321234356", local_contact="<sip:bob@192.0.2.4>")
    assert dialog.role == "UAS" and dialog.early
    assert dialog.id == uas_dialog_id(
        req(
            INVITE.replace(
                "To: Bob <sip:bob@biloxi.example.com>", "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356"
            )
        )
    )
    # Route set: the Record-Route list as received (the proxy nearest to us first).
    assert dialog.route_set == ["<sip:p2.biloxi.example.com;lr>", "<sip:p1.atlanta.example.com;lr>"]
    assert dialog.remote_target == "sip:alice@client.atlanta.example.com;transport=udp"
    assert (dialog.local_seq, dialog.remote_seq) == (None, 1)
    dialog.confirm()
    bye = wire(dialog.create_request("BYE"))
    assert bye.uri_text == "sip:alice@client.atlanta.example.com;transport=udp"
    assert bye.header_values("route") == ["<sip:p2.biloxi.example.com;lr>", "<sip:p1.atlanta.example.com;lr>"]
    assert bye.from_.tag == "8321234356" and bye.to.tag == "9fxced76sl"
    assert str(bye.from_.uri) == "sip:bob@biloxi.example.com"
    assert 1 <= bye.cseq.seq < 2**31  # §8.1.1.5: a fresh number below 2**31
    assert wire(dialog.create_request("INFO")).cseq.seq == bye.cseq.seq + 1


def test_uas_cseq_ordering() -> None:
    dialog = Dialog.from_request(req(), "tag1", confirmed=True)

    def in_dialog(method: str, seq: int) -> Request:
        return req(
            INVITE.replace("CSeq: 1 INVITE", f"CSeq: {seq} {method}").replace(
                "INVITE sip:bob", f"{method} sip:bob"
            )
        )

    assert dialog.receive_request(in_dialog("INFO", 5)) is None
    assert dialog.remote_seq == 5
    assert dialog.receive_request(in_dialog("INFO", 4)) == 500  # out of order
    assert dialog.receive_request(in_dialog("ACK", 1)) is None  # ACK keeps its INVITE's number
    assert dialog.remote_seq == 5
    assert dialog.receive_request(in_dialog("BYE", 6)) is None and dialog.remote_seq == 6


def test_uas_target_refresh_from_reinvite() -> None:
    dialog = Dialog.from_request(req(), "tag1", confirmed=True)
    reinvite = req(INVITE.replace("client.atlanta.example.com;transport=udp>", "198.51.100.1:5070>"))
    dialog.refresh_target(reinvite)
    assert dialog.remote_target == "sip:alice@198.51.100.1:5070"


def test_rseq_ordering_at_the_uac() -> None:
    """RFC 3262 §4: PRACK the first reliable 1xx and then only RSeq + 1."""
    invite = req()
    dialog = Dialog.from_response(invite, reply(invite, 183, headers=[BOB_CONTACT]))
    assert dialog.accept_rseq(7)
    assert not dialog.accept_rseq(7)  # a retransmission
    assert not dialog.accept_rseq(9)  # a gap
    assert dialog.accept_rseq(8)
