"""SIP over UDP (RFC 3261 §18): one listening socket, datagrams straight to the user.

STUN shares the port (RFC 5626 §8): Binding requests are answered here, and responses go
to the STUN client transaction waiting for them (:func:`.keepalive.stun_binding`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import sys
from collections.abc import Callable

from ..net import Address
from . import stun
from .base import ListenSpec, TransportUser

log = logging.getLogger("sipstack.transport")

# <linux/in.h>, <linux/in6.h>, <linux/errqueue.h>: ICMP errors with their destination.
_IP_RECVERR, _IPV6_RECVERR = 11, 25
_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6 = 2, 3
_EMSGSIZE = errno.EMSGSIZE


def _error_queue(sock: socket.socket, family: int) -> socket.socket | None:
    """Turn on the socket's ICMP error queue (Linux) and return a second handle on it to
    read the queue with (the event loop owns the first); None where unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        errors = socket.socket(fileno=os.dup(sock.fileno()))
        errors.setblocking(False)
        return errors
    except OSError as exc:
        log.debug("no ICMP error queue: %s", exc)
        return None


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
        self.on_unreachable: Callable[[Address, int], None] | None = None
        """Called with the destination and errno of each ICMP error (RFC 3261 §18.4)."""
        self._errors: socket.socket | None = None

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
        listener._errors = _error_queue(sock, family)
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
        """An ICMP error for a datagram we sent (RFC 3261 §18.4: port, host, network or
        protocol unreachable). Where the socket has an error queue (Linux ``IP_RECVERR``)
        each error names the destination it was for, and the transport user fails the
        client transactions sending there at once instead of after Timer B/F; elsewhere
        the timers cover the loss."""
        log.debug("UDP %s: %s", self.local, exc)
        errors = self._errors
        if errors is None:
            return
        # Drain the whole queue first (it is bounded by the receive buffer): uvloop crashed
        # (SIGSEGV) when it polled a socket whose error queue was left non-empty. Report
        # afterwards, once per destination.
        unreachable: dict[tuple[str, int], int] = {}
        while True:
            try:
                _, ancillary, _, destination = errors.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc2:
                log.debug("UDP %s: reading the ICMP error queue: %s", self.local, exc2)
                break
            for _level, _kind, data in ancillary:
                # struct sock_extended_err (linux/errqueue.h): u32 ee_errno, u8 ee_origin …
                if len(data) < 5 or not destination:
                    continue
                errno_, origin = struct.unpack_from("=IB", data)
                if origin not in (_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6) or errno_ == _EMSGSIZE:
                    continue  # not unreachability (a too-big datagram is not a dead peer)
                unreachable[(destination[0], destination[1])] = errno_
        if self.on_unreachable is None:
            return
        for (host, port), errno_ in unreachable.items():
            log.debug("UDP %s: %s:%s unreachable (%s)", self.local, host, port, os.strerror(errno_))
            try:
                self.on_unreachable(Address("UDP", host, port), errno_)
            except Exception:
                log.exception("UDP %s: handling an ICMP error for %s:%s failed", self.local, host, port)

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
        errors = self._errors
        if errors is not None:
            # Stop ICMP reports before the transport goes: uvloop crashed (SIGSEGV) on an
            # error report arriving for a UDP transport in the middle of closing.
            with contextlib.suppress(OSError):
                if errors.family == socket.AF_INET6:
                    errors.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 0)
                else:
                    errors.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 0)
            self._errors = None
        if self._transport is not None:
            self._transport.close()
        if errors is not None:
            errors.close()
