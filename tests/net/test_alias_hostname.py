"""TLS towards a domain, and RFC 5923 aliases, for virtual servers: the endpoint verifies a
TLS target against the domain RFC 3263 resolved (SNI and hostname check), not against the
IP address it resolved to, and an aliased connection serves a request only for a domain
its peer proved with its certificate (RFC 5923 on virtual servers, RFC 5922 §7.3).

Names resolve through the resolver's static ``hosts`` (no DNS): ``a.example.test`` and
``b.example.test`` are both 127.0.0.1, certificates come from a trustme CA."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest
import trustme

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import TransportError
from sipstack.message import Request, Response, make_response, parse
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag
from sipstack.transport.alias import certificate_matches
from sipstack.transport.resolver import Resolver

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)
HOSTS = {"a.example.test": ["127.0.0.1"], "b.example.test": ["127.0.0.1"]}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def options(uri: str, *, route: str | None = None) -> Request:
    headers = [
        ("Max-Forwards", "70"),
        ("From", f"<sip:probe@example.com>;tag={new_tag()}"),
        ("To", f"<{uri}>"),
        ("Call-ID", new_tag()),
        ("CSeq", "1 OPTIONS"),
    ]
    if route is not None:
        headers.insert(0, ("Route", route))
    return Request("OPTIONS", uri, headers)


def server_context(ca: trustme.CA, *names: str, sni: list[str | None] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # asks for client certificates (RFC 5923 §5.3)
    if sni is not None:
        ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment]
    return ctx


def client_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if names:
        ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def answered_by(response: Response) -> str | None:
    return response.header("x-answered-by")


# -- (a) new connections are verified against the domain ----------------------------------------


@pytest.mark.parametrize("routed", [False, True], ids=["request-uri", "loose-route"])
async def test_tls_to_a_domain_is_verified_against_the_domain(ca: trustme.CA, routed: bool) -> None:
    """b.example.test resolves (hosts) to 127.0.0.1: a server certificate for b is accepted
    and b is sent as SNI; one for a.example.test and 127.0.0.1 — valid for the IP — is not."""
    for names, good in ((("b.example.test",), True), (("127.0.0.1", "a.example.test"), False)):
        sni: list[str | None] = []
        async with Endpoint(timers=FAST, tls_server_context=server_context(ca, *names, sni=sni)) as server:
            server.on_request(lambda incoming: incoming.respond(200))
            port = (await server.listen("tls:127.0.0.1:0")).port
            target = f"sip:b.example.test:{port};transport=tls"
            request = (
                options("sip:x@c.example.test", route=f"<{target};lr>")
                if routed
                else options(f"sip:x@b.example.test:{port};transport=tls")
            )
            async with Endpoint(
                timers=FAST, resolver=Resolver(hosts=HOSTS), tls_client_context=client_context(ca)
            ) as client:
                assert await client.targets(request) == [
                    Address("TLS", "127.0.0.1", port, server_name="b.example.test")
                ]
                if good:
                    assert (await client.request(request)).status_code == 200
                    (connection,) = client.connections.by_id.values()
                    assert connection.server_name == "b.example.test"
                    assert certificate_matches(connection.peer_certificate, "b.example.test")
                    assert sni == ["b.example.test"]
                else:
                    with pytest.raises(TransportError, match=r"b\.example\.test"):
                        await client.request(request)
                    assert sni == ["b.example.test"]
                    # The same server by its IP address: verified against the IP, accepted.
                    assert (await client.request(options(f"sips:127.0.0.1:{port}"))).status_code == 200


# -- (b) an alias serves only the domains its peer proved -----------------------------------


class AliasingPeer:
    """A peer that opened a TLS connection to the endpoint under test with ``alias`` in its
    Via and answers (X-Answered-By: alias) the requests that come back over it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.requests: list[Request] = []
        self.task: asyncio.Task[None] | None = None

    async def offer(self, target: Address, sent_by: str) -> None:
        via = f"SIP/2.0/TLS {sent_by};branch=z9hG4bK{new_tag()};alias"
        self.writer.write(
            (
                f"OPTIONS sip:{target.host_port} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:peer@a.example.test>;tag={new_tag()}\r\nTo: <sip:{target.host_port}>\r\n"
                f"Call-ID: {new_tag()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"SIP/2.0 200 "), head
        self.task = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")  # requests without a body
            request = parse(head)
            assert isinstance(request, Request)
            self.requests.append(request)
            response = make_response(request, 200, to_tag=new_tag(), headers=[("X-Answered-By", "alias")])
            self.writer.write(bytes(response))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        self.writer.close()


@pytest.mark.parametrize(
    ("sent_by_host", "client_names"),
    [
        # The alias is keyed by the domain; the certificate names only that domain.
        ("a.example.test", ("a.example.test",)),
        # Keyed by the shared IP address: only the certificate check keeps b off it.
        ("127.0.0.1", ("127.0.0.1", "a.example.test")),
    ],
    ids=["sent-by-domain", "sent-by-ip"],
)
async def test_alias_proved_for_a_is_not_reused_for_b(
    ca: trustme.CA, sent_by_host: str, client_names: tuple[str, ...]
) -> None:
    # The peer's listening address hosts virtual server b too (its certificate names only b:
    # a connection to it is then not proved for a either).
    async with (
        Endpoint(timers=FAST, tls_server_context=server_context(ca, "b.example.test")) as peer,
        Endpoint(
            timers=FAST,
            resolver=Resolver(hosts=HOSTS),
            tls_server_context=server_context(ca, "127.0.0.1"),
            tls_client_context=client_context(ca),
        ) as endpoint,
    ):
        listened: list[IncomingRequest] = []

        def on_listener(incoming: IncomingRequest) -> None:
            listened.append(incoming)
            incoming.respond(200, headers=[("X-Answered-By", "listener")])

        peer.on_request(on_listener)
        peer_port = (await peer.listen("tls:127.0.0.1:0")).port
        endpoint.on_request(lambda incoming: incoming.respond(200))
        local = await endpoint.listen("tls:127.0.0.1:0")
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", local.port, ssl=client_context(ca, *client_names)
        )
        aliasing = AliasingPeer(reader, writer)
        try:
            await aliasing.offer(local, f"{sent_by_host}:{peer_port}")
            table = endpoint.connections
            aliased = table.aliases.find("TLS", sent_by_host, peer_port)
            assert aliased is not None and len(table) == 1

            # For a.example.test: the alias (the peer proved a), no new connection.
            response = await endpoint.request(options(f"sips:x@a.example.test:{peer_port}"))
            assert (response.status_code, answered_by(response)) == (200, "alias")
            assert len(table) == 1 and len(aliasing.requests) == 1

            # For b.example.test at the same IP and port: not proved by that certificate —
            # a new connection to the listener, verified against b.
            response = await endpoint.request(options(f"sips:x@b.example.test:{peer_port}"))
            assert (response.status_code, answered_by(response)) == (200, "listener")
            assert len(table) == 2 and len(aliasing.requests) == 1 and len(listened) == 1
            opened = [c for c in table.by_id.values() if c.outbound]
            assert [c.server_name for c in opened] == ["b.example.test"]

            # Each domain keeps its own connection (by_remote finds b's for a: not proved for a).
            response = await endpoint.request(options(f"sips:x@a.example.test:{peer_port}"))
            assert answered_by(response) == "alias"
            response = await endpoint.request(options(f"sips:x@b.example.test:{peer_port}"))
            assert answered_by(response) == "listener"
            assert len(table) == 2 and len(aliasing.requests) == 2 and len(listened) == 2
        finally:
            await aliasing.close()


async def test_alias_for_b_fails_verification_when_no_server_proves_b(ca: trustme.CA) -> None:
    """The peer's listener serves a certificate for a only: a request for b is neither sent
    over a's alias nor over a connection whose server did not prove b — it fails."""
    async with (
        Endpoint(timers=FAST, tls_server_context=server_context(ca, "127.0.0.1", "a.example.test")) as peer,
        Endpoint(
            timers=FAST,
            resolver=Resolver(hosts=HOSTS),
            tls_server_context=server_context(ca, "127.0.0.1"),
            tls_client_context=client_context(ca),
        ) as endpoint,
    ):
        peer.on_request(lambda incoming: incoming.respond(200))
        peer_port = (await peer.listen("tls:127.0.0.1:0")).port
        local = await endpoint.listen("tls:127.0.0.1:0")
        endpoint.on_request(lambda incoming: incoming.respond(200))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", local.port, ssl=client_context(ca, "127.0.0.1", "a.example.test")
        )
        aliasing = AliasingPeer(reader, writer)
        try:
            await aliasing.offer(local, f"127.0.0.1:{peer_port}")
            with pytest.raises(TransportError, match=r"b\.example\.test"):
                await endpoint.request(options(f"sips:x@b.example.test:{peer_port}"))
            assert aliasing.requests == []
            response = await endpoint.request(options(f"sips:x@a.example.test:{peer_port}"))
            assert answered_by(response) == "alias"
        finally:
            await aliasing.close()


async def test_one_connection_serves_every_domain_its_server_proved(ca: trustme.CA) -> None:
    """Virtual servers a and b behind one certificate naming both: the connection opened for
    a is proved for b too and is reused; a request by IP address reuses it as before."""
    both = server_context(ca, "a.example.test", "b.example.test")
    resolver = Resolver(hosts=HOSTS)
    async with (
        Endpoint(timers=FAST, tls_server_context=both) as peer,
        Endpoint(timers=FAST, resolver=resolver, tls_client_context=client_context(ca)) as endpoint,
    ):
        peer.on_request(lambda incoming: incoming.respond(200))
        port = (await peer.listen("tls:127.0.0.1:0")).port
        for domain in ("a.example.test", "b.example.test", "a.example.test"):
            assert (await endpoint.request(options(f"sips:x@{domain}:{port}"))).status_code == 200
        (connection,) = endpoint.connections.by_id.values()
        assert connection.server_name == "a.example.test"
        # A target without a domain (an IP literal) takes any open connection to the address.
        assert await endpoint.connections.connect(Address("TLS", "127.0.0.1", port)) is connection
