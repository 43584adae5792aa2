"""SIP Outbound (RFC 5626) in the user agent, over real loopback sockets.

The registrars are sipstack servers (:class:`sipstack.server.Server`, in this process, no
digest), one per flow: each is both the outbound proxy of its flow and a registrar of
``example.com``. Only what a plain RFC 3261 registrar does is relied on (its 200 lists the
bindings); what is checked is what the UA sends and how it keeps and recovers its flows:

- two TCP flows: every REGISTER has the Route of its own proxy (``;lr``), ``Supported:
  outbound``, a Contact with ``;ob``, its ``reg-id`` and the UA's ``+sip.instance`` (kept in a
  file across UA objects); both flows share a Call-ID and count CSeq up together; CRLF
  keep-alives get their pongs; the UA's own requests go over a flow with ``;ob`` in the
  Contact of a dialog-forming one (§4.3);
- a flow whose connection the server closes is detected at once and registered again over a
  new connection after the §4.5 delay (50–100 % of the 90 s-like base while the other flow is
  up), the other flow untouched;
- a flow whose pongs stop (a relay that goes silent, the connection left open) is detected
  within Flow-Timer + pong timeout and re-formed;
- registrars going down: attempts fail, the waits double up to max-time, the lower base is
  used once every flow has failed, and the flows come back when the registrars do;
- a UDP flow through a NAT that re-binds: the STUN keep-alive sees the new mapped address,
  which is a flow failure (§4.4.2), and the UA registers again with the new reflexive Contact.

The two relays used (a TCP relay that can go silent, a UDP NAT that can re-bind) forward real
bytes between real sockets; they stand for the network, not for a SIP peer. Back-off times
are shortened through :class:`OutboundConfig`; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netkit import free_port
from sipstack.message import Request, parse
from sipstack.message.headers import parse_contacts
from sipstack.net import Address
from sipstack.server import Server, ServerConfig
from sipstack.transaction import TimerConfig
from sipstack.ua import Flow, OutboundConfig, UserAgent

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)
HOST = "127.0.0.1"
AOR = "sip:alice@example.com"


@dataclass
class Registrar:
    """An in-process ``sipstack serve`` (UDP and TCP on one port) and every request it got."""

    port: int
    data_dir: Path
    ws_port: int | None = None
    server: Server | None = None
    received: list[tuple[Request, Address]] = field(default_factory=list)

    async def start(self) -> Registrar:
        listen = [f"udp:{HOST}:{self.port}", f"tcp:{HOST}:{self.port}"]
        if self.ws_port is not None:
            listen.append(f"ws:{HOST}:{self.ws_port}")
        config = ServerConfig(
            listen=tuple(listen),
            domains=("example.com",),
            data_dir=str(self.data_dir),
            auth=False,
            log_level="warning",
            min_expires=1,
        ).validate()
        self.server = Server(config)
        await self.server.start()
        assert self.server.endpoint is not None
        self.server.endpoint.tracer = self._trace
        return self

    def _trace(self, direction: str, data: bytes, address: Address) -> None:
        if direction != "recv":
            return
        with contextlib.suppress(ValueError):
            message = parse(data, strict=False)
            if isinstance(message, Request):
                self.received.append((message, address))

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop()

    def registers(self) -> list[tuple[Request, Address]]:
        return [(r, a) for r, a in self.received if r.method == "REGISTER"]

    def connection_from(self, local_port: int) -> Any:
        """The server's connection whose peer is the UA's socket ``127.0.0.1:local_port``."""
        assert self.server is not None and self.server.endpoint is not None
        for connection in self.server.endpoint.connections.by_id.values():
            if connection.remote.port == local_port and not connection.closed:
                return connection
        raise AssertionError(f"no connection from port {local_port}")

    def uri(self, transport: str = "tcp") -> str:
        return f"sip:{HOST}:{self.port};transport={transport}"


@pytest.fixture
async def registrars(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Registrar]]]:
    made: list[Registrar] = []

    async def make(ws: bool = False) -> Registrar:
        port = free_port()
        registrar = Registrar(port, tmp_path / f"registrar{len(made)}", ws_port=free_port() if ws else None)
        made.append(registrar)
        return await registrar.start()

    yield make
    for registrar in made:
        await registrar.stop()


@pytest.fixture
async def agent() -> AsyncIterator[Callable[..., Awaitable[UserAgent]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(**options: Any) -> UserAgent:
            options.setdefault("timers", FAST)
            options.setdefault("listen", [f"tcp:{HOST}:0"])
            return await stack.enter_async_context(UserAgent(AOR, **options))

        yield make


def fast_config(**changes: Any) -> OutboundConfig:
    options: dict[str, Any] = {
        "base_time_all_failed": 0.3,
        "base_time_some_ok": 0.6,
        "max_time": 2.0,
        "keepalive": "always",
        "flow_timer": 0.3,
        "pong_timeout": 0.4,
        "rng": random.Random(5626),
    }
    options.update(changes)
    return OutboundConfig(**options)


def contact_of(request: Request) -> tuple[Any, dict[str, str | None]]:
    (contact,) = parse_contacts(request.header("contact") or "")
    return contact.uri, contact.params


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


def events(flow: Flow, kind: str) -> list[Any]:
    return [event for event in flow.events if event.kind == kind]


# -- two TCP flows --------------------------------------------------------------------------------


async def test_two_tcp_flows_register_with_instance_reg_id_ob_and_keepalives(
    registrars: Callable[..., Awaitable[Registrar]],
    agent: Callable[..., Awaitable[UserAgent]],
    tmp_path: Path,
) -> None:
    first, second = await registrars(), await registrars()
    instance_file = tmp_path / "ua" / "instance"
    ua = await agent(instance_file=instance_file)
    outbound = await ua.register_outbound([first.uri(), second.uri()], expires=300, config=fast_config())
    assert [flow.state for flow in outbound.flows] == ["registered", "registered"]

    # RFC 5626 §4.1: one instance URN, kept in the file; a new UA object with it reuses it.
    instance = ua.instance_id
    assert instance.startswith("urn:uuid:") and instance_file.read_text().strip() == instance
    assert UserAgent(AOR, instance_file=instance_file).instance_id == instance

    sent = []
    for reg_id, registrar in ((1, first), (2, second)):
        ((request, source),) = registrar.registers()
        sent.append(request)
        # §4.2: a Route to this flow's own proxy, loose-routed.
        assert [str(r.uri) for r in request.route] == [f"sip:{HOST}:{registrar.port};transport=tcp;lr"]
        assert "outbound" in [tag.lower() for tag in request.supported]
        uri, params = contact_of(request)
        assert "ob" in uri.params and uri.transport == "tcp"
        assert params["reg-id"] == str(reg_id)
        assert params["+sip.instance"] == f"<{instance}>"
        # The flow is the UA's connection to that proxy: the REGISTER came over it.
        flow = outbound.flow(reg_id)
        assert flow.connection is not None and source.port == flow.connection.local[1]
        assert flow.address == Address("TCP", HOST, registrar.port)
        # What a plain RFC 3261 registrar answers: our binding, as registered.
        assert flow.registration.bindings == [str(uri)]
        assert flow.registration.granted == 300
    assert outbound.flow(1).connection is not outbound.flow(2).connection
    # RFC 3261 §10.2: the flows share a Call-ID and one CSeq space.
    assert sent[0].call_id == sent[1].call_id
    assert sorted(r.cseq.seq for r in sent) == [1, 2]

    # §4.4.1: CRLF pings every 0.24–0.3 s, each answered by a pong from the server.
    for flow in outbound.flows:
        await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 2, 3.0)
        assert flow.failures == 0 and flow.successful

    # §4.3: the UA's own requests go over a flow; a dialog-forming one carries ;ob.
    call = ua.dial("sip:nobody@example.com")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call.wait_answered(), 5.0)
    invites = [(r, a) for r, a in first.received if r.method == "INVITE"]
    assert invites, "the INVITE did not go through flow 1's proxy"
    invite, source = invites[0]
    assert source.port == outbound.flow(1).connection.local[1]  # the flow's connection
    invite_uri, _ = contact_of(invite)
    assert "ob" in invite_uri.params
    assert [str(r.uri) for r in invite.route] == [f"sip:{HOST}:{first.port};transport=tcp;lr"]

    # Removal: Expires 0 over each flow, keeping its reg-id.
    responses = await ua.unregister()
    assert [r.status_code for r in responses] == [200, 200]
    for reg_id, registrar in ((1, first), (2, second)):
        last, _ = registrar.registers()[-1]
        assert last.expires == 0 and contact_of(last)[1]["reg-id"] == str(reg_id)
    assert ua.outbound is None


async def test_closed_flow_is_detected_and_registered_again_after_back_off(
    registrars: Callable[..., Awaitable[Registrar]], agent: Callable[..., Awaitable[UserAgent]]
) -> None:
    first, second = await registrars(), await registrars()
    ua = await agent()
    config = fast_config(flow_timer=5.0)  # keep-alives on, but slow: the close alone must tell
    outbound = await ua.register_outbound([first.uri(), second.uri()], expires=300, config=config)
    flow1, flow2 = outbound.flows
    old = flow1.connection
    assert old is not None

    killed = time.monotonic()
    first.connection_from(old.local[1]).close()  # the registrar (or a NAT) drops the flow
    await flow1.wait_for(lambda f: f.registrations == 2, 5.0)

    (failed,) = events(flow1, "failed")
    assert "closed" in failed.reason
    assert failed.at - killed < 0.5  # the close is seen at once, not at the next ping
    (waiting,) = events(flow1, "waiting")
    # §4.5: the other flow is up, so base-time is the higher one; the previous flow was
    # registered (keep-alives on, but no ping was due yet: not "successful"), first failure.
    assert waiting.base_time == config.base_time_some_ok and waiting.consecutive_failures == 0
    assert 0.5 * config.base_time_some_ok <= waiting.delay <= config.base_time_some_ok
    (_, again) = events(flow1, "registered")
    assert again.at - failed.at >= waiting.delay - 0.01
    assert again.at - failed.at < waiting.delay + 1.0

    # A new connection, the same reg-id, the same Call-ID with a higher CSeq.
    assert flow1.connection is not None and flow1.connection is not old
    assert flow1.connection.local[1] != old.local[1]
    registers = first.registers()
    assert len(registers) == 2
    (before, _), (after, source) = registers
    assert source.port == flow1.connection.local[1]
    assert contact_of(after)[1]["reg-id"] == "1" and after.call_id == before.call_id
    assert after.cseq.seq > before.cseq.seq
    # The other flow never noticed.
    assert flow2.registrations == 1 and flow2.failures == 0 and flow2.state == "registered"
    assert len(second.registers()) == 1


async def test_websocket_flow_is_kept_with_ping_frames_and_reopened(
    registrars: Callable[..., Awaitable[Registrar]], agent: Callable[..., Awaitable[UserAgent]]
) -> None:
    """RFC 7118 flows: the UA opens the WebSocket connection itself (a server never does),
    keeps it with WebSocket Ping frames, and opens a new one when it is closed."""
    registrar = await registrars(ws=True)
    ua = await agent()
    config = fast_config(flow_timer=0.3)
    outbound = await ua.register_outbound([f"sip:{HOST}:{registrar.ws_port};transport=ws"], config=config)
    (flow,) = outbound.flows
    assert flow.address == Address("WS", HOST, registrar.ws_port)
    ((register, _),) = registrar.registers()
    assert register.via[0].transport == "WS" and "ob" in contact_of(register)[0].params
    await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 2, 3.0)
    old = flow.connection
    assert old is not None

    registrar.connection_from(old.local[1]).close()
    await flow.wait_for(lambda f: f.registrations == 2, 5.0)
    assert "closed" in events(flow, "failed")[0].reason
    assert (
        flow.connection is not None and flow.connection is not old and flow.connection.transport_name == "WS"
    )
    await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 1, 3.0)
    assert len(registrar.registers()) == 2


class TcpRelay:
    """Forwards each TCP connection to ``target``; :meth:`go_silent` stops forwarding on
    the connections open now (bytes are swallowed, nothing is closed) — a network path that
    died without telling anyone. New connections are forwarded again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.base_events.Server | None = None
        self.pairs: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, HOST, 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        pair: dict[str, Any] = {"silent": False, "writers": (writer, up_writer)}
        self.pairs.append(pair)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pump(src, dst, pair))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if not pair["silent"]:
                    dst.write(data)
        with contextlib.suppress(Exception):
            dst.close()

    def go_silent(self) -> None:
        for pair in self.pairs:
            pair["silent"] = True

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for pair in self.pairs:
            for writer in pair["writers"]:
                writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_missing_pong_is_a_flow_failure(
    registrars: Callable[..., Awaitable[Registrar]], agent: Callable[..., Awaitable[UserAgent]]
) -> None:
    first, second = await registrars(), await registrars()
    relay = TcpRelay(first.port)
    relay_port = await relay.start()
    try:
        ua = await agent()
        config = fast_config(flow_timer=0.3, pong_timeout=0.4)
        proxies = [f"sip:{HOST}:{relay_port};transport=tcp", second.uri()]
        outbound = await ua.register_outbound(proxies, expires=300, config=config)
        flow1 = outbound.flow(1)
        await flow1.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 1, 3.0)
        assert flow1.successful
        old = flow1.connection

        silenced = time.monotonic()
        relay.go_silent()
        await flow1.wait_for(lambda f: f.registrations == 2, 5.0)
        (failed,) = events(flow1, "failed")
        assert "no pong" in failed.reason
        # Noticed within one keep-alive period plus the pong timeout (§4.4.1).
        # (A ping sent just before the silence may already be waiting: a few ms less.)
        assert 0.35 <= failed.at - silenced <= config.flow_timer + config.pong_timeout + 0.3
        (waiting,) = events(flow1, "waiting")
        # The flow had been successful (a pong came), so consecutive-failures starts again.
        assert waiting.consecutive_failures == 0 and waiting.base_time == config.base_time_some_ok
        # Re-formed: a new connection through the relay, which forwards new connections.
        assert flow1.connection is not old and flow1.state == "registered"
        await flow1.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 1, 3.0)
        assert len(first.registers()) == 2 and outbound.flow(2).failures == 0
    finally:
        await relay.close()


async def test_registrars_down_back_off_doubles_then_flows_recover(
    registrars: Callable[..., Awaitable[Registrar]],
    agent: Callable[..., Awaitable[UserAgent]],
    tmp_path: Path,
) -> None:
    first, second = await registrars(), await registrars()
    ua = await agent()
    config = fast_config(base_time_all_failed=0.1, base_time_some_ok=0.3, max_time=0.8, flow_timer=0.2)
    outbound = await ua.register_outbound([first.uri(), second.uri()], expires=300, config=config)
    flow1, flow2 = outbound.flows
    for flow in outbound.flows:
        await flow.wait_for(lambda f: f.successful, 3.0)

    await second.stop()  # flow 2's proxy goes away: its connection closes, connects are refused
    await flow2.wait_for(lambda f: len(events(f, "attempt-failed")) >= 2, 5.0)
    waits = events(flow2, "waiting")
    # Flow 1 is still up: the higher base; each failed attempt doubles the wait.
    assert [w.base_time for w in waits[:3]] == [config.base_time_some_ok] * len(waits[:3])
    assert [w.consecutive_failures for w in waits[:3]] == list(range(len(waits[:3])))
    for w in waits:
        full = config.wait_time(w.consecutive_failures, all_failed=w.base_time == config.base_time_all_failed)
        assert 0.5 * full <= w.delay <= full

    await first.stop()  # now every flow has failed
    await flow1.wait_for(lambda f: len(events(f, "waiting")) >= 2, 5.0)
    assert events(flow1, "waiting")[0].base_time == config.base_time_all_failed
    await flow2.wait_for(lambda f: events(f, "waiting")[-1].base_time == config.base_time_all_failed, 5.0)
    # The waits stop growing at max-time.
    await flow2.wait_for(lambda f: events(f, "waiting")[-1].consecutive_failures >= 4, 8.0)
    assert all(w.delay <= config.max_time for w in flow2.events if w.kind == "waiting")
    assert all(flow.state != "registered" for flow in outbound.flows)

    # The registrars come back on their ports: both flows register again, and after a pong
    # their consecutive failures no longer count.
    for registrar in (first, second):
        registrar.received.clear()
        await registrar.start()
    await outbound.wait_registered(timeout=5.0)
    for flow in outbound.flows:
        await flow.wait_for(lambda f: f.successful, 3.0)
    await asyncio.sleep(0.3)
    assert [flow.state for flow in outbound.flows] == ["registered", "registered"]
    assert [len(r.registers()) >= 1 for r in (first, second)] == [True, True]
    assert contact_of(first.registers()[0][0])[1]["reg-id"] == "1"
    assert contact_of(second.registers()[0][0])[1]["reg-id"] == "2"


# -- a UDP flow through a NAT that re-binds -------------------------------------------------------


class UdpNat:
    """A user-space NAT for one inside client: datagrams to ``inside`` go out to the server
    from an outside socket (the binding); the server's answers to that socket come back to
    the client. :meth:`rebind` drops the binding, so the client's next datagram goes out from
    a new outside port — what a NAT does when its binding times out or it restarts."""

    def __init__(self, server_port: int) -> None:
        self.server = (HOST, server_port)
        self.inside: asyncio.DatagramTransport | None = None
        self.outside: asyncio.DatagramTransport | None = None
        self.client: tuple[str, int] | None = None
        self.outside_ports: list[int] = []
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.pump: asyncio.Task[None] | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        nat = self

        class Inside(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                nat.client = addr
                nat.queue.put_nowait(data)

        self.inside, _ = await loop.create_datagram_endpoint(Inside, local_addr=(HOST, 0))
        self.pump = loop.create_task(self._pump())
        return self.inside.get_extra_info("sockname")[1]

    async def _pump(self) -> None:
        """Send the client's datagrams out in order, opening a binding when there is none."""
        nat = self

        class Outside(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if addr == nat.server and nat.client is not None and nat.inside is not None:
                    nat.inside.sendto(data, nat.client)

        loop = asyncio.get_running_loop()
        while True:
            data = await self.queue.get()
            if self.outside is None:
                self.outside, _ = await loop.create_datagram_endpoint(Outside, local_addr=(HOST, 0))
                self.outside_ports.append(self.outside.get_extra_info("sockname")[1])
            self.outside.sendto(data, self.server)

    def rebind(self) -> None:
        outside, self.outside = self.outside, None
        if outside is not None:
            outside.close()

    async def close(self) -> None:
        self.rebind()
        if self.pump is not None:
            self.pump.cancel()
            await asyncio.gather(self.pump, return_exceptions=True)
        if self.inside is not None:
            self.inside.close()


async def test_stun_keepalive_sees_the_nat_rebind_and_the_flow_is_registered_again(
    registrars: Callable[..., Awaitable[Registrar]], agent: Callable[..., Awaitable[UserAgent]]
) -> None:
    registrar = await registrars()
    nat = UdpNat(registrar.port)
    nat_port = await nat.start()
    try:
        ua = await agent(listen=[f"udp:{HOST}:0"], pair_tcp=False)
        config = fast_config(flow_timer=0.3, stun_rto=0.1, stun_rc=3, stun_rm=4, reflexive_contact=True)
        outbound = await ua.register_outbound([f"sip:{HOST}:{nat_port}"], expires=300, config=config)
        (flow,) = outbound.flows
        first_port = nat.outside_ports[0]
        # The reflexive address (STUN through the NAT) is the NAT's outside socket, and it is
        # what the Contact names.
        assert flow.mapped == Address("UDP", HOST, first_port)
        ((register, source),) = registrar.registers()
        assert source.port == first_port
        uri, params = contact_of(register)
        assert (uri.host, uri.port, "ob" in uri.params, params["reg-id"]) == (HOST, first_port, True, "1")
        await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 2, 3.0)

        nat.rebind()
        await flow.wait_for(lambda f: f.registrations == 2, 5.0)
        (failed,) = events(flow, "failed")
        second_port = nat.outside_ports[1]
        assert failed.reason == f"NAT binding changed: {HOST}:{first_port} became {HOST}:{second_port}"
        # A single flow: every flow has failed, so the lower base-time applies.
        (waiting,) = events(flow, "waiting")
        assert waiting.base_time == config.base_time_all_failed
        assert 0.5 * config.base_time_all_failed <= waiting.delay <= config.base_time_all_failed
        # Registered again from the new binding, with it as the Contact; same reg-id, Call-ID.
        (_, (again, source)) = registrar.registers()
        assert source.port == second_port
        uri, params = contact_of(again)
        assert (uri.port, params["reg-id"], again.call_id) == (second_port, "1", register.call_id)
        assert flow.mapped == Address("UDP", HOST, second_port)
        await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 1, 3.0)
        assert flow.state == "registered"
    finally:
        await nat.close()
