"""STUN (RFC 5389) as SIP Outbound uses it (RFC 5626 §4.4.2, §8): sans-I/O.

A SIP server that supports Outbound over UDP answers STUN Binding requests on its SIP port,
and a UA sends them over its flow to keep the NAT binding open and to notice when the
binding changes. Only what that needs is here: the message format (header, magic cookie,
transaction id, attributes), XOR-MAPPED-ADDRESS for IPv4 and IPv6, ERROR-CODE,
UNKNOWN-ATTRIBUTES, SOFTWARE and FINGERPRINT; no authentication (RFC 5626 §8 uses none).

- :func:`is_stun` tells a STUN datagram from a SIP one (RFC 5389 §6, RFC 5626 §8).
- :func:`decode` / :func:`encode` convert between bytes and :class:`StunMessage`; every
  malformed input raises :class:`StunError`, and nothing else.
- :func:`answer` is the server side: the response to send for a received request, if any.
- :class:`StunTransaction` is the client side: the retransmission schedule of RFC 5389
  §7.2.1 driven by a clock the caller passes (``get_timer`` / ``handle_timer``).
"""

from __future__ import annotations

import ipaddress
import os
import struct
import zlib
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
HEADER_SIZE = 20

# Methods (RFC 5389 §18.1) and classes (§6).
BINDING = 0x001
REQUEST = 0
INDICATION = 1
SUCCESS = 2
ERROR = 3

# Attributes (RFC 5389 §18.2).
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
REALM = 0x0014
NONCE = 0x0015
XOR_MAPPED_ADDRESS = 0x0020
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028

# Comprehension-required attributes (0x0000-0x7FFF) this implementation knows; a request with
# any other one is answered 420 (RFC 5389 §7.3.1).
_KNOWN_REQUIRED = frozenset(
    {
        MAPPED_ADDRESS,
        USERNAME,
        MESSAGE_INTEGRITY,
        ERROR_CODE,
        UNKNOWN_ATTRIBUTES,
        REALM,
        NONCE,
        XOR_MAPPED_ADDRESS,
    }
)
_FINGERPRINT_XOR = 0x5354554E  # RFC 5389 §15.5: "STUN" in ASCII
_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02

# RFC 5389 §7.2.1 defaults: initial RTO 500 ms, 7 requests, wait 16 x RTO after the last.
DEFAULT_RTO = 0.5
DEFAULT_RC = 7
DEFAULT_RM = 16


class StunError(Exception):
    """A malformed STUN message, or a STUN transaction that failed. ``code`` is the STUN
    error code of an error response (RFC 5389 §15.6), else None."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason if code is None else f"{code} {reason}")
        self.reason = reason
        self.code = code


class StunTimeout(StunError):
    """No response after the whole retransmission schedule (RFC 5389 §7.2.1)."""


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A decoded STUN message. ``attributes`` keeps (type, value) pairs in order, padding
    removed; ``fingerprint`` says whether a (valid) FINGERPRINT was present."""

    method: int
    cls: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...] = ()
    fingerprint: bool = False

    def attribute(self, kind: int) -> bytes | None:
        """The value of the first attribute of type ``kind`` (RFC 5389 §15: later duplicates
        are ignored)."""
        for attr_type, value in self.attributes:
            if attr_type == kind:
                return value
        return None

    @property
    def mapped_address(self) -> tuple[str, int] | None:
        """The reflexive transport address: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS
        (RFC 5389 §15.2: a client also accepts the latter, for RFC 3489 servers)."""
        value = self.attribute(XOR_MAPPED_ADDRESS)
        if value is not None:
            return _decode_address(value, self.transaction_id, xor=True)
        value = self.attribute(MAPPED_ADDRESS)
        if value is not None:
            return _decode_address(value, self.transaction_id, xor=False)
        return None

    @property
    def error(self) -> tuple[int, str] | None:
        """(code, reason) of an ERROR-CODE attribute (RFC 5389 §15.6)."""
        value = self.attribute(ERROR_CODE)
        if value is None:
            return None
        if len(value) < 4:
            raise StunError("ERROR-CODE shorter than 4 bytes")
        code = (value[2] & 0x07) * 100 + value[3]
        if not 300 <= code <= 699 or value[3] > 99:
            raise StunError(f"ERROR-CODE {code} out of range")
        return code, value[4:].decode("utf-8", "replace")

    @property
    def unknown_required(self) -> list[int]:
        """Comprehension-required attributes this implementation does not know."""
        return [t for t, _ in self.attributes if t < 0x8000 and t not in _KNOWN_REQUIRED]


# -- demultiplexing -------------------------------------------------------------------------


def is_stun(data: bytes) -> bool:
    """Whether a datagram is STUN rather than SIP: at least a header, the two top bits of
    the first byte zero (a SIP message starts with a letter) and the magic cookie in bytes
    4-8 (RFC 5389 §6, RFC 5626 §8)."""
    return len(data) >= HEADER_SIZE and data[0] < 0x40 and data[4:8] == _COOKIE_BYTES


# -- decoding -------------------------------------------------------------------------------


def decode(data: bytes) -> StunMessage:
    """Parse a STUN message (RFC 5389 §6, §15). Raises :class:`StunError`, and only that,
    on anything malformed — including a FINGERPRINT that does not match."""
    if len(data) < HEADER_SIZE:
        raise StunError("shorter than a STUN header")
    msg_type, length, cookie = struct.unpack_from("!HHI", data)
    if msg_type & 0xC000:
        raise StunError("the two most significant bits are not zero")
    if cookie != MAGIC_COOKIE:
        raise StunError("no magic cookie (an RFC 3489 message?)")
    if length % 4:
        raise StunError("message length is not a multiple of 4")
    if HEADER_SIZE + length != len(data):
        raise StunError(
            f"message length {length} does not match the {len(data) - HEADER_SIZE} bytes received"
        )
    method = (msg_type & 0x000F) | ((msg_type >> 1) & 0x0070) | ((msg_type >> 2) & 0x0F80)
    cls = ((msg_type >> 4) & 0x1) | ((msg_type >> 7) & 0x2)
    transaction_id = bytes(data[8:20])
    attributes: list[tuple[int, bytes]] = []
    fingerprint = False
    integrity = False
    offset = HEADER_SIZE
    end = len(data)
    while offset < end:
        if end - offset < 4:
            raise StunError("truncated attribute header")
        attr_type, attr_len = struct.unpack_from("!HH", data, offset)
        start = offset + 4
        stop = start + attr_len
        if stop > end:
            raise StunError(f"attribute 0x{attr_type:04x} runs past the end of the message")
        value = bytes(data[start:stop])
        if attr_type == FINGERPRINT:
            padded = stop + (-attr_len % 4)
            if attr_len != 4 or padded != end:
                raise StunError("FINGERPRINT is not the last attribute or not 4 bytes long")
            expected = (zlib.crc32(data[:offset]) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
            if int.from_bytes(value, "big") != expected:
                raise StunError("FINGERPRINT does not match")
            fingerprint = True
        elif not integrity:  # RFC 5389 §15.4: attributes after MESSAGE-INTEGRITY are ignored
            attributes.append((attr_type, value))
            integrity = attr_type == MESSAGE_INTEGRITY
        offset = stop + (-attr_len % 4)  # never past ``end``: both are 4-aligned
    return StunMessage(method, cls, transaction_id, tuple(attributes), fingerprint)


def _decode_address(value: bytes, transaction_id: bytes, *, xor: bool) -> tuple[str, int]:
    if len(value) < 4:
        raise StunError("address attribute shorter than 4 bytes")
    family = value[1]
    port = int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if family == _FAMILY_IPV4:
        if len(raw) != 4:
            raise StunError("IPv4 address attribute of the wrong length")
        mask = _COOKIE_BYTES
    elif family == _FAMILY_IPV6:
        if len(raw) != 16:
            raise StunError("IPv6 address attribute of the wrong length")
        mask = _COOKIE_BYTES + transaction_id
    else:
        raise StunError(f"unknown address family 0x{family:02x}")
    if xor:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    host = str(ipaddress.ip_address(raw))
    return host, port


# -- encoding -------------------------------------------------------------------------------


def new_transaction_id() -> bytes:
    """96 random bits (RFC 5389 §6: uniformly and randomly chosen)."""
    return os.urandom(12)


def encode(
    method: int,
    cls: int,
    transaction_id: bytes,
    attributes: list[tuple[int, bytes]] | tuple[tuple[int, bytes], ...] = (),
    *,
    fingerprint: bool = False,
) -> bytes:
    """The wire form of a STUN message; FINGERPRINT (RFC 5389 §15.5) appended last when
    asked for."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 12 bytes")
    if not 0 <= method <= 0xFFF or not 0 <= cls <= 3:
        raise ValueError("bad STUN method or class")
    msg_type = (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0x1) << 4)
        | ((cls & 0x2) << 7)
    )
    body = bytearray()
    for attr_type, value in attributes:
        if len(value) > 0xFFFF:
            raise ValueError("STUN attribute too long")
        body += struct.pack("!HH", attr_type, len(value)) + value + b"\x00" * (-len(value) % 4)
    length = len(body) + (8 if fingerprint else 0)
    message = struct.pack("!HHI", msg_type, length, MAGIC_COOKIE) + transaction_id + bytes(body)
    if fingerprint:
        # The CRC covers the message up to the attribute, with the length already counting it.
        crc = (zlib.crc32(message) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
        message += struct.pack("!HHI", FINGERPRINT, 4, crc)
    return message


def encode_xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    """An XOR-MAPPED-ADDRESS value (RFC 5389 §15.2); an IPv4-mapped IPv6 source is given
    as the IPv4 address it is."""
    address = ipaddress.ip_address(host.strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        family, mask = _FAMILY_IPV4, _COOKIE_BYTES
    else:
        family, mask = _FAMILY_IPV6, _COOKIE_BYTES + transaction_id
    raw = bytes(a ^ b for a, b in zip(address.packed, mask, strict=True))
    return struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + raw


def encode_error_code(code: int, reason: str) -> bytes:
    """An ERROR-CODE value (RFC 5389 §15.6)."""
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")[:763]


def binding_request(
    transaction_id: bytes | None = None, *, software: str | None = None, fingerprint: bool = True
) -> tuple[bytes, bytes]:
    """A Binding request and its transaction id (RFC 5389 §7.1)."""
    tid = transaction_id or new_transaction_id()
    attributes = [(SOFTWARE, software.encode("utf-8")[:763])] if software else []
    return encode(BINDING, REQUEST, tid, attributes, fingerprint=fingerprint), tid


def answer(
    request: StunMessage | bytes, host: str, port: int, *, software: str | None = None
) -> bytes | None:
    """The server side (RFC 5389 §7.3, RFC 5626 §8): the response to a STUN request
    received from ``host:port``, or None when nothing is to be sent (an indication, a
    response, a method other than Binding). Raises :class:`StunError` on malformed input.

    A Binding request is answered with a success response carrying the source as
    XOR-MAPPED-ADDRESS; one with an unknown comprehension-required attribute with 420 and
    UNKNOWN-ATTRIBUTES. The response has a FINGERPRINT when the request had one."""
    if not isinstance(request, StunMessage):
        request = decode(request)
    if request.cls != REQUEST or request.method != BINDING:
        return None
    extra = [(SOFTWARE, software.encode("utf-8")[:763])] if software else []
    unknown = request.unknown_required
    if unknown:
        attrs = [
            (ERROR_CODE, encode_error_code(420, "Unknown Attribute")),
            (UNKNOWN_ATTRIBUTES, b"".join(t.to_bytes(2, "big") for t in unknown)),
            *extra,
        ]
        return encode(BINDING, ERROR, request.transaction_id, attrs, fingerprint=request.fingerprint)
    attrs = [(XOR_MAPPED_ADDRESS, encode_xor_address(host, port, request.transaction_id)), *extra]
    return encode(BINDING, SUCCESS, request.transaction_id, attrs, fingerprint=request.fingerprint)


# -- client transaction ------------------------------------------------------------------------


def retransmission_times(rto: float = DEFAULT_RTO, rc: int = DEFAULT_RC, rm: int = DEFAULT_RM) -> list[float]:
    """When a UDP client sends its requests, and (last) when it gives up, in seconds after
    the first (RFC 5389 §7.2.1): with the defaults 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 and 39.5."""
    times = [0.0]
    interval = rto
    for _ in range(rc - 1):
        times.append(times[-1] + interval)
        interval *= 2
    times.append(times[-1] + rm * rto)
    return times


class StunTransaction:
    """One STUN client transaction over UDP (RFC 5389 §7.2.1), without I/O.

    ``start(now)`` gives the first request to send; ``get_timer()`` says when to call
    ``handle_timer(now)``, which gives a retransmission to send (or None, and the
    transaction has then timed out); ``receive(message)`` takes a response with the
    transaction's id and ends it. ``result`` is the success response, ``error`` the
    :class:`StunError` it ended with.
    """

    def __init__(
        self,
        request: bytes,
        transaction_id: bytes,
        *,
        rto: float = DEFAULT_RTO,
        rc: int = DEFAULT_RC,
        rm: int = DEFAULT_RM,
    ) -> None:
        if rto <= 0 or rc < 1 or rm < 1:
            raise ValueError("STUN retransmission needs rto > 0, rc >= 1, rm >= 1")
        self.request = request
        self.transaction_id = transaction_id
        self._schedule = retransmission_times(rto, rc, rm)
        self._sent = 0
        self._started: float | None = None
        self.result: StunMessage | None = None
        self.error: StunError | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def requests_sent(self) -> int:
        return self._sent

    def start(self, now: float) -> bytes:
        if self._started is not None:
            raise RuntimeError("STUN transaction already started")
        self._started = now
        self._sent = 1
        return self.request

    def get_timer(self) -> float | None:
        if self.done or self._started is None:
            return None
        return self._started + self._schedule[self._sent]

    def handle_timer(self, now: float) -> bytes | None:
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return None
        # Called late (the process was stopped, the loop stalled): the rest of the schedule
        # keeps its intervals from now, or a pause would use it all up before any answer.
        assert self._started is not None
        self._started += now - deadline
        if self._sent < len(self._schedule) - 1:
            self._sent += 1
            return self.request
        self.error = StunTimeout(f"no STUN response after {self._sent} requests")
        return None

    def receive(self, message: StunMessage) -> bool:
        """Take a response; True when it ends the transaction (RFC 5389 §7.3.3, §7.3.4)."""
        if self.done or message.transaction_id != self.transaction_id:
            return False
        if message.cls == SUCCESS:
            try:
                mapped = message.mapped_address
            except StunError as exc:
                self.error = exc
                return True
            if mapped is None:
                self.error = StunError("Binding success response without a mapped address")
            else:
                self.result = message
            return True
        if message.cls == ERROR:
            try:
                error = message.error
            except StunError as exc:
                self.error = exc
                return True
            code, reason = error if error is not None else (500, "error response without ERROR-CODE")
            self.error = StunError(reason, code)
            return True
        return False
