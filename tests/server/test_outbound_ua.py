"""The sipstack UA's SIP Outbound (RFC 5626) against sipstack proxies, three ``sipstack serve``
processes: two edge proxies (``[outbound] edge = true``, ``--default-route`` to the registrar)
and a registrar of example.com asking for a 1 s Flow-Timer. Alice (a :class:`UserAgent` in
this process, TCP, auto-answering) registers over one flow per edge (reg-id 1 and 2); bob (a
UserAgent over UDP) calls her AoR through the registrar.

- Killing one flow's connection (``ss -K`` on alice's socket, so neither process is told by
  its own code; a transport abort when ``ss`` cannot) makes the flow fail, and calls to the AoR
  keep arriving over the other flow (the dead flow's edge answers 430, the registrar moves on).
- The edge of the flow calls arrive over stops answering (SIGSTOP: the connection stays open,
  the pongs stop): alice detects it within the registrar's Flow-Timer plus the pong timeout
  and closes the flow; once the edge runs again it answers 430 for it, and the next call
  arrives over the other flow.

Back-off is long (the failed flow stays down for the test). Children are killed by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sipkit import HOST, ServeProcess, free_port

from sipstack.message import Request, parse
from sipstack.net import Address
from sipstack.ua import Flow, OutboundConfig, UserAgent

AOR = "sip:alice@example.com"
FLOW_TIMER = 1  # seconds: the registrar's Flow-Timer
PONG_TIMEOUT = 0.5
WAIT = 5.0


@dataclass
class Net:
    registrar_port: int
    edges: list[ServeProcess]
    edge_ports: list[int]


@pytest.fixture
def net(serve: Callable[..., ServeProcess], tmp_path: Path) -> Net:
    def start(name: str, config: str, *extra: str) -> tuple[ServeProcess, int]:
        port = free_port()
        (tmp_path / f"{name}.toml").write_text(config)
        process = serve(
            "--config", str(tmp_path / f"{name}.toml"), "--listen", f"udp:{HOST}:{port}",
            "--listen", f"tcp:{HOST}:{port}", "--no-auth", "--data-dir", str(tmp_path / name), *extra,
        )  # fmt: skip
        assert process.wait_options(port), process.log()
        return process, port

    _, registrar_port = start(
        "registrar", f"[outbound]\nflow_timer = {FLOW_TIMER}\n", "--domain", "example.com"
    )
    route = f"sip:{HOST}:{registrar_port};transport=tcp"
    edges = [
        start(
            f"edge{i}", "[outbound]\nedge = true\n", "--domain", f"edge{i}.invalid", "--default-route", route
        )
        for i in (1, 2)
    ]
    return Net(registrar_port, [e for e, _ in edges], [p for _, p in edges])


@pytest.fixture
async def ua(net: Net) -> AsyncIterator[tuple[UserAgent, UserAgent, Any, list[tuple[Request, Address]]]]:
    """Alice registered over both edges, bob, alice's outbound registration and the INVITEs
    alice received (with the address each came from)."""
    async with (
        UserAgent(AOR, listen=[f"tcp:{HOST}:0"], auto_answer=True) as alice,
        UserAgent(
            "sip:bob@example.com", listen=[f"udp:{HOST}:0"], proxy=f"sip:{HOST}:{net.registrar_port}"
        ) as bob,
    ):
        invites: list[tuple[Request, Address]] = []

        def trace(direction: str, data: bytes, address: Address) -> None:
            with contextlib.suppress(ValueError):
                message = parse(data)
                if direction == "recv" and isinstance(message, Request) and message.method == "INVITE":
                    invites.append((message, address))

        alice.endpoint.tracer = trace
        config = OutboundConfig(
            base_time_all_failed=30.0, base_time_some_ok=60.0, max_time=120.0, pong_timeout=PONG_TIMEOUT
        )
        proxies = [f"sip:{HOST}:{port};transport=tcp" for port in net.edge_ports]
        outbound = await alice.register_outbound(proxies, expires=600, config=config)
        for flow, port in zip(outbound.flows, net.edge_ports, strict=True):
            assert flow.state == "registered" and flow.outbound_supported  # Require: outbound
            assert flow.flow_timer == FLOW_TIMER  # the registrar's, through the edge
            response = flow.registration.response
            (path,) = response.path  # the edge's Path: a flow token, ;ob
            assert path.uri.port == port and path.uri.user and "ob" in path.uri.params, str(response)
            await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 1, WAIT)
        yield alice, bob, outbound, invites


async def call_arrives_over(bob: UserAgent, outbound: Any, invites: list) -> Flow:
    """Bob calls alice's AoR; the call is answered; returns the flow the INVITE came over."""
    before = len(invites)
    call = await bob.invite(AOR, timeout=WAIT)
    _, source = invites[before]
    (flow,) = [f for f in outbound.flows if f.connection is not None and f.connection.id == source.connection]
    await call.hangup()
    return flow


def kill_connection(flow: Flow, edge_port: int) -> str:
    """Destroy alice's socket of ``flow`` from outside (``ss -K``: a RST to the edge)."""
    assert flow.connection is not None
    local = flow.connection.local[1]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["ss", "-K", "-t", "dst", HOST, "dport", "=", f":{edge_port}", "sport", "=", f":{local}"],
            capture_output=True,
            timeout=10,
        )
        if done.returncode == 0 and str(local) in done.stdout.decode():
            return "ss -K"
    flow.connection._transport.abort()  # no ss -K here (not root): the same RST from within
    return "abort"


async def test_killing_one_flows_connection_keeps_calls_arriving_over_the_other(net: Net, ua: Any) -> None:
    _, bob, outbound, invites = ua
    used = await call_arrives_over(bob, outbound, invites)
    other = next(f for f in outbound.flows if f is not used)
    assert kill_connection(used, net.edge_ports[outbound.flows.index(used)]) in ("ss -K", "abort")
    await used.wait_for(lambda f: f.state != "registered", WAIT)
    assert any(e.kind == "failed" for e in used.events)
    await asyncio.sleep(0.2)  # the edge notices its side of the connection is gone
    for _ in range(2):
        assert await call_arrives_over(bob, outbound, invites) is other
    assert other.state == "registered" and other.failures == 0


async def test_a_silent_edge_is_detected_within_the_flow_timer(net: Net, ua: Any) -> None:
    _, bob, outbound, invites = ua
    # The flow the registrar tries first: its edge goes silent, so failing over is needed.
    flow = await call_arrives_over(bob, outbound, invites)
    other = next(f for f in outbound.flows if f is not flow)
    edge = net.edges[outbound.flows.index(flow)]
    stopped = time.monotonic()
    os.kill(edge.proc.pid, signal.SIGSTOP)  # the connection stays open; no pong comes
    try:
        await flow.wait_for(lambda f: f.state != "registered", FLOW_TIMER + PONG_TIMEOUT + WAIT)
        (failed,) = [e for e in flow.events if e.kind == "failed"]
        assert "no pong" in failed.reason
        # RFC 5626 §4.4.1: a ping within the Flow-Timer, its pong due within the pong timeout.
        assert failed.at - stopped <= FLOW_TIMER + PONG_TIMEOUT + 0.3
        assert other.state == "registered" and other.failures == 0
    finally:
        os.kill(edge.proc.pid, signal.SIGCONT)
    await asyncio.sleep(0.3)  # the edge sees the connection alice dropped
    assert await call_arrives_over(bob, outbound, invites) is other
