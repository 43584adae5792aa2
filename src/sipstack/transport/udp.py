"""SIP over UDP (RFC 3261 §18): one listening socket, datagrams straight to the user.

STUN shares the port (RFC 5626 §8): Binding requests are answered here, and responses go
to the STUN client transaction waiting for them (:func:`.keepalive.stun_binding`).

The socket is read and written here, from the event loop's readiness callbacks, not
through an asyncio datagram transport. On Linux the socket keeps an ICMP error queue
(``IP_RECVERR``: RFC 3261 §18.4 wants a port unreachable to fail the transaction at once,
not after Timer B), and such a socket reports ``POLLERR`` whenever an error is queued, which
uvloop's libuv cannot take from it: its datagram handle reads the queue itself and hands
uvloop each error with its sign lost, which uvloop takes for a datagram of four gigabytes
(SIGSEGV, seen under load when a callee went away), and its poll handle (``add_reader``)
stops watching the socket for good. So the socket sits in an epoll set of its own, and the
event loop watches that set's descriptor, which only ever turns readable: the error queue is
read here, by this module alone.

A wake-up reads the datagrams waiting (a bounded batch), then hands them over between the
user's ``begin_batch`` and ``end_batch``: the endpoint parses them all, then passes them all
to its transactions, then sends what they produced. The system calls, the parser and the
transactions each run in a stretch of their own instead of in turns, a send after every
message — the kernel's delivery of a loopback or LAN datagram, done by the sender, otherwise
evicts the parser's and the transactions' warm state from the CPU's caches once per message
(a proxy at 1000 calls/s spent about 15 % less CPU per call in batches). A send waits at most
for the rest of its batch to be handled.

A listener's ``siblings`` (other sockets of the same user: a worker's own port for the
responses to its requests, beside the port the workers share) are read in the same wake-up
and their datagrams join the batch, so that a worker handles what waits on both sockets in one
stretch instead of two.

With a ``read_pause``, a wake-up whose batch did not fill stops watching the socket for that
long, so that the next one finds what came meanwhile: fewer and larger batches at moderate
rates, where a process woken for every few datagrams spends much of its CPU getting its state
back into the caches (a proxy at 1000 calls/s, at 4 ms: about 10 % less CPU per call with one
worker, 8-17 % with two; 8 ms instead of 4: another 8 % with one, 13 % with two), for at most
that much added latency. A full batch never pauses. The siblings the wake-up read rest with the
socket (with two workers, another 17 % less CPU per call: one wake-up per pause instead of one
per socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable

from ..net import Address
from . import stun
from .base import ListenSpec, TransportUser

log = logging.getLogger("sipstack.transport")

# <linux/in.h>, <linux/in6.h>, <linux/errqueue.h>: ICMP errors with their destination.
_IP_RECVERR, _IPV6_RECVERR = 11, 25
_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6 = 2, 3
_EMSGSIZE = errno.EMSGSIZE


def _error_queue(sock: socket.socket, family: int) -> bool:
    """Turn on the socket's ICMP error queue (Linux); False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError as exc:
        log.debug("no ICMP error queue: %s", exc)
        return False
    return True


# RFC 3261 §18.1.1 allows UDP datagrams up to 65,535 bytes; receive buffers sized for bursts.
_RCVBUF = 4 * 1024 * 1024
_MAX_DATAGRAM = 65535
_READS_PER_WAKEUP = 64  # then the loop serves the other sockets and timers
_MAX_PENDING = 4096  # datagrams waiting for room in the send buffer; beyond, dropped
_SEND_ATTEMPTS = 8  # a send failed by other datagrams' pending ICMP errors is tried again
_PENDING_ERRORS = frozenset((errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH))


class UdpListener:
    """A bound UDP socket. ``local`` is the address written in Vias sent from it."""

    transport_name = "UDP"

    def __init__(self, user: TransportUser, spec: ListenSpec) -> None:
        self.user = user
        self.spec = spec
        self.local = Address("UDP", spec.host, spec.port)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recverr = False
        self._wakeups = 0
        self._epoll: select.epoll | None = None
        self._pending: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.stun_server = True
        """Answer STUN Binding requests on this port (RFC 5626 §8)."""
        self.stun_waiters: dict[bytes, Callable[[stun.StunMessage, Address], None]] = {}
        """STUN client transactions waiting for a response, by transaction id."""
        self.on_unreachable: Callable[[Address, int], None] | None = None
        """Called with the destination and errno of each ICMP error (RFC 3261 §18.4)."""
        self.icmp_observers: list[Callable[[str, int, int], None]] = []
        """Also called with (host, port, errno) of every ICMP error read (``sipstack options``)."""
        self.stats = {"send_dropped": 0}
        self.siblings: list[UdpListener] = []
        """Other listeners of the same user read at each wake-up of this one, into its batch."""
        self.read_pause = 0.0
        """Seconds the socket is not watched after a wake-up whose batch did not fill."""
        self._resume: asyncio.TimerHandle | None = None
        self._resting = False  # not watched: a read pause, its own or a sibling's
        self._resting_with: list[UdpListener] = []  # the sockets this one's pause stopped watching

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
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        listener = cls(user, spec)
        listener._recverr = _error_queue(sock, family)
        listener._sock = sock
        listener._loop = loop
        host, port = sock.getsockname()[:2]
        listener.local = Address("UDP", spec.host if spec.host not in ("0.0.0.0", "::") else host, port)
        if listener._recverr:
            listener._epoll = select.epoll()
            listener._epoll.register(sock.fileno(), select.EPOLLIN)
            loop.add_reader(listener._epoll.fileno(), listener._readable)
        else:
            loop.add_reader(sock.fileno(), listener._readable)
        return listener

    # -- receiving ----------------------------------------------------------------------------

    def _readable(self) -> None:
        """The socket is readable, or has an error, or (its epoll set watching for it while
        datagrams wait to go) writable: send what waits, read what is there (a bounded
        number of datagrams; the loop calls again while more wait)."""
        sock = self._sock
        if sock is None:
            return
        if self._pending:
            self._writable()
        self._wakeups += 1
        if not self._wakeups & 63 and self._recverr:
            # Errors for datagrams another socket of a SO_REUSEPORT group sent can land
            # here, among a steady flow of datagrams that never leaves the socket idle:
            # read them now and then (they take receive buffer space until read).
            self._read_errors()
        received: list[tuple[UdpListener, bytes, tuple]] = []
        busy = self._receive(received, woken=True)  # a full batch: the loop calls again at once
        user = self.user
        for sibling in self.siblings:
            if sibling._sock is not None and sibling.user is user:
                sibling._receive(received, woken=False)  # a full one wakes its own callback
        if received:
            user.begin_batch()
            try:
                for listener, data, addr in received:
                    try:
                        listener.datagram_received(data, addr)
                    except Exception:
                        log.exception(
                            "UDP %s: handling a datagram from %s:%s failed", listener.local, addr[0], addr[1]
                        )
            finally:
                user.end_batch()
        if busy:
            # Still busy: errors may have come among the datagrams (they take receive
            # buffer space until read), and a busy socket never wakes up with nothing to read.
            self._read_errors()
        elif self.read_pause > 0 and received and self._sock is not None and self._loop is not None:
            # The siblings rest too: this wake-up read them, and the next one will.
            resting = [self]
            resting += [s for s in self.siblings if s._sock is not None and s.user is user and not s._resting]
            for listener in resting:
                self._loop.remove_reader(listener._watched())
                listener._resting = True
            self._resting_with = resting
            self._resume = self._loop.call_later(self.read_pause, self._resume_reading)

    def _watched(self) -> int:
        """The descriptor the event loop watches for this socket."""
        assert self._sock is not None
        return self._epoll.fileno() if self._epoll is not None else self._sock.fileno()

    def _resume_reading(self) -> None:
        """The pause is over: watch the socket and the siblings resting with it again, and
        read what came meanwhile."""
        self._resume = None
        self._wake(self._resting_with)
        self._resting_with = []
        if self._sock is not None:
            self._readable()

    @staticmethod
    def _wake(listeners: list[UdpListener]) -> None:
        """Watch resting sockets again (those still open)."""
        for listener in listeners:
            if listener._resting and listener._sock is not None and listener._loop is not None:
                listener._loop.add_reader(listener._watched(), listener._readable)
            listener._resting = False

    def _receive(self, received: list[tuple[UdpListener, bytes, tuple]], *, woken: bool) -> bool:
        """Read up to a batch of datagrams into ``received``; True when the batch is full
        (more may wait). ``woken``: this socket's own readiness called, so nothing to read
        means its ICMP error queue is not empty."""
        assert self._sock is not None
        recvfrom = self._sock.recvfrom
        for i in range(_READS_PER_WAKEUP):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                if i == 0 and woken:
                    # Woken with nothing to read: the ICMP error queue is not empty (a
                    # socket with queued errors stays ready until they are read), or a
                    # sibling's wake-up of the same loop turn read the datagrams first.
                    self._read_errors()
                return False
            except OSError as exc:
                # An ICMP error for an earlier datagram, reported once by the socket.
                self.error_received(exc)
                continue
            received.append((self, data, addr))
        return True

    def datagram_received(self, data: bytes, addr: tuple) -> None:
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
                if reply is not None and self._sock is not None:
                    self._sendto(reply, addr)
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
        self._read_errors()

    def _read_errors(self) -> None:
        """Read the whole ICMP error queue (it is bounded by the receive buffer), then
        report, once per destination."""
        sock = self._sock
        if sock is None or not self._recverr:
            return
        unreachable: dict[tuple[str, int], int] = {}
        while True:
            try:
                _, ancillary, _, destination = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("UDP %s: reading the ICMP error queue: %s", self.local, exc)
                break
            for _level, _kind, data in ancillary:
                # struct sock_extended_err (linux/errqueue.h): u32 ee_errno, u8 ee_origin …
                if len(data) < 5 or not destination:
                    continue
                errno_, origin = struct.unpack_from("=IB", data)
                for observer in self.icmp_observers:
                    observer(destination[0], destination[1], errno_)
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

    # -- sending --------------------------------------------------------------------------------

    def socket_fileno(self) -> int | None:
        """The file descriptor of the bound socket (None once closed)."""
        return None if self._sock is None else self._sock.fileno()

    def send(self, data: bytes, address: Address) -> None:
        sock = self._sock
        if sock is None:
            raise ConnectionError(f"UDP listener {self.local} is closed")
        if not self._pending:
            try:
                sock.sendto(data, (address.host, address.port))  # the common case, inline
                return
            except OSError:
                pass  # full, or an earlier datagram's ICMP error: the careful path
        self._sendto(data, (address.host, address.port))

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send now, or queue (bounded) when the socket's send buffer is full, to be sent
        when it has room, in order."""
        assert self._sock is not None
        if self._pending or not self._send_now(self._sock, data, addr):
            self._queue(data, addr)

    def _send_now(self, sock: socket.socket, data: bytes, addr: tuple[str, int]) -> bool:
        """One datagram out; False when the send buffer is full. A socket with an ICMP error
        pending fails its next send with that error (Linux), whatever the destination, and
        sends nothing: the error is read and the send tried again — a few times, as errors
        keep coming while a peer that went away is still being sent to. Other errors raise."""
        for attempt in range(_SEND_ATTEMPTS):
            try:
                sock.sendto(data, addr)
                return True
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                if attempt == _SEND_ATTEMPTS - 1 or exc.errno not in _PENDING_ERRORS:
                    raise
                self.error_received(exc)
        return True  # not reached: the last attempt returns or raises

    def _queue(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self._pending) >= _MAX_PENDING:
            self.stats["send_dropped"] += 1
            dropped = self.stats["send_dropped"]
            if dropped in (1, 10, 100, 1000) or dropped % 10000 == 0:
                log.warning("UDP %s: send buffer full, %d datagram(s) dropped so far", self.local, dropped)
            return
        if not self._pending and self._loop is not None and self._sock is not None:
            self._watch_writable(True)
        self._pending.append((data, addr))

    def _writable(self) -> None:
        sock = self._sock
        pending = self._pending
        while pending and sock is not None:
            data, addr = pending[0]
            try:
                if not self._send_now(sock, data, addr):
                    return  # still full
            except OSError as exc:
                log.info("UDP %s: cannot send to %s:%s: %s", self.local, addr[0], addr[1], exc)
            pending.popleft()
        if not pending and self._sock is not None:
            self._watch_writable(False)

    def _watch_writable(self, on: bool) -> None:
        assert self._sock is not None and self._loop is not None
        fd = self._sock.fileno()
        if self._epoll is not None:
            self._epoll.modify(fd, select.EPOLLIN | select.EPOLLOUT if on else select.EPOLLIN)
        elif on:
            self._loop.add_writer(fd, self._writable)
        else:
            self._loop.remove_writer(fd)

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        self._pending.clear()
        self.siblings = []
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
            self._wake([s for s in self._resting_with if s is not self])  # they read on without it
            self._resting_with = []
        if self._loop is not None:
            with contextlib.suppress(Exception):
                if self._epoll is not None:
                    self._loop.remove_reader(self._epoll.fileno())
                else:
                    self._loop.remove_reader(sock.fileno())
                    self._loop.remove_writer(sock.fileno())
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        sock.close()
