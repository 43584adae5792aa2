"""Framing SIP messages on a byte stream (TCP, TLS, WebSocket-less streams).

RFC 3261 §18.3: on a stream, Content-Length is mandatory and frames the body.
RFC 3261 §7.5: CRLFs before a start line are ignored.
RFC 5626 §3.5.1: a client's keep-alive "ping" is CRLF CRLF and the server's "pong" is CRLF,
both between messages.

``StreamParser.feed(data)`` returns the events the new bytes complete, in order:
:class:`Request` / :class:`Response`, :class:`Ping`, :class:`Pong`, or :class:`Malformed`
(a well-framed message that failed to parse: answer it and keep the connection). Framing
errors — a message without Content-Length, or one larger than ``max_size`` — raise
:class:`ParseError`: the stream cannot be resynchronised, so the connection must close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ParseError
from .message import Request, Response, parse

# Content-Length (or its compact form l) at the start of a header line.
_CONTENT_LENGTH_RE = re.compile(
    rb"\r\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])"
    rb"[ \t]*:[ \t]*([0-9]+)[ \t]*(?=\r\n|$)"
)


@dataclass(frozen=True, slots=True)
class Ping:
    """CRLF CRLF keep-alive from a client (RFC 5626 §3.5.1): answer with a pong (CRLF)."""


@dataclass(frozen=True, slots=True)
class Pong:
    """CRLF keep-alive answer from a server (RFC 5626 §3.5.1)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A framed message that did not parse: the connection can go on."""

    error: ParseError
    data: bytes


StreamEvent = Request | Response | Ping | Pong | Malformed

PING = Ping()
PONG = Pong()


class StreamParser:
    """Cuts a byte stream into SIP messages and keep-alives.

    ``client=True`` on the connecting side, where a lone CRLF between messages is a pong;
    on the accepting side a CRLF waits to see whether a second one makes a ping.
    """

    __slots__ = ("_buffer", "client", "max_size", "strict")

    def __init__(self, *, max_size: int = 65535, client: bool = False, strict: bool = True) -> None:
        self._buffer = bytearray()
        self.max_size = max_size
        self.client = client
        self.strict = strict

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[StreamEvent]:
        buf = self._buffer
        buf += data
        events: list[StreamEvent] = []
        while buf:
            if buf[0] == 0x0D:  # CR: a keep-alive, or CRLFs before a start line (§7.5)
                if buf[:4] == b"\r\n\r\n" and not self.client:  # a client only gets pongs
                    events.append(PING)
                    del buf[:4]
                    continue
                if bytes(buf) in (b"\r", b"\r\n", b"\r\n\r") and not (self.client and len(buf) >= 2):
                    break  # may still become a ping
                if buf[:2] != b"\r\n":
                    raise ParseError("stray CR on the stream")
                del buf[:2]
                if self.client:
                    events.append(PONG)
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise ParseError("message headers too large", 413)
                break
            head = bytes(buf[:end])
            if b"\r\n " in head or b"\r\n\t" in head:
                head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
            found = _CONTENT_LENGTH_RE.findall(head)
            if not found:
                raise ParseError("message on a stream without Content-Length")
            digits = found[0].lstrip(b"0")
            if len(digits) > 10:
                raise ParseError("Content-Length too large", 413)
            length = int(digits or b"0")
            total = end + 4 + length
            if total > self.max_size:
                raise ParseError("message too large", 413)
            if len(buf) < total:
                break
            frame = bytes(buf[:total])
            del buf[:total]
            try:
                events.append(parse(frame, strict=self.strict))
            except ParseError as exc:
                events.append(Malformed(exc, frame))
        return events
