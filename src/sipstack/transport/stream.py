"""SIP over TCP and TLS (RFC 3261 §18): connections, framing, and the connection table.

WebSocket connections (RFC 7118, :mod:`.ws`) are connections of this table too, and
RFC 5923 aliases (:mod:`.alias`) are looked up with the connections.

Each connection frames messages by Content-Length (:class:`StreamParser`); a message that
cannot be framed (no Content-Length, larger than the bound) closes the connection with a
log line, a framed message that does not parse is handed up as ``Malformed`` so that it can
be answered. The table reuses a connection to the same peer, bounds the number of
connections, and closes idle ones.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections.abc import Callable

from ..errors import ParseError
from ..message import Ping, Pong, Request, StreamParser
from ..net import Address
from .alias import AliasTable, certificate_matches
from .base import ListenSpec, TransportUser

log = logging.getLogger("sipstack.transport")
_ids = itertools.count(1)


class Connection(asyncio.Protocol):
    """One TCP or TLS connection, accepted or opened."""

    def __init__(self, table: ConnectionTable, transport_name: str, *, outbound: bool) -> None:
        self.table = table
        self.transport_name = transport_name
        self.id = next(_ids)
        self.outbound = outbound
        self.parser = StreamParser(max_size=table.max_message_size, client=outbound, strict=False)
        self.remote = Address(transport_name, "", 0, self.id)
        self.local: tuple[str, int] = ("", 0)
        self.server_name: str | None = None
        """The domain an outbound TLS connection was opened for and verified against (SNI and
        hostname check); None: the IP address, or an accepted connection."""
        self.name_key: tuple[str, str, int, str] | None = None  # its key in ``by_name``
        self.last_activity = time.monotonic()
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.on_pong: Callable[[], None] | None = None
        """Called on each keep-alive pong (RFC 5626 §4.4.1) received on this connection."""
        self.close_callbacks: list[Callable[[Connection], None]] = []
        """Called once when the connection is gone (a flow failure, RFC 5626 §4.4)."""

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.remote = Address(self.transport_name, peer[0], peer[1], self.id)
        self.local = (sock[0], sock[1])
        if not self.table.add(self):
            log.warning(
                "%s connection from %s refused: %d connections open",
                self.transport_name,
                self.remote.host_port,
                self.table.max_connections,
            )
            transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        try:
            events = self.parser.feed(data)
        except ParseError as exc:
            log.warning(
                "%s %s: closing connection: %s (%d)",
                self.transport_name,
                self.remote.host_port,
                exc.reason,
                exc.status_code,
            )
            self.close()
            return
        table = self.table
        user = table.user
        aliases = table.aliases if self.transport_name in table.aliases.transports else None
        for event in events:
            kind = type(event)
            if kind is Ping:
                self.send(b"\r\n")  # RFC 5626 §3.5.1: pong
            elif kind is Pong:
                if self.on_pong is not None:
                    self.on_pong()
            else:
                if aliases is not None and kind is Request:
                    aliases.note(event, self)  # type: ignore[arg-type]  # RFC 5923 §5.3
                user.stream_message(event, self.remote, self)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.table.remove(self)
        if exc is not None:
            log.debug("%s %s lost: %s", self.transport_name, self.remote.host_port, exc)
        self.table.user.connection_closed(self)
        callbacks, self.close_callbacks = self.close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("close callback of %r failed", self)

    # -- sending --------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError(f"{self.transport_name} connection to {self.remote.host_port} is closed")
        self.last_activity = time.monotonic()
        transport.write(data)

    def send_ping(self) -> None:
        """Send a keep-alive ping: CRLF CRLF between messages (RFC 5626 §4.4.1)."""
        self.send(b"\r\n\r\n")

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    @property
    def peer_certificate(self) -> dict | None:
        return self._transport.get_extra_info("peercert") if self._transport else None

    def __repr__(self) -> str:
        return f"<Connection #{self.id} {self.transport_name} {self.remote.host_port}>"


class StreamListener:
    """A listening TCP or TLS socket."""

    def __init__(self, table: ConnectionTable, spec: ListenSpec, server: asyncio.base_events.Server) -> None:
        self.table = table
        self.spec = spec
        self.server = server
        sock = server.sockets[0].getsockname()
        host = spec.host if spec.host not in ("0.0.0.0", "::") else sock[0]
        self.local = Address(spec.transport, host, sock[1])
        self.transport_name = spec.transport

    @classmethod
    async def create(
        cls,
        table: ConnectionTable,
        spec: ListenSpec,
        ssl_context: ssl.SSLContext | None = None,
        *,
        reuse_port: bool = False,
    ) -> StreamListener:
        secure = spec.transport in ("TLS", "WSS")
        if secure and ssl_context is None:
            raise ValueError(f"{spec}: {spec.transport} needs a server certificate (ssl context)")
        factory: Callable[[], Connection]
        if spec.transport in ("WS", "WSS"):
            from .ws import server_connection_factory  # RFC 7118

            factory = server_connection_factory(table, spec.transport)
        else:

            def factory() -> Connection:
                return Connection(table, spec.transport, outbound=False)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory,
            spec.host,
            spec.port,
            ssl=ssl_context if secure else None,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        return cls(table, spec, server)

    def close(self) -> None:
        self.server.close()


class ConnectionTable:
    """Open connections by id and by remote address; reuse, bounds and idle timeout."""

    def __init__(
        self,
        user: TransportUser,
        *,
        max_connections: int = 4096,
        max_message_size: int = 65535,
        idle_timeout: float = 600.0,
        connect_timeout: float = 5.0,
        client_ssl: Callable[[], ssl.SSLContext] | ssl.SSLContext | None = None,
        alias_tcp: bool = False,
    ) -> None:
        self.user = user
        self.max_connections = max_connections
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._client_ssl = client_ssl
        self.by_id: dict[int, Connection] = {}
        self.by_remote: dict[tuple[str, str, int], Connection] = {}
        self.by_name: dict[tuple[str, str, int, str], Connection] = {}
        """Outbound TLS connections by (transport, host, port, the domain they were verified
        for): several virtual servers at one address each have a connection of their own."""
        self._pending: dict[tuple[str, str, int, str | None], asyncio.Future[Connection]] = {}
        self.aliases = AliasTable(tcp=alias_tcp)
        """Connections peers offered for reuse (RFC 5923)."""

    def __len__(self) -> int:
        return len(self.by_id)

    def add(self, connection: Connection) -> bool:
        if len(self.by_id) >= self.max_connections:
            return False
        self.by_id[connection.id] = connection
        remote = connection.remote
        self.by_remote.setdefault((remote.transport, remote.host, remote.port), connection)
        return True

    def remove(self, connection: Connection) -> None:
        self.by_id.pop(connection.id, None)
        remote = connection.remote
        key = (remote.transport, remote.host, remote.port)
        if self.by_remote.get(key) is connection:
            del self.by_remote[key]
        named = connection.name_key
        if named is not None and self.by_name.get(named) is connection:
            del self.by_name[named]
        self.aliases.discard(connection)

    def find(self, address: Address, *, aliases: bool = True) -> Connection | None:
        """The connection ``address`` names (by id), or one to the same remote address, or
        one its peer offered for that address (an RFC 5923 alias; not with ``aliases=False``)."""
        if address.connection is not None:
            connection = self.by_id.get(address.connection)
            if connection is not None and not connection.closed:
                return connection
        connection = self.by_remote.get((address.transport, address.host, address.port))
        if connection is not None and not connection.closed:
            return connection
        if address.transport == "WS":
            # RFC 7118 §5.2: transport=ws names both flavours; a secure one will do.
            connection = self.by_remote.get(("WSS", address.host, address.port))
            if connection is not None and not connection.closed:
                return connection
        if aliases and self.aliases:
            return self.aliases.find(address.transport, address.host, address.port)
        return None

    def client_ssl_context(self) -> ssl.SSLContext:
        ctx = self._client_ssl
        if ctx is None:
            ctx = self._client_ssl = ssl.create_default_context()
        elif callable(ctx):
            ctx = ctx()
        return ctx

    @staticmethod
    def proved_for(connection: Connection, server_name: str) -> bool:
        """Whether a TLS ``connection`` was verified for the domain ``server_name``: opened
        for it, or its peer's validated certificate names it (RFC 5922 §7.1; RFC 5923 on
        virtual servers: a connection proved for one domain does not serve another one
        hosted at the same address)."""
        return connection.server_name == server_name or certificate_matches(
            connection.peer_certificate, server_name
        )

    async def connect(self, address: Address, server_hostname: str | None = None) -> Connection:
        """A connection to ``address``: an open one, one being opened, or a new one.

        ``server_hostname`` (default: ``address.server_name``) is the domain a TLS connection
        is for: a new one sends it as SNI and verifies the server's certificate against it
        (against the IP address when there is none), and an open connection or an RFC 5923
        alias serves the request only if it was proved for that domain."""
        if server_hostname is None:
            server_hostname = address.server_name
        name = server_hostname.lower().rstrip(".") if server_hostname and address.transport == "TLS" else None
        if name is None:
            existing = self.find(address)
        else:
            existing = self.by_name.get((address.transport, address.host, address.port, name))
            if existing is None or existing.closed:
                existing = self.find(address, aliases=False)
                if existing is not None and not self.proved_for(existing, name):
                    existing = None
            if existing is not None and existing.closed:
                existing = None
            if existing is None and self.aliases:
                # An alias (RFC 5923 §5.3) under the address or under the domain as sent-by,
                # used only if the certificate it was proved with names the domain too.
                for host in (address.host, name):
                    existing = self.aliases.find(address.transport, host, address.port, identity=name)
                    if existing is not None:
                        break
        if existing is not None:
            return existing
        if address.transport in ("WS", "WSS"):
            # RFC 7118 §5: WebSocket clients accept no connections; only the flow the client
            # opened reaches it (connect_ws() opens one as a client).
            raise ConnectionError(f"no WebSocket connection from {address.host_port} is open")
        key = (address.transport, address.host, address.port, name)
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if len(self.by_id) >= self.max_connections:
            raise ConnectionError(f"connection limit ({self.max_connections}) reached")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Connection] = loop.create_future()
        self._pending[key] = future
        try:
            tls = address.transport == "TLS"
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Connection(self, address.transport, outbound=True),
                    address.host,
                    address.port,
                    ssl=self.client_ssl_context() if tls else None,
                    # SNI and the hostname check: the domain if known, else the IP address.
                    server_hostname=(name or address.host) if tls else None,
                ),
                self.connect_timeout,
            )
            if name is not None and not connection.closed:
                connection.server_name = name
                connection.name_key = (address.transport, address.host, address.port, name)
                self.by_name[connection.name_key] = connection
            future.set_result(connection)
            return connection
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._pending[key]

    def sweep_idle(self, now: float | None = None) -> int:
        """Close connections idle longer than ``idle_timeout``; how many were closed."""
        now = time.monotonic() if now is None else now
        idle = [c for c in self.by_id.values() if now - c.last_activity > self.idle_timeout]
        for connection in idle:
            log.info(
                "%s %s idle for %.0f s: closing",
                connection.transport_name,
                connection.remote.host_port,
                now - connection.last_activity,
            )
            connection.close()
        return len(idle)

    def close_all(self) -> None:
        for connection in list(self.by_id.values()):
            connection.close()
