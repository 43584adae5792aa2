"""RFC 3261 §18.4: an ICMP port unreachable for a UDP destination fails the transaction at
once — the client sees a transport error, the proxy answers as if a 503 came back (§16.9),
which goes upstream as 500 — instead of retransmitting for 32 s (Timer B/F)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sipkit import HOST, UdpClient, free_port, sip_request, udp_port

from sipstack.endpoint import Endpoint
from sipstack.errors import TransportError
from sipstack.message import Request
from sipstack.server import Server


def _closed_udp_port() -> int:
    return free_port()  # bound and closed again: nothing listens there


async def test_a_request_to_a_closed_port_fails_at_once_not_after_timer_f() -> None:
    port = _closed_udp_port()
    async with Endpoint() as client:
        await client.listen(f"udp:{HOST}:0")
        request = Request(
            "OPTIONS",
            f"sip:{HOST}:{port}",
            [
                ("Max-Forwards", "70"),
                ("From", "<sip:icmp@example.invalid>;tag=1"),
                ("To", f"<sip:{HOST}:{port}>"),
                ("Call-ID", "icmp-1@test"),
                ("CSeq", "1 OPTIONS"),
            ],
        )
        started = time.monotonic()
        with pytest.raises(TransportError):
            await asyncio.wait_for(client.request(request, f"udp:{HOST}:{port}"), 10)
        assert time.monotonic() - started < 3, "failed by a timer, not by the ICMP error"


async def test_the_proxy_answers_500_at_once_for_a_next_hop_that_is_not_there(
    make_server: Callable[..., Awaitable[Server]], udp_client: Callable[[], UdpClient]
) -> None:
    dead = _closed_udp_port()
    server = await make_server(default_route=f"sip:{HOST}:{dead}")
    client: Any = udp_client()
    request = sip_request("MESSAGE", "sip:someone@example.net", local_port=client.port, body=b"hi")
    started = time.monotonic()
    response = await client.arequest(request, udp_port(server), timeout=10)
    elapsed = time.monotonic() - started
    assert response is not None, "no answer within 10 s"
    assert response.status_code == 500, response
    assert elapsed < 3, f"answered after {elapsed:.1f} s: by Timer F, not by the ICMP error"
