"""Spreading one UDP port's requests over ``--workers N`` processes.

The workers share the listening UDP port (SO_REUSEPORT). The kernel picks the socket a
datagram lands on by hashing its 4-tuple, so every request from one source — a phone, an
upstream proxy, a load generator — reaches the same worker, and the others sit idle. Every
message of one server transaction must still reach the one worker holding it: the
retransmissions of a request, the CANCEL of an INVITE and the ACK of its non-2xx final
response (RFC 3261 §17.2.3, §9.2), all of which carry the request's top Via branch.

1. Where the kernel allows it (Linux: ``SO_ATTACH_REUSEPORT_CBPF``), a classic BPF program
   picks the socket from the branch itself (:func:`steer_by_branch`): it finds the first
   ``branch=`` parameter in the datagram's first bytes — the top Via's — and hashes the
   value. A transaction's messages meet their worker in the kernel; requests of different
   transactions, from one source or many, spread over the workers; nothing is relayed.
   A datagram without a branch there falls back to the kernel's 4-tuple hash (a
   retransmission comes from the same source, so it lands where the first copy did).
2. Elsewhere, each worker owns the calls whose Call-ID hashes (CRC-32, the same in every
   process) to its index, and a request that lands on another worker is passed to its
   owner over a loopback UDP socket with its source address, unparsed; the owner handles it
   as if it had received it on the shared port (and answers from that port).

Responses need no steering: each worker puts a port of its own in the Via it adds, so they
come back to the one holding the client transaction. Requests over TCP/TLS stay with the
worker holding the connection.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import socket
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from ..endpoint import Endpoint
from ..net import Address
from ..transport.udp import UdpListener

log = logging.getLogger("sipstack.server")

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>
_SKF_AD_RANDOM = -0x1000 + 56  # SKF_AD_OFF + SKF_AD_RANDOM: a random 32-bit number

# The Call-ID header's value (long or compact form), from the raw bytes.
_CALL_ID_RE = re.compile(rb"\r\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def spread_at_random(sock: socket.socket, workers: int) -> bool:
    """Attach to ``sock``'s SO_REUSEPORT group a classic BPF program that returns a random
    index below ``workers`` (``ld #rand; mod #workers; ret a``). False where the kernel or
    platform refuses it (the kernel's 4-tuple hash then applies)."""
    if not hasattr(socket, "SO_REUSEPORT") or workers < 2:
        return False
    program = b"".join(
        (
            struct.pack("=HBBi", 0x20, 0, 0, _SKF_AD_RANDOM),  # BPF_LD|BPF_W|BPF_ABS
            struct.pack("=HBBI", 0x94, 0, 0, workers),  # BPF_ALU|BPF_MOD|BPF_K
            struct.pack("=HBBI", 0x16, 0, 0, 0),  # BPF_RET|BPF_A
        )
    )
    try:
        _attach(sock, program)
    except OSError as exc:
        log.info("cannot spread datagrams over the workers at random (%s): by source instead", exc)
        return False
    return True


# Classic BPF (linux/filter.h): the opcodes the programs below use.
_LD_W_ABS, _LD_B_IND, _LD_IMM, _LD_MEM, _LDX_IMM, _LDX_MEM = 0x20, 0x50, 0x00, 0x60, 0x01, 0x61
_ST, _STX, _TXA, _TAX = 0x02, 0x03, 0x87, 0x07
_JA, _JEQ_K, _JGE_K = 0x05, 0x15, 0x35
_ADD_K, _ADD_X, _MUL_K, _MOD_K, _RET_K, _RET_A = 0x04, 0x0C, 0x24, 0x94, 0x06, 0x16

BRANCH_SCAN = 800
"""Bytes at the start of a datagram searched for ``branch=``: a request line and the top
Via fit (a longer start falls back to the 4-tuple hash)."""
BRANCH_HASHED = 24
"""Characters of a branch value hashed, after the magic cookie when it is there."""
_NCH = int.from_bytes(b"nch=", "big")
_COOKIE = b"z9hG4bK"  # RFC 3261 §8.1.1.7


class _Assembler:
    """Classic BPF with labels: jumps are resolved when the program is put together
    (conditional jumps reach at most 255 instructions ahead, ``ja`` any distance)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, str | None, str | None]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int = 0, jt: str | None = None, jf: str | None = None) -> None:
        self.code.append((code, k, jt, jf))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = []
        for at, (code, k, jt, jf) in enumerate(self.code):
            jt_off = 0 if jt is None else self.labels[jt] - at - 1
            jf_off = 0 if jf is None else self.labels[jf] - at - 1
            if code == _JA:
                k, jt_off, jf_off = jt_off, 0, 0
            elif not (0 <= jt_off <= 255 and 0 <= jf_off <= 255):
                raise ValueError(f"BPF jump out of reach at {at}")
            out.append(struct.pack("=HBBI", code, jt_off, jf_off, k & 0xFFFFFFFF))
        if len(out) > 4096:  # BPF_MAXINSNS
            raise ValueError(f"BPF program too long ({len(out)} instructions)")
        return b"".join(out)


def branch_program(workers: int, scan: int = BRANCH_SCAN, hashed: int = BRANCH_HASHED) -> bytes:
    """The classic BPF program of :func:`steer_by_branch`: for a datagram, the index of a
    socket (below ``workers``) from a hash of its first ``branch=`` value, or an index out
    of range — the kernel then hashes the 4-tuple — when the first ``scan`` bytes hold none.

    Classic BPF has no loops, so the search is unrolled: at each offset, load the word
    there and compare it with ``nch=`` (the end of ``branch=``; another parameter ending so
    before it would be hashed instead, the same way for every message of the transaction);
    on a match, X = where the value starts. A load past
    the end of a short datagram stops the program with 0: the same answer for the same
    bytes, as a retransmission needs. The hash (M[0] = M[0] * 31 + character) reads at most
    ``hashed`` characters after the magic cookie and stops at a ``;`` or any character
    below ``-`` (CR, space, comma end a value). M[1] holds the character, M[2] the offset
    (X is both the index of loads and the only other register)."""
    asm = _Assembler()
    for i in range(scan):
        asm.op(_LD_W_ABS, i)
        asm.op(_JEQ_K, _NCH, jt=f"found{i}", jf=f"next{i}")
        asm.label(f"found{i}")
        asm.op(_LDX_IMM, i + 4)
        asm.op(_JA, jt="hash")
        asm.label(f"next{i}")
    asm.op(_RET_K, 0xFFFFFFFF)
    asm.label("hash")
    for j, byte in enumerate(_COOKIE):  # the magic cookie: skipped, it never varies
        asm.op(_LD_B_IND, j)
        asm.op(_JEQ_K, byte, jt=f"cookie{j + 1}", jf="value")
        asm.label(f"cookie{j + 1}")
    asm.op(_TXA)
    asm.op(_ADD_K, len(_COOKIE))
    asm.op(_TAX)
    asm.label("value")
    asm.op(_STX, 2)
    asm.op(_LD_IMM, 0)
    asm.op(_ST, 0)
    for j in range(hashed):
        asm.op(_LD_B_IND, j)
        asm.op(_JEQ_K, ord(";"), jt="done", jf=f"c{j}")
        asm.label(f"c{j}")
        asm.op(_JGE_K, ord("-"), jt=f"d{j}", jf="done")
        asm.label(f"d{j}")
        asm.op(_ST, 1)
        asm.op(_LDX_MEM, 1)
        asm.op(_LD_MEM, 0)
        asm.op(_MUL_K, 31)
        asm.op(_ADD_X)
        asm.op(_ST, 0)
        asm.op(_LDX_MEM, 2)
    asm.label("done")
    asm.op(_LD_MEM, 0)
    asm.op(_MOD_K, workers)
    asm.op(_RET_A)
    return asm.assemble()


def _attach(sock: socket.socket, program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def steer_by_branch(sock: socket.socket, workers: int) -> bool:
    """Attach :func:`branch_program` to ``sock``'s SO_REUSEPORT group: every message of a
    server transaction reaches the same worker, straight from the kernel. False where the
    kernel or platform refuses it."""
    if not hasattr(socket, "SO_REUSEPORT") or workers < 2:
        return False
    try:
        _attach(sock, branch_program(workers))
    except (OSError, ValueError) as exc:
        log.info("cannot steer datagrams to the workers by branch (%s)", exc)
        return False
    return True


def call_id_owner(data: bytes, workers: int) -> int | None:
    """The index of the worker owning the call of the datagram ``data`` (None: no Call-ID
    found; whoever received it handles it, and its parser says what is wrong)."""
    match = _CALL_ID_RE.search(data, 0, data.find(b"\r\n\r\n") + 2 or len(data))
    if match is None:
        return None
    return zlib.crc32(match.group(1).strip()) % workers


class Dispatcher:
    """One worker's side: relays the requests it does not own, takes in those it does.

    The relay is a UDP socket on 127.0.0.1 per worker (a Unix datagram socket would do, but
    Linux queues only ``net.unix.max_dgram_qlen`` — often 10 — datagrams per socket, far
    too few for a burst); each worker writes its relay port to ``directory/w<i>.port`` and
    reads the others' (again each second, so a restarted worker is found)."""

    def __init__(self, endpoint: Endpoint, index: int, workers: int, directory: Path) -> None:
        self.endpoint = endpoint
        self.index = index
        self.workers = workers
        self.directory = directory
        self.stats = {"handled": 0, "relayed_out": 0, "relayed_in": 0, "relay_drops": 0}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".w{index}.port.{os.getpid()}"
        temporary.write_text(str(self.port))
        temporary.replace(directory / f"w{index}.port")
        self._peers: list[int | None] = [None] * workers
        self._peers_read = -1.0
        self._listeners: dict[int, UdpListener] = {}
        self._deliver: Callable[[bytes, Address, UdpListener], None] | None = None

    def _peer_ports(self) -> list[int | None]:
        now = time.monotonic()
        if now - self._peers_read >= 1.0:
            self._peers_read = now
            for i in range(self.workers):
                try:
                    self._peers[i] = int((self.directory / f"w{i}.port").read_text())
                except (OSError, ValueError):
                    self._peers[i] = None
        return self._peers

    def start(self) -> None:
        """Sit between the endpoint's shared UDP listeners and its parser."""
        endpoint = self.endpoint
        self._deliver = endpoint.datagram_received
        for listener in endpoint.listeners:
            if isinstance(listener, UdpListener):
                self._listeners[listener.local.port] = listener
                listener.user = self  # type: ignore[assignment]
        endpoint.loop.add_reader(self._sock.fileno(), self._readable)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            self.endpoint.loop.remove_reader(self._sock.fileno())
        self._sock.close()
        log.info(
            "worker %d: %d request(s) handled here, %d passed to their owner, %d taken from "
            "another worker, %d relay drop(s)",
            self.index + 1,
            self.stats["handled"],
            self.stats["relayed_out"],
            self.stats["relayed_in"],
            self.stats["relay_drops"],
        )

    # The transport user's methods, for the shared listeners.
    def begin_batch(self) -> None:
        self.endpoint.begin_batch()

    def end_batch(self) -> None:
        self.endpoint.end_batch()

    def datagram_received(self, data: bytes, source: Address, listener: UdpListener) -> None:
        assert self._deliver is not None
        if data[:4] != b"SIP/":  # a request (responses come to our own port)
            owner = call_id_owner(data, self.workers)
            if owner is not None and owner != self.index:
                self._relay(owner, data, source, listener)
                return
            self.stats["handled"] += 1
        self._deliver(data, source, listener)

    def _relay(self, owner: int, data: bytes, source: Address, listener: UdpListener) -> None:
        port = self._peer_ports()[owner]
        head = f"{listener.local.port} {source.host} {source.port}\n".encode()
        try:
            if port is None:
                raise ConnectionError("not started")
            self._sock.sendto(head + data, ("127.0.0.1", port))
            self.stats["relayed_out"] += 1
        except OSError as exc:
            # The owner is not up (starting, restarting) or the path is full: dropped like
            # any UDP datagram; the sender's retransmission comes back to the owner. Never
            # handled here: that would fork a call across two workers' transactions.
            self.stats["relay_drops"] += 1
            log.debug("cannot pass a request to worker %d (%s): dropped", owner + 1, exc)

    def _readable(self) -> None:
        self.endpoint.begin_batch()  # as the listeners do (see transport.udp)
        try:
            self._relayed()
        finally:
            self.endpoint.end_batch()

    def _relayed(self) -> None:
        assert self._deliver is not None
        for _ in range(256):  # bounded: let the loop serve the sockets in between
            try:
                packet, sender = self._sock.recvfrom(70000)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("worker relay socket: %s", exc)
                return
            if sender[0] != "127.0.0.1" or sender[1] not in self._peer_ports():
                log.warning("worker relay socket: dropped a packet from %s:%s, not a worker", *sender)
                continue
            head, _, data = packet.partition(b"\n")
            try:
                port_text, host, source_port = head.decode().split(" ")
                listener = self._listeners[int(port_text)]
                source = Address("UDP", host, int(source_port))
            except (ValueError, KeyError, UnicodeDecodeError):
                log.warning("worker relay socket: dropped a malformed packet")
                continue
            self.stats["relayed_in"] += 1
            self.stats["handled"] += 1
            self._deliver(data, source, listener)
