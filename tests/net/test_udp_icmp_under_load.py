"""RFC 3261 §18.4 under load: ICMP port unreachable errors reach a busy UDP listener (its socket
queues them, Linux ``IP_RECVERR``) while datagrams keep arriving — a proxy whose callee went
away in the middle of traffic.

On uvloop's datagram transport this killed the process: libuv read the error queue itself and
passed each error to uvloop with its sign lost, taken for a 4 GB datagram (SIGSEGV). Watched
with ``add_reader`` instead, the socket went deaf after its first error (libuv stops a poll
handle on ``POLLERR``). The scenario runs in a child process, so that a crash fails this test
instead of the test run: two threads of the child send to a closed port through the
listener's own socket (the errors come back to it) and flood the listener with datagrams,
while the listener reads on the event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_RECVERR is Linux's")

SCENARIO = textwrap.dedent(
    """
    import asyncio, os, socket, threading, time
    from sipstack.endpoint import Endpoint, run

    SENT = 100000

    def towards_a_closed_port(fd, closed, stop):
        sock = socket.socket(fileno=os.dup(fd))  # the listener's socket: its errors
        while not stop.is_set():
            try:
                sock.sendto(b"OPTIONS", closed)
            except OSError:
                pass
            time.sleep(0.0002)
        sock.close()

    def flood(target):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in range(SENT):
            sock.sendto(b"\\r\\n\\r\\n", target)  # keep-alive padding: read, then ignored
            if n % 64 == 0:
                time.sleep(0.0001)
        sock.close()

    async def main():
        errors, received = [], []
        async with Endpoint() as endpoint:
            await endpoint.listen("udp:127.0.0.1:0")
            listener = endpoint.listeners[0]
            listener.on_unreachable = lambda address, errno: errors.append(address.port)
            handle = listener.datagram_received
            listener.datagram_received = lambda data, addr: (received.append(1), handle(data, addr))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
                gone.bind(("127.0.0.1", 0))
                closed = ("127.0.0.1", gone.getsockname()[1])
            stop = threading.Event()
            fd = listener.socket_fileno()
            icmp = threading.Thread(target=towards_a_closed_port, args=(fd, closed, stop))
            icmp.start()
            await asyncio.sleep(0.2)
            sender = threading.Thread(target=flood, args=(("127.0.0.1", listener.local.port),))
            sender.start()
            while sender.is_alive():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            stop.set()
            icmp.join()
            ports = set(errors)
        print(len(errors), len(received), SENT, ports == {closed[1]})

    run(main())
    """
)


def test_icmp_errors_among_a_flood_of_datagrams_are_read_and_reported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    errors, received, sent, right_port = done.stdout.split()
    assert int(errors) >= 20, done.stdout  # reported all along, not once
    assert int(received) >= 0.9 * int(sent), done.stdout  # and the listener kept reading
    assert right_port == "True", done.stdout


PENDING = textwrap.dedent(
    """
    import asyncio, socket, time
    from sipstack.endpoint import Endpoint, run
    from sipstack.net import Address

    async def main():
        async with Endpoint() as endpoint:
            await endpoint.listen("udp:127.0.0.1:0")
            listener = endpoint.listeners[0]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
                gone.bind(("127.0.0.1", 0))
                closed = Address("UDP", "127.0.0.1", gone.getsockname()[1])
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(2)
            healthy = Address("UDP", "127.0.0.1", peer.getsockname()[1])
            delivered = 0
            for i in range(50):
                for _ in range(3):
                    listener.send(b"to nobody", closed)
                time.sleep(0.005)  # the ICMP errors arrive; the loop does not run meanwhile
                listener.send(b"hello %d" % i, healthy)  # fails with a pending error: tried again
                data, _ = peer.recvfrom(100)
                delivered += data == b"hello %d" % i
            peer.close()
        print(delivered)

    run(main())
    """
)


def test_a_send_is_not_lost_to_errors_pending_for_other_destinations() -> None:
    """Linux fails the next send of a socket with an ICMP error pending (for any earlier
    datagram), sending nothing: each such send is tried again, and reaches its peer."""
    done = subprocess.run(
        [sys.executable, "-c", PENDING], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    assert done.stdout.split() == ["50"], done.stdout


class _FullThenFree:
    """A socket stand-in whose send buffer is full for the first ``full`` sends."""

    def __init__(self, sock: object, full: int) -> None:
        self.sock = sock
        self.full = full
        self.sent: list[bytes] = []

    def fileno(self) -> int:
        return self.sock.fileno()  # type: ignore[attr-defined]

    def sendto(self, data: bytes, addr: object) -> int:
        if self.full:
            self.full -= 1
            raise BlockingIOError
        self.sent.append(data)
        return len(data)


async def test_a_full_send_buffer_queues_datagrams_and_sends_them_in_order() -> None:
    """EAGAIN on a send: the datagram waits, later ones queue behind it, and all go out in
    order once the socket is writable again."""
    from sipstack.endpoint import Endpoint
    from sipstack.net import Address

    async with Endpoint() as endpoint:
        await endpoint.listen("udp:127.0.0.1:0")
        listener = endpoint.listeners[0]
        stand_in = _FullThenFree(listener._sock, full=2)
        listener._sock = stand_in  # type: ignore[assignment]
        to = Address("UDP", "127.0.0.1", 9)
        for i in range(5):
            listener.send(b"%d" % i, to)
        assert stand_in.sent == [] and len(listener._pending) == 5
        for _ in range(50):
            if not listener._pending:
                break
            await asyncio.sleep(0.01)
        listener._sock = stand_in.sock  # type: ignore[assignment]
        assert stand_in.sent == [b"0", b"1", b"2", b"3", b"4"] and not listener._pending
