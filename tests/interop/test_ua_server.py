"""Two sipstack UserAgents through ``sipstack serve`` (registrar + record-routing proxy, a
child process on 127.0.0.1, see serverkit.py), with digest authentication on REGISTER (401)
and on calls (``[proxy] auth_calls``: 407 Proxy-Authenticate).

Alice and Bob register with their passwords (the server offers SHA-512-256, SHA-256 and
MD5; the UA answers the strongest). Alice calls ``sip:bob@127.0.0.1`` through the server as
outbound proxy: the INVITE is challenged with 407 and sent again; the proxy finds Bob's
binding (and may go on over TCP, the INVITE being too large for UDP by RFC 3261 §18.1.1:
a UA listens on both) and Record-Routes, so that both dialogs hold the proxy in their route
set; re-INVITE, UPDATE, INFO and BYE then go through it (loose routing, RFC 3261
§12.2.1.1). Over UDP and over TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverkit import HOST, ServerKit

from sipstack.transaction import TimerConfig
from sipstack.ua import CallState, IncomingCall, UserAgent

pytestmark = pytest.mark.interop

TIMERS = TimerConfig(T1=0.1, T2=0.8, T4=1.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerKit]:
    kit = ServerKit(tmp_path / "server", config={"proxy": {"auth_calls": True}})
    kit.start()
    try:
        kit.add_user(f"alice@{HOST}", "alice-secret")
        kit.add_user(f"bob@{HOST}", "bob-secret")
        yield kit
    finally:
        kit.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_through_sipstack_serve_with_auth_and_record_route(
    server: ServerKit, transport: str
) -> None:
    proxy = f"sip:{HOST}:{server.port}" + (";transport=tcp" if transport == "tcp" else "")
    listen = [f"{transport}:{HOST}:0"]
    async with (
        UserAgent(f"sip:alice@{HOST}", listen=listen, proxy=proxy, timers=TIMERS) as alice,
        UserAgent(f"sip:bob@{HOST}", listen=listen, proxy=proxy, timers=TIMERS, rtp_port=50000) as bob,
    ):
        await alice.register(password="alice-secret", expires=300)
        await bob.register(password="bob-secret", expires=300)
        bindings = {r.aor: r.contact for r in server.registrations()}
        assert set(bindings) == {f"sip:alice@{HOST}", f"sip:bob@{HOST}"}, server.log()
        calls: list[IncomingCall] = []
        infos: list[bytes] = []

        @bob.on_call
        async def answer(call: IncomingCall) -> None:
            calls.append(call)
            call.on_request(lambda request: infos.append(request.body) and None)
            await call.ring()
            await call.accept()

        call = await alice.invite(f"sip:bob@{HOST}", timeout=10)
        assert call.state is CallState.ESTABLISHED
        # The INVITE was challenged by the proxy (407) and sent again with credentials.
        assert call.invite is not None and call.invite.cseq.seq == 2
        assert call.invite.proxy_authorization[0].params["algorithm"] == "SHA-512-256"
        (callee,) = calls
        # The proxy Record-Routed: each side's route set is the proxy.
        assert call.dialog is not None and callee.dialog is not None
        assert len(call.dialog.route_set) >= 1 and len(callee.dialog.route_set) >= 1
        assert str(server.port) in call.dialog.route_set[0]
        assert call.dialog.remote_target.startswith("sip:bob@")

        await call.reinvite(direction="sendonly")
        assert callee.streams[0].direction == "recvonly"
        await callee.update()  # Bob's re-offer: Alice's answer keeps him on hold
        assert callee.streams[0].direction == "recvonly"
        await call.update(direction="sendrecv")  # Alice takes him back
        assert call.streams[0].direction == "sendrecv" and callee.streams[0].direction == "sendrecv"
        await call.info(b"Signal=7\r\nDuration=100\r\n")
        assert infos == [b"Signal=7\r\nDuration=100\r\n"]
        response = await callee.bye()
        assert response.status_code == 200
        assert await call.wait_ended(5) == "remote bye"
        await asyncio.sleep(0)
