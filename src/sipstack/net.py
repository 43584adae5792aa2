"""Addresses and transport names shared by every layer (floor 1: imports nothing above).

An :class:`Address` names where a message came from or goes to: the transport, the host
(an IP literal, IPv6 without brackets) and port, and — on stream transports — the
connection a message arrived on, so that a response can go back over it (RFC 3261
§18.2.2).
"""

from __future__ import annotations

from typing import NamedTuple

# Transports whose delivery is reliable (no retransmission timers, RFC 3261 §17).
RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})
# Transports that carry SIPS (RFC 3261 §26.2.1).
SECURE_TRANSPORTS = frozenset({"TLS", "TLS-SCTP", "WSS"})
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "SCTP": 5060, "TLS": 5061, "TLS-SCTP": 5061, "WS": 80, "WSS": 443}


class Address(NamedTuple):
    """A transport address. ``connection`` identifies the stream a message arrived on.
    ``server_name``: the domain a TLS connection to this address is for — the host of the
    URI that RFC 3263 resolved into it — which the server's certificate must name (SNI and
    hostname check, RFC 5922 §7.3) and which decides which aliased connections may carry
    the request (RFC 5923 on virtual servers); None: the certificate must name ``host``."""

    transport: str
    host: str
    port: int
    connection: int | None = None
    server_name: str | None = None

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def secure(self) -> bool:
        return self.transport in SECURE_TRANSPORTS

    @property
    def host_port(self) -> str:
        """``host:port`` as written in a Via or URI (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{self.host_port}"


def strip_brackets(host: str) -> str:
    """An IPv6 reference without its brackets; other hosts unchanged."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
