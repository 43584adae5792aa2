"""SIP requests and responses: parse a datagram, read headers lazily, edit bytes.

Theory of operation
-------------------
``parse()`` splits the head once, indexes each header line by its canonical name, and
checks the start line and the headers every SIP element relies on (Via, From, To,
Call-ID, CSeq, Max-Forwards, Content-Length, Route, Record-Route). In ``strict`` mode (the
default; what a UA or registrar wants) it also checks the syntax of every other header it
knows. With ``strict=False`` (what a proxy wants, RFC 3261 §16.3 step 1: "any other
components, well-formed or not, SHOULD be ignored and remain unchanged") the rest is left
raw until someone asks; a malformed value then raises the same ParseError every time.

Header lines are kept as received. Editing a message (prepend a Via, replace
Max-Forwards, pop a Route, add a Record-Route) edits that list of lines; ``bytes(msg)``
returns the original bytes while nothing changed, and otherwise joins the lines again —
untouched headers are never re-serialised.

Typed values returned by the accessors are shared with the message's cache: treat them
as read-only and edit the message through its methods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from ..errors import ParseError
from . import abnf
from .headers import (
    CHECKS,
    LIST_HEADERS,
    SINGLE_HEADERS,
    Auth,
    CSeq,
    MediaType,
    NameAddr,
    Via,
    canonical_name,
    check_addresses,
    check_name,
    check_vias,
    has_more_vias,
    parse_accept,
    parse_auth,
    parse_call_id,
    parse_contacts,
    parse_content_length,
    parse_cseq,
    parse_expires,
    parse_max_forwards,
    parse_media_type,
    parse_name_addr,
    parse_option_tags,
    parse_routes,
    parse_tokens,
    parse_top_via,
    parse_vias,
    pretty_name,
    split_list,
    split_top_via,
)
from .status import reason_phrase
from .uri import URI, parse_uri

_MISSING: Any = object()
_MANDATORY = ("via", "from", "to", "call-id", "cseq")
_MANDATORY_SET = frozenset(_MANDATORY)
# Every parse checks what the transaction layer and a proxy rely on: Call-ID, CSeq, From
# and To (of requests), Max-Forwards, Content-Length, Route, and the Vias — all of them in
# strict mode, the first Via alone otherwise (kept under this key: Message.top_via).
_TOP_VIA = "via:top"  # the cache key of the first Via parsed alone (Message.top_via)

# Typed accessor definitions: canonical name -> (parser of one line's value, is a list).
_TYPED: dict[str, tuple[Any, bool]] = {
    "via": (parse_vias, True),
    "from": (parse_name_addr, False),
    "to": (parse_name_addr, False),
    "call-id": (parse_call_id, False),
    "cseq": (parse_cseq, False),
    "max-forwards": (parse_max_forwards, False),
    "content-length": (parse_content_length, False),
    "contact": (parse_contacts, True),
    "route": (parse_routes, True),
    "record-route": (parse_routes, True),
    "path": (parse_routes, True),
    "service-route": (parse_routes, True),
    "expires": (parse_expires, False),
    "min-expires": (parse_expires, False),
    "content-type": (parse_media_type, False),
    "accept": (parse_accept, True),
    "require": (parse_option_tags, True),
    "proxy-require": (parse_option_tags, True),
    "supported": (parse_tokens, True),
    "unsupported": (parse_option_tags, True),
    "allow": (parse_tokens, True),
    "authorization": (lambda v: [parse_auth(v)], True),
    "proxy-authorization": (lambda v: [parse_auth(v)], True),
    "www-authenticate": (lambda v: [parse_auth(v)], True),
    "proxy-authenticate": (lambda v: [parse_auth(v)], True),
}

# Address headers whose URIs and parameters strict mode decodes at parse time.
_DEEP_ADDRESSES = ("from", "to", "contact")

# The "name:" part of every header line of a head (not of its start line).
_NAME_RE = re.compile(r"\r\n([^:\r\n]*:)")

# Header-name spellings seen on the wire -> canonical name (bounded cache).
_NAME_CACHE: dict[str, str] = {}


def _key(name_colon: str) -> str:
    """Canonical name of a header line's ``name:`` part (cached by spelling)."""
    key = _NAME_CACHE.get(name_colon)
    if key is None:
        key = check_name(name_colon[:-1])
        if len(_NAME_CACHE) < 4096:
            _NAME_CACHE[name_colon] = key
    return key


def _line_value(line: str) -> str:
    value = line[line.index(":") + 1 :]
    if "\r\n" in value:  # RFC 3261 §7.3.1: a folded line; the break counts as white space
        value = value.replace("\r\n", "")
    return value.strip(" \t")


_BAD_BREAK_RE = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")


def _line(name: str, value: str) -> str:
    """A header line built by sipstack; a line break in ``value`` that is not folding
    (CRLF followed by white space) would inject headers: refused."""
    if ("\r" in value or "\n" in value) and _BAD_BREAK_RE.search(value):
        raise ValueError(f"line break in the value of {name}")
    return f"{name}: {value}"


def _name_part(line: str) -> str:
    return line[: line.index(":")].rstrip(" \t")


class Message:
    """What requests and responses share: header lines, typed accessors, body, edits."""

    __slots__ = ("_body", "_first", "_keys", "_last", "_lines", "_raw", "_typed")
    is_request: ClassVar[bool] = False

    def __init__(self, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self._lines: list[str] = []
        self._keys: list[str] = []
        for name, value in headers:
            self._keys.append(check_name(name))
            self._lines.append(_line(name, value))
        self._body = bytes(body)
        self._raw: bytes | None = None
        self._typed: dict[str, Any] = {}
        if "content-length" not in self._keys:
            self._keys.append("content-length")
            self._lines.append(f"Content-Length: {len(self._body)}")
        self._first = self._last = None

    # -- internals ------------------------------------------------------------------------

    def _reindex(self) -> None:
        keys = self._keys
        # First and last line of each name (the first dict is built backwards so that the
        # first line wins); a name with first == last has one line.
        n = len(keys)
        self._first = first = dict(zip(reversed(keys), range(n - 1, -1, -1), strict=True))
        self._last = first if len(first) == n else dict(zip(keys, range(n), strict=True))

    def _index(self) -> dict[str, int]:
        """Name -> index of its first line; rebuilt after edits that moved lines (only when
        read: a proxy's edits are followed by serialisation, not by lookups)."""
        first = self._first
        if first is None:
            self._reindex()
            first = self._first
            assert first is not None
        return first

    def _positions(self, key: str) -> list[int]:
        """Indexes of the lines of header ``key``, in order."""
        i = self._index().get(key)
        if i is None:
            return []
        j = self._last[key]
        if i == j:
            return [i]
        keys = self._keys
        return [p for p in range(i, j + 1) if keys[p] == key]

    def _changed(self, key: str, reindex: bool = True) -> None:
        self._raw = None
        self._typed.pop(key, None)
        if key == "via":
            self._typed.pop(_TOP_VIA, None)
        if reindex:
            self._first = self._last = None

    def _typed_value(self, key: str) -> Any:
        value = self._typed.get(key, _MISSING)
        if value is _MISSING:
            value = self._compute(key)
        if type(value) is ParseError:
            raise ParseError(value.reason, value.status_code)
        return value

    def _compute(self, key: str) -> Any:
        parser, is_list = _TYPED[key]
        positions = self._positions(key)
        try:
            if not positions:
                value: Any = [] if is_list else None
            elif len(positions) == 1 or not is_list:
                value = parser(_line_value(self._lines[positions[0]]))
            else:
                value = []
                for i in positions:
                    value.extend(parser(_line_value(self._lines[i])))
        except ParseError as exc:
            value = exc
        except Exception as exc:  # a bug must not escape as anything but ParseError
            value = ParseError(f"malformed {key} ({type(exc).__name__})")
        self._typed[key] = value
        return value

    def _check(self, keys: Iterable[str]) -> None:
        first = self._index()
        for key in keys:
            if key in first:
                self._typed_value(key)

    # -- generic header access ------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """The value of the first line of header ``name`` (any case, compact forms too)."""
        i = self._index().get(canonical_name(name))
        return None if i is None else _line_value(self._lines[i])

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name``, across lines, comma-joined lists split."""
        key = canonical_name(name)
        positions = self._positions(key)
        if not positions:
            return []
        values = [_line_value(self._lines[i]) for i in positions]
        if key in LIST_HEADERS:
            return [part for value in values for part in split_list(value)]
        return values

    def header_names(self) -> list[str]:
        """Canonical (lower-case, full) names of the headers present, in order of first line."""
        return list(dict.fromkeys(self._keys))

    def header_items(self) -> list[tuple[str, str]]:
        """(name as written, value) for every header line, in order."""
        return [(_name_part(line), _line_value(line)) for line in self._lines]

    def has_header(self, name: str) -> bool:
        return canonical_name(name) in self._index()

    def parse_all(self) -> None:
        """Parse every header sipstack knows, every part of it; raise ParseError for the
        first malformed one (the same error each time)."""
        self._check([key for key in self._index() if key in _TYPED])
        typed = self._typed
        try:
            for key in _DEEP_ADDRESSES:
                if typed.get(key):
                    check_addresses(typed[key] if isinstance(typed[key], list) else [typed[key]])
            if "via" in typed:
                check_vias(typed["via"])
            for key in self._index():
                check = CHECKS.get(key)
                if check is not None and key not in _TYPED:
                    for i in self._positions(key):
                        check(_line_value(self._lines[i]))
        except ParseError as exc:
            raise ParseError(exc.reason, exc.status_code) from None

    # -- edits (byte-level: other lines stay as they were) -------------------------------

    def prepend_header(self, name: str, value: str) -> None:
        """Add a line before every other header (a new Via, a new Record-Route)."""
        key = check_name(name)
        self._lines.insert(0, _line(name, value))
        self._keys.insert(0, key)
        self._changed(key)

    def add_header(self, name: str, value: str) -> None:
        """Add a line after every other header."""
        key = check_name(name)
        self._lines.append(_line(name, value))
        self._keys.append(key)
        self._changed(key)

    def set_header(self, name: str, value: str) -> None:
        """Replace every line of ``name`` by one line (where the first was), or add it."""
        key = check_name(name)
        positions = self._positions(key)
        if not positions:
            self.add_header(name, value)
            return
        first = positions[0]
        written = self._lines[first]
        self._lines[first] = _line(_name_part(written), value)
        for i in reversed(positions[1:]):
            del self._lines[i]
            del self._keys[i]
        self._changed(key, reindex=len(positions) > 1)

    def remove_header(self, name: str) -> None:
        key = canonical_name(name)
        positions = self._positions(key)
        if not positions:
            return
        for i in reversed(positions):
            del self._lines[i]
            del self._keys[i]
        self._changed(key)

    def pop_value(self, name: str) -> str | None:
        """Remove and return the first value of a list header (RFC 3261 §16.4: pop a Route)."""
        key = canonical_name(name)
        first = self._index().get(key)
        if first is None:
            return None
        line = self._lines[first]
        values = split_list(_line_value(line))
        if len(values) <= 1:
            del self._lines[first]
            del self._keys[first]
            self._changed(key)
        else:
            self._lines[first] = f"{_name_part(line)}: {', '.join(values[1:])}"
            self._changed(key, reindex=False)
        return values[0] if values else None

    def set_first_value(self, name: str, value: str) -> None:
        """Replace the first value of a list header (RFC 3261 §18.2.1: stamp the top Via),
        leaving the line's other values as they were."""
        key = canonical_name(name)
        first = self._index().get(key)
        if first is None:
            self.prepend_header(pretty_name(key), value)
            return
        line = self._lines[first]
        values = split_list(_line_value(line))
        rest = ", ".join(values[1:])
        self._lines[first] = _line(_name_part(line), value + (f", {rest}" if rest else ""))
        self._changed(key, reindex=False)

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = bytes(value)
        self.set_header("Content-Length", str(len(self._body)))

    # -- typed accessors (RFC 3261 §20) ---------------------------------------------------

    # The accessors a proxy reads for every message look in the cache inline (one call fewer
    # each); the others go through _typed_value.

    @property
    def via(self) -> list[Via]:
        value = self._typed.get("via", _MISSING)
        return self._typed_value("via") if value is _MISSING or type(value) is ParseError else value

    @property
    def top_via(self) -> Via:
        """The first Via, parsed alone: what matching and routing a message needs (RFC 3261
        §17.1.3, §17.2.3, §18.2.2), without the Vias after it (on its line or below) — a
        proxy's responses carry at least two. ParseError when it is malformed or missing."""
        typed = self._typed
        top = typed.get(_TOP_VIA)
        if top is not None:
            return top
        vias = typed.get("via")
        if type(vias) is list and vias:
            return vias[0]
        i = self._index().get("via")
        if i is None:
            raise ParseError("missing Via header")
        top = typed[_TOP_VIA] = parse_top_via(_line_value(self._lines[i]))
        return top

    def set_top_via(self, value: str, via: Via) -> None:
        """Replace the first Via value by ``value``, which ``via`` is the parsed form of (a
        transport stamping received/rport, RFC 3261 §18.2.1, RFC 3581 §4): nothing to parse again."""
        self.set_first_value("via", value)
        self._typed[_TOP_VIA] = via

    def has_second_via(self) -> bool:
        """Whether there is a Via below the first (a response a proxy forwards upstream, §16.7
        step 3), without parsing the ones below."""
        positions = self._positions("via")
        if len(positions) > 1:
            return True
        if not positions:
            return False
        line = self._lines[positions[0]]
        return "," in line and has_more_vias(_line_value(line))

    def pop_top_via(self) -> bool:
        """Remove the first Via if another follows it (what a proxy does to a response it
        forwards upstream, RFC 3261 §16.7 steps 3 and 9); False, and nothing removed, when it
        is the only one. The wire form, if there is one, is edited too rather than left to be
        rebuilt: a relayed response goes on as received but for that Via."""
        positions = self._positions("via")
        if not positions:
            return False
        i = positions[0]
        lines = self._lines
        line = lines[i]
        _, rest = split_top_via(_line_value(line))
        if not rest and len(positions) == 1:
            return False
        raw = self._raw
        old = b""
        at = 0
        if raw is not None:
            # Where the line is in the wire form (which is the start line and the lines,
            # CRLF-joined: see __bytes__); not found, the form is rebuilt when next needed.
            old = line.encode("utf-8", "surrogateescape")
            at = raw.find(b"\r\n" + old + b"\r\n") + 2
            if at < 2:
                raw = None
        if rest:
            new = f"{_name_part(line)}: {rest}"
            lines[i] = new
            if raw is not None:
                raw = raw[:at] + new.encode("utf-8", "surrogateescape") + raw[at + len(old) :]
        else:
            del lines[i]
            del self._keys[i]
            if raw is not None:
                raw = raw[:at] + raw[at + len(old) + 2 :]
        self._changed("via", reindex=not rest)
        self._raw = raw
        return True

    @property
    def from_(self) -> NameAddr:
        value = self._typed.get("from", _MISSING)
        return self._typed_value("from") if value is _MISSING or type(value) is ParseError else value

    @property
    def to(self) -> NameAddr:
        value = self._typed.get("to", _MISSING)
        return self._typed_value("to") if value is _MISSING or type(value) is ParseError else value

    @property
    def call_id(self) -> str:
        value = self._typed.get("call-id", _MISSING)
        return self._typed_value("call-id") if value is _MISSING or type(value) is ParseError else value

    @property
    def cseq(self) -> CSeq:
        value = self._typed.get("cseq", _MISSING)
        return self._typed_value("cseq") if value is _MISSING or type(value) is ParseError else value

    @property
    def max_forwards(self) -> int | None:
        value = self._typed.get("max-forwards", _MISSING)
        return self._typed_value("max-forwards") if value is _MISSING or type(value) is ParseError else value

    @property
    def content_length(self) -> int:
        value = self._typed_value("content-length")
        return len(self._body) if value is None else value

    @property
    def contact(self) -> list[NameAddr]:
        value = self._typed.get("contact", _MISSING)
        return self._typed_value("contact") if value is _MISSING or type(value) is ParseError else value

    @property
    def route(self) -> list[NameAddr]:
        value = self._typed.get("route", _MISSING)
        return self._typed_value("route") if value is _MISSING or type(value) is ParseError else value

    @property
    def record_route(self) -> list[NameAddr]:
        value = self._typed.get("record-route", _MISSING)
        return self._typed_value("record-route") if value is _MISSING or type(value) is ParseError else value

    @property
    def path(self) -> list[NameAddr]:
        return self._typed_value("path")

    @property
    def service_route(self) -> list[NameAddr]:
        return self._typed_value("service-route")

    @property
    def expires(self) -> int | None:
        return self._typed_value("expires")

    @property
    def min_expires(self) -> int | None:
        return self._typed_value("min-expires")

    @property
    def content_type(self) -> MediaType | None:
        return self._typed_value("content-type")

    @property
    def accept(self) -> list[MediaType]:
        return self._typed_value("accept")

    @property
    def require(self) -> list[str]:
        return self._typed_value("require")

    @property
    def proxy_require(self) -> list[str]:
        return self._typed_value("proxy-require")

    @property
    def supported(self) -> list[str]:
        return self._typed_value("supported")

    @property
    def unsupported(self) -> list[str]:
        return self._typed_value("unsupported")

    @property
    def allow(self) -> list[str]:
        return self._typed_value("allow")

    @property
    def authorization(self) -> list[Auth]:
        return self._typed_value("authorization")

    @property
    def proxy_authorization(self) -> list[Auth]:
        return self._typed_value("proxy-authorization")

    @property
    def www_authenticate(self) -> list[Auth]:
        return self._typed_value("www-authenticate")

    @property
    def proxy_authenticate(self) -> list[Auth]:
        return self._typed_value("proxy-authenticate")

    # -- serialisation ----------------------------------------------------------------------

    def start_line(self) -> str:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        raw = self._raw
        if raw is None:
            parts = [self.start_line(), *self._lines, "", ""]
            raw = "\r\n".join(parts).encode("utf-8", "surrogateescape") + self._body
            self._raw = raw
        return raw

    def release_parsed(self) -> None:
        """Forget the parsed values (they are parsed again, identically, if read): for a
        message kept only in case it is needed — a proxy holds a call's INVITE and 2xx for
        32 s — this leaves the garbage collector a dozen objects fewer to scan."""
        self._typed = {}

    def copy(self) -> Message:
        """An independent copy to edit (one per forked branch); typed values are shared."""
        new = object.__new__(type(self))
        new._lines = list(self._lines)
        new._keys = list(self._keys)
        new._first = self._first
        new._last = self._last
        new._body = self._body
        new._raw = self._raw
        new._typed = dict(self._typed)
        self._copy_start(new)
        return new

    def _copy_start(self, new: Any) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Message)
        mine = [(k, _line_value(line)) for k, line in zip(self._keys, self._lines, strict=True)]
        theirs = [(k, _line_value(line)) for k, line in zip(other._keys, other._lines, strict=True)]
        return self.start_line() == other.start_line() and mine == theirs and self._body == other._body

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.start_line()!r}>"


class Request(Message):
    """A SIP request (RFC 3261 §7.1)."""

    __slots__ = ("_uri", "_uri_text", "method", "version")
    is_request: ClassVar[bool] = True

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None:
        self.method = method
        self.version = version
        self._set_uri(uri)
        super().__init__(headers, body)

    def release_parsed(self) -> None:
        super().release_parsed()
        self._uri = None

    def _set_uri(self, uri: URI | str) -> None:
        if isinstance(uri, str):
            if getattr(self, "_uri_text", None) == uri:
                return  # the same text: keep what was parsed of it (a proxy relaying as is)
            self._uri_text = uri
            self._uri: URI | None = None
        else:
            self._uri_text = str(uri)
            self._uri = uri

    @property
    def uri(self) -> URI:
        """The Request-URI."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text, request_uri=True)
        return self._uri

    @property
    def uri_text(self) -> str:
        """The Request-URI exactly as written."""
        return self._uri_text

    @uri.setter
    def uri(self, value: URI | str) -> None:
        self._set_uri(value)
        self._raw = None

    def start_line(self) -> str:
        return f"{self.method} {self._uri_text} {self.version}"

    def _copy_start(self, new: Any) -> None:
        new.method = self.method
        new.version = self.version
        new._uri = self._uri
        new._uri_text = self._uri_text


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    __slots__ = ("reason", "status_code", "version")

    def __init__(
        self,
        status_code: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None:
        self.status_code = status_code
        self.reason = reason_phrase(status_code) if reason is None else reason
        self.version = version
        super().__init__(headers, body)

    def start_line(self) -> str:
        return f"{self.version} {self.status_code} {self.reason}"

    def _copy_start(self, new: Any) -> None:
        new.status_code = self.status_code
        new.reason = self.reason
        new.version = self.version


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------


def parse(data: bytes, *, strict: bool = True) -> Request | Response:
    """Parse one SIP message from a datagram (or a frame cut by :class:`StreamParser`).

    Raises :class:`ParseError` — and nothing else — for anything that is not a valid
    message; ``status_code`` says how a server answers a malformed request.
    Octets after the body that Content-Length announces are ignored (RFC 3261 §18.3);
    without Content-Length the body runs to the end of the datagram.
    """
    try:
        return _parse(data, strict)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("message too deeply nested") from None
    except Exception as exc:  # the contract: only ParseError escapes
        raise ParseError(f"malformed message ({type(exc).__name__})") from None


def _split_head(data: bytes) -> tuple[str, list[str], int, bool]:
    """The head (folded lines joined), its lines, the body's offset, and whether the wire
    form can be reused as is."""
    end = data.find(b"\r\n\r\n")
    exact = True
    lf = data.find(b"\n\n", 0, end if end >= 0 else len(data))
    if lf >= 0 and b"\r" not in data[:lf]:
        end = -1  # a head ended by a bare-LF empty line comes first: lenient LF parsing
    if end >= 0:
        head = data[:end].decode("utf-8", "surrogateescape")
        body_start = end + 4
    else:
        # Leniency for peers that end lines with a bare LF.
        end = lf
        if end < 0:
            raise ParseError("no empty line after the headers")
        head = data[:end].decode("utf-8", "surrogateescape").replace("\n", "\r\n")
        body_start = end + 2
        exact = False
    lines = head.split("\r\n")
    return head, lines, body_start, exact


def _unfold(lines: list[str]) -> list[str]:
    """RFC 3261 §7.3.1: a line starting with white space continues the previous one, and
    the line break is equivalent to the white space that follows it."""
    joined: list[str] = []
    for line in lines:
        if line[:1] not in (" ", "\t"):
            joined.append(line)
        elif joined:
            joined[-1] += "\r\n" + line  # kept as received; values read through _line_value
        else:
            raise ParseError("continuation line before any header")
    return joined


# Header layouts seen (the ``name:`` parts of a head, in order) -> their canonical names,
# first and last line of each, and what is wrong with them: a peer sends the same layout
# message after message. The two index dicts are shared by every message of that layout
# (read only: an edit gives a message new ones, as ``copy`` shares them too). Bounded:
# emptied when full.
_Layout = tuple[tuple[str, ...], dict[str, int], dict[str, int], str | None]
_LAYOUTS: dict[tuple[str, ...], _Layout] = {}


def _layout(names: list[str], lines: list[str]) -> tuple[list[str], _Layout]:
    """The layout of a head's header ``lines``: remembered when ``names`` (its ``name:``
    parts, from :data:`_NAME_RE`) name every line; otherwise (a folded line, a line without
    a colon) built from the lines, unfolded, and not remembered."""
    folded = any(line[:1] in (" ", "\t") for line in lines)
    exact = len(names) == len(lines) and not folded and ":" not in names
    if exact:
        keys = [_key(name) for name in names]
    else:
        if folded:
            lines = _unfold(lines)
        keys = []
        for line in lines:
            colon = line.find(":")
            if colon <= 0:
                raise ParseError("header line without a colon")
            keys.append(_key(line[: colon + 1]))
    n = len(keys)
    first = dict(zip(reversed(keys), range(n - 1, -1, -1), strict=True))
    error = None
    if len(first) == n:
        last = first
    else:
        last = dict(zip(keys, range(n), strict=True))
        if tuple(map(first.get, SINGLE_HEADERS)) != tuple(map(last.get, SINGLE_HEADERS)):
            repeated = next(key for key in SINGLE_HEADERS if first.get(key) != last.get(key))
            error = f"more than one {pretty_name(repeated)} header"
    if error is None and not first.keys() >= _MANDATORY_SET:
        missing = next(key for key in _MANDATORY if key not in first)
        error = f"missing {pretty_name(missing)} header"
    layout = (tuple(keys), first, last, error)
    if exact:
        if len(_LAYOUTS) >= 1024:
            _LAYOUTS.clear()
        _LAYOUTS[tuple(names)] = layout
    return lines, layout


def _parse(data: bytes, strict: bool) -> Request | Response:
    if not isinstance(data, bytes):
        data = bytes(data)
    if data[:2] == b"\r\n":  # RFC 3261 §7.5: CRLFs before the start line are ignored
        data = data.lstrip(b"\r\n")
    if not data:
        raise ParseError("empty message")
    head, lines, body_start, exact = _split_head(data)
    first = lines[0]
    msg: Request | Response
    if first[:4].upper() == "SIP/":
        msg = _response_line(first)
    else:
        msg = _request_line(first)

    del lines[0]
    n = len(lines)
    names = _NAME_RE.findall(head)
    layout = _LAYOUTS.get(tuple(names)) if len(names) == n else None
    if layout is None:
        lines, layout = _layout(names, lines)  # lines unfolded if need be
        n = len(lines)
    keys_seen, first, last, error = layout
    if error is not None:
        raise ParseError(error)
    msg._lines = lines
    msg._keys = list(keys_seen)
    msg._typed = typed = {}
    msg._first = first
    msg._last = last

    # The headers every element relies on, checked now (RFC 3261 §16.3 step 1, §17.2.3).
    line = lines[first["call-id"]]
    typed["call-id"] = parse_call_id(_line_value(line))
    line = lines[first["cseq"]]
    typed["cseq"] = cseq = parse_cseq(_line_value(line))
    if strict or msg.is_request:
        # A proxy matches and routes responses by Via and CSeq alone; their From and To
        # stay raw (parsed, and checked, when read).
        line = lines[first["from"]]
        typed["from"] = parse_name_addr(_line_value(line))
        line = lines[first["to"]]
        typed["to"] = parse_name_addr(_line_value(line))
    i = first.get("max-forwards")
    if i is not None:
        line = lines[i]
        typed["max-forwards"] = parse_max_forwards(_line_value(line))
    i = first.get("content-length")
    length = None
    if i is not None:
        line = lines[i]
        typed["content-length"] = length = parse_content_length(_line_value(line))
    if strict:
        value = msg._compute("via")
        if type(value) is ParseError:
            raise value
    else:  # the first Via only: what matching and routing read (§16.3 step 1)
        typed[_TOP_VIA] = parse_top_via(_line_value(lines[first["via"]]))
    if "route" in first:
        value = msg._compute("route")
        if type(value) is ParseError:
            raise value
    if strict:
        msg.parse_all()
    if msg.is_request and cseq.method != msg.method:  # type: ignore[union-attr]
        raise ParseError("CSeq method does not match the request method")

    # Body framing (RFC 3261 §18.3, §20.14).
    available = len(data) - body_start
    if length is None:
        msg._body = data[body_start:]
        msg._raw = data if exact else None
    else:
        if length > available:
            raise ParseError("Content-Length is larger than the message")
        msg._body = data[body_start : body_start + length]
        msg._raw = (data if length == available else data[: body_start + length]) if exact else None
    return msg


_SALVAGED = ("via", "from", "to", "call-id", "cseq")


def salvage(data: bytes) -> Request | None:
    """The parts of a malformed request that an error response needs — its Vias, From,
    To, Call-ID and CSeq — as a Request; None when they cannot be read either (the message
    is then dropped). RFC 4475 wants malformed requests answered with the error's status
    (400, 505 …) whenever that is possible."""
    try:
        _, lines, _, _ = _split_head(data.lstrip(b"\r\n"))
        parts = lines[0].split(" ")
        method = parts[0]
        if not abnf.TOKEN_RE.fullmatch(method) or method == "ACK":
            return None
        kept: list[tuple[str, str]] = []
        seen: set[str] = set()
        for line in _unfold(lines[1:]):
            colon = line.find(":")
            if colon <= 0:
                continue
            try:
                key = check_name(line[:colon])
            except ParseError:
                continue
            if key in _SALVAGED and (key == "via" or key not in seen):
                seen.add(key)
                kept.append((_name_part(line), _line_value(line)))
        request = Request(method, "sip:invalid", kept)
        request.via, request.from_, request.to, request.call_id, request.cseq  # noqa: B018
        return request
    except Exception:  # nothing usable: the caller drops the message
        return None


def _version(text: str) -> str:
    if text == "SIP/2.0":
        return text
    m = abnf.SIP_VERSION_RE.fullmatch(text)
    if m is None:
        raise ParseError(f"bad SIP version {text[:20]!r}")
    if int(m.group(1)) != 2 or int(m.group(2)) != 0:
        raise ParseError(f"SIP version {text[:20]} not supported", 505)
    return text


def _request_line(line: str) -> Request:
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF (exactly one SP each)
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise ParseError("malformed Request-Line")
    method, uri_text, version = parts
    if not abnf.TOKEN_RE.fullmatch(method):
        raise ParseError("bad method")
    msg = object.__new__(Request)
    msg.version = _version(version)
    msg.method = method
    msg._uri_text = uri_text
    # Parsed now (so that reading ``uri`` cannot fail later) and kept: every element reads it.
    msg._uri = parse_uri(uri_text, request_uri=True)
    return msg


def _response_line(line: str) -> Response:
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    msg = object.__new__(Response)
    msg.version = _version(version)
    if len(code) != 3 or not code.isascii() or not code.isdigit() or not 100 <= int(code) <= 699:
        raise ParseError("bad status code")
    msg.status_code = int(code)
    msg.reason = reason
    return msg


# ---------------------------------------------------------------------------------------
# Helpers for the layers above
# ---------------------------------------------------------------------------------------


class UnsupportedExtension(ParseError):
    """Require or Proxy-Require names option tags this element does not support (420)."""

    def __init__(self, unsupported: list[str]) -> None:
        super().__init__("Bad Extension", 420)
        self.unsupported = unsupported


def validate_request(
    request: Request,
    *,
    supported: Iterable[str] = (),
    schemes: Iterable[str] = ("sip", "sips", "tel"),
    require_headers: Iterable[str] = ("require", "proxy-require"),
) -> None:
    """Application-level checks of a parsed request (RFC 3261 §8.2.2, §16.3; RFC 4475 §3.3).

    Raises ParseError 400 for a missing mandatory header, 416 for a Request-URI scheme not
    in ``schemes`` and :class:`UnsupportedExtension` (420, with ``.unsupported``) for option
    tags of ``require_headers`` not in ``supported`` (never for ACK and CANCEL, §8.2.2.3).
    """
    present = request._index()
    if not present.keys() >= _MANDATORY_SET:
        missing_key = next(key for key in _MANDATORY if key not in present)
        raise ParseError(f"missing {pretty_name(missing_key)} header")
    scheme = request.uri.scheme
    if scheme not in schemes:
        raise ParseError(f"unsupported URI scheme {scheme!r}", 416)
    if request.method in ("ACK", "CANCEL"):
        return
    missing: list[str] = []
    known: set[str] | None = None
    for name in require_headers:
        key = canonical_name(name)
        if key not in present:
            continue
        for tag in request._typed_value(key):
            if known is None:
                known = {tag.lower() for tag in supported}
            if tag.lower() not in known and tag not in missing:
                missing.append(tag)
    if missing:
        raise UnsupportedExtension(missing)


def make_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6.2: Via, From, To, Call-ID and CSeq
    copied line by line (Timestamp too for a 100, §8.2.6.1); ``to_tag`` added to To when
    the request's To has none."""
    copied = (
        ("via", "from", "to", "call-id", "cseq", "timestamp")
        if status_code == 100
        else (
            "via",
            "from",
            "to",
            "call-id",
            "cseq",
        )
    )
    lines: list[str] = []
    keys: list[str] = []
    for key, line in zip(request._keys, request._lines, strict=True):
        if key in copied:
            if key == "to" and to_tag is not None and request.to.tag is None:
                line = f"{line};tag={to_tag}"
            lines.append(line)
            keys.append(key)
    response = Response(status_code, reason, headers, body)
    response._lines[:0] = lines
    response._keys[:0] = keys
    response._first = response._last = None
    return response
