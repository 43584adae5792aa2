"""Loopback helpers shared by the test packages (``tests/`` is on ``sys.path``)."""

from __future__ import annotations

import random
import secrets
import socket
from pathlib import Path

HOST = "127.0.0.1"


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel takes ports from for bind(0) and connect() (Linux)."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


# Ports are handed out from below the ephemeral range: no bind(0) or connect() of any
# process (a SIPp, a TCP client of the test itself) can take one between the moment it is
# handed out and the moment the server under test binds it — with ports that bind(0) had
# just handed out, that happened (a setup "Address already in use"). Nor is a port handed
# out twice by this process.
_EPHEMERAL = _ephemeral_range()
_POOL = (10000, _EPHEMERAL[0] - 1) if _EPHEMERAL[0] > 12000 else (_EPHEMERAL[1] + 1, 65000)
_given: set[int] = set()
_random = random.Random()


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(width: int = 1) -> int:
    """A port P such that P .. P+width-1 are free for both UDP and TCP on 127.0.0.1 (SIP
    listens on both; baresip puts its TLS listener on P+1), outside the kernel's ephemeral
    range and not handed out before by this process."""
    low, high = _POOL
    for _ in range(500):
        port = _random.randrange(low, high - width)
        span = range(port, port + width)
        if any(p in _given for p in span):
            continue
        if all(_bindable(p, kind) for p in span for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)):
            _given.update(span)
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def options_status(port: int, timeout: float = 0.3) -> int | None:
    """One OPTIONS sip:127.0.0.1:PORT over UDP: the status code of its response, or None
    (nothing within ``timeout``, port unreachable). Readiness probe of the SIP servers the
    tests start."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        branch = "z9hG4bK" + secrets.token_hex(8)
        request = (
            f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{HOST}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{HOST}:{port}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@probe\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            sock.sendto(request.encode(), (HOST, port))
            while True:
                data = sock.recv(65535)
                if branch.encode() in data and data.startswith(b"SIP/2.0 "):
                    return int(data[8:11])
        except (OSError, ValueError):
            return None
