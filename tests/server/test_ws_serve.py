"""A WebSocket client (RFC 7118) registers and is called through a ``sipstack serve`` process.

The client is the ``websockets`` library (subprotocol ``sip``) sending SIP text frames, as a
browser would: its Via and Contact name a random ``.invalid`` host (RFC 7118 §5.2 — it cannot
accept connections, so nothing may be sent to its Contact). It registers with SIP Outbound
(``+sip.instance``, ``reg-id``, ``;ob``: ``Require: outbound`` in the 200) or without it (a
plain Contact); either way ``sipstack serve`` — the registrar, and so the first hop — keeps
the WebSocket connection as the binding's flow. A sipstack UA
over UDP then calls the AoR: the INVITE comes over the WebSocket, the client answers 200, the
caller's ACK and BYE (routed by the dialog's route set) come over the same WebSocket, and the
call ends with the BYE's 200. The ``serve`` child is killed by PID on teardown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sipkit import HOST, ServeProcess, free_port, new_id
from websockets.asyncio.client import ClientConnection, connect

from sipstack.message import Request, Response, make_response, parse
from sipstack.ua import UserAgent

DOMAIN = "example.com"
AOR = f"sip:alice@{DOMAIN}"
INSTANCE = "urn:uuid:7e1f0b5e-8a3c-4f7d-9c1a-2b3c4d5e6f70"
WAIT = 5.0


async def next_message(ws: ClientConnection, timeout: float = WAIT) -> Request | Response:
    """The next SIP message in a WebSocket frame (CRLF pongs skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            data = await ws.recv(decode=False)
            if data.strip(b"\r\n"):
                return parse(data)


@pytest.mark.parametrize("outbound", [True, False], ids=["outbound", "plain"])
async def test_a_websocket_client_registers_and_is_called_through_serve(
    serve: Callable[..., ServeProcess], tmp_path: Path, outbound: bool
) -> None:
    port, wsp = free_port(), free_port()
    server = serve(
        "--listen", f"udp:{HOST}:{port}", "--listen", f"tcp:{HOST}:{port}", "--listen", f"ws:{HOST}:{wsp}",
        "--domain", DOMAIN, "--no-auth", "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    assert await asyncio.to_thread(server.wait_options, port), server.log()
    invalid = f"{new_id()}.invalid"
    contact = f"<sip:alice@{invalid};transport=ws{';ob' if outbound else ''}>"
    async with connect(f"ws://{HOST}:{wsp}/", subprotocols=["sip"]) as ws:
        assert ws.subprotocol == "sip"
        register = (
            f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS {invalid};branch=z9hG4bK{new_id()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{AOR}>;tag={new_id()}\r\nTo: <{AOR}>\r\n"
            f"Call-ID: {new_id()}@ws\r\nCSeq: 1 REGISTER\r\n"
            + (
                f'Contact: {contact};+sip.instance="<{INSTANCE}>";reg-id=1\r\n'
                if outbound
                else f"Contact: {contact}\r\n"
            )
            + ("Supported: outbound, path, gruu\r\n" if outbound else "")
            + "Expires: 600\r\nContent-Length: 0\r\n\r\n"
        )
        await ws.send(register)  # a text frame
        answer = await next_message(ws)
        assert isinstance(answer, Response) and answer.status_code == 200, str(answer)
        # RFC 7118 §5 / RFC 5626 §6: the WebSocket is the flow; the registrar is its first hop.
        assert answer.header_values("Require") == (["outbound"] if outbound else []), str(answer)
        assert answer.via[0].transport == "WS" and answer.via[0].received == HOST

        async with UserAgent(
            f"sip:bob@{DOMAIN}", listen=[f"udp:{HOST}:0"], proxy=f"sip:{HOST}:{port}"
        ) as bob:
            call = bob.dial(AOR)
            invite = await next_message(ws)
            while not (isinstance(invite, Request) and invite.method == "INVITE"):
                invite = await next_message(ws)
            assert invite.via[0].transport in ("WS", "WSS") and invite.to.uri.user == "alice"
            ok = make_response(
                invite,
                200,
                to_tag=new_id(),
                headers=[
                    *[("Record-Route", value) for value in invite.header_values("Record-Route")],
                    ("Contact", contact),
                    ("Content-Type", "application/sdp"),
                ],
                body=b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            )
            await ws.send(bytes(ok).decode())
            await asyncio.wait_for(call.wait_answered(), WAIT)
            ack = await next_message(ws)
            assert isinstance(ack, Request) and ack.method == "ACK", str(ack)
            assert ack.call_id == invite.call_id

            hangup = asyncio.ensure_future(call.hangup())
            bye = await next_message(ws)
            assert isinstance(bye, Request) and bye.method == "BYE" and bye.call_id == invite.call_id
            await ws.send(bytes(make_response(bye, 200)).decode())
            await asyncio.wait_for(hangup, WAIT)
