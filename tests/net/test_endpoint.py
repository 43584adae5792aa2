"""The endpoint over real loopback sockets: transports, Via handling, bounds, failover."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import trustme

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import SipTimeoutError, TransportError
from sipstack.message import Request, parse
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)


def options(
    target: Address | str, *, body: bytes = b"", extra: list[tuple[str, str]] | None = None
) -> Request:
    host_port = target.host_port if isinstance(target, Address) else target
    headers = [
        ("Max-Forwards", "70"),
        ("From", f"<sip:alice@example.com>;tag={new_tag()}"),
        ("To", f"<sip:{host_port}>"),
        ("Call-ID", new_tag() + "@test"),
        ("CSeq", "1 OPTIONS"),
        *(extra or []),
    ]
    return Request("OPTIONS", f"sip:{host_port}", headers, body)


def raw_request(port: int, *, call_id: str = "raw-1", extra: str = "", method: str = "OPTIONS") -> bytes:
    return (
        f"{method} sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
async def server() -> Endpoint:
    endpoint = Endpoint(timers=FAST)
    seen: list[IncomingRequest] = []
    endpoint.seen = seen  # type: ignore[attr-defined]

    def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        incoming.respond(200, headers=[("Allow", "OPTIONS")])

    endpoint.on_request(handler)
    yield endpoint
    await endpoint.close()


@pytest.fixture
async def client() -> Endpoint:
    endpoint = Endpoint(timers=FAST)
    await endpoint.listen("udp:127.0.0.1:0")
    yield endpoint
    await endpoint.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_options_round_trip_with_received_and_rport(
    server: Endpoint, client: Endpoint, transport: str
) -> None:
    addr = await server.listen(f"{transport}:127.0.0.1:0")
    response = await client.request(options(addr), addr)
    assert response.status_code == 200
    # RFC 3581 §4: the server filled rport and added received; they come back in the response.
    via = response.via[0]
    assert via.rport is not None and via.received == "127.0.0.1"
    assert server.seen[0].request.via[0].rport == server.seen[0].source.port


async def test_ipv6_loopback(server: Endpoint) -> None:
    addr = await server.listen("udp:[::1]:0")
    async with Endpoint(timers=FAST) as client6:
        await client6.listen("udp:[::1]:0")
        response = await client6.request(options(addr), addr)
    assert response.status_code == 200
    assert server.seen[0].source.host == "::1"


async def test_udp_loss_is_recovered_by_retransmission(server: Endpoint, client: Endpoint) -> None:
    addr = await server.listen("udp:127.0.0.1:0")
    listener = client.listeners[0]
    real_send = listener.send
    dropped = []

    def lossy_send(data: bytes, address: Address) -> None:
        if not dropped:
            dropped.append(data)  # lose the first transmission
            return
        real_send(data, address)

    listener.send = lossy_send  # type: ignore[method-assign]
    response = await client.request(options(addr), addr)
    assert response.status_code == 200 and dropped
    assert len(server.seen) == 1  # the retransmission reached the server once


async def test_timeout_when_nobody_answers(client: Endpoint) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        with pytest.raises(SipTimeoutError):
            await client.request(options(f"127.0.0.1:{port}"), Address("UDP", "127.0.0.1", port))
    finally:
        silent.close()


async def test_failover_to_next_target_on_timeout_and_503() -> None:
    """RFC 3263 §4.3: a timeout or a 503 moves on to the next target."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    busy, good, client = Endpoint(timers=FAST), Endpoint(timers=FAST), Endpoint(timers=FAST)
    try:
        busy_addr = await busy.listen("udp:127.0.0.1:0")
        good_addr = await good.listen("udp:127.0.0.1:0")
        await client.listen("udp:127.0.0.1:0")
        busy.on_request(lambda r: r.respond(503))
        good.on_request(lambda r: r.respond(200))
        silent_addr = Address("UDP", "127.0.0.1", silent.getsockname()[1])

        async def resolved(request: Request) -> list[Address]:
            return [silent_addr, busy_addr, good_addr]

        client.targets = resolved  # type: ignore[method-assign]
        response = await client.request(options(good_addr))
        assert response.status_code == 200
    finally:
        silent.close()
        for endpoint in (busy, good, client):
            await endpoint.close()


async def test_large_request_over_udp_switches_to_tcp(server: Endpoint, client: Endpoint) -> None:
    """RFC 3261 §18.1.1: larger than 1300 bytes with an unknown path MTU → TCP."""
    udp = await server.listen("udp:127.0.0.1:0")
    tcp_port = udp.port
    try:
        await server.listen(f"tcp:127.0.0.1:{tcp_port}")
    except OSError:
        pytest.skip("the same port number was not free for TCP")
    big = options(udp, body=b"x" * 2000, extra=[("Content-Type", "text/plain")])
    response = await client.request(big, udp)
    assert response.status_code == 200
    assert server.seen[0].source.transport == "TCP"


async def test_tcp_connection_is_reused(server: Endpoint, client: Endpoint) -> None:
    addr = await server.listen("tcp:127.0.0.1:0")
    for _ in range(3):
        assert (await client.request(options(addr), addr)).status_code == 200
    assert len(client.connections) == 1
    assert len({incoming.source.connection for incoming in server.seen}) == 1


async def test_stream_message_without_content_length_closes_connection(server: Endpoint) -> None:
    addr = await server.listen("tcp:127.0.0.1:0")
    data = raw_request(addr.port).replace(b"Content-Length: 0\r\n", b"")
    reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
    writer.write(data)
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed, nothing answered
    writer.close()
    assert server.seen == []


async def test_oversized_stream_message_closes_connection() -> None:
    async with Endpoint(timers=FAST, max_message_size=2000) as small:
        small.on_request(lambda r: r.respond(200))
        addr = await small.listen("tcp:127.0.0.1:0")
        data = raw_request(addr.port).replace(b"Content-Length: 0", b"Content-Length: 50000")
        reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
        writer.write(data)
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        writer.close()


async def test_malformed_framed_message_is_answered_and_connection_kept(server: Endpoint) -> None:
    addr = await server.listen("tcp:127.0.0.1:0")
    bad = raw_request(addr.port, call_id="bad", extra="Max-Forwards: 300\r\n")
    good = raw_request(addr.port, call_id="good")
    reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
    writer.write(bad + good)
    answers = b""
    while answers.count(b"SIP/2.0 ") < 2:
        chunk = await asyncio.wait_for(reader.read(65536), 2.0)
        assert chunk
        answers += chunk
    writer.close()
    assert b"SIP/2.0 400 " in answers and b"SIP/2.0 200 " in answers


async def test_malformed_datagram_gets_400_and_server_keeps_serving(server: Endpoint) -> None:
    addr = await server.listen("udp:127.0.0.1:0")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    try:
        for data, expected in (
            (raw_request(addr.port, call_id="c1", extra="CSeq: 2 OPTIONS\r\n"), b"SIP/2.0 400 "),
            (raw_request(addr.port, call_id="c2").replace(b"2.0\r\n", b"3.0\r\n", 1), b"SIP/2.0 505 "),
            (b"\x00\xff garbage\r\n\r\n", None),
            (raw_request(addr.port, call_id="c3"), b"SIP/2.0 200 "),
        ):
            sock.sendto(data, ("127.0.0.1", addr.port))
            if expected is None:
                continue
            reply = await asyncio.to_thread(sock.recv, 65536)
            assert reply.startswith(expected)
            assert parse(reply).call_id in ("c1", "c2", "c3")
    finally:
        sock.close()
    assert server.stats["malformed"] == 3


async def test_handler_contract_500_and_501() -> None:
    async with Endpoint(timers=FAST) as srv, Endpoint(timers=FAST) as cli:
        addr = await srv.listen("udp:127.0.0.1:0")
        await cli.listen("udp:127.0.0.1:0")
        assert (await cli.request(options(addr), addr)).status_code == 501  # no handler

        async def silent(incoming: IncomingRequest) -> None:
            await asyncio.sleep(0)

        srv.on_request(silent)
        assert (await cli.request(options(addr), addr)).status_code == 500

        def broken(incoming: IncomingRequest) -> None:
            raise RuntimeError("boom")

        srv.on_request(broken)
        assert (await cli.request(options(addr), addr)).status_code == 500


async def test_connection_limit_refuses_extra_connections() -> None:
    async with Endpoint(timers=FAST, max_connections=1) as srv:
        srv.on_request(lambda r: r.respond(200))
        addr = await srv.listen("tcp:127.0.0.1:0")
        first = await asyncio.open_connection("127.0.0.1", addr.port)
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
        assert await asyncio.wait_for(reader.read(), 2.0) == b""  # refused (closed at once)
        writer.close()
        first[1].write(raw_request(addr.port))
        assert (await asyncio.wait_for(first[0].read(65536), 2.0)).startswith(b"SIP/2.0 200 ")
        first[1].close()


async def test_idle_connections_are_closed() -> None:
    async with Endpoint(timers=FAST, idle_timeout=0.2) as srv:
        addr = await srv.listen("tcp:127.0.0.1:0")
        reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
        await asyncio.sleep(0.05)
        assert len(srv.connections) == 1
        srv.connections.sweep_idle(asyncio.get_running_loop().time() + 1.0)
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        writer.close()


async def test_crlf_keepalive_ping_gets_pong_on_tcp(server: Endpoint) -> None:
    addr = await server.listen("tcp:127.0.0.1:0")
    reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
    writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(2), 2.0) == b"\r\n"  # RFC 5626 §3.5.1
    writer.close()


@pytest.fixture(scope="module")
def tls_material() -> tuple[trustme.CA, trustme.LeafCert]:
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


async def test_tls_round_trip_and_verification_on_by_default(tls_material) -> None:
    ca, cert = tls_material
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with Endpoint(timers=FAST, tls_server_context=server_ctx) as srv:
        srv.on_request(lambda r: r.respond(200))
        addr = await srv.listen("tls:127.0.0.1:0")
        async with Endpoint(timers=FAST, tls_client_context=trusting) as good:
            assert (await good.request(options(addr), addr)).status_code == 200
        async with Endpoint(timers=FAST) as untrusting:  # system CAs only: our test CA is unknown
            with pytest.raises(TransportError):
                await untrusting.request(options(addr), addr)


async def test_mutual_tls_requires_client_certificate(tls_material) -> None:
    ca, cert = tls_material
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[IncomingRequest] = []

    def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        incoming.respond(200)

    async with Endpoint(timers=FAST, tls_server_context=server_ctx) as srv:
        srv.on_request(handler)
        addr = await srv.listen("tls:127.0.0.1:0")
        with_cert = ssl.create_default_context()
        ca.configure_trust(with_cert)
        ca.issue_cert("client.example.com").configure_cert(with_cert)
        async with Endpoint(timers=FAST, tls_client_context=with_cert) as cli:
            assert (await cli.request(options(addr), addr)).status_code == 200
        without = ssl.create_default_context()
        ca.configure_trust(without)
        async with Endpoint(timers=FAST, tls_client_context=without) as cli:
            with pytest.raises((TransportError, SipTimeoutError)):
                await cli.request(options(addr), addr)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "kind", ["raises", "async-raises-at-once", "async-raises-later", "async-silent", "future-silent"]
)
async def test_a_failing_or_silent_handler_gets_the_request_a_500(
    client: Endpoint, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The TU contract over the wire: whatever a request handler does — raise at once, raise
    after waiting, finish its coroutine without answering — the request gets a final
    response (500). (A plain function may keep the request and answer it later.)"""
    server = Endpoint(timers=FAST)

    async def wait_then_raise(incoming: IncomingRequest) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom later")

    async def raise_at_once(incoming: IncomingRequest) -> None:
        raise RuntimeError("boom")

    def raise_sync(incoming: IncomingRequest) -> None:
        raise RuntimeError("boom")

    async def async_silent(incoming: IncomingRequest) -> None:
        await asyncio.sleep(0.01)

    def future_silent(incoming: IncomingRequest) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, None)
        return future  # an awaitable that is not a coroutine

    handlers = {
        "future-silent": future_silent,
        "raises": raise_sync,
        "async-raises-at-once": raise_at_once,
        "async-raises-later": wait_then_raise,
        "async-silent": async_silent,
    }
    server.on_request(handlers[kind])
    try:
        addr = await server.listen("udp:127.0.0.1:0")
        response = await client.request(options(addr), addr)
        assert response.status_code == 500
        if "raises" in kind:
            assert "request handler failed on OPTIONS" in caplog.text
        else:
            assert response.reason == "Handler Did Not Answer"
    finally:
        await server.close()
