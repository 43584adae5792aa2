"""SIP Outbound keep-alives over real loopback sockets (RFC 5626 §4.4, §8): CRLF ping/pong on
TCP and TLS, STUN on the SIP UDP port, and the client-side keep-alive helpers."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl

import pytest
import trustme

from sipstack.endpoint import Endpoint
from sipstack.message import Request
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag
from sipstack.transport import stun
from sipstack.transport.keepalive import (
    CrlfKeepalive,
    StunKeepalive,
    keepalive_interval,
    stun_binding,
)

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)


def options(target: Address) -> Request:
    return Request(
        "OPTIONS",
        f"sip:{target.host_port}",
        [
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag={new_tag()}"),
            ("To", f"<sip:{target.host_port}>"),
            ("Call-ID", new_tag()),
            ("CSeq", "1 OPTIONS"),
        ],
    )


@pytest.fixture
async def server() -> Endpoint:
    endpoint = Endpoint(timers=FAST)
    endpoint.on_request(lambda incoming: incoming.respond(200))
    yield endpoint
    await endpoint.close()


class Peer(asyncio.DatagramProtocol):
    """A real UDP socket that answers STUN Binding requests its own way."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.received.append(data)
        reply = self.answer(len(self.received), data, addr)
        if reply is not None:
            self.transport.sendto(reply, addr)

    @property
    def address(self) -> Address:
        host, port = self.transport.get_extra_info("sockname")[:2]
        return Address("UDP", host, port)


@pytest.fixture
async def make_peer():
    peers: list[Peer] = []

    async def make(answer) -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(lambda: Peer(answer), local_addr=("127.0.0.1", 0))
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.transport.close()


# -- intervals --------------------------------------------------------------------------------


def test_intervals_are_randomised_between_80_and_100_percent() -> None:
    rng = random.Random(5626)
    draws = [keepalive_interval(100.0, rng=rng) for _ in range(2000)]
    assert all(80.0 <= d <= 100.0 for d in draws)
    assert min(draws) < 81.0 and max(draws) > 99.0  # spread over the whole range
    tcp = [keepalive_interval(rng=rng) for _ in range(2000)]
    assert all(95.0 <= d <= 120.0 for d in tcp) and max(tcp) - min(tcp) > 20
    udp = [keepalive_interval(reliable=False, rng=rng) for _ in range(2000)]
    assert all(24.0 <= d <= 29.0 for d in udp) and max(udp) - min(udp) > 4
    with pytest.raises(ValueError):
        keepalive_interval(0)


# -- STUN on the SIP port (server side) -------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_sip_udp_port_answers_stun_binding_with_the_source(server: Endpoint, host: str) -> None:
    addr = await server.listen(f"udp:[{host}]:0" if ":" in host else f"udp:{host}:0")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(2.0)
    try:
        request, tid = stun.binding_request()
        sock.sendto(request, (host, addr.port))
        reply = await asyncio.to_thread(sock.recv, 2048)
        message = stun.decode(reply)
        assert (message.cls, message.transaction_id) == (stun.SUCCESS, tid)
        assert message.mapped_address == sock.getsockname()[:2]
        # The same port still serves SIP, and NUL / CRLF keep-alive padding is not STUN.
        sock.sendto(b"\x00\x00\x00\x00", (host, addr.port))
        sock.sendto(b"\r\n\r\n", (host, addr.port))
        sock.sendto(
            (
                f"OPTIONS sip:{addr.host_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {addr.host_port};branch=z9hG4bKs1;rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: stun-1\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            (host, addr.port),
        )
        assert (await asyncio.to_thread(sock.recv, 4096)).startswith(b"SIP/2.0 200 ")
    finally:
        sock.close()
    assert server.stats["malformed"] == 0


async def test_malformed_stun_is_dropped_silently(server: Endpoint) -> None:
    addr = await server.listen("udp:127.0.0.1:0")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.3)
    try:
        bad = bytearray(stun.binding_request()[0])
        bad[-1] ^= 0xFF  # FINGERPRINT no longer matches
        sock.sendto(bytes(bad), ("127.0.0.1", addr.port))
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(sock.recv, 2048)
    finally:
        sock.close()
    assert server.stats["malformed"] == 0 and server.stats["requests_in"] == 0


# -- STUN client -----------------------------------------------------------------------------


async def test_stun_binding_between_two_endpoints(server: Endpoint) -> None:
    addr = await server.listen("udp:127.0.0.1:0")
    async with Endpoint(timers=FAST) as client:
        local = await client.listen("udp:127.0.0.1:0")
        mapped = await client.stun_binding(addr)
        assert mapped == local  # no NAT on loopback: the reflexive address is our own
        # SIP over the same flow still works afterwards.
        assert (await client.request(options(addr), addr)).status_code == 200


async def test_stun_binding_retransmits_after_loss(make_peer) -> None:
    def drop_first(n: int, data: bytes, addr):
        return None if n == 1 else stun.answer(data, addr[0], addr[1])

    peer = await make_peer(drop_first)
    async with Endpoint(timers=FAST) as client:
        await client.listen("udp:127.0.0.1:0")
        mapped = await client.stun_binding(peer.address, rto=0.05)
        assert mapped.port == client.listeners[0].local.port
    assert len(peer.received) == 2
    assert peer.received[0] == peer.received[1]  # a retransmission: same transaction id


async def test_stun_binding_gives_up_after_rc_requests(make_peer) -> None:
    peer = await make_peer(lambda n, data, addr: None)
    async with Endpoint(timers=FAST) as client:
        await client.listen("udp:127.0.0.1:0")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(stun.StunTimeout):
            await client.stun_binding(peer.address, rto=0.02, rc=3, rm=4)
        elapsed = loop.time() - started
        assert not client.listeners[0].stun_waiters  # nothing left behind
    assert len(peer.received) == 3
    assert 0.1 <= elapsed < 1.0  # 0.02 + 0.04 + 4 x 0.02 = 0.14 s


async def test_stun_error_response_is_raised(make_peer) -> None:
    def refuse(n: int, data: bytes, addr):
        tid = stun.decode(data).transaction_id
        attrs = [(stun.ERROR_CODE, stun.encode_error_code(400, "Bad Request"))]
        return stun.encode(stun.BINDING, stun.ERROR, tid, attrs)

    peer = await make_peer(refuse)
    async with Endpoint(timers=FAST) as client:
        await client.listen("udp:127.0.0.1:0")
        with pytest.raises(stun.StunError) as caught:
            await client.stun_binding(peer.address, rto=0.05)
    assert caught.value.code == 400


async def test_stun_keepalive_keeps_going_while_the_binding_holds(server: Endpoint) -> None:
    addr = await server.listen("udp:127.0.0.1:0")
    failures: list[str] = []
    async with Endpoint(timers=FAST) as client:
        local = await client.listen("udp:127.0.0.1:0")
        keepalive = StunKeepalive(client.listeners[0], addr, on_failure=failures.append, flow_timer=0.05)
        keepalive.start()
        for _ in range(100):
            if keepalive.probes >= 3:
                break
            await asyncio.sleep(0.02)
        keepalive.stop()
        assert keepalive.probes >= 3 and failures == []
        assert keepalive.mapped == local


async def test_stun_keepalive_reports_a_changed_nat_binding(make_peer) -> None:
    """RFC 5626 §4.4.2: a different XOR-MAPPED-ADDRESS is a flow failure."""

    def rebinding_nat(n: int, data: bytes, addr):
        return stun.answer(data, "198.51.100.7", 40000 if n < 3 else 40002)

    peer = await make_peer(rebinding_nat)
    failed = asyncio.Event()
    reasons: list[str] = []

    def on_failure(reason: str) -> None:
        reasons.append(reason)
        failed.set()

    async with Endpoint(timers=FAST) as client:
        await client.listen("udp:127.0.0.1:0")
        keepalive = StunKeepalive(client.listeners[0], peer.address, on_failure=on_failure, flow_timer=0.05)
        keepalive.start()
        await asyncio.wait_for(failed.wait(), 3.0)
        assert not keepalive.running
    assert reasons == ["NAT binding changed: 198.51.100.7:40000 became 198.51.100.7:40002"]
    assert keepalive.probes == 2 and len(peer.received) == 3


async def test_stun_keepalive_reports_a_silent_server(make_peer) -> None:
    peer = await make_peer(lambda n, data, addr: None)
    reasons: list[str] = []
    async with Endpoint(timers=FAST) as client:
        await client.listen("udp:127.0.0.1:0")
        keepalive = StunKeepalive(
            client.listeners[0],
            peer.address,
            on_failure=reasons.append,
            flow_timer=0.02,
            rto=0.02,
            rc=2,
            rm=2,
        )
        keepalive.start()
        for _ in range(100):
            if reasons:
                break
            await asyncio.sleep(0.02)
    assert len(reasons) == 1 and "STUN keep-alive" in reasons[0]


async def test_stun_binding_function_on_a_bare_listener(server: Endpoint) -> None:
    addr = await server.listen("udp:127.0.0.1:0")
    async with Endpoint(timers=FAST) as client:
        await client.listen("udp:127.0.0.1:0")
        mapped = await stun_binding(client.listeners[0], addr, software="sipstack-test")
    assert mapped.transport == "UDP" and mapped.host == "127.0.0.1"


# -- CRLF keep-alive, server side ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_material() -> tuple[trustme.CA, trustme.LeafCert]:
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


async def test_tls_ping_gets_pong(tls_material) -> None:
    ca, cert = tls_material
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with Endpoint(timers=FAST, tls_server_context=server_ctx) as srv:
        addr = await srv.listen("tls:127.0.0.1:0")
        reader, writer = await asyncio.open_connection("127.0.0.1", addr.port, ssl=client_ctx)
        for _ in range(3):
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), 2.0) == b"\r\n"  # RFC 5626 §3.5.1
        writer.close()


async def test_ping_split_across_segments_and_between_messages(server: Endpoint) -> None:
    addr = await server.listen("tcp:127.0.0.1:0")
    reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
    try:
        writer.write(b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"\r\n")  # the second half makes it a ping
        assert await asyncio.wait_for(reader.readexactly(2), 2.0) == b"\r\n"
        request = (
            f"OPTIONS sip:{addr.host_port} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKk1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: ka-1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        writer.write(b"\r\n\r\n" + request + b"\r\n\r\n")
        data = b""
        while b"SIP/2.0 200 " not in data or not data.endswith(b"\r\n\r\n\r\n"):
            chunk = await asyncio.wait_for(reader.read(4096), 2.0)
            assert chunk
            data += chunk
        assert data.startswith(b"\r\nSIP/2.0 200 ")  # pong, response, pong — in order
    finally:
        writer.close()


# -- CRLF keep-alive, client side ----------------------------------------------------------------


async def test_crlf_keepalive_against_a_sipstack_server(server: Endpoint) -> None:
    addr = await server.listen("tcp:127.0.0.1:0")
    failures: list[str] = []
    async with Endpoint(timers=FAST) as client:
        connection = await client.connections.connect(addr)
        keepalive = CrlfKeepalive(connection, on_failure=failures.append, flow_timer=0.05)
        keepalive.start()
        for _ in range(100):
            if keepalive.probes >= 3:
                break
            await asyncio.sleep(0.02)
        keepalive.stop()
        assert keepalive.probes >= 3 and failures == []
        assert connection.on_pong is None and not connection.close_callbacks  # stop() detaches
        # The connection still carries SIP.
        assert (await client.request(options(addr), addr)).status_code == 200


class SilentServer:
    """A real TCP server that accepts connections and never answers (no pong)."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.received = bytearray()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> Address:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            while data := await reader.read(4096):
                self.received += data

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return Address("TCP", "127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_crlf_keepalive_reports_missing_pong() -> None:
    silent = SilentServer()
    addr = await silent.start()
    reasons: list[str] = []
    try:
        async with Endpoint(timers=FAST) as client:
            connection = await client.connections.connect(addr)
            keepalive = CrlfKeepalive(
                connection, on_failure=reasons.append, flow_timer=0.02, pong_timeout=0.2
            )
            loop = asyncio.get_running_loop()
            started = loop.time()
            keepalive.start()
            for _ in range(100):
                if reasons:
                    break
                await asyncio.sleep(0.02)
            assert 0.2 <= loop.time() - started < 1.5
            assert not keepalive.running
    finally:
        await silent.stop()
    assert len(reasons) == 1 and "no pong" in reasons[0]
    assert bytes(silent.received) == b"\r\n\r\n"  # one ping, then it gave up


async def test_crlf_keepalive_reports_a_closed_connection_at_once() -> None:
    silent = SilentServer()
    addr = await silent.start()
    reasons: list[str] = []
    try:
        async with Endpoint(timers=FAST) as client:
            connection = await client.connections.connect(addr)
            keepalive = CrlfKeepalive(connection, on_failure=reasons.append, flow_timer=60.0)
            keepalive.start()
            await asyncio.sleep(0.05)
            silent.writers[0].close()  # the server (or a NAT) drops the flow
            for _ in range(100):
                if reasons:
                    break
                await asyncio.sleep(0.01)
            assert not keepalive.running
    finally:
        await silent.stop()
    assert len(reasons) == 1 and "closed" in reasons[0]
