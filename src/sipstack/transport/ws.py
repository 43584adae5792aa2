"""SIP over WebSocket (RFC 7118): ``ws:`` and ``wss:`` listeners, and WebSocket clients.

The WebSocket protocol itself (RFC 6455: handshake, framing, masking, ping, close) is the
sans-I/O core of the ``websockets`` library; this module drives it from an
:class:`asyncio.Protocol`, so a WebSocket connection is one more :class:`Connection` in the
endpoint's connection table, fed from the event loop's callbacks like TCP and TLS.

RFC 7118 rules kept here:

- §4.1: the handshake must negotiate the ``sip`` subprotocol; a server refuses a handshake
  without it (HTTP 400), a client fails one whose answer does not select it.
- §4.2: each WebSocket message (text or binary, possibly fragmented) carries exactly one SIP
  message; the WebSocket framing delimits it, so no Content-Length is needed. Messages are
  sent as text frames when they are valid UTF-8, as binary frames otherwise.
- §5: the Via transport is ``WS`` or ``WSS``; a server never opens a WebSocket connection —
  requests for a WebSocket client go over the connection the client opened (the table
  refuses to connect to a ``WS``/``WSS`` address).

Keep-alives: a WebSocket message that is exactly CRLF CRLF is answered with a CRLF message
(RFC 5626 §3.5.1 pings sent by browser UAs), and :meth:`WsConnection.send_ping` sends a
WebSocket Ping frame, whose Pong counts as the keep-alive pong (RFC 5626 §4.4.1).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse
from websockets.protocol import OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ..errors import ParseError
from ..message import Malformed, parse
from .stream import Connection

if TYPE_CHECKING:
    from .stream import ConnectionTable

log = logging.getLogger("sipstack.transport")

SUBPROTOCOL = Subprotocol("sip")  # RFC 7118 §4.1 (IANA WebSocket Subprotocol Name Registry)
HANDSHAKE_TIMEOUT = 10.0
"""Seconds a peer has to complete the opening handshake."""
CLOSE_TIMEOUT = 5.0
"""Seconds to wait for the peer to close the TCP connection after the closing handshake."""

_PING = b"\r\n\r\n"
_PONG = b"\r\n"


class WsConnection(Connection):
    """One SIP WebSocket connection, accepted (server) or opened (client)."""

    def __init__(
        self, table: ConnectionTable, transport_name: str, *, outbound: bool, protocol: Protocol
    ) -> None:
        super().__init__(table, transport_name, outbound=outbound)
        self.ws = protocol
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the opening handshake has succeeded (or with its error)."""
        self.path = ""
        """The request target of the handshake (``/`` for most SIP WebSocket servers)."""
        self._fragments: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if transport.is_closing():  # refused by the table (connection limit)
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)
        if isinstance(self.ws, ClientProtocol):
            self.ws.send_request(self.ws.connect())
            self._flush()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, HttpRequest):
                self._handshake_request(event)
            elif isinstance(event, HttpResponse):
                self._handshake_response(event)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.opened.done():
            reason = self.ws.handshake_exc or exc or ConnectionError("closed during the handshake")
            self.opened.set_exception(_as_connection_error(reason))
            self.opened.exception()  # retrieved: no "never retrieved" warning
        super().connection_lost(exc)

    # -- the opening handshake -------------------------------------------------------------

    def _handshake_request(self, request: HttpRequest) -> None:
        ws = self.ws
        assert isinstance(ws, ServerProtocol)
        response = ws.accept(request)
        ws.send_response(response)
        self._flush()
        if response.status_code == 101:
            self.path = request.path
            self._open()
        else:
            log.info(
                "%s handshake from %s refused (%d): %s",
                self.transport_name,
                self.remote.host_port,
                response.status_code,
                ws.handshake_exc,
            )

    def _handshake_response(self, response: HttpResponse) -> None:
        ws = self.ws
        if ws.handshake_exc is not None:
            return  # the connection closes; connection_lost reports the error
        if ws.subprotocol != SUBPROTOCOL:
            # RFC 7118 §4.1: no "sip" in the answer — not a SIP WebSocket server.
            ws.handshake_exc = ConnectionError("the server did not select the 'sip' subprotocol")
            ws.fail(1002, "sip subprotocol required")
            self._flush()
            self._abort_later()
            return
        self._open()

    def _open(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.opened.done():
            self.opened.set_result(None)

    def _handshake_timeout(self) -> None:
        self._timer = None
        if not self.opened.done():
            log.info(
                "%s %s: no WebSocket handshake in time: closing", self.transport_name, self.remote.host_port
            )
            self.abort()
        elif self.ws.close_expected():
            self.abort()  # the closing handshake timed out

    # -- WebSocket messages --------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if not frame.fin:
                self._fragments.append(bytes(frame.data))
                return
            if self._fragments:
                self._fragments.append(bytes(frame.data))
                data = b"".join(self._fragments)
                self._fragments = []
            else:
                data = bytes(frame.data)
            self._message(data)
        elif opcode is Opcode.PONG:
            if self.on_pong is not None:
                self.on_pong()
        elif opcode is Opcode.CLOSE:
            self._abort_later()
        # PING: the protocol has queued the Pong already (RFC 6455 §5.5.2).

    def _message(self, data: bytes) -> None:
        """One WebSocket message: one SIP message (RFC 7118 §4.2), or a CRLF keep-alive."""
        if data == _PING:
            self.send(_PONG)  # RFC 5626 §3.5.1
            return
        if data == _PONG:
            if self.on_pong is not None:
                self.on_pong()
            return
        try:
            message = parse(data, strict=False)
        except ParseError as exc:
            self.table.user.stream_message(Malformed(exc, data), self.remote, self)
            return
        self.table.user.stream_message(message, self.remote, self)

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send one SIP message as one WebSocket message (RFC 7118 §4.2)."""
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.state is not OPEN or not self.opened.done():
            raise ConnectionError(f"{self.transport_name} connection to {self.remote.host_port} is not open")
        self.last_activity = time.monotonic()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            self.ws.send_binary(data)
        else:
            self.ws.send_text(data)
        self._flush()

    def send_ping(self) -> None:
        """A WebSocket Ping; its Pong is the keep-alive pong."""
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.state is not OPEN:
            raise ConnectionError(f"{self.transport_name} connection to {self.remote.host_port} is not open")
        self.ws.send_ping(os.urandom(4))
        self._flush()

    def close(self) -> None:
        """Start the closing handshake (RFC 6455 §7); the TCP connection follows."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self.ws.state is OPEN:
            self.ws.send_close(1000)
            self._flush()
            self._abort_later()
        else:
            transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():  # end of stream: half-close where possible
                try:
                    transport.write_eof()
                except (OSError, RuntimeError):
                    transport.close()
            else:
                transport.close()

    def _abort_later(self) -> None:
        """The peer should now close; do it for it if it does not (RFC 6455 §7.1.1)."""
        if self._timer is None and self._transport is not None and not self.closed:
            self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._handshake_timeout)

    def __repr__(self) -> str:
        return f"<WsConnection #{self.id} {self.transport_name} {self.remote.host_port}>"


def server_connection_factory(table: ConnectionTable, transport_name: str) -> Callable[[], WsConnection]:
    """What a ``ws:``/``wss:`` listener builds for each accepted connection."""

    def factory() -> WsConnection:
        protocol = ServerProtocol(subprotocols=[SUBPROTOCOL], max_size=table.max_message_size)
        return WsConnection(table, transport_name, outbound=False, protocol=protocol)

    return factory


async def connect_ws(
    table: ConnectionTable,
    uri: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    origin: str | None = None,
    timeout: float | None = None,
) -> WsConnection:
    """Open a SIP WebSocket connection to ``uri`` (``ws://host:port/path`` or ``wss://…``)
    as a client, and wait for the opening handshake. The connection joins ``table``, so
    requests to its remote address (transport ``WS``/``WSS``) go over it, and requests
    the server sends over it reach the table's user. Raises ``ConnectionError`` (an
    ``OSError``) or ``TimeoutError``."""
    try:
        ws_uri = parse_uri(uri)
    except InvalidURI as exc:
        raise ValueError(f"bad WebSocket URI {uri!r}: {exc}") from None
    transport_name = "WSS" if ws_uri.secure else "WS"
    loop = asyncio.get_running_loop()
    if len(table) >= table.max_connections:
        raise ConnectionError(f"connection limit ({table.max_connections}) reached")

    def factory() -> WsConnection:
        protocol = ClientProtocol(
            ws_uri,
            origin=origin,  # type: ignore[arg-type]
            subprotocols=[SUBPROTOCOL],
            max_size=table.max_message_size,
        )
        return WsConnection(table, transport_name, outbound=True, protocol=protocol)

    wait = table.connect_timeout if timeout is None else timeout
    host = ws_uri.host.strip("[]")
    _, connection = await asyncio.wait_for(
        loop.create_connection(
            factory,
            host,
            ws_uri.port,
            ssl=(ssl_context or table.client_ssl_context()) if ws_uri.secure else None,
            server_hostname=host if ws_uri.secure else None,
        ),
        wait,
    )
    try:
        await asyncio.wait_for(asyncio.shield(connection.opened), wait)
    except BaseException:
        connection.abort()
        raise
    return connection


def _as_connection_error(exc: BaseException) -> ConnectionError:
    if isinstance(exc, ConnectionError):
        return exc
    error = ConnectionError(f"WebSocket handshake failed: {exc}")
    error.__cause__ = exc
    return error
