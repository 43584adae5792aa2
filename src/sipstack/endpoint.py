"""The endpoint: the one place where asyncio meets the sans-I/O core.

It owns the listeners (UDP, TCP, TLS), the connection table, the transaction layer and
the single timer that drives it. Datagrams and framed stream messages are parsed and fed
to the transaction layer from the event loop's callbacks (no task per message); the events
that come out are sent by the transports or delivered to the transaction user:

- incoming requests go to the handler registered with :meth:`Endpoint.on_request`, as an
  :class:`IncomingRequest` that answers through its server transaction;
- outgoing requests are sent with :meth:`Endpoint.request` (await the final response) or
  :meth:`Endpoint.start_request` (callbacks), resolved by RFC 3263 and retried on the next
  target after a timeout, a transport failure or a 503 (RFC 3263 §4.3).

Example — an OPTIONS responder and a client pinging it::

    async with Endpoint() as server, Endpoint() as client:
        await server.listen("udp:127.0.0.1:5060")
        server.on_request(lambda req: req.respond(200))
        await client.listen("udp:127.0.0.1:0")
        response = await client.request(Request("OPTIONS", "sip:127.0.0.1:5060", [...]))
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import types
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from .errors import ParseError, SipTimeoutError, TransportError
from .message import Malformed, Request, Response, SipURI, make_response, parse, salvage
from .net import Address, strip_brackets
from .transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransactionTransportError,
    new_branch,
    new_tag,
)
from .transaction.timers import DEFAULT_TIMERS
from .transport.base import ListenSpec
from .transport.keepalive import stun_binding
from .transport.resolver import ResolveError, Resolver, is_ip_literal
from .transport.stream import Connection, ConnectionTable, StreamListener
from .transport.udp import UdpListener
from .transport.via import needs_congestion_control, stamp_via
from .transport.ws import connect_ws

log = logging.getLogger("sipstack.endpoint")

# First bytes of a datagram that may be keep-alive padding (a SIP message starts with a letter).
_PADDING = frozenset((b"", b"\r", b"\n", b"\x00", b" ", b"\t"))

TIMER_GRID = 0.002
"""Seconds: transaction timers fire at most this late, batched on this grid."""

WAIT_GRID = 0.1
"""Seconds: the timers that only end a transaction (D, I, J, K, L, M) fire on this coarser
grid (at most a sixteenth of their value late): at 200 calls/s a call's four such timers no
longer cost a wake-up each, but share one with twenty calls'."""

Handler = Callable[["IncomingRequest"], Awaitable[None] | None]
ResponseCallback = Callable[[Response], None]


class IncomingRequest:
    """A request received by the endpoint, with the means to answer it."""

    __slots__ = ("_to_tag", "deferred", "endpoint", "request", "source", "transaction")

    def __init__(
        self, endpoint: Endpoint, request: Request, source: Address, tx: ServerTransaction | None
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.source = source
        self.transaction = tx
        self._to_tag: str | None = None
        self.deferred = False

    def defer(self) -> None:
        """The handler will answer later (e.g. when a proxied branch answers): the endpoint
        does not send 500 when it returns unanswered."""
        self.deferred = True

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def answered(self) -> bool:
        """Whether a final response has been sent."""
        tx = self.transaction
        return tx is None or tx.final_status is not None

    @property
    def to_tag(self) -> str:
        """The To tag this element puts in its responses (the request's own, if it had one)."""
        if self._to_tag is None:
            self._to_tag = self.request.to.tag or new_tag()
        return self._to_tag

    def respond(
        self,
        status: int | Response,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Answer through the server transaction; a final response carries a To tag."""
        if self.transaction is None:
            raise RuntimeError("an ACK is not answered")
        if isinstance(status, Response):
            response = status
        else:
            to_tag = self.to_tag if status > 100 else None
            response = make_response(self.request, status, reason, to_tag=to_tag, headers=headers, body=body)
            if self.endpoint.user_agent and not response.has_header("server"):
                response.add_header("Server", self.endpoint.user_agent)
        self.endpoint.send_response(self.transaction, response)
        return response


class _Waiter:
    """What a client transaction's events go to."""

    __slots__ = ("future", "on_error", "on_final", "on_provisional")

    def __init__(
        self,
        future: asyncio.Future[Response] | None,
        on_provisional: ResponseCallback | None,
        on_final: ResponseCallback | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.future = future
        self.on_provisional = on_provisional
        self.on_final = on_final
        self.on_error = on_error


class Endpoint:
    """Listeners, connections and transactions of one SIP element."""

    def __init__(
        self,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        resolver: Resolver | None = None,
        strict: bool = True,
        user_agent: str | None = "sipstack",
        invite_trying_delay: float | None = 0.2,
        max_message_size: int = 65535,
        max_connections: int = 4096,
        idle_timeout: float = 600.0,
        tls_server_context: Any = None,
        tls_client_context: Any = None,
        reuse_port: bool = False,
        alias_tcp: bool = False,
        via_alias: bool = False,
    ) -> None:
        self.layer = TransactionLayer(timers, invite_trying_delay=invite_trying_delay, wait_grid=WAIT_GRID)
        self.resolver = resolver or Resolver()
        self.strict = strict
        """Parse incoming messages strictly (a UA) or only what a proxy needs (§16.3)."""
        self.user_agent = user_agent
        self.max_message_size = max_message_size
        self.tls_server_context = tls_server_context
        self.reuse_port = reuse_port
        self.connections = ConnectionTable(
            self,
            max_connections=max_connections,
            max_message_size=max_message_size,
            idle_timeout=idle_timeout,
            client_ssl=tls_client_context,
            alias_tcp=alias_tcp,  # RFC 5923 aliases over plain TCP (TLS: always, certificate checked)
        )
        self.via_alias = via_alias
        """Offer the TLS connections this endpoint opens for reuse: ``alias`` in the Via (RFC 5923)."""
        self.listeners: list[UdpListener | StreamListener] = []
        self._handler: Handler | None = None
        self._stray_response: Callable[[Response, Address], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held = 0
        self._inbox: list[tuple[Request | Response, Address]] = []
        self._outbox: list[tuple[bytes, Address, Any]] = []
        self._request_udp: list[UdpListener] = []
        # Answers of ``is_local`` (a proxy asks for every Via and Route) and of the UDP
        # listener lookup, per message otherwise; reset whenever the listeners change.
        self._local_cache: dict[tuple[str, int | None], bool] = {}
        self._udp_cache: dict[tuple[bool, bool], UdpListener] = {}
        self._address_cache: dict[tuple[str, bool], Address | None] = {}
        self.draining = False
        self.stats = {"requests_in": 0, "responses_in": 0, "malformed": 0, "sent": 0, "send_errors": 0}
        self.tracer: Callable[[str, bytes, Address], None] | None = None
        """Wire trace (``sipstack options -v``): called with ("recv" or "send", the message's
        bytes, the peer's address) for every message received or handed to a transport."""

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Endpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def listen(self, spec: str | ListenSpec, *, for_requests: bool = False) -> Address:
        """Listen on ``udp:HOST:PORT``, ``tcp:…`` or ``tls:…`` (port 0: any); the address
        bound, as written in Vias. A UDP socket ``for_requests`` sends this endpoint's own
        requests (its port in their Via), the others answer: with several worker processes
        sharing a port, each worker's responses then come back to it."""
        self._loop = asyncio.get_running_loop()
        if isinstance(spec, str):
            spec = ListenSpec.parse(spec)
        listener: UdpListener | StreamListener
        if spec.transport == "UDP":
            listener = await UdpListener.create(self, spec, reuse_port=self.reuse_port and not for_requests)
            listener.on_unreachable = self._unreachable
            if for_requests:
                # Responses to this worker's requests come to this socket, requests to the
                # shared one: each is read whenever the other wakes up, in one batch.
                for shared in self.listeners:
                    if isinstance(shared, UdpListener):
                        shared.siblings.append(listener)
                        listener.siblings.append(shared)
                self._request_udp.append(listener)
                self._listeners_changed()
                log.info("sending requests from %s", listener.local)
                return listener.local
        else:
            listener = await StreamListener.create(
                self.connections, spec, self.tls_server_context, reuse_port=self.reuse_port
            )
            self._speak(spec.transport)
        self.listeners.append(listener)
        self._listeners_changed()
        self._start_sweeper()
        log.info("listening on %s", listener.local)
        return listener.local

    def _listeners_changed(self) -> None:
        self._local_cache.clear()
        self._udp_cache.clear()
        self._address_cache.clear()

    def on_stray_response(self, callback: Callable[[Response, Address], None]) -> None:
        """Receive responses that match no client transaction (a proxy forwards 2xx
        retransmissions statelessly, RFC 6026 §7.1)."""
        self._stray_response = callback

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            period = max(1.0, min(30.0, self.connections.idle_timeout / 4))
            self._sweeper = self.loop.call_later(period, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        self.connections.sweep_idle()
        self._start_sweeper()

    def on_request(self, handler: Handler) -> Handler:
        """Register the handler of incoming requests (usable as a decorator). It gets an
        :class:`IncomingRequest`; a coroutine handler that returns without a final answer
        gets a 500 sent for it. Without a handler, requests are answered 501."""
        self._handler = handler
        return handler

    async def drain(self, timeout: float) -> None:
        """Refuse new requests (503, RFC 3261 §21.5.4: clients move to another server), stop
        accepting connections, and let the handlers of requests in progress finish (at most
        ``timeout`` seconds). Sockets stay open so that their answers still go out."""
        self.draining = True
        for listener in self.listeners:
            if isinstance(listener, StreamListener):
                listener.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def close(self) -> None:
        for listener in [*self.listeners, *self._request_udp]:
            listener.close()
        self.listeners.clear()
        self._request_udp.clear()
        self._listeners_changed()
        self.connections.close_all()
        for handle in (self._timer, self._sweeper):
            if handle is not None:
                handle.cancel()
        self._timer = self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- transport user (called from the event loop's callbacks) ----------------------------

    def datagram_received(self, data: bytes, source: Address, listener: UdpListener) -> None:
        if data[:1] in _PADDING and not data.strip(b"\r\n\x00 \t"):
            return  # keep-alive padding some phones send over UDP: nothing to answer
        if self.tracer is not None:
            self.tracer("recv", data, source)
        try:
            message = parse(data, strict=self.strict)
        except ParseError as exc:
            self._malformed(data, exc, source)
            return
        if self._held:
            self._inbox.append((message, source))  # handled at end_batch
            return
        self._received(message, source)

    def stream_message(
        self, message: Request | Response | Malformed, source: Address, connection: Connection
    ) -> None:
        if self.tracer is not None:
            self.tracer("recv", message.data if isinstance(message, Malformed) else bytes(message), source)
        if isinstance(message, Malformed):
            self._malformed(message.data, message.error, source)
            return
        self._received(message, source)

    def connection_closed(self, connection: Connection) -> None:
        """RFC 3261 §18.4: a connection that fails is reported to the transactions that are
        waiting on it (e.g. a TLS 1.3 server refusing our certificate after the handshake)."""
        log.debug("connection %r closed", connection)
        waiting = self.layer.client_transactions_on(connection.id)
        if not waiting:
            return
        now = self.loop.time()
        for tx in waiting:
            self.layer.transport_error(tx, now)
        self._process()

    def _unreachable(self, address: Address, errno: int) -> None:
        """RFC 3261 §18.4: an ICMP unreachable for a UDP destination fails the client
        transactions waiting on it now (a proxy answers 503 upstream, §16.9; a client tries
        the next RFC 3263 target) instead of after 32 s of retransmissions."""
        waiting = self.layer.client_transactions_to(address)
        if not waiting:
            return
        log.info(
            "%s unreachable (%s): failing %d request(s) sent there", address, os.strerror(errno), len(waiting)
        )
        now = self.loop.time()
        for tx in waiting:
            self.layer.transport_error(tx, now)
        self._process()

    # -- receiving -------------------------------------------------------------------------

    def _received(self, message: Request | Response, source: Address) -> None:
        now = self._loop.time()
        try:
            if isinstance(message, Request):
                self.stats["requests_in"] += 1
                stamp_via(message, source)  # RFC 3261 §18.2.1, RFC 3581 §4
                self.layer.receive_request(message, source, now)
            else:
                self.stats["responses_in"] += 1
                self.layer.receive_response(message, source, now)
        except ParseError as exc:  # a lazily checked part the transaction layer needed
            self._malformed(bytes(message), exc, source)
            return
        self._process()

    def _malformed(self, data: bytes, error: ParseError, source: Address) -> None:
        """A message that failed to parse: answer a request with the error's status when
        enough of it can be read (RFC 4475), drop responses and the rest; a log line either
        way."""
        self.stats["malformed"] += 1
        request = salvage(data)
        if request is None:
            log.warning("dropped malformed message from %s: %s (%d)", source, error.reason, error.status_code)
            return
        log.warning(
            "answered %d to malformed %s from %s: %s", error.status_code, request.method, source, error.reason
        )
        try:
            stamp_via(request, source)
            response = make_response(
                request,
                error.status_code,
                to_tag=new_tag(),
                headers=[("Warning", f'399 sipstack "{_warning_text(error.reason)}"')],
            )
            self.layer.reply_stateless(request, source, response)
        except ParseError:
            return
        self._process()

    # -- the transaction layer's events -----------------------------------------------------

    def _process(self) -> None:
        layer = self.layer
        while True:
            events = layer._events  # drain_events(), inline: this runs for every message
            if not events:
                break
            layer._events = []
            for event in events:
                kind = type(event)
                if kind is SendMessage:
                    self._send(event.data, event.address, event.transaction)  # type: ignore[union-attr]
                elif kind is ResponseReceived:
                    self._deliver_response(event)  # type: ignore[arg-type]
                elif kind is RequestReceived:
                    self._deliver_request(event)  # type: ignore[arg-type]
                elif kind is TransactionTimeout or kind is TransactionTransportError:
                    self._fail(event)  # type: ignore[arg-type]
                elif kind is TransactionTerminated:
                    # What the TU hung on the transaction (a waiter, a proxy's response
                    # context) points back at it through callbacks: let go, so that
                    # reference counting frees the call now instead of a full collection.
                    event.transaction.user_data = None  # type: ignore[union-attr]
        self._arm_timer()

    def _arm_timer(self) -> None:
        timer = self._timer
        if timer is not None and self.layer.deadlines.new_min >= self._timer_at:  # type: ignore[operator]
            return  # the common case, inline: nothing earlier than the wake-up already armed
        when = self.layer.timer_update(self._timer_at if timer is not None else None)
        if when is None:
            return
        # Wake-ups on a grid of TIMER_GRID seconds (never early): the transactions of calls
        # set apart by microseconds then fire in one wake-up, not one each.
        when = max(when, math.ceil(when / TIMER_GRID) * TIMER_GRID)
        if timer is not None:
            if self._timer_at is not None and self._timer_at <= when:
                return
            timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        when = self._timer_at or 0.0
        self._timer = self._timer_at = None
        # Never tell the layer it is earlier than the deadline it asked for (aioquic).
        self.layer.handle_timer(max(when, self._loop.time()))
        self._process()

    def _deliver_request(self, event: RequestReceived) -> None:
        incoming = IncomingRequest(self, event.request, event.source, event.transaction)  # type: ignore[arg-type]
        if self.draining:
            if incoming.transaction is not None:
                incoming.respond(503, "Shutting Down")
            return
        handler = self._handler
        if handler is None:
            if incoming.transaction is not None:
                incoming.respond(501)
            return
        try:
            result = handler(incoming)
        except Exception:
            log.exception("request handler failed on %s %s", event.request.method, event.request.uri_text)
            if not incoming.answered:
                incoming.respond(500)
            return
        if result is None:
            return
        if type(result) is not types.CoroutineType:
            if not inspect.isawaitable(result):
                return
            result = self._as_coroutine(result)
        # The handler's coroutine runs here up to its first real wait (most run to the end).
        try:
            task = start_eagerly(self._loop, result)
        except Exception:
            log.exception("request handler failed on %s %s", event.request.method, event.request.uri_text)
            self._unanswered(incoming)
            return
        if task is None:
            self._unanswered(incoming)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda task: self._handler_done(task, incoming))

    def _handler_done(self, task: asyncio.Task[Any], incoming: IncomingRequest) -> None:
        if task.cancelled():
            return  # shutting down
        exc = task.exception()
        if exc is not None:
            log.error(
                "request handler failed on %s %s",
                incoming.method,
                incoming.request.uri_text,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        self._unanswered(incoming)

    @staticmethod
    def _unanswered(incoming: IncomingRequest) -> None:
        """The TU contract: every request gets a final response."""
        if not incoming.answered and not incoming.deferred:
            incoming.respond(500, "Handler Did Not Answer")

    @staticmethod
    async def _as_coroutine(result: Awaitable[None]) -> None:
        """A handler's awaitable that is not a coroutine, as one."""
        await result

    def _deliver_response(self, event: ResponseReceived) -> None:
        tx = event.transaction
        if tx is None:
            if self._stray_response is not None:
                self._stray_response(event.response, event.source)
            else:
                log.debug("stray response %d from %s", event.response.status_code, event.source)
            return
        waiter: _Waiter | None = tx.user_data
        if waiter is None:
            return
        response = event.response
        if response.status_code < 200:
            if waiter.on_provisional is not None:
                waiter.on_provisional(response)
            return
        if waiter.on_final is not None:
            waiter.on_final(response)
        if waiter.future is not None and not waiter.future.done():
            waiter.future.set_result(response)

    def _fail(self, event: TransactionTimeout | TransactionTransportError) -> None:
        tx = event.transaction
        waiter = tx.user_data
        if not isinstance(waiter, _Waiter):
            return
        error: Exception
        if isinstance(event, TransactionTimeout):
            error = SipTimeoutError(f"no final response to {tx.method} (Timer {event.timer})")
        else:
            error = TransportError(f"could not send {tx.method} to {tx.address}")
        if waiter.on_error is not None:
            waiter.on_error(error)
        if waiter.future is not None and not waiter.future.done():
            waiter.future.set_exception(error)

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        """Send ``response`` through the server transaction ``transaction`` (what
        :meth:`IncomingRequest.respond` does once it has built the response)."""
        self.layer.respond(transaction, response, self._loop.time())
        self._process()

    # -- sending ---------------------------------------------------------------------------

    def begin_batch(self) -> None:
        """(TransportUser) The UDP datagrams of one wake-up are about to be handed over: they
        are parsed as they come, and passed to the transactions at :meth:`end_batch`; what
        they make this endpoint send goes after all of them (see ``transport.udp``)."""
        self._held += 1

    def end_batch(self) -> None:
        """(TransportUser) Pass the batch's messages on, in order; then send what they
        produced, in order; then deliver what failing sends reported to their transactions."""
        try:
            while self._held == 1 and self._inbox:
                inbox = self._inbox
                self._inbox = []
                for message, source in inbox:
                    try:
                        self._received(message, source)
                    except Exception:  # one message's failure must not cost the others
                        log.exception("handling a message from %s failed", source)
        finally:
            self._held -= 1
        if self._held or not self._outbox:
            return
        outbox = self._outbox
        self._outbox = []
        for data, address, tx in outbox:
            self._send_out(data, address, tx)
        if self.layer._events:
            self._process()

    def _send(self, data: bytes, address: Address, tx: Any) -> None:
        if self._held:
            self._outbox.append((data, address, tx))
            return
        self._send_out(data, address, tx)

    def _send_out(self, data: bytes, address: Address, tx: Any) -> None:
        if self.tracer is not None:
            self.tracer("send", data, address)
        try:
            if address.transport == "UDP":
                requests = tx is not None and isinstance(tx, ClientTransaction)
                self._udp_listener(address, requests=requests).send(data, address)
            else:
                connection = self.connections.find(address)
                if connection is None:
                    # RFC 3261 §18.2.2: the connection is gone; open one to received/sent-by.
                    task = self.loop.create_task(self._connect_and_send(data, address, tx))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    return
                connection.send(data)
            self.stats["sent"] += 1
        except (OSError, TransportError) as exc:
            self.stats["send_errors"] += 1
            log.warning("cannot send to %s: %s", address, exc)
            if tx is not None:
                self.layer.transport_error(tx, self.loop.time())

    async def _connect_and_send(self, data: bytes, address: Address, tx: Any) -> None:
        try:
            connection = await self.connections.connect(
                address._replace(connection=None), server_hostname=address.server_name
            )
            connection.send(data)
            self.stats["sent"] += 1
        except (TimeoutError, OSError) as exc:
            self.stats["send_errors"] += 1
            log.warning("cannot connect to %s: %s", address, exc)
            if tx is not None:
                self.layer.transport_error(tx, self.loop.time())
                self._process()

    def _udp_listener(self, address: Address, *, requests: bool = False) -> UdpListener:
        key = (requests, ":" in address.host)
        listener = self._udp_cache.get(key)
        if listener is None:
            listener = self._udp_cache[key] = self._find_udp_listener(*key)
        return listener

    def _find_udp_listener(self, requests: bool, v6: bool) -> UdpListener:
        for listener in [*self._request_udp, *self.listeners] if requests else self.listeners:
            if isinstance(listener, UdpListener) and (":" in listener.local.host) == v6:
                return listener
        raise TransportError(f"no UDP listener for {'IPv6' if v6 else 'IPv4'}: call listen() first")

    def _stream_listener(self, transport: str, v6: bool) -> StreamListener | None:
        for listener in self.listeners:
            if (
                isinstance(listener, StreamListener)
                and listener.transport_name == transport
                and (":" in listener.local.host) == v6
            ):
                return listener
        return None

    # -- SIP Outbound and WebSocket flows (RFC 5626, RFC 7118) --------------------------------

    def _speak(self, transport: str) -> None:
        """Let RFC 3263 resolution yield ``transport`` (WS/WSS: ``transport=ws`` URIs)."""
        if transport not in self.resolver.supported:
            self.resolver.supported = (*self.resolver.supported, transport)

    async def connect_ws(self, uri: str, *, origin: str | None = None) -> Connection:
        """Open a SIP WebSocket flow to ``uri`` (``ws://host:port/`` or ``wss://…``) as a
        client (RFC 7118); requests to its address (``ws:host:port``) then go over it, and
        requests the server sends over it reach :meth:`on_request`."""
        self._loop = asyncio.get_running_loop()
        connection = await connect_ws(self.connections, uri, origin=origin)
        self._speak(connection.transport_name)
        self._start_sweeper()
        return connection

    async def stun_binding(self, server: Address, **schedule: Any) -> Address:
        """This endpoint's reflexive address as ``server`` sees it: a STUN Binding request
        (RFC 5389) from the UDP socket requests are sent from, i.e. over the SIP flow
        (RFC 5626 §4.4.2). ``schedule``: ``rto``, ``rc``, ``rm`` of RFC 5389 §7.2.1."""
        return await stun_binding(self._udp_listener(server, requests=True), server, **schedule)

    def send_stateless(self, message: Request | Response, address: Address) -> None:
        """Send outside any transaction (an ACK for a 2xx, a proxied 2xx, RFC 6026)."""
        self.layer.send_stateless(message, address)
        self._process()

    # -- client requests -------------------------------------------------------------------

    async def targets(self, request: Request) -> list[Address]:
        """Where ``request`` goes (RFC 3263): its first Route if loose-routed, else its
        Request-URI. TLS targets carry that URI's host as ``server_name``: the domain the
        connection is verified against and that an aliased connection must be proved for."""
        uri = request.uri
        routes = request.route
        if routes and isinstance(routes[0].uri, SipURI) and routes[0].uri.lr:
            uri = routes[0].uri
        if not isinstance(uri, SipURI):
            raise TransportError(f"cannot route to a {uri.scheme}: URI")
        try:
            return await self.resolver.resolve(uri)
        except ResolveError as exc:
            raise TransportError(str(exc)) from exc

    def send_prepared(
        self,
        request: Request,
        address: Address,
        *,
        on_provisional: ResponseCallback | None = None,
        on_final: ResponseCallback | None = None,
        on_error: Callable[[Exception], None] | None = None,
        future: asyncio.Future[Response] | None = None,
        branch: str | None = None,
    ) -> ClientTransaction:
        """Start a client transaction for a request whose top Via is already right (a CANCEL
        shares its INVITE's Via and branch, RFC 3261 §9.1) towards a known address
        (``branch``: that Via's branch, when the caller just wrote it)."""
        tx = self.layer.send_request(request, address, self.loop.time(), branch=branch)
        tx.user_data = _Waiter(future, on_provisional, on_final, on_error)
        self._process()
        return tx

    def redirect_responses(self, tx: ClientTransaction, on_final: ResponseCallback | None) -> None:
        """From now on, give ``tx``'s final responses (2xx retransmissions, RFC 6026) to
        ``on_final`` alone, and nothing else of what it was started with."""
        tx.user_data = _Waiter(None, None, on_final) if on_final is not None else None

    def abandon(self, tx: ClientTransaction) -> None:
        """End a client transaction the TU gave up on (a branch cancelled long ago, §9.1)."""
        tx.user_data = None
        self.layer.abandon(tx)
        self._process()

    def pace_udp_reads(self, seconds: float) -> None:
        """Let each UDP socket rest ``seconds`` after a wake-up whose batch did not fill
        (``UdpListener.read_pause``): fewer, larger batches for up to that much latency."""
        for listener in [*self.listeners, *self._request_udp]:
            if isinstance(listener, UdpListener):
                listener.read_pause = seconds

    def local_address(self, transport: str, v6: bool = False) -> Address | None:
        """The listening address of ``transport`` (and IP family), as written in Vias and
        Record-Routes."""
        key = (transport, v6)
        try:
            return self._address_cache[key]
        except KeyError:
            pass
        found = None
        for listener in self.listeners:
            local = listener.local
            if local.transport == transport and (":" in local.host) == v6:
                found = local
                break
        self._address_cache[key] = found
        return found

    def is_local(self, host: str, port: int | None) -> bool:
        """Whether ``host:port`` names one of this endpoint's listeners (port None: 5060)."""
        key = (host, port)
        known = self._local_cache.get(key)
        if known is None:
            known = self._is_local(host, port)
            if len(self._local_cache) >= 1024:
                self._local_cache.clear()
            self._local_cache[key] = known
        return known

    def _is_local(self, host: str, port: int | None) -> bool:
        host = strip_brackets(host).lower()
        for listener in [*self.listeners, *self._request_udp]:
            local = listener.local
            default = 5061 if local.transport == "TLS" else 5060
            if local.host.lower() == host and local.port == (port or default):
                return True
        return False

    async def start_request(
        self,
        request: Request,
        address: Address,
        *,
        on_provisional: ResponseCallback | None = None,
        on_final: ResponseCallback | None = None,
        on_error: Callable[[Exception], None] | None = None,
        future: asyncio.Future[Response] | None = None,
        branch: str | None = None,
    ) -> ClientTransaction:
        """Send ``request`` to ``address`` in a new client transaction: a Via with a fresh
        branch (or ``branch``) is added; a UDP request too large for the path (§18.1.1)
        goes over TCP."""
        branch = branch or new_branch()
        if address.transport == "UDP":
            local = self._udp_listener(address, requests=True).local
            via = f"SIP/2.0/UDP {local.host_port};branch={branch};rport"
            request.prepend_header("Via", via)
            # §18.1.1 (the size without our Via, plus 200): serialised once, here — the
            # transaction sends these bytes (cached in the message).
            if needs_congestion_control(len(bytes(request)) - len(via) - 7 + 200):
                request.pop_value("via")
                address = Address("TCP", address.host, address.port)
        if address.transport != "UDP":
            v6 = ":" in address.host
            try:
                # The domain the target was resolved for (RFC 5922 §7.3, RFC 5923 virtual servers).
                connection = await self.connections.connect(address, server_hostname=address.server_name)
            except (TimeoutError, OSError) as exc:
                raise TransportError(f"cannot connect to {address}: {exc}") from exc
            address = address._replace(transport=connection.transport_name, connection=connection.id)
            listener = self._stream_listener(address.transport, v6)
            local = listener.local if listener else Address(address.transport, *connection.local)
            # RFC 5923 §5.2: offer a TLS connection we opened for requests back to us.
            alias = ";alias" if self.via_alias and address.transport == "TLS" and connection.outbound else ""
            request.prepend_header(
                "Via",
                f"SIP/2.0/{address.transport} {local.host_port};branch={branch};rport{alias}",
            )
        return self.send_prepared(
            request,
            address,
            on_provisional=on_provisional,
            on_final=on_final,
            on_error=on_error,
            future=future,
            branch=branch,
        )

    async def request(
        self,
        request: Request,
        target: Address | str | None = None,
        *,
        on_provisional: ResponseCallback | None = None,
    ) -> Response:
        """Send ``request`` and return its final response, trying each RFC 3263 target in
        turn after a timeout, a transport failure or a 503 (RFC 3263 §4.3). ``target``
        (an Address or ``udp:host:port``) skips resolution."""
        if isinstance(target, str):
            spec = ListenSpec.parse(target)
            host = strip_brackets(spec.host)
            name = None if is_ip_literal(host) else host.lower().rstrip(".")  # verified as given
            target = Address(spec.transport, host, spec.port, server_name=name)
        targets = [target] if target is not None else await self.targets(request)
        error: Exception | None = None
        response: Response | None = None
        for i, address in enumerate(targets):
            attempt = request.copy()
            assert isinstance(attempt, Request)
            future: asyncio.Future[Response] = self.loop.create_future()
            try:
                await self.start_request(attempt, address, on_provisional=on_provisional, future=future)
                response = await future
            except (SipTimeoutError, TransportError) as exc:
                error = exc
                log.info(
                    "%s to %s failed (%s)%s",
                    request.method,
                    address,
                    exc,
                    "; trying the next target" if i + 1 < len(targets) else "",
                )
                continue
            if response.status_code == 503 and i + 1 < len(targets):
                log.info("%s to %s: 503; trying the next target", request.method, address)
                continue
            return response
        if response is not None:
            return response
        raise error or TransportError("no target to send to")


def start_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any] | None:
    """Run ``coro`` at once, up to its first real suspension, and only then hand it to a Task
    (Python 3.12's eager tasks, for 3.11). A request handler that never waits on I/O — a
    proxied call whose target is an address, a registrar answering from memory — runs to
    the end inside the datagram callback and costs no Task and no trip through the loop.
    Returns the Task carrying the rest, or None when the coroutine finished."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(_resume(coro, yielded))


async def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Drive ``coro`` from where :func:`start_eagerly` left it: wait for what it yielded (a
    future, or None for a bare yield), then step it on. The coroutine reads the future's
    outcome itself (``Future.__await__`` returns or raises its result when resumed), and a
    cancellation of this Task cancels that future, which the coroutine sees the same way."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                # What a Task does with a future its coroutine yields: take it over.
                yielded._asyncio_future_blocking = False
                await yielded
        except (Exception, asyncio.CancelledError):
            pass
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


def _warning_text(reason: str) -> str:
    return reason.replace("\\", "").replace('"', "'")[:120]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux), asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Awaitable[Any]) -> Any:
    """Run ``main`` on :func:`new_event_loop`'s loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


__all__ = ["Endpoint", "IncomingRequest", "new_event_loop", "run"]
