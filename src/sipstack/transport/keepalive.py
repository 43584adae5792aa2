"""Flow keep-alives of SIP Outbound, client side (RFC 5626 §4.4).

A UA that registered a flow keeps it alive and watches it:

- over TCP, TLS and WebSocket (§4.4.1) it sends a ping — CRLF CRLF between messages, or a
  WebSocket Ping frame — and expects the pong within 10 seconds; no pong, or the
  connection closing, is a flow failure;
- over UDP (§4.4.2) it sends a STUN Binding request on the flow (the SIP socket, to the
  SIP server's address) and compares the XOR-MAPPED-ADDRESS of each answer with the
  first: a change means the NAT binding changed, which is a flow failure, as is a STUN
  transaction that times out.

Pings are sent at random intervals (§4.4): between 80 % and 100 % of the Flow-Timer the
registrar returned, else by default between 95 and 120 seconds on connection-oriented
transports and between 24 and 29 seconds over UDP (:func:`keepalive_interval`).

:func:`stun_binding` is the one-shot STUN query a UA also uses on its own, e.g. to learn
its reflexive address before registering.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..net import Address
from . import stun

if TYPE_CHECKING:
    from .stream import Connection
    from .udp import UdpListener

log = logging.getLogger("sipstack.transport")

PONG_TIMEOUT = 10.0
"""RFC 5626 §4.4.1: a pong must arrive within 10 seconds of the ping."""
DEFAULT_RELIABLE = (95.0, 120.0)
"""RFC 5626 §4.4: default keep-alive interval on connection-oriented transports."""
DEFAULT_UDP = (24.0, 29.0)
"""RFC 5626 §4.4: default keep-alive interval over UDP."""

FailureCallback = Callable[[str], object]


def keepalive_interval(
    flow_timer: float | None = None, *, reliable: bool = True, rng: random.Random | None = None
) -> float:
    """Seconds until the next keep-alive (RFC 5626 §4.4): uniformly between 80 % and 100 %
    of ``flow_timer`` (the Flow-Timer header field of the REGISTER response) when there is
    one, else between 95 and 120 s (``reliable``) or 24 and 29 s (UDP)."""
    draw = (rng or random).uniform
    if flow_timer is not None:
        if flow_timer <= 0:
            raise ValueError("Flow-Timer must be positive")
        return draw(0.8 * flow_timer, flow_timer)
    low, high = DEFAULT_RELIABLE if reliable else DEFAULT_UDP
    return draw(low, high)


class FlowFailed(Exception):
    """A keep-alive probe found the flow dead (RFC 5626 §4.4)."""


async def stun_binding(
    listener: UdpListener,
    server: Address,
    *,
    rto: float = stun.DEFAULT_RTO,
    rc: int = stun.DEFAULT_RC,
    rm: int = stun.DEFAULT_RM,
    software: str | None = None,
) -> Address:
    """Send a STUN Binding request from ``listener``'s socket to ``server`` and return the
    mapped (server-reflexive) address it answers, retransmitting on the RFC 5389 §7.2.1
    schedule (requests at 0, RTO, 3 RTO, 7 RTO …, ``rc`` of them, then ``rm`` RTO of
    waiting: 39.5 s in all with the defaults). Raises :class:`~.stun.StunTimeout` when no
    answer comes, :class:`~.stun.StunError` for an error response or a bad answer, and
    ``ConnectionError`` when the socket is closed."""
    loop = asyncio.get_running_loop()
    request, tid = stun.binding_request(software=software)
    tx = stun.StunTransaction(request, tid, rto=rto, rc=rc, rm=rm)
    answered: asyncio.Future[None] = loop.create_future()

    def on_response(message: stun.StunMessage, source: Address) -> None:
        if tx.receive(message) and not answered.done():
            answered.set_result(None)

    listener.stun_waiters[tid] = on_response
    try:
        data: bytes | None = tx.start(loop.time())
        while not tx.done:
            if data is not None:
                listener.send(data, server)
            deadline = tx.get_timer()
            assert deadline is not None
            await asyncio.wait([answered], timeout=max(0.0, deadline - loop.time()))
            if not tx.done:
                data = tx.handle_timer(max(deadline, loop.time()))
    finally:
        listener.stun_waiters.pop(tid, None)
    if tx.error is not None:
        raise tx.error
    assert tx.result is not None
    mapped = tx.result.mapped_address
    assert mapped is not None
    return Address("UDP", mapped[0], mapped[1])


class FlowKeepalive:
    """Keeps one flow alive: a task that sleeps a random interval, probes, and repeats.
    The first failed probe calls ``on_failure(reason)`` once and stops the task.

    ``flow_timer`` is the registrar's Flow-Timer (seconds), None for the defaults of
    RFC 5626 §4.4; ``rng`` makes the intervals reproducible in tests.
    """

    reliable = True

    def __init__(
        self,
        *,
        on_failure: FailureCallback,
        flow_timer: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.on_failure = on_failure
        self.flow_timer = flow_timer
        self.rng = rng or random.Random()
        self.probes = 0
        """Successful probes so far."""
        self.failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def next_interval(self) -> float:
        return keepalive_interval(self.flow_timer, reliable=self.reliable, rng=self.rng)

    def start(self) -> None:
        if self.running:
            return
        self.failure = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.next_interval())
                await self.probe()
                self.probes += 1
        except FlowFailed as exc:
            self._fail(str(exc))

    def _fail(self, reason: str) -> None:
        if self.failure is not None:
            return
        self.failure = reason
        self.stop()
        log.info("flow keep-alive: %s", reason)
        try:
            self.on_failure(reason)
        except Exception:
            log.exception("flow failure callback failed")

    async def probe(self) -> None:  # pragma: no cover - subclasses
        """One keep-alive exchange; raises :class:`FlowFailed` when the flow is dead."""
        raise NotImplementedError


class CrlfKeepalive(FlowKeepalive):
    """RFC 5626 §4.4.1 over a TCP, TLS or WebSocket :class:`Connection`: ping, then a pong
    within ``pong_timeout`` (10 s). The connection closing is reported at once."""

    def __init__(
        self,
        connection: Connection,
        *,
        on_failure: FailureCallback,
        flow_timer: float | None = None,
        pong_timeout: float = PONG_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_failure=on_failure, flow_timer=flow_timer, rng=rng)
        self.connection = connection
        self.pong_timeout = pong_timeout
        self._pong: asyncio.Future[None] | None = None

    def start(self) -> None:
        if self.running:
            return
        if self.connection.closed:
            self._fail(f"{self.connection!r} is closed")
            return
        self.connection.on_pong = self._on_pong
        self.connection.close_callbacks.append(self._on_close)
        super().start()

    def stop(self) -> None:
        if self.connection.on_pong == self._on_pong:
            self.connection.on_pong = None
        if self._on_close in self.connection.close_callbacks:
            self.connection.close_callbacks.remove(self._on_close)
        super().stop()

    def _on_pong(self) -> None:
        if self._pong is not None and not self._pong.done():
            self._pong.set_result(None)

    def _on_close(self, connection: Connection) -> None:
        self._fail(f"{connection!r} closed")

    async def probe(self) -> None:
        connection = self.connection
        self._pong = asyncio.get_running_loop().create_future()
        try:
            connection.send_ping()
        except (OSError, RuntimeError) as exc:
            raise FlowFailed(f"cannot send a keep-alive on {connection!r}: {exc}") from exc
        try:
            await asyncio.wait_for(self._pong, self.pong_timeout)
        except TimeoutError:
            raise FlowFailed(f"no pong on {connection!r} within {self.pong_timeout:g} s") from None
        finally:
            self._pong = None


class StunKeepalive(FlowKeepalive):
    """RFC 5626 §4.4.2 over UDP: a STUN Binding request from ``listener`` to ``server`` at
    each interval. ``mapped`` is the reflexive address seen first (or given); an answer
    with another one, or no answer (the RFC 5389 schedule, see :func:`stun_binding`), is
    a flow failure."""

    reliable = False

    def __init__(
        self,
        listener: UdpListener,
        server: Address,
        *,
        on_failure: FailureCallback,
        flow_timer: float | None = None,
        mapped: Address | None = None,
        rto: float = stun.DEFAULT_RTO,
        rc: int = stun.DEFAULT_RC,
        rm: int = stun.DEFAULT_RM,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_failure=on_failure, flow_timer=flow_timer, rng=rng)
        self.listener = listener
        self.server = server
        self.mapped = mapped
        self.rto, self.rc, self.rm = rto, rc, rm

    async def probe(self) -> None:
        try:
            mapped = await stun_binding(self.listener, self.server, rto=self.rto, rc=self.rc, rm=self.rm)
        except (stun.StunError, OSError) as exc:
            raise FlowFailed(f"STUN keep-alive to {self.server} failed: {exc}") from exc
        if self.mapped is None:
            self.mapped = mapped
        elif mapped != self.mapped:
            # RFC 5626 §4.4.2: a changed XOR-MAPPED-ADDRESS is a failure of the flow.
            raise FlowFailed(f"NAT binding changed: {self.mapped.host_port} became {mapped.host_port}")
