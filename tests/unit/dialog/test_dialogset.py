"""One INVITE, several dialogs: forked 1xx and 2xx keyed by To tag (RFC 3261 §12.1.2,
§13.2.2.4), early dialogs ended by a failure or left over after the 2xx."""

from __future__ import annotations

from sipstack.dialog import DialogSet, DialogState
from sipstack.message import Request, Response, make_response, parse

INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfork\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: fork-1@192.0.2.1\r\n"
    "CSeq: 10 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.1>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    message = parse(INVITE.encode())
    assert isinstance(message, Request)
    return message


def reply(request: Request, status: int, tag: str | None, contact: str | None = None) -> Response:
    headers = [("Contact", f"<{contact}>")] if contact else []
    parsed = parse(bytes(make_response(request, status, to_tag=tag, headers=headers)))
    assert isinstance(parsed, Response)
    return parsed


def test_forked_provisionals_make_one_early_dialog_per_to_tag() -> None:
    inv = invite()
    dialogs = DialogSet(inv, local_contact="<sip:alice@192.0.2.1>")
    assert dialogs.receive_response(reply(inv, 100, None)) == (None, False)
    first, created = dialogs.receive_response(reply(inv, 180, "b1", "sip:bob@192.0.2.11"))
    assert created and first is not None and first.early
    again, created = dialogs.receive_response(reply(inv, 183, "b1", "sip:bob@192.0.2.12"))
    assert again is first and not created
    assert first.remote_target == "sip:bob@192.0.2.12"  # a later 1xx's Contact
    second, created = dialogs.receive_response(reply(inv, 180, "b2", "sip:bob@192.0.2.21"))
    assert created and second is not first
    assert {d.remote_tag for d in dialogs.early_dialogs()} == {"b1", "b2"}
    assert all(d.local_tag == "a1" and d.local_seq == 10 for d in dialogs.dialogs.values())


def test_2xx_confirms_its_early_dialog_and_a_second_fork_makes_another() -> None:
    inv = invite()
    dialogs = DialogSet(inv)
    early, _ = dialogs.receive_response(reply(inv, 180, "b1", "sip:bob@192.0.2.11"))
    dialogs.receive_response(reply(inv, 180, "b2", "sip:bob@192.0.2.21"))
    winner, created = dialogs.receive_response(reply(inv, 200, "b1", "sip:bob@192.0.2.11"))
    assert winner is early and not created and winner is not None and winner.confirmed
    assert dialogs.confirmed is winner and dialogs.final_status == 200
    # A retransmission of the same 2xx: the same dialog, nothing new.
    assert dialogs.receive_response(reply(inv, 200, "b1", "sip:bob@192.0.2.11")) == (winner, False)
    # The other branch answers too: a second confirmed dialog (the UA ACKs and BYEs it).
    other, created = dialogs.receive_response(reply(inv, 200, "b3", "sip:bob@192.0.2.31"))
    assert created and other is not None and other.confirmed and dialogs.confirmed is winner
    assert other.remote_target == "sip:bob@192.0.2.31"
    leftover = dialogs.terminate_early()
    assert [d.remote_tag for d in leftover] == ["b2"] and leftover[0].state is DialogState.TERMINATED


def test_a_failure_ends_every_early_dialog() -> None:
    inv = invite()
    dialogs = DialogSet(inv)
    dialogs.receive_response(reply(inv, 180, "b1", "sip:bob@192.0.2.11"))
    dialogs.receive_response(reply(inv, 180, "b2", "sip:bob@192.0.2.21"))
    assert dialogs.receive_response(reply(inv, 486, "b1")) == (None, False)
    assert all(d.terminated for d in dialogs.dialogs.values())
    assert dialogs.confirmed is None and dialogs.final_status == 486


def test_2xx_without_early_dialog_creates_it_confirmed() -> None:
    inv = invite()
    dialogs = DialogSet(inv)
    dialog, created = dialogs.receive_response(reply(inv, 200, "b9", "sip:bob@192.0.2.9"))
    assert created and dialog is not None and dialog.confirmed and dialog.remote_target == "sip:bob@192.0.2.9"
