"""SIP Outbound flows and flow tokens (RFC 5626 §3.3, §5.2), sans-I/O (floor 2).

A *flow* is the transport association a UA's registration arrived on: for TCP, TLS and
WebSocket one connection (this process's connection id, meaningful only while this
process runs: :attr:`Flow.epoch` tells incarnations apart), for UDP the pair of the local
socket and the UA's (NAT-mapped) address. The registrar records the flow of a REGISTER that
reached it directly; an edge proxy hands its flows out as *flow tokens* in the user part of
the Path and Record-Route URIs it adds, and later routes a request carrying one of its
tokens over exactly that flow.

A token is ``base64url(MAC || flow text)`` with the MAC an HMAC-SHA-256 (truncated to 80
bits, as in the RFC's example algorithm of §5.2) keyed with a secret only the edge proxy
holds: a token cannot be forged or edited without the change being detected (RFC 5626 §5.3:
a tampered token is answered 403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from .errors import SipError
from .net import RELIABLE_TRANSPORTS, Address

MAC_SIZE = 10
"""Bytes of HMAC-SHA-256 kept in a token (80 bits, RFC 5626 §5.2's HMAC-SHA1-80 strength)."""

PATH_FLOW = "path"
"""``Binding.flow`` of an outbound registration whose flow an edge proxy keeps: the
first-hop Path entry (the last one) carries the edge's flow token (RFC 5626 §6)."""


class FlowTokenError(SipError, ValueError):
    """A flow token that does not decode or whose MAC does not match: tampered with or made
    by someone else (RFC 5626 §5.3: answered 403)."""

    status_code = 403


def _field(text: str) -> str:
    return text if text else "-"


def _unfield(text: str) -> str:
    return "" if text == "-" else text


@dataclass(frozen=True, slots=True)
class Flow:
    """One flow, as seen from this element (RFC 5626 §3.3)."""

    transport: str
    """``UDP``, ``TCP``, ``TLS``, ``WS`` or ``WSS``."""
    remote_host: str
    remote_port: int
    local_host: str = ""
    local_port: int = 0
    connection: int | None = None
    """The connection id on stream transports (None for UDP)."""
    epoch: str = ""
    """Which run of the process made the flow: connection ids start again at each start."""

    @classmethod
    def of(cls, source: Address, local: tuple[str, int] | None = None, epoch: str = "") -> Flow:
        """The flow a message from ``source`` arrived on (``local``: our end of it)."""
        host, port = local or ("", 0)
        return cls(source.transport, source.host, source.port, host, port, source.connection, epoch)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def address(self) -> Address:
        """Where to send over the flow: the remote address pinned to the connection."""
        return Address(self.transport, self.remote_host, self.remote_port, self.connection)

    def carries(self, source: Address) -> bool:
        """Whether a message from ``source`` came over this flow (RFC 5626 §5.3 tells
        "outgoing" requests, from the UA, from "incoming" ones this way)."""
        if source.transport != self.transport:
            return False
        if self.connection is not None and source.connection is not None:
            return source.connection == self.connection
        return source.host == self.remote_host and source.port == self.remote_port

    def text(self) -> str:
        """A one-line form, read back by :meth:`parse` (stored in ``Binding.flow``)."""
        connection = "-" if self.connection is None else str(self.connection)
        return " ".join(
            (
                self.transport,
                _field(self.remote_host),
                str(self.remote_port),
                _field(self.local_host),
                str(self.local_port),
                connection,
                _field(self.epoch),
            )
        )

    @classmethod
    def parse(cls, text: str) -> Flow:
        """The flow of :meth:`text`; :class:`ValueError` for anything else."""
        parts = text.split(" ")
        if len(parts) != 7:
            raise ValueError(f"not a flow: {text!r}")
        transport, remote_host, remote_port, local_host, local_port, connection, epoch = parts
        return cls(
            transport,
            _unfield(remote_host),
            int(remote_port),
            _unfield(local_host),
            int(local_port),
            None if connection == "-" else int(connection),
            _unfield(epoch),
        )


class FlowTokens:
    """Makes and checks the flow tokens of one edge proxy (RFC 5626 §5.2)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a flow token secret needs at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:MAC_SIZE]

    def encode(self, flow: Flow) -> str:
        """The token for ``flow``: URL-safe base64 without padding, fit for a URI user part."""
        payload = flow.text().encode()
        return base64.urlsafe_b64encode(self._mac(payload) + payload).rstrip(b"=").decode("ascii")

    def decode(self, token: str) -> Flow:
        """The flow ``token`` names; :class:`FlowTokenError` if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise FlowTokenError("flow token is not base64") from None
        mac, payload = raw[:MAC_SIZE], raw[MAC_SIZE:]
        if len(mac) != MAC_SIZE or not hmac.compare_digest(mac, self._mac(payload)):
            raise FlowTokenError("flow token fails its integrity check")
        try:
            return Flow.parse(payload.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise FlowTokenError("flow token does not name a flow") from None


__all__ = ["MAC_SIZE", "PATH_FLOW", "Flow", "FlowTokenError", "FlowTokens"]
