"""SDP session descriptions (RFC 8866), sans-I/O.

``SessionDescription.parse`` reads a body into plain dataclasses and ``bytes(sd)``
writes one back (CRLF, RFC 8866 §5 order); ``parse(bytes(sd)) == sd`` holds for every
description the parser accepts.  Malformed input raises ``ParseError`` (status 400) and
nothing else.

Decisions where the RFCs leave room:

* A type letter outside RFC 8866 §5's fourteen refuses the whole description (§5: a
  parser "MUST completely ignore" it), as does a known letter out of §5's order.
* Runs of SP between fields are tolerated (values kept verbatim where raw).
* Bare-LF line endings are accepted (§5 "SHOULD be tolerant"); blank lines at the very
  end are ignored, anywhere else they are an error.  Output always uses CRLF.
* ``s=`` may be empty (seen in the wild; the grammar wants one character).
* RFC 8866 §5.7's rule is enforced: a ``c=`` at session level or in every ``m=``.
* ``z=`` is kept as one raw line per description; it may follow any ``t=``/``r=``
  line (RFC 8866 ties it to a repeat description, RFC 4566 put it after all of them).
* ``k=`` (obsolete per RFC 8866 §5.12) is still parsed and written, as raw text.
* Attribute values are not interpreted while parsing (§5.13: unknown attributes are
  ignored); the typed helpers (``fingerprints``, ``setup``, ``rtpmaps``…) validate when
  called and raise ``ParseError`` then.  Attribute names match case-insensitively.
* ``a=fingerprint`` hex is accepted in either case and normalised to upper case (RFC
  8122's UHEX); hash names are normalised to lower case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from sipstack.errors import ParseError

__all__ = [
    "DIRECTIONS", "SETUP_ROLES", "Attribute", "Bandwidth", "Connection", "Fingerprint", "MediaDescription",
    "Origin", "RtpMap", "SessionDescription", "Timing", "parse_fingerprint", "parse_rtpmap", "parse_sdp"
]  # fmt: skip

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
SETUP_ROLES = ("active", "passive", "actpass", "holdconn")

# RFC 8866 §9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_DIGITS = re.compile(r"[0-9]+")
_TYPED_TIME = re.compile(r"[0-9]+[dhms]?")
_OFFSET = re.compile(r"-?[0-9]+[dhms]?")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")

# Position of each letter in RFC 8866 §5's session-level order.
_SESSION_RANK = {k: i for i, k in enumerate("vosiuepcbtrzkam")}
_SESSION_REPEATABLE = frozenset("epbtram")
_MEDIA_RANK = {k: i for i, k in enumerate("micbka")}
_MEDIA_REPEATABLE = frozenset("cba")
_T, _R, _Z = _SESSION_RANK["t"], _SESSION_RANK["r"], _SESSION_RANK["z"]


def _fail(reason: str, lineno: int | None = None) -> ParseError:
    return ParseError(f"SDP line {lineno}: {reason}" if lineno else f"SDP: {reason}", 400)


def _int(text: str, what: str) -> int:
    if not _DIGITS.fullmatch(text) or len(text) > 40:
        raise _fail(f"{what} is not an unsigned integer: {text[:40]!r}")
    return int(text)


def _token(text: str, what: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise _fail(f"{what} is not a token: {text[:40]!r}")
    return text


def _fields(value: str, count: int | None, what: str) -> list[str]:
    """The SP-separated fields of ``value`` (runs of SP tolerated); ``count`` of them if given."""
    parts = [p for p in value.split(" ") if p]
    if (count is not None and len(parts) != count) or not parts:
        raise _fail(f"{what} needs {count or 'some'} space-separated fields")
    return parts


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    sess_id: int
    sess_version: int
    nettype: str
    addrtype: str
    unicast_address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.unicast_address}"
        )


def _split_address(addrtype: str, address: str) -> tuple[str, int | None, int | None]:
    """(host, ttl, count) of a connection address (RFC 8866 §5.7)."""
    kind = addrtype.upper()
    if kind not in ("IP4", "IP6") or "/" not in address:
        return address, None, None
    host, *suffix = address.split("/")
    if not host:
        raise _fail("connection address without a host")
    nums = [_int(s, "connection address suffix") for s in suffix]
    if kind == "IP6":
        if len(nums) != 1:
            raise _fail("an IP6 connection address takes only /<number of addresses>")
        return host, None, nums[0]
    if len(nums) > 2:
        raise _fail("an IP4 connection address takes at most /<ttl>/<number of addresses>")
    if nums[0] > 255:
        raise _fail("TTL out of range 0-255")
    return host, nums[0], nums[1] if len(nums) == 2 else None


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>``; ``address`` keeps any /ttl/count."""

    nettype: str
    addrtype: str
    address: str

    @property
    def host(self) -> str:
        """The address without any /ttl/count suffix."""
        return _split_address(self.addrtype, self.address)[0]

    @property
    def ttl(self) -> int | None:
        """The IPv4 multicast TTL, if the address has one."""
        return _split_address(self.addrtype, self.address)[1]

    @property
    def count(self) -> int | None:
        """The number of addresses (``/<count>`` suffix), if given."""
        return _split_address(self.addrtype, self.address)[2]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>``."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class Timing:
    """``t=<start> <stop>`` and the raw values of the ``r=`` lines that follow it."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Attribute:
    """``a=<name>`` (value None: a property attribute) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <fingerprint>`` (RFC 8122 §5)."""

    hash_func: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.hash_func} {self.fingerprint}"


class RtpMap(NamedTuple):
    """``a=rtpmap:<payload> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    payload: int
    encoding: str
    clock_rate: int
    channels: int | None


def parse_fingerprint(value: str) -> Fingerprint:
    parts = value.split()
    if len(parts) != 2 or not _HEX_PAIRS.fullmatch(parts[1]):
        raise _fail(f"malformed a=fingerprint: {value[:80]!r}")
    return Fingerprint(_token(parts[0], "hash function").lower(), parts[1].upper())


def parse_rtpmap(value: str) -> RtpMap:
    payload, _, rest = value.partition(" ")
    pieces = rest.strip(" ").split("/")
    if not 2 <= len(pieces) <= 3:
        raise _fail(f"malformed a=rtpmap: {value[:80]!r}")
    pt = _int(payload, "rtpmap payload type")
    if pt > 127:
        raise _fail("rtpmap payload type out of range 0-127")
    channels = _int(pieces[2], "rtpmap channels") if len(pieces) == 3 else None
    encoding = _token(pieces[0], "rtpmap encoding name")
    return RtpMap(pt, encoding, _int(pieces[1], "rtpmap clock rate"), channels)


class _Attributes:
    """Attribute accessors shared by the session and media levels."""

    __slots__ = ()
    attributes: list[Attribute]

    def get_attributes(self, name: str) -> list[str]:
        """Values of every ``a=name``, in order ("" for a property attribute)."""
        key = name.lower()
        return [a.value or "" for a in self.attributes if a.name.lower() == key]

    def get_attribute(self, name: str) -> str | None:
        """Value of the first ``a=name`` ("" for a property attribute), or None."""
        key = name.lower()
        for a in self.attributes:
            if a.name.lower() == key:
                return a.value or ""
        return None

    def add_attribute(self, name: str, value: str | None = None) -> None:
        self.attributes.append(Attribute(name, value))

    def remove_attributes(self, name: str) -> None:
        key = name.lower()
        self.attributes[:] = [a for a in self.attributes if a.name.lower() != key]

    def _setup(self) -> str | None:
        role = self.get_attribute("setup")
        if role is None:
            return None
        role = role.strip(" ").lower()
        if role not in SETUP_ROLES:
            raise _fail(f"unknown a=setup role: {role[:40]!r}")
        return role

    def _direction(self) -> str | None:
        for a in self.attributes:
            name = a.name.lower()
            if name in DIRECTIONS:
                return name
        return None

    def _fingerprints(self) -> list[Fingerprint]:
        return [parse_fingerprint(v) for v in self.get_attributes("fingerprint")]


@dataclass(slots=True)
class MediaDescription(_Attributes):
    """An ``m=`` section and the ``i=``/``c=``/``b=``/``k=``/``a=`` lines under it."""

    media: str
    port: int
    proto: str
    formats: list[str] = field(default_factory=list)
    port_count: int | None = None
    information: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def setup(self) -> str | None:
        """This section's own ``a=setup`` role; ``SessionDescription.setup`` falls back."""
        return self._setup()

    @property
    def direction(self) -> str | None:
        """This section's own direction attribute; ``SessionDescription.direction`` falls back."""
        return self._direction()

    @property
    def fingerprints(self) -> list[Fingerprint]:
        """This section's own ``a=fingerprint`` values."""
        return self._fingerprints()

    def rtpmaps(self) -> list[RtpMap]:
        return [parse_rtpmap(v) for v in self.get_attributes("rtpmap")]

    def rtpmap(self, payload: int) -> RtpMap | None:
        for m in self.rtpmaps():
            if m.payload == payload:
                return m
        return None

    def _lines(self, out: list[str]) -> None:
        port = self.port if self.port_count is None else f"{self.port}/{self.port_count}"
        out.append(" ".join([f"m={self.media} {port} {self.proto}", *self.formats]))
        if self.information is not None:
            out.append(f"i={self.information}")
        out.extend(f"c={c}" for c in self.connections)
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)


def _default_origin() -> Origin:
    return Origin("-", 0, 0, "IN", "IP4", "0.0.0.0")


def _default_times() -> list[Timing]:
    return [Timing(0, 0)]


@dataclass(slots=True)
class SessionDescription(_Attributes):
    """A whole SDP body (RFC 8866 §5)."""

    version: int = 0
    origin: Origin = field(default_factory=_default_origin)
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    times: list[Timing] = field(default_factory=_default_times)
    zone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    # -- typed helpers with the media-level-overrides-session-level rule -------------

    def fingerprints(self, media: MediaDescription | None = None) -> list[Fingerprint]:
        """The media section's fingerprints if it has any, else the session's (RFC 8122 §5)."""
        if media is not None:
            found = media._fingerprints()
            if found:
                return found
        return self._fingerprints()

    def setup(self, media: MediaDescription | None = None) -> str | None:
        """The ``a=setup`` role of ``media`` (RFC 4145), else the session's, else None."""
        role = media._setup() if media is not None else None
        return role if role is not None else self._setup()

    def direction(self, media: MediaDescription | None = None) -> str:
        """The direction of ``media``, else the session's, else "sendrecv" (RFC 8866 §6.7)."""
        found = media._direction() if media is not None else None
        return found or self._direction() or "sendrecv"

    # -- serialisation -------------------------------------------------------------

    def __str__(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for t in self.times:
            out.append(f"t={t.start} {t.stop}")
            out.extend(f"r={r}" for r in t.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        for m in self.media:
            m._lines(out)
        text = "\r\n".join(out) + "\r\n"
        n = len(out)
        if text.count("\n") != n or text.count("\r") != n or "\x00" in text:
            raise ValueError("an SDP field contains CR, LF or NUL")
        return text

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    # -- parsing -------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | str) -> SessionDescription:
        if isinstance(data, str):
            text = data
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise _fail("text is not encodable as UTF-8") from None
        elif isinstance(data, bytes | bytearray | memoryview):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("body is not valid UTF-8") from None
        else:
            raise TypeError(f"SDP must be bytes or str, not {type(data).__name__}")
        return _parse_text(text)


def parse_sdp(data: bytes | bytearray | memoryview | str) -> SessionDescription:
    """Module-level alias of ``SessionDescription.parse``."""
    return SessionDescription.parse(data)


def _parse_text(text: str) -> SessionDescription:
    lines = text.split("\n")
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    if not lines:
        raise _fail("empty session description")
    sd = SessionDescription(times=[])
    seen: set[str] = set()
    last = -1  # rank of the previous line in the current section
    media: MediaDescription | None = None
    for lineno, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) < 2 or line[1] != "=":
            raise _fail("not a <type>=<value> line", lineno)
        if "\r" in line or "\x00" in line:
            raise _fail("CR or NUL inside a line", lineno)
        kind, value = line[0], line[2:]
        try:
            if kind == "m":
                if "t" not in seen:
                    raise _fail("m= before any t=")
                media = _parse_media(value)
                sd.media.append(media)
                last = 0
            elif media is not None:
                rank = _MEDIA_RANK.get(kind)
                if rank is None:
                    where = "not allowed in a media description" if kind in _SESSION_RANK else "unknown"
                    raise _fail(f"type letter {kind!r} {where}")
                if rank < last or (rank == last and kind not in _MEDIA_REPEATABLE):
                    raise _fail(f"{kind}= line out of order in a media description")
                last = rank
                _media_line(media, kind, value)
            else:
                rank = _SESSION_RANK.get(kind)
                if rank is None:
                    raise _fail(f"type letter {kind!r} unknown")
                if kind == "t" and last in (_R, _Z):  # a new time description
                    pass
                elif rank < last or (rank == last and kind not in _SESSION_REPEATABLE):
                    raise _fail(f"{kind}= line out of order")
                elif rank > _SESSION_RANK["s"] and "s" not in seen:
                    raise _fail("v=, o= and s= must come first")
                elif kind in "rz" and last not in (_T, _R):
                    raise _fail(f"{kind}= must follow a t= or r= line")
                last = rank
                seen.add(kind)
                _session_line(sd, kind, value)
        except ParseError as exc:
            raise _fail(exc.reason.removeprefix("SDP: "), lineno) from None
    for kind in "vost":
        if kind not in seen:
            raise _fail(f"missing mandatory {kind}= line")
    if sd.connection is None and any(not m.connections for m in sd.media):
        raise _fail("no c= line at session level nor in every media description")
    return sd


def _session_line(sd: SessionDescription, kind: str, value: str) -> None:
    if kind == "v":
        if value != "0":
            raise _fail(f"unsupported SDP version {value[:20]!r}")
    elif kind == "o":
        user, sid, sver, net, addr, host = _fields(value, 6, "o=")
        sid_n, sver_n = _int(sid, "sess-id"), _int(sver, "sess-version")
        sd.origin = Origin(user, sid_n, sver_n, _token(net, "nettype"), _token(addr, "addrtype"), host)
    elif kind == "s":
        sd.session_name = value
    elif kind == "c":
        sd.connection = _parse_connection(value)
    elif kind == "b":
        sd.bandwidths.append(_parse_bandwidth(value))
    elif kind == "t":
        start, stop = _fields(value, 2, "t=")
        sd.times.append(Timing(_int(start, "start time"), _int(stop, "stop time")))
    elif kind == "r":
        parts = _fields(value, None, "r=")
        if len(parts) < 3 or not all(_TYPED_TIME.fullmatch(p) for p in parts):
            raise _fail("malformed r= line")
        sd.times[-1].repeats.append(value)
    elif kind == "z":
        parts = _fields(value, None, "z=")
        pattern = (_DIGITS, _OFFSET)
        if len(parts) % 2 or not all(pattern[i % 2].fullmatch(p) for i, p in enumerate(parts)):
            raise _fail("malformed z= line")
        if sd.zone is not None:
            raise _fail("more than one z= line")
        sd.zone = value
    elif kind == "a":
        sd.attributes.append(_parse_attribute(value))
    elif not value:
        raise _fail(f"empty {kind}= line")
    elif kind == "e":
        sd.emails.append(value)
    elif kind == "p":
        sd.phones.append(value)
    elif kind == "i":
        sd.information = value
    elif kind == "u":
        sd.uri = value
    else:  # "k"
        sd.key = value


def _media_line(media: MediaDescription, kind: str, value: str) -> None:
    if kind == "a":
        media.attributes.append(_parse_attribute(value))
    elif kind == "c":
        media.connections.append(_parse_connection(value))
    elif kind == "b":
        media.bandwidths.append(_parse_bandwidth(value))
    elif not value:
        raise _fail(f"empty {kind}= line")
    elif kind == "i":
        media.information = value
    else:  # "k"
        media.key = value


def _parse_media(value: str) -> MediaDescription:
    parts = _fields(value, None, "m=")
    if len(parts) < 4:
        raise _fail("m= needs <media> <port> <proto> <fmt> ...")
    port_text, slash, count_text = parts[1].partition("/")
    port = _int(port_text, "port")
    if port > 65535:
        raise _fail("port out of range")
    count = _int(count_text, "number of ports") if slash else None
    for proto_part in parts[2].split("/"):
        _token(proto_part, "proto")
    return MediaDescription(
        media=_token(parts[0], "media"),
        port=port,
        port_count=count,
        proto=parts[2],
        formats=[_token(f, "fmt") for f in parts[3:]],
    )


def _parse_connection(value: str) -> Connection:
    net, addrtype, address = _fields(value, 3, "c=")
    _split_address(addrtype, address)  # validates any /ttl/count suffix
    return Connection(_token(net, "nettype"), _token(addrtype, "addrtype"), address)


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, colon, amount = value.partition(":")
    if not colon:
        raise _fail("b= needs <bwtype>:<bandwidth>")
    return Bandwidth(_token(bwtype, "bwtype"), _int(amount, "bandwidth"))


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    return Attribute(_token(name, "attribute name"), rest if colon else None)
