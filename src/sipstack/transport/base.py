"""What the transports share: listen specs and the interface of the layer above them.

Transports move bytes; they know nothing of transactions. Whoever uses them (the
endpoint) implements :class:`TransportUser` and receives every datagram, every framed
stream message and every connection event through it, synchronously, from the event
loop's callbacks (no task per message).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..message import Malformed, Request, Response
from ..net import DEFAULT_PORTS, Address

if TYPE_CHECKING:
    from .stream import Connection
    from .udp import UdpListener

TRANSPORT_NAMES = ("UDP", "TCP", "TLS", "WS", "WSS")


class ListenSpec(NamedTuple):
    """``udp:127.0.0.1:5060``, ``tcp:[::1]:5060``, ``tls:0.0.0.0:5061``, ``ws:127.0.0.1:8080``,
    ``wss:…`` (WebSocket, RFC 7118; port 0: any free port)."""

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenSpec:
        m = _SPEC_RE.fullmatch(text.strip())
        if m is None:
            raise ValueError(
                f"bad listen address {text!r}: expected PROTO:HOST[:PORT], e.g. udp:127.0.0.1:5060"
            )
        transport = m.group(1).upper()
        if transport not in TRANSPORT_NAMES:
            raise ValueError(f"unknown transport {m.group(1)!r} in {text!r} (udp, tcp, tls, ws or wss)")
        host = m.group(2) or m.group(3)
        port = int(m.group(4)) if m.group(4) else DEFAULT_PORTS[transport]
        if port > 65535:
            raise ValueError(f"bad port in {text!r}")
        return cls(transport, host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"


_SPEC_RE = re.compile(r"([A-Za-z]+):(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+))(?::([0-9]{1,5}))?")


class TransportUser(Protocol):
    """The layer above the transports (the endpoint)."""

    def datagram_received(self, data: bytes, source: Address, listener: UdpListener) -> None: ...

    def begin_batch(self) -> None:
        """The datagrams read in one wake-up are about to be handed over: the user may keep
        them, and what they make it send, until :meth:`end_batch`."""

    def end_batch(self) -> None:
        """They have been: handle what was kept, then send, in order."""

    def stream_message(
        self, message: Request | Response | Malformed, source: Address, connection: Connection
    ) -> None: ...

    def connection_closed(self, connection: Connection) -> None: ...
