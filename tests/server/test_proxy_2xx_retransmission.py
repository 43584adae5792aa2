"""RFC 6026 through the proxy, over real UDP sockets: a 2xx retransmitted by the callee (its
ACK is late) goes upstream again — through the client transaction in Accepted (Timer M) and
the server transaction in Accepted (Timer L) — after the proxy has let go of the call's
response context; and a second 2xx from another fork goes upstream too."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Awaitable, Callable

from sipkit import HOST, new_id, sip_request, udp_port

from sipstack.message import Request, Response, parse
from sipstack.proxy.core import ResponseContext
from sipstack.server import Server

MakeServer = Callable[..., Awaitable[Server]]
Wanted = Callable[[Request | Response], bool]


class Peer:
    """A raw UDP socket on 127.0.0.1 that a test drives step by step."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(5.0)
        self.port: int = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    async def receive(self, want: Wanted, timeout: float = 5.0) -> Request | Response:
        def wait() -> Request | Response:
            self.sock.settimeout(timeout)
            while True:
                data, _ = self.sock.recvfrom(65535)
                message = parse(data, strict=False)
                if want(message):
                    return message

        return await asyncio.to_thread(wait)

    async def nothing(self, want: Wanted, timeout: float) -> bool:
        try:
            await self.receive(want, timeout)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def response_to(request: Request, status: int, to_tag: str, contact_port: int) -> bytes:
    lines = [f"SIP/2.0 {status} {'OK' if status == 200 else 'Ringing'}"]
    lines += [f"Via: {value}" for value in request.header_values("via")]
    lines += [f"Record-Route: {value}" for value in request.header_values("record-route")]
    lines += [
        f"From: {request.header('from')}",
        f"To: {request.header('to')};tag={to_tag}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.cseq.seq} INVITE",
        f"Contact: <sip:bob@{HOST}:{contact_port}>",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def final(status: int) -> Wanted:
    return lambda m: isinstance(m, Response) and m.status_code == status


def invite() -> Wanted:
    return lambda m: isinstance(m, Request) and m.method == "INVITE"


def live_contexts() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, ResponseContext))


async def test_a_retransmitted_2xx_goes_upstream_after_the_context_is_gone(make_server: MakeServer) -> None:
    uac, uas = Peer(), Peer()
    try:
        server = await make_server(default_route=f"sip:{HOST}:{uas.port}", record_route=True)
        port = udp_port(server)
        before = live_contexts()
        call_id = new_id() + "@test"
        uac.send(sip_request("INVITE", "sip:bob@example.net", local_port=uac.port, call_id=call_id), port)
        forwarded = await uas.receive(invite())
        assert isinstance(forwarded, Request)
        uas.send(response_to(forwarded, 180, "callee1", uas.port), port)
        assert (await uac.receive(final(180))).call_id == call_id
        ok = response_to(forwarded, 200, "callee1", uas.port)
        uas.send(ok, port)
        first = await uac.receive(final(200))
        assert first.call_id == call_id and len(first.via) == 1
        # The call is answered: its response context is let go at once (not after Timer M).
        assert live_contexts() == before
        for _ in range(2):  # the callee saw no ACK: it retransmits its 2xx (RFC 3261 §13.3.1.4)
            uas.send(ok, port)
            again = await uac.receive(final(200))
            assert again.call_id == call_id and again.header("to") == first.header("to")
            assert len(again.via) == 1 and again.via[0].port == uac.port
        # A 2xx from another fork (another To tag) goes upstream as well (§16.7 step 5).
        other = response_to(forwarded, 200, "callee2", uas.port)
        uas.send(other, port)
        forked = await uac.receive(final(200))
        assert forked.to.tag == "callee2"
        # A provisional after the final is not relayed (the client transaction absorbs it).
        uas.send(response_to(forwarded, 180, "callee1", uas.port), port)
        assert await uac.nothing(final(180), 0.3)
    finally:
        uac.close()
        uas.close()
