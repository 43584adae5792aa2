"""The datagrams one wake-up reads are handled first, and what they make the endpoint send goes
out after them, in order (``transport.udp``; ``Endpoint.begin_batch`` / ``end_batch``) —
over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import TransportError
from sipstack.message import Request, parse
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)


def options(port: int, peer: int, seq: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer};branch=z9hG4bKbatch{seq}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        f"Call-ID: batch-{seq}\r\nCSeq: {seq} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def pending(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


def answering_endpoint() -> tuple[Endpoint, socket.socket, list[int]]:
    """An endpoint answering every request 200, a peer socket, and the endpoint's batch count
    (``[n]``, kept up to date)."""
    endpoint = Endpoint(timers=FAST)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    batches = [0]
    begin = endpoint.begin_batch

    def counting_begin() -> None:
        batches[0] += 1
        begin()

    endpoint.begin_batch = counting_begin  # type: ignore[method-assign]
    endpoint.on_request(lambda incoming: incoming.respond(200))
    return endpoint, peer, batches


async def answers(peer: socket.socket, count: int) -> list[bytes]:
    """What reaches ``peer`` within 2 s, once ``count`` datagrams are in."""
    got: list[bytes] = []
    for _ in range(200):
        await asyncio.sleep(0.01)
        got += pending(peer)
        if len(got) >= count:
            break
    return got


async def test_answers_to_one_wakeups_requests_leave_after_all_are_handled_in_order() -> None:
    endpoint = Endpoint(timers=FAST)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    responses: list[bytes] = []
    seen_by_then: list[int] = []  # responses the peer had when each request was handled

    def handler(incoming: IncomingRequest) -> None:
        responses.extend(pending(peer))
        seen_by_then.append(len(responses))
        incoming.respond(200)

    endpoint.on_request(handler)
    try:
        local = await endpoint.listen("udp:127.0.0.1:0")
        port = peer.getsockname()[1]
        for seq in range(1, 6):  # all queued on the socket before the loop looks at it
            peer.sendto(options(local.port, port, seq), ("127.0.0.1", local.port))
        for _ in range(100):
            await asyncio.sleep(0.01)
            responses += pending(peer)
            if len(responses) == 5:
                break
        # Nothing had left while the batch was handled (sent at once, the peer would have had
        # 0, 1, 2, 3 and 4 responses by then).
        assert seen_by_then == [0, 0, 0, 0, 0]
        assert [parse(r).cseq.seq for r in responses] == [1, 2, 3, 4, 5]
        assert all(parse(r).status_code == 200 for r in responses)  # type: ignore[union-attr]
    finally:
        peer.close()
        await endpoint.close()


async def test_a_send_failing_after_its_batch_still_fails_its_transaction() -> None:
    """A send held until the batch ends, then refused by the kernel (a broadcast address
    without SO_BROADCAST: EACCES), ends its client transaction with a transport error at
    once, as an unheld one does — not after Timer F."""
    endpoint = Endpoint(timers=FAST)
    try:
        await endpoint.listen("udp:127.0.0.1:0")
        request = Request(
            "OPTIONS",
            "sip:255.255.255.255",
            [
                ("Max-Forwards", "70"),
                ("From", f"<sip:a@example.com>;tag={new_tag()}"),
                ("To", "<sip:b@example.com>"),
                ("Call-ID", new_tag()),
                ("CSeq", "1 OPTIONS"),
            ],
        )
        endpoint.begin_batch()
        attempt = asyncio.ensure_future(endpoint.request(request, Address("UDP", "255.255.255.255", 5060)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not attempt.done()  # held: nothing tried yet
        loop = asyncio.get_running_loop()
        released = loop.time()
        endpoint.end_batch()
        try:
            await asyncio.wait_for(attempt, 2.0)
        except TransportError:
            pass
        else:
            raise AssertionError("the refused send did not fail the request")
        assert loop.time() - released < 1.0
    finally:
        await endpoint.close()


async def test_a_workers_two_sockets_are_read_in_one_batch() -> None:
    """With a socket of its own for its requests' responses beside the shared port (``--workers
    N``), a wake-up of either reads both: what waits on them is handled in one batch."""
    endpoint, peer, batches = answering_endpoint()
    try:
        shared = await endpoint.listen("udp:127.0.0.1:0")
        own = await endpoint.listen("udp:127.0.0.1:0", for_requests=True)
        port = peer.getsockname()[1]
        # Both queued before the loop looks at either socket.
        peer.sendto(options(shared.port, port, 1), ("127.0.0.1", shared.port))
        peer.sendto(options(own.port, port, 2), ("127.0.0.1", own.port))
        responses: list[bytes] = []
        for _ in range(100):
            await asyncio.sleep(0.01)
            responses += pending(peer)
            if len(responses) == 2:
                break
        assert sorted(parse(r).cseq.seq for r in responses) == [1, 2]
        assert batches == [1]
    finally:
        peer.close()
        await endpoint.close()


@pytest.mark.parametrize("sockets", ["one", "a worker's two"])
async def test_what_comes_during_a_read_pause_is_read_in_one_batch(sockets: str) -> None:
    """With a read pause, the wake-up after a batch that did not fill waits that long, then
    reads everything that came meanwhile in one batch; every request is still answered. A
    wake-up of either of a worker's two sockets read both, so both rest after it."""
    endpoint, peer, batches = answering_endpoint()
    try:
        first_port = (await endpoint.listen("udp:127.0.0.1:0")).port
        other_port = first_port
        if sockets != "one":
            other_port = (await endpoint.listen("udp:127.0.0.1:0", for_requests=True)).port
        endpoint.pace_udp_reads(0.3)
        port = peer.getsockname()[1]
        peer.sendto(options(first_port, port, 1), ("127.0.0.1", first_port))
        first = await answers(peer, 1)
        peer.sendto(options(other_port, port, 2), ("127.0.0.1", other_port))
        await asyncio.sleep(0.02)  # read at once without the pause: a batch of its own
        peer.sendto(options(first_port, port, 3), ("127.0.0.1", first_port))
        rest = await answers(peer, 2)
        assert sorted(parse(r).cseq.seq for r in first + rest) == [1, 2, 3]
        assert batches == [2]
    finally:
        peer.close()
        await endpoint.close()


async def test_a_socket_closed_during_its_pause_leaves_its_sibling_reading() -> None:
    endpoint, peer, batches = answering_endpoint()
    try:
        shared = await endpoint.listen("udp:127.0.0.1:0")
        own = await endpoint.listen("udp:127.0.0.1:0", for_requests=True)
        endpoint.pace_udp_reads(30)
        port = peer.getsockname()[1]
        peer.sendto(options(own.port, port, 1), ("127.0.0.1", own.port))
        assert len(await answers(peer, 1)) == 1
        # Both rest for 30 s; closing the one whose pause it is lets the other read again.
        for listener in endpoint._request_udp:
            if listener.local.port == own.port:
                listener.close()
        peer.sendto(options(shared.port, port, 2), ("127.0.0.1", shared.port))
        assert [parse(r).cseq.seq for r in await answers(peer, 1)] == [2]
        assert batches == [2]
    finally:
        peer.close()
        await endpoint.close()
