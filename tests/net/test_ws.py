"""SIP over WebSocket (RFC 7118) on loopback: ws:/wss: listeners driven by the ``websockets``
client library, the library's own WebSocket client (``connect_ws``), and a registrar/proxy
reaching a WebSocket client over the connection it opened."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import TransportError
from sipstack.message import Request, Response, make_response, parse
from sipstack.net import Address
from sipstack.server import Server
from sipstack.server.config import ServerConfig
from sipstack.transaction import TimerConfig, new_tag
from sipstack.transport.base import ListenSpec
from sipstack.transport.keepalive import CrlfKeepalive
from sipstack.transport.ws import WsConnection

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)


def sip_request(
    method: str,
    uri: str,
    *,
    via: str = "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{}",
    call_id: str | None = None,
    extra: str = "",
    content_length: bool = True,
) -> bytes:
    call_id = call_id or new_tag()
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via.format(new_tag())}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@127.0.0.1>;tag={new_tag()}\r\n"
        f"To: <sip:alice@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}"
        + ("Content-Length: 0\r\n" if content_length else "")
        + "\r\n"
    ).encode()


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
    seen: list[IncomingRequest] = []
    endpoint.seen = seen  # type: ignore[attr-defined]

    def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        if incoming.transaction is not None:
            incoming.respond(200)

    endpoint.on_request(handler)
    yield endpoint
    await endpoint.close()


async def recv_sip(ws) -> Request | Response:
    data = await asyncio.wait_for(ws.recv(decode=False), 2.0)
    return parse(data)


def test_listen_specs_for_websocket() -> None:
    assert ListenSpec.parse("ws:127.0.0.1:8080") == ListenSpec("WS", "127.0.0.1", 8080)
    assert ListenSpec.parse("wss:[::1]") == ListenSpec("WSS", "::1", 443)
    assert ListenSpec.parse("ws:0.0.0.0") == ListenSpec("WS", "0.0.0.0", 80)
    assert str(ListenSpec.parse("WSS:[::1]:4443")) == "wss:[::1]:4443"
    with pytest.raises(ValueError, match="ws or wss"):
        ListenSpec.parse("http:127.0.0.1:80")


async def test_options_over_ws_text_and_binary_frames(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    assert addr.transport == "WS"
    async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=["sip"]) as ws:
        assert ws.subprotocol == "sip"
        await ws.send(sip_request("OPTIONS", f"sip:{addr.host_port}").decode())  # text frame
        response = await recv_sip(ws)
        assert isinstance(response, Response) and response.status_code == 200
        assert response.via[0].transport == "WS"
        assert response.via[0].received == "127.0.0.1"  # the .invalid sent-by is not the source
        await ws.send(sip_request("OPTIONS", f"sip:{addr.host_port}"))  # binary frame
        assert (await recv_sip(ws)).status_code == 200
        # RFC 7118 §4.2: the WebSocket message delimits the SIP message; no Content-Length.
        await ws.send(sip_request("OPTIONS", f"sip:{addr.host_port}", content_length=False))
        assert (await recv_sip(ws)).status_code == 200
        local = ws.local_address
    assert len(server.seen) == 3
    source = server.seen[0].source
    assert (source.transport, source.host, source.port) == ("WS", "127.0.0.1", local[1])
    assert {incoming.source.connection for incoming in server.seen} == {source.connection}


async def test_fragmented_websocket_message_is_one_sip_message(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    data = sip_request("OPTIONS", f"sip:{addr.host_port}").decode()
    async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=["sip"]) as ws:
        await ws.send([data[:10], data[10:50], data[50:]])  # three frames, one message
        assert (await recv_sip(ws)).status_code == 200


@pytest.mark.parametrize("subprotocols", [None, ["chat"]])
async def test_handshake_without_sip_subprotocol_is_refused(
    server: Endpoint, subprotocols: list[str] | None
) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=subprotocols):
            pass
    assert refused.value.response.status_code == 400
    await asyncio.sleep(0.05)
    assert len(server.connections) == 0


async def test_keepalives_on_websocket(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=["sip"]) as ws:
        await ws.send("\r\n\r\n")  # RFC 5626 CRLF ping inside a WebSocket message
        assert await asyncio.wait_for(ws.recv(), 2.0) == "\r\n"
        pong = await ws.ping()  # a WebSocket Ping frame
        await asyncio.wait_for(pong, 2.0)
    assert server.seen == [] and server.stats["malformed"] == 0


async def test_malformed_sip_over_ws_is_answered_400(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    bad = sip_request("OPTIONS", f"sip:{addr.host_port}", extra="Max-Forwards: 300\r\n")
    async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=["sip"]) as ws:
        await ws.send(bad)
        assert (await recv_sip(ws)).status_code == 400
        await ws.send(sip_request("OPTIONS", f"sip:{addr.host_port}"))  # the connection stays
        assert (await recv_sip(ws)).status_code == 200


async def test_oversized_message_closes_the_websocket() -> None:
    async with Endpoint(timers=FAST, max_message_size=2000) as srv:
        srv.on_request(lambda r: r.respond(200))
        addr = await srv.listen("ws:127.0.0.1:0")
        async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=["sip"]) as ws:
            await ws.send(sip_request("OPTIONS", f"sip:{addr.host_port}", extra="X: " + "y" * 3000 + "\r\n"))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 2.0)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big


async def test_closed_websocket_leaves_the_connection_table(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    async with connect(f"ws://127.0.0.1:{addr.port}/", subprotocols=["sip"]):
        await asyncio.sleep(0.05)
        assert len(server.connections) == 1
    for _ in range(50):
        if not server.connections:
            break
        await asyncio.sleep(0.02)
    assert len(server.connections) == 0


async def test_server_never_opens_a_websocket_connection(server: Endpoint) -> None:
    """RFC 7118 §5: a WebSocket client accepts no connections; without the flow it opened,
    a request for it fails instead of connecting."""
    accepted: list[object] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.close()

    lurker = await asyncio.start_server(count, "127.0.0.1", 0)
    port = lurker.sockets[0].getsockname()[1]
    try:
        await server.listen("ws:127.0.0.1:0")
        target = Address("WS", "127.0.0.1", port)
        with pytest.raises(TransportError):
            await server.request(options(target), target)
        await asyncio.sleep(0.05)
    finally:
        lurker.close()
        await lurker.wait_closed()
    assert accepted == []


async def test_connect_ws_client_and_requests_both_ways(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    async with Endpoint(timers=FAST) as client:
        got: list[IncomingRequest] = []

        def on_request(incoming: IncomingRequest) -> None:
            got.append(incoming)
            incoming.respond(200)

        client.on_request(on_request)
        connection = await client.connect_ws(f"ws://127.0.0.1:{addr.port}/")
        assert isinstance(connection, WsConnection) and connection.remote.transport == "WS"
        response = await client.request(options(addr), f"ws:127.0.0.1:{addr.port}")
        assert response.status_code == 200
        assert response.via[0].transport == "WS"
        assert len(client.connections) == 1  # the request went over the flow we opened
        # The server reaches the client over the same connection, by the address it came from.
        source = server.seen[0].source
        back = await server.request(options(source), Address("WS", source.host, source.port))
        assert back.status_code == 200
        assert got and got[0].source.connection == connection.id
        assert got[0].request.via[0].transport == "WS"
        assert len(server.connections) == 1


async def test_connect_ws_fails_without_sip_subprotocol() -> None:
    async def echo(ws) -> None:
        await ws.wait_closed()

    async with websockets.serve(echo, "127.0.0.1", 0) as plain:  # a WebSocket server, not SIP
        port = plain.sockets[0].getsockname()[1]
        async with Endpoint(timers=FAST) as client:
            with pytest.raises(ConnectionError, match="sip"):
                await client.connect_ws(f"ws://127.0.0.1:{port}/")
            await asyncio.sleep(0.05)
            assert len(client.connections) == 0


async def test_wss_round_trip_with_server_certificate() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with Endpoint(timers=FAST, tls_server_context=server_ctx) as srv:
        srv.on_request(lambda r: r.respond(200))
        addr = await srv.listen("wss:127.0.0.1:0")
        assert addr.transport == "WSS"
        async with connect(f"wss://127.0.0.1:{addr.port}/", subprotocols=["sip"], ssl=client_ctx) as ws:
            await ws.send(
                sip_request("OPTIONS", f"sips:{addr.host_port}", via="SIP/2.0/WSS h.invalid;branch=z9hG4bK{}")
            )
            response = await recv_sip(ws)
            assert response.status_code == 200 and response.via[0].transport == "WSS"
        async with Endpoint(timers=FAST, tls_client_context=client_ctx) as cli:
            await cli.connect_ws(f"wss://127.0.0.1:{addr.port}/")
            assert (await cli.request(options(addr), f"wss:127.0.0.1:{addr.port}")).status_code == 200
        async with Endpoint(timers=FAST) as untrusting:
            with pytest.raises(ssl.SSLError):
                await untrusting.connect_ws(f"wss://127.0.0.1:{addr.port}/")
    with pytest.raises(ValueError, match="certificate"):
        async with Endpoint() as no_cert:
            await no_cert.listen("wss:127.0.0.1:0")


async def test_keepalive_helper_on_a_websocket_flow(server: Endpoint) -> None:
    addr = await server.listen("ws:127.0.0.1:0")
    failures: list[str] = []
    async with Endpoint(timers=FAST) as client:
        connection = await client.connect_ws(f"ws://127.0.0.1:{addr.port}/")
        keepalive = CrlfKeepalive(connection, on_failure=failures.append, flow_timer=0.05)
        keepalive.start()
        for _ in range(100):
            if keepalive.probes >= 2:
                break
            await asyncio.sleep(0.02)
        assert keepalive.probes >= 2 and failures == []
        await server.close()  # the server goes away: the flow fails
        for _ in range(100):
            if failures:
                break
            await asyncio.sleep(0.02)
        assert len(failures) == 1 and not keepalive.running


async def test_registrar_reaches_a_websocket_client_over_its_connection(tmp_path: Path) -> None:
    """REGISTER over WS, then a request for the AoR arrives from a UDP caller and is proxied
    back to the WebSocket client over the connection it registered from (RFC 7118 §5)."""
    config = ServerConfig(
        listen=("udp:127.0.0.1:0", "ws:127.0.0.1:0"),
        domains=("127.0.0.1",),
        data_dir=str(tmp_path),
        auth=False,
        log_level="warning",
    ).validate()
    server = Server(config)
    await server.start()
    try:
        assert server.endpoint is not None
        udp = server.endpoint.local_address("UDP")
        ws_addr = server.endpoint.local_address("WS")
        assert udp is not None and ws_addr is not None
        async with connect(f"ws://127.0.0.1:{ws_addr.port}/", subprotocols=["sip"]) as ws:
            port = ws.local_address[1]
            register = sip_request(
                "REGISTER",
                "sip:127.0.0.1",
                extra=f"Contact: <sip:alice@127.0.0.1:{port};transport=ws>\r\nExpires: 300\r\n",
            )
            await ws.send(register.decode())
            answer = await recv_sip(ws)
            assert answer.status_code == 200, answer

            async with Endpoint(timers=FAST) as caller:
                await caller.listen("udp:127.0.0.1:0")
                message = Request(
                    "MESSAGE",
                    "sip:alice@127.0.0.1",
                    [
                        ("Max-Forwards", "70"),
                        ("From", f"<sip:bob@example.com>;tag={new_tag()}"),
                        ("To", "<sip:alice@127.0.0.1>"),
                        ("Call-ID", new_tag()),
                        ("CSeq", "1 MESSAGE"),
                        ("Content-Type", "text/plain"),
                    ],
                    b"hello over websocket",
                )
                pending = asyncio.ensure_future(caller.request(message, udp))
                incoming = await recv_sip(ws)
                assert isinstance(incoming, Request) and incoming.method == "MESSAGE"
                assert incoming.body == b"hello over websocket"
                assert incoming.via[0].transport == "WS"
                await ws.send(bytes(make_response(incoming, 200, to_tag=new_tag())).decode())
                response = await asyncio.wait_for(pending, 5.0)
                assert response.status_code == 200
    finally:
        await server.stop()
