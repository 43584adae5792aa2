"""Header names and typed header values.

Facts (RFC 3261 §7.3): header names are case-insensitive and several have a compact form;
a header whose grammar is a comma-separated list may appear on several lines or be joined
with commas on one, and both mean the same; WWW-Authenticate, Authorization,
Proxy-Authenticate and Proxy-Authorization are lists only across lines; the relative order
of lines with different names does not matter, of lines with the same name it does.

Representation: a message keeps each header line as received and indexes it by the
canonical lower-case name. Typed values below are built only when asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from ..errors import ParseError
from . import abnf
from .uri import URI, check_host, parse_uri

# RFC 3261 §7.3.3 and the extensions that registered a compact form.
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",  # RFC 6665
    "u": "allow-events",  # RFC 6665
    "r": "refer-to",  # RFC 3515
    "b": "referred-by",  # RFC 3892
    "y": "identity",  # RFC 8224
    "a": "accept-contact",  # RFC 3841
    "j": "reject-contact",  # RFC 3841
    "d": "request-disposition",  # RFC 3841
    "x": "session-expires",  # RFC 4028
    "n": "identity-info",  # RFC 4474 (historic)
}

# How a header name is written when sipstack creates the line.
_PRETTY: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
}

# Headers whose grammar is a comma-separated list (split by ``header_values``).
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "allow-events",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "accept-contact",
        "reject-contact",
        "request-disposition",
        "alert-info",
        "call-info",
        "error-info",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "warning",
        "p-asserted-identity",
        "p-preferred-identity",
        "history-info",
        "security-client",
        "security-server",
        "security-verify",
        "recv-info",
        "resource-priority",
        "accept-resource-priority",
        "geolocation",
        "geolocation-error",
        "reason",
        "privacy",
        "flow-timer",
    }
)

# Headers that may appear at most once (RFC 3261 §7.3.1 and §20); a repeat is a 400.
SINGLE_HEADERS: frozenset[str] = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires"}
)

_NAME_RE = re.compile(abnf.token)


def canonical_name(name: str) -> str:
    """Lower-case full name of a header name as written (compact forms expanded)."""
    key = _CANONICAL.get(name)
    if key is None:
        key = name.strip(" \t").lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_CANONICAL) < 4096:
            _CANONICAL[name] = key
    return key


# Names as code and peers write them -> canonical name (bounded).
_CANONICAL: dict[str, str] = {}


def pretty_name(key: str) -> str:
    """How sipstack writes the header named by canonical ``key``."""
    pretty = _PRETTY.get(key)
    if pretty is None:
        pretty = "-".join(part.capitalize() for part in key.split("-"))
    return pretty


# Header names as written -> canonical name, for names already checked (bounded).
_CHECKED_NAMES: dict[str, str] = {}


def check_name(raw: str) -> str:
    """Canonical name of a header line's name part, or ParseError (RFC 3261 §7.3.1:
    header-name *(SP / HTAB) HCOLON)."""
    key = _CHECKED_NAMES.get(raw)
    if key is not None:
        return key
    name = raw.rstrip(" \t")
    if not _NAME_RE.fullmatch(name):
        raise ParseError(f"bad header name {raw[:40]!r}")
    key = name.lower()
    key = COMPACT_FORMS.get(key, key)
    if len(_CHECKED_NAMES) < 4096:
        _CHECKED_NAMES[raw] = key
    return key


def split_list(value: str) -> list[str]:
    """Split a list-header value at commas outside quotes and angle brackets."""
    if "," not in value:  # one value: the common case (a Route, a Via)
        value = value.strip(" \t")
        return [value] if value else []
    if '"' not in value and "<" not in value:
        return [part.strip(" \t") for part in value.split(",") if part.strip(" \t")]
    parts: list[str] = []
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            parts.append(value[start:i].strip(" \t"))
            start = i + 1
        i += 1
    parts.append(value[start:].strip(" \t"))
    return [p for p in parts if p]


# ---------------------------------------------------------------------------------------
# Typed values
# ---------------------------------------------------------------------------------------


def split_params(text: str) -> dict[str, str | None]:
    """Names (lower-cased) and values of ``;name=value`` parameters that a pattern of
    :mod:`abnf` has already validated."""
    if '"' in text:
        return abnf.parse_params(text, abnf.VIA_PARAM_RE)
    out: dict[str, str | None] = {}
    for part in text.split(";")[1:]:
        name, eq, value = part.partition("=")
        out[name.strip(" \t").lower()] = value.strip(" \t") if eq else None
    return out


class Via:
    """One via-parm (RFC 3261 §20.42). Parameters are split from their text on first use."""

    __slots__ = ("_params", "_ptext", "host", "port", "protocol", "transport")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.protocol = protocol
        self._params = params if params is not None else {}
        self._ptext = ""

    @property
    def params(self) -> dict[str, str | None]:
        params = self._params
        if params is None:
            params = split_params(self._ptext)
            _check_via_params(params)  # a malformed value raises the same error on every read
            self._params = params
        return params

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value (RFC 3581), or None when absent or empty."""
        value = self.params.get("rport")
        return int(value) if value else None

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{abnf.format_params(self.params)}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.protocol, self.transport, self.host.lower(), self.port, self.params) == (
            other.protocol,
            other.transport,
            other.host.lower(),
            other.port,
            other.params,
        )

    __hash__ = None  # type: ignore[assignment]


class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route,
    Record-Route, Path … (RFC 3261 §20). ``Contact: *`` is the element with ``is_star``.

    Parsed from a message, the structure is checked at once; the URI, the display name
    and the parameters are decoded on first use (a malformed URI raises the same
    ParseError every time ``uri`` is read).
    """

    __slots__ = ("_display", "_params", "_ptext", "_uri", "_uri_text", "is_star")

    def __init__(
        self,
        uri: URI | str,
        display_name: str | None = None,
        params: dict[str, str | None] | None = None,
        is_star: bool = False,
    ) -> None:
        if isinstance(uri, str):
            self._uri: URI | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = ""
        self._display: str | None = abnf.quote(display_name) if display_name is not None else None
        self._params = params if params is not None else {}
        self._ptext = ""
        self.is_star = is_star

    @property
    def uri(self) -> URI:
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self._uri_text)
        return uri

    @property
    def uri_text(self) -> str:
        """The URI as written (as sipstack writes it, for one built from a URI object)."""
        return self._uri_text or str(self._uri)

    @property
    def display_name(self) -> str | None:
        display = self._display
        if display is None:
            return None
        return abnf.unquote(display) if display.startswith('"') else display

    @property
    def params(self) -> dict[str, str | None]:
        params = self._params
        if params is None:
            params = self._params = split_params(self._ptext)
        return params

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        return _delta_seconds(value) if value is not None else None

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        return float(value) if value is not None else None

    def __str__(self) -> str:
        if self.is_star:
            return "*"
        display = "" if self._display is None else self._display + " "
        return f"{display}<{self.uri}>{abnf.format_params(self.params)}"

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        if self.is_star or other.is_star:
            return self.is_star == other.is_star
        return (self.uri, self.display_name, self.params) == (other.uri, other.display_name, other.params)

    __hash__ = None  # type: ignore[assignment]


class CSeq(NamedTuple):
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(slots=True)
class MediaType:
    """Content-Type / Accept media types (RFC 3261 §20.15); type and subtype lower-cased."""

    type: str
    subtype: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return self.mime + abnf.format_params(self.params)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.mime == other.lower()
        if isinstance(other, MediaType):
            return self.mime == other.mime and self.params == other.params
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.mime)


@dataclass(slots=True)
class Auth:
    """A challenge (WWW-/Proxy-Authenticate) or credentials (Authorization,
    Proxy-Authorization): an auth scheme and its parameters, names lower-cased, values
    unquoted (RFC 3261 §25.1, RFC 7616)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = []
        for name, value in self.params.items():
            # RFC 7616 §3.4: algorithm, qop (in credentials), nc and stale are not quoted.
            if name in ("algorithm", "nc", "stale") or (name == "qop" and "," not in value):
                parts.append(f"{name}={value}")
            else:
                parts.append(f"{name}={abnf.quote(value)}")
        return f"{self.scheme} " + ", ".join(parts)


# ---------------------------------------------------------------------------------------
# Parsers: text of one header line's value (unfolded, stripped) -> typed value.
# Each raises ParseError(400) on bad syntax.
# ---------------------------------------------------------------------------------------

MAX_DELTA_SECONDS = 2**32 - 1


def _delta_seconds(text: str) -> int:
    # RFC 3261 §20.19: values above 2**32-1 are taken as 2**32-1 (RFC 4475 §3.1.2.4).
    if not abnf.DIGITS_RE.fullmatch(text):
        raise ParseError(f"bad delta-seconds {text[:20]!r}")
    return min(int(text), MAX_DELTA_SECONDS) if len(text.lstrip("0")) < 12 else MAX_DELTA_SECONDS


_TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "DTLS"})


# One Via written the way nearly every implementation writes it: "SIP/2.0/" and an
# upper-case transport, a hostname or IPv4 address, a port, unquoted parameters, no white
# space around separators. What it matches, VIA_PARM_RE matches with the same parts; the rest
# (lists, IPv6, quoted values, spaces) takes the general path.
_SIMPLE_VIA_RE = re.compile(
    rf"SIP/2\.0/([A-Z]+) ([A-Za-z0-9\-._]+)(?::([0-9]{{1,5}}))?"
    rf"((?:;[{abnf.TOKEN_CHARS}]+(?:=[{abnf.TOKEN_CHARS}:]+)?)*)"
)


def parse_vias(value: str) -> list[Via]:
    m = _SIMPLE_VIA_RE.fullmatch(value)
    if m is not None:  # the common case, at about half the cost
        return [_simple_via(m)]
    return _parse_via_list(value)


def parse_top_via(value: str) -> Via:
    """The first Via of a Via line's ``value``, without parsing (or checking) the ones after
    it on the line: what matching and routing read (RFC 3261 §17.1.3, §18.2.2). A line may
    carry several Vias — SIPp's ``[last_Via:]`` joins a proxied request's two in one."""
    m = _SIMPLE_VIA_RE.match(value)
    if m is not None:
        end = m.end()
        if end == len(value) or value[end:].lstrip(" \t")[:1] == ",":
            return _simple_via(m)
    return _parse_via_list(value)[0]


def has_more_vias(value: str) -> bool:
    """Whether a Via line's ``value`` carries another Via after the first (the ones after the
    first are not parsed when the first has the common form)."""
    return bool(split_top_via(value)[1])


def split_top_via(value: str) -> tuple[str, str]:
    """A Via line's ``value`` cut after its first Via: (that Via, the rest of the line — the
    Vias after it, "" if none): when the first has the common form the rest is left unread,
    else the line is split as a list (quotes and empty items respected), not parsed."""
    m = _SIMPLE_VIA_RE.match(value)
    if m is not None:
        end = m.end()
        rest = value[end:].lstrip(" \t")
        if not rest:
            return value[:end], ""
        if rest[0] == ",":
            rest = rest[1:].strip(" \t")
            if rest[:1] != ",":  # (empty items between commas: the general split drops them)
                return value[:end], rest
    values = split_list(value)
    if not values:
        return "", ""
    return values[0], ", ".join(values[1:])


def _simple_via(m: re.Match[str]) -> Via:
    """The Via that :data:`_SIMPLE_VIA_RE` matched."""
    transport, host, port, params = m.groups()
    check_host(host)
    via = object.__new__(Via)
    via.protocol = "SIP/2.0"
    via.transport = transport
    via.host = host
    if port is None:
        via.port = None
    else:
        via.port = int(port)
        if via.port > 65535:
            raise ParseError(f"bad Via port {port!r}")
    via._params = None
    via._ptext = params
    return via


def _parse_via_list(value: str) -> list[Via]:
    """The general path of :func:`parse_vias`: any via-parm list RFC 3261 allows."""
    out: list[Via] = []
    pos = 0
    n = len(value)
    match = abnf.VIA_PARM_RE.match
    new = object.__new__
    while True:
        m = match(value, pos)
        if m is None:
            raise ParseError(f"bad Via {value[:80]!r}")
        protocol, version, transport, host, port, params = m.groups()
        check_host(host)
        via = new(Via)
        via.protocol = (
            "SIP/2.0" if version == "2.0" and protocol == "SIP" else f"{protocol}/{version}".upper()
        )
        via.transport = transport if transport in _TRANSPORTS else transport.upper()
        via.host = host
        if port is None:
            via.port = None
        elif len(port.lstrip("0")) > 5 or int(port) > 65535:
            raise ParseError(f"bad Via port {port!r}")
        else:
            via.port = int(port)
        via._params = None
        via._ptext = params
        out.append(via)
        pos = m.end()
        if pos == n:
            return out
        sep = abnf.COMMA_RE.match(value, pos)
        if sep is None:
            raise ParseError(f"bad Via {value[:80]!r}")
        pos = sep.end()


def check_vias(vias: list[Via]) -> None:
    """Decode and check every Via's parameters (strict mode)."""
    for via in vias:
        via.params  # noqa: B018


def _check_via_params(params: dict[str, str | None]) -> None:
    received = params.get("received")
    if received is not None:
        # RFC 5118 §4.5/§4.6: accept the address with or without brackets.
        check_host(received if received.startswith("[") or ":" not in received else f"[{received}]")
    rport = params.get("rport")
    if rport and (not abnf.DIGITS_RE.fullmatch(rport) or len(rport.lstrip("0")) > 5 or int(rport) > 65535):
        raise ParseError(f"bad rport {rport!r}")
    ttl = params.get("ttl")
    if ttl is not None and (not abnf.DIGITS_RE.fullmatch(ttl) or len(ttl) > 3 or int(ttl) > 255):
        raise ParseError(f"bad ttl {ttl!r}")
    maddr = params.get("maddr")
    if maddr is not None:
        check_host(maddr)


def _name_addr(m: re.Match[str]) -> NameAddr:
    display, bracketed, bare, params = m.groups()
    addr = object.__new__(NameAddr)
    addr._uri = None
    addr._uri_text = bracketed if bracketed is not None else bare
    addr._display = display
    if params:
        addr._params = None
        addr._ptext = params
    else:
        addr._params = {}
    addr.is_star = False
    return addr


def parse_name_addr(value: str) -> NameAddr:
    """From, To and other single name-addr headers."""
    m = abnf.NAME_ADDR_RE.fullmatch(value)
    if m is None:
        raise ParseError(f"bad address {value[:80]!r}")
    return _name_addr(m)


def parse_name_addrs(value: str, *, brackets: bool = False) -> list[NameAddr]:
    """Contact, Route, Record-Route, Path …; ``brackets`` requires name-addr form."""
    out: list[NameAddr] = []
    pos = 0
    n = len(value)
    match = abnf.NAME_ADDR_RE.match
    while True:
        m = match(value, pos)
        if m is None or (brackets and m.group(2) is None):
            raise ParseError(f"bad address list {value[:80]!r}")
        out.append(_name_addr(m))
        pos = m.end()
        if pos == n:
            return out
        sep = abnf.COMMA_RE.match(value, pos)
        if sep is None:
            raise ParseError(f"bad address list {value[:80]!r}")
        pos = sep.end()


def parse_routes(value: str) -> list[NameAddr]:
    """Route, Record-Route, Path, Service-Route: name-addrs; the first URI is decoded at once
    (a proxy acts on it, RFC 3261 §16.4); the others are decoded on use."""
    routes = parse_name_addrs(value, brackets=True)
    first = routes[0]
    first._uri = parse_uri(first._uri_text)  # the one a proxy acts on: ParseError now, not later
    return routes


def check_addresses(addrs: list[NameAddr]) -> None:
    """Decode every part of already-matched addresses (strict mode)."""
    for addr in addrs:
        if not addr.is_star:
            addr.uri  # noqa: B018
            addr.params  # noqa: B018


STAR = NameAddr(uri="sip:invalid", is_star=True)


def parse_contacts(value: str) -> list[NameAddr]:
    """Contact (RFC 3261 §20.10): ``*`` or a list; q and expires checked."""
    if value == "*":
        return [STAR]
    contacts = parse_name_addrs(value)
    for contact in contacts:
        q = contact.params.get("q")
        if q is not None and not abnf.QVALUE_RE.fullmatch(q):
            raise ParseError(f"bad q-value {q!r}")
        expires = contact.params.get("expires")
        if expires is not None:
            _delta_seconds(expires)
    return contacts


_KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH"}
    | {"INFO", "REFER", "MESSAGE", "UPDATE"}
)


def parse_cseq(value: str) -> CSeq:
    seq_text, sp, method = value.partition(" ")
    fast = sp and method in _KNOWN_METHODS and len(seq_text) <= 10
    if fast and seq_text.isdigit() and seq_text.isascii():
        seq = int(seq_text)
        if seq < 2**31:
            return CSeq(seq, method)
    m = abnf.CSEQ_RE.fullmatch(value)
    if m is None:
        raise ParseError(f"bad CSeq {value[:40]!r}")
    seq_text, method = m.groups()
    # RFC 3261 §8.1.1.5: a 32-bit unsigned value less than 2**31.
    if len(seq_text.lstrip("0")) > 10 or int(seq_text) >= 2**31:
        raise ParseError("CSeq number out of range")
    return CSeq(int(seq_text), method)


def parse_max_forwards(value: str) -> int:
    if not (value.isdigit() and value.isascii()) or len(value.lstrip("0")) > 3 or int(value) > 255:
        raise ParseError(f"bad Max-Forwards {value[:20]!r}")
    return int(value)


def parse_content_length(value: str) -> int:
    if not (value.isdigit() and value.isascii()) or len(value.lstrip("0")) > 10:
        raise ParseError(f"bad Content-Length {value[:20]!r}")
    return int(value)


def parse_call_id(value: str) -> str:
    if not abnf.CALLID_RE.fullmatch(value):
        raise ParseError(f"bad Call-ID {value[:80]!r}")
    return value


def parse_expires(value: str) -> int:
    return _delta_seconds(value)


def parse_media_type(value: str) -> MediaType:
    m = abnf.MEDIA_TYPE_RE.fullmatch(value)
    if m is None:
        raise ParseError(f"bad media type {value[:80]!r}")
    mtype, subtype, params = m.groups()
    param_map = abnf.parse_params(params, abnf.MEDIA_PARAM_RE) if params else {}
    return MediaType(mtype.lower(), subtype.lower(), param_map)


def parse_accept(value: str) -> list[MediaType]:
    out = []
    for part in split_list(value):
        m = abnf.ACCEPT_RANGE_RE.fullmatch(part)
        if m is None:
            raise ParseError(f"bad Accept {part[:80]!r}")
        out.append(MediaType(m.group(1).lower(), m.group(2).lower()))
    return out


def parse_tokens(value: str) -> list[str]:
    """Supported and Allow: possibly empty lists of tokens."""
    return list(_tokens(value))


def parse_option_tags(value: str) -> list[str]:
    """Require, Proxy-Require, Unsupported: option-tag *(COMMA option-tag), at least one."""
    tags = _tokens(value)
    if not tags:
        raise ParseError("empty option-tag list")
    return list(tags)


@lru_cache(maxsize=1024)
def _tokens(value: str) -> tuple[str, ...]:
    # Cached by value: a UA model sends the same Allow and Supported on every request.
    if not abnf.TOKEN_LIST_RE.fullmatch(value):
        raise ParseError(f"bad token list {value[:80]!r}")
    return tuple(part.strip(" \t") for part in value.split(",") if part.strip(" \t"))


def parse_auth(value: str) -> Auth:
    m = abnf.AUTH_RE.fullmatch(value)
    if m is None:
        raise ParseError(f"bad authentication header {value[:80]!r}")
    scheme, params = m.groups()
    return Auth(
        scheme,
        {name.lower(): abnf.unquote(val) for name, val in abnf.AUTH_PARAM_RE.findall(params)},
    )


def parse_date(value: str) -> str:
    m = abnf.DATE_RE.fullmatch(value)
    if m is None or not (0 <= int(m.group(5)) <= 23 and int(m.group(6)) <= 59 and int(m.group(7)) <= 60):
        raise ParseError(f"bad Date {value[:40]!r}")
    day = int(m.group(2))
    if not 1 <= day <= 31:
        raise ParseError(f"bad Date {value[:40]!r}")
    return value


# Syntax checks run by parse() on every line of a known header (RFC 3261 §25); the typed
# accessors reuse the same functions, so an error is the same whenever it is found.
CHECKS = {
    "via": parse_vias,
    "from": parse_name_addr,
    "to": parse_name_addr,
    "call-id": parse_call_id,
    "cseq": parse_cseq,
    "max-forwards": parse_max_forwards,
    "content-length": parse_content_length,
    "contact": parse_contacts,
    "route": parse_routes,
    "record-route": parse_routes,
    "path": parse_routes,
    "service-route": parse_routes,
    "expires": parse_expires,
    "min-expires": parse_expires,
    "content-type": parse_media_type,
    "accept": parse_accept,
    "require": parse_option_tags,
    "proxy-require": parse_option_tags,
    "supported": parse_tokens,
    "unsupported": parse_option_tags,
    "allow": parse_tokens,
    "authorization": parse_auth,
    "proxy-authorization": parse_auth,
    "www-authenticate": parse_auth,
    "proxy-authenticate": parse_auth,
    "date": parse_date,
}
