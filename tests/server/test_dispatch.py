"""The kernel's choice of worker for a datagram on the shared UDP port (``--workers N``): the
classic BPF program of :func:`sipstack.server.dispatch.steer_by_branch`, attached to a real
SO_REUSEPORT group of sockets on 127.0.0.1 and fed real datagrams."""

from __future__ import annotations

import random
import select
import socket
import sys
from collections.abc import Iterator

import pytest

from sipstack.server.dispatch import BRANCH_HASHED, BRANCH_SCAN, branch_program, steer_by_branch

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"),
    reason="SO_ATTACH_REUSEPORT_CBPF is Linux's",
)

COOKIE = b"z9hG4bK"


def expected(data: bytes, workers: int) -> int | None:
    """What the program answers, written plainly: the socket index, or None for "out of
    range" (the kernel's 4-tuple hash decides)."""
    n = len(data)
    for i in range(BRANCH_SCAN):
        if i + 4 > n:
            return 0  # a load past the end stops a classic BPF program with 0
        if data[i : i + 4] == b"nch=":
            break
    else:
        return None
    start = i + 4
    if data[start : start + len(COOKIE)] == COOKIE:
        start += len(COOKIE)
    elif n < start + len(COOKIE) and COOKIE.startswith(data[start:]):
        return 0  # the cookie check read past the end
    value = 0
    for j in range(BRANCH_HASHED):
        if start + j >= n:
            return 0
        c = data[start + j]
        if c == ord(";") or c < ord("-"):
            break
        value = (value * 31 + c) & 0xFFFFFFFF
    return value % workers


@pytest.fixture
def group() -> Iterator[tuple[list[socket.socket], int]]:
    """Two sockets sharing a port, the branch program attached (index = order of binding)."""
    socks: list[socket.socket] = []
    port = 0
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        socks.append(sock)
    assert steer_by_branch(socks[0], 2)
    yield socks, port
    for sock in socks:
        sock.close()


def landed(socks: list[socket.socket], sender: socket.socket, port: int, data: bytes) -> int:
    sender.sendto(data, ("127.0.0.1", port))
    ready, _, _ = select.select(socks, [], [], 2.0)
    assert len(ready) == 1, "the datagram reached no socket, or two"
    ready[0].recv(65535)
    return socks.index(ready[0])


def request(method: str, branch: str, cseq: str, extra: str = "") -> bytes:
    return (
        f"{method} sip:bob@example.net SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n"
        f"{extra}Max-Forwards: 70\r\nCall-ID: c1@h\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_program_fits_classic_bpf() -> None:
    assert len(branch_program(2)) // 8 <= 4096  # BPF_MAXINSNS
    assert len(branch_program(7)) == len(branch_program(2))


def test_a_transactions_messages_meet_and_transactions_spread(group: tuple[list[socket.socket], int]) -> None:
    """From ONE source: INVITE, its retransmission, its CANCEL and the ACK of its 487 land on
    one socket (the same branch); 300 transactions spread over both."""
    socks, port = group
    rng = random.Random(5)
    counts = [0, 0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(300):
            branch = f"z9hG4bK{rng.getrandbits(48):x}"
            where = {
                landed(socks, sender, port, request("INVITE", branch, "1 INVITE")),
                landed(socks, sender, port, request("INVITE", branch, "1 INVITE")),
                landed(socks, sender, port, request("CANCEL", branch, "1 CANCEL")),
                landed(socks, sender, port, request("ACK", branch, "1 ACK", "Route: <sip:p.example>\r\n")),
            }
            assert len(where) == 1, branch
            counts[where.pop()] += 1
    assert min(counts) >= 100, counts


def test_kernel_choice_matches_the_plain_model(group: tuple[list[socket.socket], int]) -> None:
    """Branches with and without the cookie, of every length up to past the hashed part,
    ended by ``;``, CR, ``,`` or the datagram; and datagrams with no branch at all."""
    socks, port = group
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
    cases: list[bytes] = []
    for _ in range(200):
        cookie = "z9hG4bK" if rng.random() < 0.7 else ""
        value = cookie + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        end = rng.choice([";rport", "\r\n", ", SIP/2.0/UDP h", ""])
        cases.append(f"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch={value}{end}".encode())
    cases += [b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", b"x", b"branch=", b"nch=z9h"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for data in cases:
            want = expected(data, 2)
            assert want is not None
            assert landed(socks, sender, port, data) == want, data


def test_no_branch_in_the_scanned_bytes_falls_back_to_the_source_hash(
    group: tuple[list[socket.socket], int],
) -> None:
    """A request line longer than the scan: out of range, so the kernel's 4-tuple hash — the
    same socket for every datagram from one source (its retransmissions)."""
    socks, port = group
    data = request("INVITE", "z9hG4bKlong", "1 INVITE").replace(b"bob@", b"b" * BRANCH_SCAN + b"@")
    assert expected(data, 2) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        assert len({landed(socks, sender, port, data) for _ in range(10)}) == 1
