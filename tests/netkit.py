"""Loopback helpers shared by the test packages (``tests/`` is on ``sys.path``)."""

from __future__ import annotations

import secrets
import socket

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 just now (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
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
