"""SIP over UDP (RFC 3261 §18): one listening socket, datagrams straight to the user.

STUN shares the port (RFC 5626 §8): Binding requests are answered here, and responses go
to the STUN client transaction waiting for them (:func:`.keepalive.stun_binding`)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from ..net import Address
from . import stun
from .base import ListenSpec, TransportUser

log = logging.getLogger("sipstack.transport")

# RFC 3261 §18.1.1 allows UDP datagrams up to 65,535 bytes; receive buffers sized for bursts.
_RCVBUF = 4 * 1024 * 1024


class UdpListener(asyncio.DatagramProtocol):
    """A bound UDP socket. ``local`` is the address written in Vias sent from it."""

    transport_name = "UDP"

    def __init__(self, user: TransportUser, spec: ListenSpec) -> None:
        self.user = user
        self.spec = spec
        self.local = Address("UDP", spec.host, spec.port)
        self._transport: asyncio.DatagramTransport | None = None
        self.stun_server = True
        """Answer STUN Binding requests on this port (RFC 5626 §8)."""
        self.stun_waiters: dict[bytes, Callable[[stun.StunMessage, Address], None]] = {}
        """STUN client transactions waiting for a response, by transaction id."""

    @classmethod
    async def create(cls, user: TransportUser, spec: ListenSpec, *, reuse_port: bool = False) -> UdpListener:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _RCVBUF)
            sock.bind((spec.host, spec.port))
        except OSError:
            sock.close()
            raise
        listener = cls(user, spec)
        await loop.create_datagram_endpoint(lambda: listener, sock=sock)
        return listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("sockname")[:2]
        self.local = Address("UDP", self.spec.host if self.spec.host not in ("0.0.0.0", "::") else host, port)

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        # RFC 5626 §8: STUN shares the SIP port; its first byte is below 0x40, a SIP
        # message's is a letter, so one byte tells them apart.
        if data and data[0] < 0x40 and self._stun_received(data, addr):
            return
        self.user.datagram_received(data, Address("UDP", addr[0], addr[1]), self)

    def _stun_received(self, data: bytes, addr: tuple) -> bool:
        """Handle a STUN datagram: answer a Binding request, hand a response to the client
        transaction waiting for it. False when ``data`` is not STUN (e.g. CRLF keep-alive
        padding), which then goes on to the SIP path."""
        if not stun.is_stun(data):
            return False
        try:
            message = stun.decode(data)
            if message.cls == stun.REQUEST:
                reply = stun.answer(message, addr[0], addr[1]) if self.stun_server else None
                if reply is not None and self._transport is not None:
                    self._transport.sendto(reply, addr)
                return True
        except stun.StunError as exc:
            log.debug("UDP %s: dropped STUN message from %s:%s: %s", self.local, addr[0], addr[1], exc)
            return True
        waiter = self.stun_waiters.get(message.transaction_id)
        if waiter is not None:
            waiter(message, Address("UDP", addr[0], addr[1]))
        return True

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) surface here on Linux; the transaction timers cover
        # the loss, so log and go on serving.
        log.debug("UDP %s: %s", self.local, exc)

    def socket_fileno(self) -> int | None:
        """The file descriptor of the bound socket (None once closed)."""
        if self._transport is None or self._transport.is_closing():
            return None
        sock = self._transport.get_extra_info("socket")
        return None if sock is None else sock.fileno()

    def send(self, data: bytes, address: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError(f"UDP listener {self.local} is closed")
        self._transport.sendto(data, (address.host, address.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
