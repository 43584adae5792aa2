"""URIs: SIP and SIPS (RFC 3261 §19.1), tel (RFC 3966), and other schemes kept opaque.

Components are held %-unescaped; ``str()`` writes them back escaped where the grammar
requires it. Equality follows RFC 3261 §19.1.4 for SIP URIs and RFC 3966 §4 for tel URIs.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import quote as _pct_quote
from urllib.parse import unquote as _pct_unquote

from ..errors import ParseError

# escaped = "%" HEXDIG HEXDIG
_escaped = r"%[0-9A-Fa-f]{2}"
# unreserved = alphanum / mark ; mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
_UNRESERVED = "A-Za-z0-9\\-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved ) ; user-unreserved = & = + $ , ; ? /
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_escaped})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_escaped})*")
# paramchar = param-unreserved / unreserved / escaped ; param-unreserved = [ ] / : & + $
_PARAMCHARS_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_escaped})+")
# hname / hvalue: hnv-unreserved / unreserved / escaped ; hnv-unreserved = [ ] / ? : + $
_HNV_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_escaped})*")
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# opaque-part / hier-part: uric = reserved / unreserved / escaped (plus [] for IPv6 hosts)
_OPAQUE_RE = re.compile(rf"(?:[{_UNRESERVED};/?:@&=+$,\[\]]|{_escaped})+")
# hostname = *( domainlabel "." ) toplabel [ "." ]
_HOSTNAME_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_PORT_RE = re.compile(r"[0-9]+")

# Characters written without escaping in each component (RFC 3261 §25.1).
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
_PARAM_SAFE = "-_.!~*'()[]/:&+$"
_HEADER_SAFE = "-_.!~*'()[]/?:+$"


def _unescape(text: str) -> str:
    return _pct_unquote(text, errors="surrogateescape") if "%" in text else text


def _escape(text: str, safe: str) -> str:
    return _pct_quote(text, safe=safe, errors="surrogateescape")


@lru_cache(maxsize=4096)
def check_host(host: str) -> str:
    """``host`` if it is a hostname, IPv4address or IPv6reference (RFC 5954); else ParseError."""
    if not host:
        raise ParseError("empty host")
    if host[0] == "[":
        if host[-1] != "]":
            raise ParseError(f"bad IPv6 reference {host!r}")
        if "%" in host:  # RFC 5954: no zone identifier in an IPv6reference
            raise ParseError(f"bad IPv6 reference {host!r}")
        try:
            _ipv6(host[1:-1])
        except ValueError:
            raise ParseError(f"bad IPv6 reference {host!r}") from None
        return host
    if _IPV4_RE.fullmatch(host):
        # RFC 5954: IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, and a
        # dec-octet has no leading zero.
        if all(int(octet) <= 255 and (octet == "0" or octet[0] != "0") for octet in host.split(".")):
            return host
        raise ParseError(f"bad IPv4 address {host!r}")
    if _HOSTNAME_RE.fullmatch(host):
        return host
    raise ParseError(f"bad host {host!r}")


def _ipv6(text: str) -> ipaddress.IPv6Address:
    """An IPv6 address (RFC 5954), also in the form RFC 3261's ABNF wrongly required before
    an embedded IPv4 address, ``2001:db8:::192.0.2.1`` (RFC 5118 §4.10: tolerate both)."""
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        if ":::" in text and "." in text and text.count(":::") == 1:
            return ipaddress.IPv6Address(text.replace(":::", "::"))
        raise


def _canonical_host(host: str) -> str:
    """Host for comparison: case-folded, IPv6 in its compressed form (RFC 5118 §4.3)."""
    if host.startswith("["):
        return "[" + _ipv6(host[1:-1]).compressed + "]"
    return host.lower()


class URI:
    """Any URI. ``scheme`` is lower-cased; subclasses add the components they know."""

    __slots__ = ("scheme",)
    scheme: str

    def __str__(self) -> str:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class SipURI(URI):
    """``sip:`` / ``sips:`` URI (RFC 3261 §19.1.1)."""

    __slots__ = ("headers", "host", "params", "password", "port", "user")

    def __init__(
        self,
        host: str,
        user: str | None = None,
        *,
        port: int | None = None,
        password: str | None = None,
        params: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
        scheme: str = "sip",
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params: dict[str, str | None] = params if params is not None else {}
        self.headers: dict[str, str] = headers if headers is not None else {}

    # Convenience views of well-known parameters (RFC 3261 §19.1.1 table).
    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """The address-of-record form: scheme, user and host only (RFC 3261 §10.3 step 5)."""
        user = f"{_escape(self.user, _USER_SAFE)}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    def copy(self, **changes: object) -> SipURI:
        new = SipURI(
            self.host,
            self.user,
            port=self.port,
            password=self.password,
            params=dict(self.params),
            headers=dict(self.headers),
            scheme=self.scheme,
        )
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                out.append(":" + _escape(self.password, _PASSWORD_SAFE))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params.items():
            out.append(";" + _escape(name, _PARAM_SAFE))
            if value is not None:
                out.append("=" + _escape(value, _PARAM_SAFE))
        if self.headers:
            out.append(
                "?"
                + "&".join(
                    f"{_escape(k, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}" for k, v in self.headers.items()
                )
            )
        return "".join(out)

    # RFC 3261 §19.1.4
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipURI):
            return NotImplemented
        if self.scheme != other.scheme or self.user != other.user or self.password != other.password:
            return False
        if self.port != other.port or _canonical_host(self.host) != _canonical_host(other.host):
            return False
        mine = {k: (v.lower() if v is not None else None) for k, v in self.params.items()}
        theirs = {k: (v.lower() if v is not None else None) for k, v in other.params.items()}
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        # "A URI omitting any component with a default value will not match a URI explicitly
        # containing that component … the same is true for the transport-parameter,
        # ttl-parameter, user-parameter, and method components"; and maddr.
        for name in ("transport", "user", "ttl", "method", "maddr"):
            if (name in mine) != (name in theirs):
                return False
        mine_h = {k.lower(): v for k, v in self.headers.items()}
        theirs_h = {k.lower(): v for k, v in other.headers.items()}
        return mine_h == theirs_h

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, _canonical_host(self.host), self.port))


_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_VISUAL = str.maketrans("", "", "-.()")


class TelURI(URI):
    """``tel:`` URI (RFC 3966): a global number (``+…``) or a local one with phone-context."""

    __slots__ = ("number", "params")

    def __init__(self, number: str, params: dict[str, str | None] | None = None) -> None:
        self.scheme = "tel"
        self.number = number
        self.params: dict[str, str | None] = params if params is not None else {}

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return self.number.translate(_TEL_VISUAL).upper()

    def __str__(self) -> str:
        out = ["tel:", self.number]
        for name, value in self.params.items():
            out.append(";" + _escape(name, _PARAM_SAFE))
            if value is not None:
                out.append("=" + _escape(value, _PARAM_SAFE))
        return "".join(out)

    # RFC 3966 §4: numbers compared digit by digit, parameters order-independent.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TelURI):
            return NotImplemented
        return self.digits == other.digits and _tel_params(self.params) == _tel_params(other.params)

    def __hash__(self) -> int:
        return hash(("tel", self.digits))


def _tel_params(params: dict[str, str | None]) -> dict[str, str | None]:
    """Parameters compared case-insensitively; a global-number phone-context without its
    visual separators (RFC 3966 §4)."""
    out = {k: (v.lower() if v is not None else None) for k, v in params.items()}
    context = out.get("phone-context")
    if context and context.startswith("+"):
        out["phone-context"] = context.translate(_TEL_VISUAL)
    return out


class AbsoluteURI(URI):
    """A URI of a scheme sipstack does not interpret: kept as text (RFC 3261 absoluteURI)."""

    __slots__ = ("opaque",)

    def __init__(self, scheme: str, opaque: str) -> None:
        self.scheme = scheme.lower()
        self.opaque = opaque

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteURI):
            return NotImplemented
        return self.scheme == other.scheme and self.opaque == other.opaque

    def __hash__(self) -> int:
        return hash((self.scheme, self.opaque))


def _parse_uri_params(parts: list[str], what: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        if not _PARAMCHARS_RE.fullmatch(name) or (eq and not _PARAMCHARS_RE.fullmatch(value)):
            raise ParseError(f"bad {what} parameter {part!r}")
        params[_unescape(name).lower()] = _unescape(value) if eq else None
    return params


@lru_cache(maxsize=2048)
def _split_sip(text: str) -> tuple[str, str | None, str | None, str, int | None, tuple, tuple]:
    scheme, _, rest = text.partition(":")
    user = password = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        if "@" in rest:
            raise ParseError(f"more than one '@' in {text!r}")
        user_text, colon, password_text = userinfo.partition(":")
        if not _USER_RE.fullmatch(user_text):
            raise ParseError(f"bad user part in {text!r}")
        if colon and not _PASSWORD_RE.fullmatch(password_text):
            raise ParseError(f"bad password in {text!r}")
        user = _unescape(user_text)
        password = _unescape(password_text) if colon else None
    rest, qmark, header_text = rest.partition("?")
    hostport, *param_parts = rest.split(";")
    if hostport.startswith("["):
        close = hostport.find("]")
        host, port_text = hostport[: close + 1], hostport[close + 1 :]
        if close < 0 or (port_text and port_text[0] != ":"):
            raise ParseError(f"bad host in {text!r}")
        port_text = port_text[1:]
        has_port = bool(hostport[close + 1 :])
    else:
        host, colon, port_text = hostport.partition(":")
        has_port = bool(colon)
    check_host(host)
    port = None
    if has_port:
        if not _PORT_RE.fullmatch(port_text) or len(port_text.lstrip("0")) > 5 or int(port_text) > 65535:
            raise ParseError(f"bad port in {text!r}")
        port = int(port_text)
    params = tuple(_parse_uri_params(param_parts, "URI").items())
    headers: list[tuple[str, str]] = []
    if qmark:
        for header in header_text.split("&"):
            name, eq, value = header.partition("=")
            if not eq or not name or not _HNV_RE.fullmatch(name) or not _HNV_RE.fullmatch(value):
                raise ParseError(f"bad URI header {header!r}")
            headers.append((_unescape(name), _unescape(value)))
    return scheme.lower(), user, password, host, port, params, tuple(headers)


@lru_cache(maxsize=4096)
def check_uri(text: str, request_uri: bool = False) -> bool:
    """Raise ParseError unless ``text`` parses as a URI (cached: URIs repeat)."""
    parse_uri(text, request_uri=request_uri)
    return True


def parse_uri(text: str, *, request_uri: bool = False) -> URI:
    """Parse a URI. ``request_uri=True`` applies the Request-URI rules (no headers, RFC 3261
    §19.1.1 table; no angle brackets or whitespace, RFC 4475 §3.1.2.7/§3.1.2.8/§3.1.2.11)."""
    colon = text.find(":")
    if colon <= 0 or not _SCHEME_RE.fullmatch(text[:colon]):
        raise ParseError(f"bad URI {text[:80]!r}")
    scheme = text[:colon].lower()
    if scheme in ("sip", "sips"):
        scheme, user, password, host, port, params, headers = _split_sip(text)
        if request_uri and headers:
            raise ParseError("headers are not allowed in a Request-URI")
        return SipURI(
            host,
            user,
            port=port,
            password=password,
            params=dict(params),
            headers=dict(headers),
            scheme=scheme,
        )
    rest = text[colon + 1 :]
    if scheme == "tel":
        number, *param_parts = rest.split(";")
        tel_params = _parse_uri_params(param_parts, "tel")
        if _TEL_GLOBAL_RE.fullmatch(number):
            return TelURI(number, tel_params)
        if _TEL_LOCAL_RE.fullmatch(number) and "phone-context" in tel_params:
            return TelURI(number, tel_params)
        raise ParseError(f"bad tel URI {text[:80]!r}")
    if not _OPAQUE_RE.fullmatch(rest):
        raise ParseError(f"bad URI {text[:80]!r}")
    return AbsoluteURI(scheme, rest)
