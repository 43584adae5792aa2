"""RFC 5923 and virtual servers, over real TLS on loopback (trustme certificates): a connection
aliased by a peer serves requests for the domains its certificate names, and not for another
domain hosted at the same address and port."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import trustme

from sipstack.endpoint import Endpoint
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_alias_serves_only_the_domains_its_certificate_names() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    ca.issue_cert("127.0.0.1", "a.example.test").configure_cert(client_ctx)  # virtual server a, not b

    async with Endpoint(timers=FAST, tls_server_context=server_ctx) as server:
        server.on_request(lambda incoming: incoming.respond(200))
        addr = await server.listen("tls:127.0.0.1:0")
        port = closed_port()  # the peer's advertised port: nothing listens there
        reader, writer = await asyncio.open_connection("127.0.0.1", addr.port, ssl=client_ctx)
        try:
            writer.write(
                (
                    f"OPTIONS sip:{addr.host_port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/TLS 127.0.0.1:{port};branch=z9hG4bK{new_tag()};alias\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:p1@a.example.test>;tag={new_tag()}\r\n"
                    f"To: <sip:{addr.host_port}>\r\nCall-ID: {new_tag()}\r\nCSeq: 1 OPTIONS\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode()
            )
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)).startswith(b"SIP/2.0 200 ")
            table = server.connections
            aliased = table.aliases.find("TLS", "127.0.0.1", port)
            assert aliased is not None
            target = Address("TLS", "127.0.0.1", port)
            # For the address itself (the certificate names 127.0.0.1) and for domain a: reused.
            assert await table.connect(target) is aliased
            assert await table.connect(target, server_hostname="a.example.test") is aliased
            # Domain b, hosted at the same address: not proved by that certificate — a new
            # connection is tried (and refused here), the alias is not used.
            with pytest.raises(OSError):
                await table.connect(target, server_hostname="b.example.test")
            assert len(table) == 1
        finally:
            writer.close()
