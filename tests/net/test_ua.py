"""The user agent over real loopback sockets (UDP and TCP): two sipstack UAs, a sipstack
registrar with digest authentication, and — where a peer must misbehave in a precise way
(forking, not ACKing, challenging an INVITE) — a bare sipstack Endpoint scripted as that
peer.

- REGISTER with digest (the strongest algorithm offered), refresh before expiry, removal;
  a wrong password fails with the 401 after one retry; 423 raises the interval.
- Calls in both directions of every in-dialog request: INVITE/200/ACK with SDP offer and
  answer, re-INVITE (hold), UPDATE, INFO, MESSAGE, OPTIONS, BYE from either side; reliable
  provisional responses with PRACK (early media answer, and 100rel required by the caller);
  CANCEL; refusals; late offer (answer in the ACK); glare (491).
- The UAC ACKs every 2xx, including retransmissions and a second 2xx from another fork, which
  it ends with a BYE; the UAS retransmits its 2xx until the ACK and hangs up without one.
- INVITE challenged with 401: answered, and the ACK carries the same credentials.
- Timeouts are SipTimeoutError.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sipstack.auth import DigestAuthenticator, NonceManager, ha1_all
from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import SipTimeoutError
from sipstack.message import Request, Response, make_response
from sipstack.offeranswer import PCMA, TELEPHONE_EVENT, create_answer
from sipstack.registrar import Registrar, RegistrarConfig
from sipstack.sdp import SessionDescription
from sipstack.storage import User
from sipstack.storage.memory import MemoryStore
from sipstack.transaction import TimerConfig, new_tag
from sipstack.ua import (
    AuthenticationFailed,
    CallCancelled,
    CallState,
    IncomingCall,
    RequestFailed,
    UserAgent,
)

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)
HOST = "127.0.0.1"
SECRET = b"ua-test-secret-0123456789abcdef!"
TRANSPORTS = ["udp", "tcp"]


def uri_of(ua: UserAgent | Endpoint, user: str, transport: str) -> str:
    endpoint = ua.endpoint if isinstance(ua, UserAgent) else ua
    port = endpoint.listeners[0].local.port
    return f"sip:{user}@{HOST}:{port}" + (";transport=tcp" if transport == "tcp" else "")


@pytest.fixture
async def agents() -> AsyncIterator[Callable[..., Any]]:
    """``await agents(name, transport, **options)``: a started UserAgent, closed at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(name: str, transport: str = "udp", **options: Any) -> UserAgent:
            options.setdefault("timers", FAST)
            ua = UserAgent(f"sip:{name}@{HOST}", listen=[f"{transport}:{HOST}:0"], **options)
            return await stack.enter_async_context(ua)

        yield make


class RegistrarPeer:
    """A sipstack registrar with digest auth on UDP and TCP (same port), in this process."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.authenticator = DigestAuthenticator(HOST, NonceManager(SECRET))
        self.registrar = Registrar(
            self.store, RegistrarConfig(domains={HOST}, min_expires=1), {HOST: self.authenticator}
        )
        self.endpoint = Endpoint(timers=FAST)
        self.requests: list[Request] = []
        self.port = 0

    async def start(self) -> RegistrarPeer:
        for name, password in (("alice", "secret"), ("bob", "hunter2")):
            await self.store.put_user(User(f"{name}@{HOST}", name, HOST, ha1_all(name, HOST, password)))

        async def handle(incoming: IncomingRequest) -> None:
            self.requests.append(incoming.request)
            if incoming.method == "REGISTER":
                incoming.respond(await self.registrar.handle(incoming.request, incoming.source))
            else:
                incoming.respond(405)

        self.endpoint.on_request(handle)
        udp = await self.endpoint.listen(f"udp:{HOST}:0")
        await self.endpoint.listen(f"tcp:{HOST}:{udp.port}")
        self.port = udp.port
        return self

    def uri(self, transport: str) -> str:
        return f"sip:{HOST}:{self.port}" + (";transport=tcp" if transport == "tcp" else "")


@pytest.fixture
async def registrar() -> AsyncIterator[RegistrarPeer]:
    peer = await RegistrarPeer().start()
    try:
        yield peer
    finally:
        await peer.endpoint.close()


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    assert check()


# -- registration ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_register_with_digest_refresh_and_unregister(
    agents: Callable[..., Any], registrar: RegistrarPeer, transport: str
) -> None:
    alice = await agents("alice", transport)
    registration = await alice.register(password="secret", registrar=registrar.uri(transport), expires=2)
    assert registration.registered and registration.granted == 2
    bindings = await registrar.store.bindings(f"sip:alice@{HOST}", time.time())
    assert [b.contact for b in bindings] == [registration.contact.strip("<>")]  # type: ignore[union-attr]
    # 401 first, then credentials with the strongest algorithm the registrar offers.
    registers = [r for r in registrar.requests if r.method == "REGISTER"]
    assert len(registers) == 2 and not registers[0].has_header("authorization")
    assert registers[1].authorization[0].params["algorithm"] == "SHA-512-256"
    # Refreshed before expiry (at 1.5 s): preemptive credentials (nc 2), no new challenge.
    await eventually(lambda: len([r for r in registrar.requests if r.method == "REGISTER"]) >= 3)
    third = [r for r in registrar.requests if r.method == "REGISTER"][2]
    assert third.call_id == registers[0].call_id and third.cseq.seq > registers[1].cseq.seq
    assert third.authorization[0].params["nc"] == "00000002"
    assert registration.response is not None and registration.response.status_code == 200
    await asyncio.sleep(0.8)  # past the first interval: still bound thanks to the refresh
    assert registration.registered
    assert await registrar.store.bindings(f"sip:alice@{HOST}", time.time())
    response = await registration.unregister()
    assert response.status_code == 200 and not registration.registered
    assert await registrar.store.bindings(f"sip:alice@{HOST}", time.time()) == []


async def test_register_wrong_password_fails_after_one_retry(
    agents: Callable[..., Any], registrar: RegistrarPeer
) -> None:
    alice = await agents("alice")
    with pytest.raises(AuthenticationFailed) as info:
        await alice.register(password="wrong", registrar=registrar.uri("udp"))
    assert info.value.status_code == 401 and info.value.response.www_authenticate
    assert len([r for r in registrar.requests if r.method == "REGISTER"]) == 2


async def test_register_interval_too_brief_takes_min_expires(
    agents: Callable[..., Any], registrar: RegistrarPeer
) -> None:
    registrar.registrar.config.min_expires = 30
    alice = await agents("alice")
    registration = await alice.register(
        password="secret", registrar=registrar.uri("udp"), expires=5, refresh=False
    )
    assert registration.granted == 30 and registration.expires == 30
    (removed,) = await alice.unregister()
    assert removed.status_code == 200 and not alice.registrations


# -- calls between two UAs -------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bye_from", ["caller", "callee"])
async def test_call_with_every_in_dialog_request(
    agents: Callable[..., Any], transport: str, bye_from: str
) -> None:
    alice = await agents("alice", transport)
    bob = await agents("bob", transport, rtp_port=50000, codecs=[PCMA, TELEPHONE_EVENT])
    calls: list[IncomingCall] = []
    got: list[tuple[str, bytes]] = []

    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        calls.append(call)
        call.on_request(lambda request: got.append((request.method, request.body)) and None)
        await call.ring()
        await call.accept()

    call = await alice.invite(uri_of(bob, "bob", transport))
    assert call.state is CallState.ESTABLISHED and call.response is not None
    assert call.response.status_code == 200
    # The answer: bob's port and his only common voice codec, telephone-event kept.
    (stream,) = call.streams
    assert stream.accepted and [c.name for c in stream.codecs] == ["PCMA"]
    assert stream.remote_port == 50000 and stream.telephone_event is not None
    callee = calls[0]
    await eventually(lambda: callee.established and not callee.awaiting_ack)
    assert callee.streams[0].remote_port == call.media.port
    assert callee.caller.uri == call.invite.from_.uri  # type: ignore[union-attr]

    # re-INVITE: hold (sendonly) and back; the o= version counts up.
    version = call.local_sdp.origin.sess_version  # type: ignore[union-attr]
    await call.reinvite(direction="sendonly")
    assert call.streams[0].direction == "sendonly" and callee.streams[0].direction == "recvonly"
    assert call.local_sdp.origin.sess_version == version + 1  # type: ignore[union-attr]
    await call.reinvite(direction="sendrecv")
    assert call.streams[0].direction == "sendrecv"
    # ... and from the callee's side.
    await callee.reinvite(direction="sendonly")
    assert callee.streams[0].direction == "sendonly" and call.streams[0].direction == "recvonly"
    # UPDATE (RFC 3311) both ways.
    assert (await call.update()).status_code == 200
    assert (await callee.update(direction="sendrecv")).status_code == 200
    assert call.streams[0].direction == "sendrecv"
    # INFO, MESSAGE and OPTIONS inside the dialog.
    await call.info(b"Signal=5\r\nDuration=160\r\n")
    await call.message("hello bob")
    options = await call.options()
    assert "UPDATE" in options.header_values("allow")
    assert got == [("INFO", b"Signal=5\r\nDuration=160\r\n"), ("MESSAGE", b"hello bob"), ("OPTIONS", b"")]
    info = await callee.info(b"Signal=1\r\nDuration=100\r\n")
    assert info.status_code == 200
    # CSeq: every request of each side counted in its own space.
    assert call.dialog is not None and callee.dialog is not None
    assert call.dialog.local_seq == callee.dialog.remote_seq

    hanging_up, other = (call, callee) if bye_from == "caller" else (callee, call)
    response = await hanging_up.bye()
    assert response.status_code == 200
    assert await other.wait_ended(2) == "remote bye"
    assert hanging_up.end_reason == "bye"
    assert not alice.calls and not bob.calls and not alice._dialogs and not bob._dialogs


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reliable_183_with_early_media_and_prack(agents: Callable[..., Any], transport: str) -> None:
    alice = await agents("alice", transport)
    bob = await agents("bob", transport)
    ringing: list[Response] = []

    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        ringing.append(await call.ring(183, early_media=True))  # reliable: 100rel supported
        await call.accept()

    call = alice.dial(uri_of(bob, "bob", transport))
    await call.wait_answered(5)
    # The 183 was reliable (RFC 3262), PRACKed, and its SDP was the answer.
    assert ringing[0].header("rseq") and "100rel" in ringing[0].require
    assert call.dialog is not None and call.dialog.remote_rseq == int(ringing[0].header("rseq") or 0)
    assert call.remote_sdp is not None and bytes(call.remote_sdp) == ringing[0].body
    # The 200 carries no second answer.
    assert call.response is not None and call.response.body == b""
    assert call.streams[0].accepted
    await call.bye()


async def test_update_in_the_early_dialog(agents: Callable[..., Any]) -> None:
    """RFC 3311: once the offer/answer of the INVITE is done (answer in a PRACKed 183), the
    caller may UPDATE the session before the call is answered."""
    alice = await agents("alice")
    bob = await agents("bob")
    go = asyncio.Event()

    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        await call.ring(183, early_media=True)
        await go.wait()
        await call.accept()

    call = alice.dial(uri_of(bob, "bob", "udp"))
    await eventually(lambda: call.state is CallState.EARLY and call.remote_sdp is not None)
    await eventually(lambda: all(not c._provisionals.pending for c in bob.calls))  # type: ignore[attr-defined]
    response = await call.update(direction="sendonly")
    assert response.status_code == 200 and call.streams[0].direction == "sendonly"
    assert call.state is CallState.EARLY
    go.set()
    await call.wait_answered(5)
    (callee,) = bob.calls
    assert callee.streams[0].direction == "recvonly"
    await call.bye()


async def test_caller_requiring_100rel_makes_every_provisional_reliable(agents: Callable[..., Any]) -> None:
    alice = await agents("alice", prack="required")
    bob = await agents("bob")
    responses: list[Response] = []

    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        assert call.require_100rel
        responses.append(await call.ring(180))
        responses.append(await call.ring(180))  # a second one only after the first's PRACK
        await call.accept()

    call = await alice.invite(uri_of(bob, "bob", "udp"))
    rseqs = [int(r.header("rseq") or 0) for r in responses]
    assert rseqs[1] == rseqs[0] + 1
    assert call.dialog is not None and call.dialog.remote_rseq == rseqs[1]
    await call.bye()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_while_ringing(agents: Callable[..., Any], transport: str) -> None:
    alice = await agents("alice", transport)
    bob = await agents("bob", transport)
    incoming: list[IncomingCall] = []

    @bob.on_call
    async def ring_only(call: IncomingCall) -> None:
        incoming.append(call)
        await call.ring()

    call = alice.dial(uri_of(bob, "bob", transport))
    await eventually(lambda: call.state is CallState.EARLY)
    final = await call.cancel()
    assert final is not None and final.status_code == 487
    assert call.end_reason == "cancelled" and incoming[0].end_reason == "cancelled"
    with pytest.raises(CallCancelled):
        await call.wait_answered()
    with pytest.raises(CallCancelled):
        await incoming[0].accept()


async def test_refused_call_raises_with_the_response(agents: Callable[..., Any]) -> None:
    alice = await agents("alice")
    bob = await agents("bob")
    bob.on_call(lambda call: bob.spawn(call.reject(486, headers=[("Retry-After", "60")])) and None)
    with pytest.raises(RequestFailed) as info:
        await alice.invite(uri_of(bob, "bob", "udp"))
    assert info.value.status_code == 486 and info.value.response.header("retry-after") == "60"
    # Without a handler and without auto-answer: 480.
    bob._call_handler = None
    with pytest.raises(RequestFailed) as info:
        await alice.invite(uri_of(bob, "bob", "udp"))
    assert info.value.status_code == 480


async def test_auto_answer_and_late_offer(agents: Callable[..., Any]) -> None:
    """INVITE without SDP: the callee offers in its 200, the caller answers in the ACK."""
    alice = await agents("alice")
    bob = await agents("bob", auto_answer=True)
    call = await alice.invite(uri_of(bob, "bob", "udp"), late_offer=True)
    assert call.invite is not None and call.invite.body == b""
    assert call.response is not None and call.response.body  # the offer
    assert call.streams[0].accepted
    (callee,) = [c for c in bob.calls]
    await eventually(lambda: bool(callee.streams))
    assert callee.streams[0].accepted and callee.remote_sdp is not None
    await call.bye()


async def test_glare_gets_491(agents: Callable[..., Any]) -> None:
    alice = await agents("alice")
    bob = await agents("bob", auto_answer=True)
    call = await alice.invite(uri_of(bob, "bob", "udp"))
    (callee,) = list(bob.calls)
    await eventually(lambda: not callee.awaiting_ack)
    results = await asyncio.gather(
        call.reinvite(direction="sendonly"), callee.reinvite(direction="sendonly"), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, RequestFailed)]
    assert failed and all(r.status_code == 491 for r in failed)
    assert call.established and callee.established
    # After the glare, a re-INVITE goes through (RFC 3261 §14.1: try again later).
    await call.reinvite(direction="sendrecv")
    await call.bye()


async def test_options_and_message_outside_calls(agents: Callable[..., Any]) -> None:
    alice = await agents("alice")
    bob = await agents("bob")
    texts: list[tuple[str, str]] = []

    @bob.on_message
    def message(request: Request) -> int | None:
        texts.append((str(request.from_.uri), request.body.decode()))
        return 488 if request.body == b"refuse me" else None

    options = await alice.options(uri_of(bob, "bob", "udp"))
    assert "INVITE" in options.header_values("allow") and "100rel" in options.header_values("supported")
    response = await alice.message(uri_of(bob, "bob", "udp"), "héllo")
    assert response.status_code == 200 and not response.body
    assert texts == [(f"sip:alice@{HOST}", "héllo")]
    with pytest.raises(RequestFailed) as info:
        await alice.message(uri_of(bob, "bob", "udp"), "refuse me")
    assert info.value.status_code == 488


async def test_request_in_unknown_dialog_gets_481(agents: Callable[..., Any]) -> None:
    bob = await agents("bob")
    async with Endpoint(timers=FAST) as raw:
        await raw.listen(f"udp:{HOST}:0")
        bye = Request(
            "BYE",
            uri_of(bob, "bob", "udp"),
            [
                ("Max-Forwards", "70"),
                ("From", f"<sip:x@{HOST}>;tag=1"),
                ("To", f"<sip:bob@{HOST}>;tag=nope"),
                ("Call-ID", "nope@x"),
                ("CSeq", "2 BYE"),
            ],
        )
        assert (
            await raw.request(bye, f"udp:{HOST}:{bob.endpoint.listeners[0].local.port}")
        ).status_code == 481


async def test_invite_timeout_is_typed(agents: Callable[..., Any]) -> None:
    alice = await agents("alice", timers=TimerConfig(T1=0.02, T2=0.16, T4=0.2))  # Timers B, F: 1.28 s
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    try:
        with pytest.raises(SipTimeoutError):
            await alice.invite(f"sip:nobody@{HOST}:{silent.getsockname()[1]}")
        with pytest.raises(SipTimeoutError):
            await alice.options(f"sip:nobody@{HOST}:{silent.getsockname()[1]}")
    finally:
        silent.close()


# -- scripted peers: forking, retransmitted 2xx, no ACK, challenged INVITE -----------------


class ScriptedUAS:
    """A bare Endpoint answering INVITEs as a test scripts it; records what it receives."""

    def __init__(self) -> None:
        self.endpoint = Endpoint(timers=FAST)
        self.received: list[Request] = []
        self.script: Callable[[IncomingRequest], Any] = lambda incoming: None

    async def start(self) -> ScriptedUAS:
        def handle(incoming: IncomingRequest) -> None:
            self.received.append(incoming.request)
            if incoming.method == "INVITE":
                self.script(incoming)
            elif incoming.method != "ACK":
                incoming.respond(200)

        self.endpoint.on_request(handle)
        await self.endpoint.listen(f"udp:{HOST}:0")
        return self

    def ok(self, incoming: IncomingRequest, tag: str) -> Response:
        local = self.endpoint.listeners[0].local
        offer = SessionDescription.parse(incoming.request.body)
        response = make_response(
            incoming.request,
            200,
            to_tag=tag,
            headers=[("Contact", f"<sip:uas-{tag}@{local.host_port}>"), ("Content-Type", "application/sdp")],
            body=bytes(create_answer(offer, HOST, 6000 + len(tag))),
        )
        return response

    def requests(self, method: str, tag: str | None = None) -> list[Request]:
        return [r for r in self.received if r.method == method and (tag is None or r.to.tag == tag)]


@pytest.fixture
async def uas() -> AsyncIterator[ScriptedUAS]:
    peer = await ScriptedUAS().start()
    try:
        yield peer
    finally:
        await peer.endpoint.close()


async def test_second_2xx_from_a_fork_is_acked_and_ended(
    agents: Callable[..., Any], uas: ScriptedUAS
) -> None:
    alice = await agents("alice")

    def fork(incoming: IncomingRequest) -> None:
        incoming.respond(uas.ok(incoming, "forkA"))
        incoming.respond(uas.ok(incoming, "forkB"))  # RFC 6026: a 2nd 2xx through the IST

    uas.script = fork
    call = await alice.invite(uri_of(uas.endpoint, "uas", "udp"))
    assert call.dialog is not None and call.dialog.remote_tag == "forkA"
    await eventually(lambda: len(uas.requests("BYE")) == 1 and len(uas.requests("ACK")) == 2)
    assert {a.to.tag for a in uas.requests("ACK")} == {"forkA", "forkB"}
    (bye,) = uas.requests("BYE")
    assert bye.to.tag == "forkB" and bye.uri_text.startswith("sip:uas-forkB@")
    assert call.established
    await call.bye()
    assert [b.to.tag for b in uas.requests("BYE")] == ["forkB", "forkA"]


async def test_retransmitted_2xx_is_acked_again(agents: Callable[..., Any], uas: ScriptedUAS) -> None:
    alice = await agents("alice")

    def answer_twice(incoming: IncomingRequest) -> None:
        response = uas.ok(incoming, "t1")
        incoming.respond(response)
        asyncio.get_running_loop().call_later(0.2, incoming.respond, response)

    uas.script = answer_twice
    call = await alice.invite(uri_of(uas.endpoint, "uas", "udp"))
    await eventually(lambda: len(uas.requests("ACK")) == 2)
    first, second = uas.requests("ACK")
    assert first.via[0].branch == second.via[0].branch  # the same ACK, sent again
    await call.bye()


async def test_uas_retransmits_2xx_until_ack_and_hangs_up_without(agents: Callable[..., Any]) -> None:
    bob = await agents("bob", auto_answer=True)
    async with Endpoint(timers=FAST) as raw:
        await raw.listen(f"udp:{HOST}:0")
        local = raw.listeners[0].local
        finals: list[Response] = []
        byes: list[Request] = []

        def on_bye(incoming: IncomingRequest) -> None:
            byes.append(incoming.request)
            incoming.respond(200)

        raw.on_request(on_bye)
        invite = Request(
            "INVITE",
            uri_of(bob, "bob", "udp"),
            [
                ("Max-Forwards", "70"),
                ("From", f"<sip:raw@{HOST}>;tag={new_tag()}"),
                ("To", f"<sip:bob@{HOST}>"),
                ("Call-ID", f"{new_tag()}@raw"),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:raw@{local.host_port}>"),
                ("Content-Type", "application/sdp"),
            ],
            bytes(SessionDescription.parse(bytes(create_answer_offer()))),
        )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        await raw.start_request(
            invite, bob.endpoint.listeners[0].local, on_final=finals.append, future=future
        )
        await future
        # Never ACKed: 2xx again at T1, 2T1, 4T1 … (RFC 3261 §13.3.1.4), then a BYE at 64·T1.
        await eventually(lambda: bool(byes), timeout=64 * FAST.T1 + 2)
        assert len(finals) >= 5
        await eventually(lambda: not bob.calls)


def create_answer_offer() -> SessionDescription:
    from sipstack.offeranswer import create_offer

    return create_offer(HOST, 7000)


async def test_invite_challenged_with_401_is_answered_and_ack_carries_credentials(
    agents: Callable[..., Any], uas: ScriptedUAS
) -> None:
    authenticator = DigestAuthenticator(HOST, NonceManager(SECRET))
    user = User(f"alice@{HOST}", "alice", HOST, ha1_all("alice", HOST, "secret"))

    def challenge(incoming: IncomingRequest) -> None:
        result = authenticator.verify(incoming.request, user, "x")
        if result.ok:
            incoming.respond(uas.ok(incoming, "auth"))
        else:
            assert result.challenge is not None
            incoming.respond(result.challenge.status, headers=result.challenge.headers)

    uas.script = challenge
    alice = await agents("alice", password="secret")
    call = await alice.invite(uri_of(uas.endpoint, "uas", "udp"))
    invites = uas.requests("INVITE")
    assert len(invites) == 2 and invites[1].cseq.seq == invites[0].cseq.seq + 1
    assert invites[1].call_id == invites[0].call_id and invites[1].from_.tag == invites[0].from_.tag
    await eventually(lambda: len(uas.requests("ACK", "auth")) == 1)
    (ack,) = uas.requests("ACK", "auth")
    assert ack.authorization == invites[1].authorization and ack.cseq.seq == invites[1].cseq.seq
    await call.bye()
    alice_wrong = await agents("alice2", password="nope", username="alice")
    with pytest.raises(AuthenticationFailed):
        await alice_wrong.invite(uri_of(uas.endpoint, "uas", "udp"))
