"""The error types every layer shares (floor 1: imports nothing from sipstack).

Errors are values with a status code: a peer's malformed message raises ``ParseError``
carrying the status a server answers with (h11's ``error_status_hint`` idea), and it is
caught at exactly one boundary per entry point, where it becomes a response or a drop.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error sipstack raises on purpose."""


class ParseError(SipError, ValueError):
    """A message (or a part of one) that does not follow the grammar.

    ``status_code`` is what a server answers a request with (400 by default; 505 for an
    unknown SIP version, 413 for an oversized message, 416 for an unsupported URI scheme,
    420 for an unsupported extension, 513 for a message too large for its transport).
    ``reason`` is a short human-readable explanation, suitable for a reason phrase or a
    Warning header.
    """

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"ParseError({self.reason!r}, status_code={self.status_code})"


class SipTimeoutError(SipError, TimeoutError):
    """No final response in time (Timer B or F, RFC 3261 §17.1)."""


class TransportError(SipError, ConnectionError):
    """A message could not be delivered: no route, connection refused or lost."""


class ConfigurationError(SipError, ValueError):
    """An option or configuration value that cannot work (named in the message)."""
