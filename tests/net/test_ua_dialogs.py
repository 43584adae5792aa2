"""RFC 3261 §12 dialogs of the user agent over real loopback sockets, against a bare
sipstack Endpoint scripted as a forking peer (the sans-I/O rules are in
tests/unit/dialog/).

- One INVITE, several early dialogs: 180s with two To tags make two early dialogs on the
  caller (each with the Contact of its 1xx as remote target); the 2xx of one branch
  confirms it — route set from the 2xx's Record-Route (reversed), remote target from its
  Contact — and the other early dialog ends (§13.2.2.4). The ACK and the BYE follow that
  route set and target.
- Remote target refresh (§12.2.2): an UPDATE from the peer with a new Contact moves the
  caller's next requests there; the peer's CSeq is taken as the remote sequence number
  and the caller's own counts on from the INVITE's.
- A call given up on ``invite(timeout=…)`` raises a typed timeout (CallTimeout, a
  SipTimeoutError) that carries the final response the CANCEL brought (487) and the call;
  ``abandon()`` ends an unanswered call without a CANCEL (a peer known unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sipstack.dialog import Dialog
from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import SipTimeoutError
from sipstack.message import Request, Response, make_response
from sipstack.offeranswer import create_answer
from sipstack.sdp import SessionDescription
from sipstack.transaction import TimerConfig
from sipstack.ua import CallCancelled, CallState, CallTimeout, UserAgent

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)
HOST = "127.0.0.1"


class ForkingPeer:
    """A bare Endpoint that keeps each INVITE for the test to answer, and records what it
    receives (answering every other request but ACK with 200)."""

    def __init__(self) -> None:
        self.endpoint = Endpoint(timers=FAST)
        self.received: list[Request] = []
        self.invites: asyncio.Queue[IncomingRequest] = asyncio.Queue()
        self.port = 0

    async def start(self) -> ForkingPeer:
        def handle(incoming: IncomingRequest) -> None:
            self.received.append(incoming.request)
            if incoming.method == "INVITE":
                self.invites.put_nowait(incoming)
            elif incoming.method != "ACK":
                incoming.respond(200)  # a CANCEL too (RFC 3261 §9.2); the 487 is the test's

        self.endpoint.on_request(handle)
        self.port = (await self.endpoint.listen(f"udp:{HOST}:0")).port
        return self

    def contact(self, user: str) -> str:
        return f"sip:{user}@{HOST}:{self.port}"

    def reply(
        self, incoming: IncomingRequest, status: int, tag: str, contact: str, *, headers: Any = ()
    ) -> Response:
        lines = [*headers, ("Contact", f"<{contact}>")]
        body = b""
        if status == 200:
            offer = SessionDescription.parse(incoming.request.body)
            body = bytes(create_answer(offer, HOST, 6000))
            lines.append(("Content-Type", "application/sdp"))
        response = make_response(incoming.request, status, to_tag=tag, headers=lines, body=body)
        incoming.respond(response)
        return response

    def requests(self, method: str) -> list[Request]:
        return [r for r in self.received if r.method == method]


@pytest.fixture
async def peer() -> AsyncIterator[ForkingPeer]:
    made = await ForkingPeer().start()
    try:
        yield made
    finally:
        await made.endpoint.close()


@pytest.fixture
async def alice() -> AsyncIterator[UserAgent]:
    async with UserAgent(f"sip:alice@{HOST}", listen=[f"udp:{HOST}:0"], timers=FAST) as ua:
        yield ua


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    assert check()


async def test_forked_1xx_make_early_dialogs_and_the_2xx_sets_route_and_target(
    alice: UserAgent, peer: ForkingPeer
) -> None:
    call = alice.dial(f"sip:bob@{HOST}:{peer.port}")
    invite = await asyncio.wait_for(peer.invites.get(), 5)
    peer.reply(invite, 180, "forkA", peer.contact("early-a"))
    peer.reply(invite, 183, "forkB", peer.contact("early-b"))
    await eventually(lambda: len(call.dialogs) == 2)
    assert call.state is CallState.EARLY
    early_a, early_b = call.dialogs["forkA"], call.dialogs["forkB"]
    assert early_a.early and early_b.early
    assert (early_a.remote_target, early_b.remote_target) == (
        peer.contact("early-a"),
        peer.contact("early-b"),
    )
    assert early_a.local_tag == early_b.local_tag and early_a.call_id == early_b.call_id

    # Branch B answers, through two record-routing proxies (both loose, both this peer).
    rr_near, rr_far = f"<sip:{HOST}:{peer.port};lr;hop=near>", f"<sip:{HOST}:{peer.port};lr;hop=far>"
    peer.reply(
        invite,
        200,
        "forkB",
        peer.contact("final-b"),
        headers=[("Record-Route", rr_far), ("Record-Route", rr_near)],
    )
    await call.wait_answered(5)
    assert call.dialog is early_b and early_b.confirmed and early_a.terminated
    assert early_b.remote_target == peer.contact("final-b")  # the 2xx's Contact, not the 183's
    assert early_b.route_set == [rr_near, rr_far]  # the 2xx's Record-Route, reversed
    await eventually(lambda: bool(peer.requests("ACK")))
    (ack,) = peer.requests("ACK")
    assert ack.uri_text == peer.contact("final-b") and ack.to.tag == "forkB"
    assert ack.header_values("route") == [rr_near, rr_far]
    assert ack.cseq.seq == invite.request.cseq.seq

    # The peer refreshes the remote target with an UPDATE from a new Contact (RFC 3311 §5.2).
    theirs = Dialog.from_request(invite.request, "forkB", local_contact=f"<{peer.contact('moved-b')}>")
    theirs.confirm()
    theirs.remote_target = f"sip:alice@{HOST}:{alice.endpoint.listeners[0].local.port}"
    update = theirs.create_request("UPDATE")
    answer = await peer.endpoint.request(update, f"udp:{HOST}:{alice.endpoint.listeners[0].local.port}")
    assert answer.status_code == 200
    assert early_b.remote_target == peer.contact("moved-b")
    assert early_b.remote_seq == update.cseq.seq  # the peer's CSeq space

    response = await call.bye()
    assert response.status_code == 200
    (bye,) = peer.requests("BYE")
    assert bye.uri_text == peer.contact("moved-b") and bye.to.tag == "forkB"
    assert bye.header_values("route") == [rr_near, rr_far]
    assert bye.cseq.seq == invite.request.cseq.seq + 1  # our CSeq counts on from the INVITE's
    assert not [r for r in peer.received if r.method == "BYE" and r.to.tag == "forkA"]
    assert call.end_reason == "bye" and not alice._dialogs


async def test_invite_timeout_carries_the_487_and_the_call(alice: UserAgent, peer: ForkingPeer) -> None:
    async def ring_then_487() -> None:
        incoming = await asyncio.wait_for(peer.invites.get(), 5)
        peer.reply(incoming, 180, "slow", peer.contact("slow"))
        await eventually(lambda: bool(peer.requests("CANCEL")), 5)
        incoming.respond(487)

    ringing = asyncio.ensure_future(ring_then_487())
    try:
        with pytest.raises(CallTimeout) as info:
            await alice.invite(f"sip:bob@{HOST}:{peer.port}", timeout=0.5)
        assert isinstance(info.value, SipTimeoutError)
        assert info.value.response is not None and info.value.response.status_code == 487
        assert info.value.call is not None and info.value.call.end_reason == "cancelled"
        await ringing
    finally:
        if not ringing.done():
            ringing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ringing


async def test_abandon_ends_an_unanswered_call_without_signalling(
    alice: UserAgent, peer: ForkingPeer
) -> None:
    call = alice.dial(f"sip:bob@{HOST}:{peer.port}")
    await asyncio.wait_for(peer.invites.get(), 5)  # no provisional: no CANCEL may go (§9.1)
    call.abandon()
    with pytest.raises(CallCancelled):
        await call.wait_answered(1)
    assert call.ended and call.end_reason == "unreachable" and call not in alice.calls
    await asyncio.sleep(0.2)
    assert not peer.requests("CANCEL")
