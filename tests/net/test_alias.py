"""Connection reuse (RFC 5923) over real TLS and TCP sockets on loopback, with trustme
certificates: the alias table, the certificate check, and the client's ``alias`` Via."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import SipTimeoutError, TransportError
from sipstack.message import Request, parse
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag
from sipstack.transport.alias import certificate_matches

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


def raw_request(target: str, via: str) -> bytes:
    return (
        f"OPTIONS sip:{target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:a@example.com>;tag={new_tag()}\r\nTo: <sip:{target}>\r\n"
        f"Call-ID: {new_tag()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """Serves a certificate for ``names``, asks for (and verifies) client certificates."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """Trusts the test CA; presents a certificate for ``names`` when there are any."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if names:
        ca.issue_cert(*names).configure_cert(ctx)
    return ctx


class Element:
    """An endpoint that answers 200 and records what it received."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.seen: list[IncomingRequest] = []

        def handler(incoming: IncomingRequest) -> None:
            self.seen.append(incoming)
            incoming.respond(200)

        endpoint.on_request(handler)


@pytest.fixture
async def elements():
    made: list[Element] = []

    def make(**kwargs) -> Element:
        element = Element(Endpoint(timers=FAST, **kwargs))
        made.append(element)
        return element

    yield make
    for element in made:
        await element.endpoint.close()


async def _tls_pair(ca, make, *, client_names: tuple[str, ...], via_alias: bool = True):
    """A (the server) and B (a client with a TLS listener of its own, sending with alias)."""
    a = make(tls_server_context=server_context(ca, "127.0.0.1"), tls_client_context=client_context(ca))
    b = make(
        tls_server_context=server_context(ca, "127.0.0.1"),
        tls_client_context=client_context(ca, *client_names),
        via_alias=via_alias,
    )
    a_addr = await a.endpoint.listen("tls:127.0.0.1:0")
    b_addr = await b.endpoint.listen("tls:127.0.0.1:0")
    assert (await b.endpoint.request(options(a_addr), a_addr)).status_code == 200
    return a, b, a_addr, b_addr


async def test_alias_reuses_the_clients_tls_connection(ca, elements) -> None:
    a, b, _, b_addr = await _tls_pair(ca, elements, client_names=("127.0.0.1",))
    via = a.seen[0].request.via[0]
    assert "alias" in via.params and via.port == b_addr.port  # B's listening port, not the ephemeral one
    assert len(a.endpoint.connections.aliases) == 1
    (outbound,) = b.endpoint.connections.by_id.values()
    # A sends a request to B's advertised address: it goes over the connection B opened.
    assert (await a.endpoint.request(options(b_addr), b_addr)).status_code == 200
    assert b.seen[0].source.connection == outbound.id
    assert len(b.endpoint.connections) == 1 and len(a.endpoint.connections) == 1
    # Gone with the connection.
    outbound.close()
    for _ in range(50):
        if not a.endpoint.connections.aliases:
            break
        await asyncio.sleep(0.02)
    assert len(a.endpoint.connections.aliases) == 0


@pytest.mark.parametrize("client_names", [(), ("other.example.test",)], ids=["no-cert", "wrong-name"])
async def test_alias_needs_a_certificate_naming_the_sent_by(ca, elements, client_names) -> None:
    a, b, _, b_addr = await _tls_pair(ca, elements, client_names=client_names)
    assert "alias" in a.seen[0].request.via[0].params
    assert len(a.endpoint.connections.aliases) == 0  # refused
    (outbound,) = b.endpoint.connections.by_id.values()
    assert (await a.endpoint.request(options(b_addr), b_addr)).status_code == 200
    assert b.seen[0].source.connection != outbound.id  # A opened a connection of its own
    assert len(b.endpoint.connections) == 2


async def test_no_alias_in_via_unless_configured(ca, elements) -> None:
    a, b, _, b_addr = await _tls_pair(ca, elements, client_names=("127.0.0.1",), via_alias=False)
    assert "alias" not in a.seen[0].request.via[0].params
    assert len(a.endpoint.connections.aliases) == 0
    assert (await a.endpoint.request(options(b_addr), b_addr)).status_code == 200
    assert len(b.endpoint.connections) == 2


async def test_alias_by_certificate_dns_name(ca, elements) -> None:
    """A sent-by FQDN: the alias is found by the name the TLS connection would verify."""
    a = elements(tls_server_context=server_context(ca, "127.0.0.1"))
    a_addr = await a.endpoint.listen("tls:127.0.0.1:0")
    ctx = client_context(ca, "client.example.test")
    reader, writer = await asyncio.open_connection("127.0.0.1", a_addr.port, ssl=ctx)
    try:
        via = "SIP/2.0/TLS client.example.test:5071;branch=z9hG4bKdns1;alias"
        writer.write(raw_request(a_addr.host_port, via))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert head.startswith(b"SIP/2.0 200 ")
        table = a.endpoint.connections
        aliased = table.aliases.find("TLS", "Client.Example.Test", 5071)
        assert aliased is not None and aliased.id == a.seen[0].source.connection
        found = await table.connect(Address("TLS", "192.0.2.55", 5071), server_hostname="client.example.test")
        assert found is aliased  # no new connection to 192.0.2.55
        assert table.aliases.find("TLS", "client.example.test", 5061) is None  # another port
    finally:
        writer.close()


async def _raw_tcp_alias(endpoint: Endpoint, addr: Address, via_port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
    writer.write(raw_request(addr.host_port, f"SIP/2.0/TCP 127.0.0.1:{via_port};branch=z9hG4bKtcp;alias"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    assert head.startswith(b"SIP/2.0 200 ")
    return reader, writer


async def _lurker() -> tuple[asyncio.base_events.Server, list[object], int]:
    accepted: list[object] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    return server, accepted, server.sockets[0].getsockname()[1]


async def test_tcp_alias_ignored_by_default(elements) -> None:
    a = elements()
    addr = await a.endpoint.listen("tcp:127.0.0.1:0")
    lurker, accepted, port = await _lurker()
    try:
        _, writer = await _raw_tcp_alias(a.endpoint, addr, port)
        assert len(a.endpoint.connections.aliases) == 0
        target = Address("TCP", "127.0.0.1", port)
        with pytest.raises((TransportError, SipTimeoutError)):  # the lurker hangs up
            await asyncio.wait_for(a.endpoint.request(options(target), target), 3.0)
        assert len(accepted) == 1  # A connected to the advertised port instead
        writer.close()
    finally:
        lurker.close()
        await lurker.wait_closed()


async def test_tcp_alias_when_enabled(elements) -> None:
    a = elements(alias_tcp=True)
    addr = await a.endpoint.listen("tcp:127.0.0.1:0")
    lurker, accepted, port = await _lurker()
    try:
        reader, writer = await _raw_tcp_alias(a.endpoint, addr, port)
        assert len(a.endpoint.connections.aliases) == 1
        target = Address("TCP", "127.0.0.1", port)
        pending = asyncio.ensure_future(a.endpoint.request(options(target), target))
        data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        request = parse(data)
        assert isinstance(request, Request) and request.method == "OPTIONS"
        writer.write(
            b"SIP/2.0 200 OK\r\n"
            + b"".join(
                f"{name}: {request.header(name)}\r\n".encode()
                for name in ("Via", "From", "To", "Call-ID", "CSeq")
            )
            + b"Content-Length: 0\r\n\r\n"
        )
        assert (await asyncio.wait_for(pending, 2.0)).status_code == 200
        assert accepted == []  # nothing connected to the advertised port
        writer.close()
    finally:
        lurker.close()
        await lurker.wait_closed()


async def test_tcp_alias_for_another_host_is_refused(elements) -> None:
    a = elements(alias_tcp=True)
    addr = await a.endpoint.listen("tcp:127.0.0.1:0")
    reader, writer = await asyncio.open_connection("127.0.0.1", addr.port)
    try:
        writer.write(raw_request(addr.host_port, "SIP/2.0/TCP 192.0.2.9:5060;branch=z9hG4bKx;alias"))
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert len(a.endpoint.connections.aliases) == 0
    finally:
        writer.close()


CERT = {
    "subject": ((("commonName", "cn.example.test"),),),
    "subjectAltName": (
        ("DNS", "Proxy.Example.Test"),
        ("URI", "sip:edge.example.test"),
        ("URI", "sip:alice@users.example.test"),
        ("DNS", "*.wild.example.test"),
        ("IP Address", "192.0.2.10"),
        ("IP Address", "2001:DB8:0:0:0:0:0:1\n"),
    ),
}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("proxy.example.test", True),
        ("proxy.example.test.", True),
        ("edge.example.test", True),  # subjectAltName URI sip:domain (RFC 5922 §7.1)
        ("users.example.test", False),  # a user's URI names no domain
        ("a.wild.example.test", False),  # no wildcards (RFC 5922 §7.2)
        ("cn.example.test", False),  # CN only counts without subjectAltName
        ("192.0.2.10", True),
        ("[2001:db8::1]", True),
        ("192.0.2.11", False),
        ("proxy.example.test.evil", False),
    ],
)
def test_certificate_matching(host: str, expected: bool) -> None:
    assert certificate_matches(CERT, host) is expected


def test_certificate_matching_without_san_or_certificate() -> None:
    assert certificate_matches({"subject": ((("commonName", "Only.CN.test"),),)}, "only.cn.test")
    assert not certificate_matches(None, "only.cn.test")
    assert not certificate_matches({}, "only.cn.test")
