"""Round trips: generated requests and responses (random methods, URIs, header sets in random
order, header-name casing and compact forms, folding, bodies) satisfy parse(bytes(m)) == m,
with the same typed fields; messages built from (name, value) pairs survive bytes -> parse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sipstack.message import (
    CSeq,
    NameAddr,
    Request,
    Response,
    SipURI,
    canonical_name,
    parse,
    parse_uri,
    pretty_name,
)
from sipstack.message.headers import COMPACT_FORMS

SETTINGS = settings(max_examples=300, deadline=None)

# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------

TOKEN = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
WORD = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]{1,16}", fullmatch=True)
KNOWN_METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY"]
KNOWN_METHODS += ["PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"]
METHODS = st.sampled_from(KNOWN_METHODS) | st.from_regex(r"[A-Z][A-Z0-9\-]{0,9}", fullmatch=True)

_LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
HOSTNAMES = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)
HOSTS = st.one_of(
    HOSTNAMES,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
PORTS = st.none() | st.integers(1, 65535)
USERS = st.none() | st.from_regex(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,10}", fullmatch=True)
# Printable text for free-form header values and reason phrases (no CR, LF or other controls).
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.just("\t"), max_size=30)


def hostport(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@st.composite
def sip_uri_text(draw: st.DrawFn, *, params: bool = True) -> str:
    uri = SipURI(
        draw(HOSTS),
        draw(USERS),
        port=draw(PORTS),
        params=draw(
            st.dictionaries(
                st.sampled_from(["transport", "lr", "user", "maddr", "ttl", "x-p"]),
                st.none() | st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
                max_size=3,
            )
        )
        if params
        else {},
        scheme=draw(st.sampled_from(["sip", "sips"])),
    )
    return str(uri)


REQUEST_URIS = st.one_of(
    sip_uri_text(),
    st.from_regex(r"\+[0-9]{1,3}-[0-9]{3}-[0-9]{4}", fullmatch=True).map(lambda n: f"tel:{n}"),
    st.sampled_from(["urn:service:sos", "im:alice@example.com", "mailto:bob@example.org"]),
)


@st.composite
def display_name(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["none", "token", "quoted"]))
    if kind == "none":
        return ""
    if kind == "token":
        return " ".join(draw(st.lists(TOKEN, min_size=1, max_size=3))) + draw(st.sampled_from([" ", ""]))
    text = draw(TEXT)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '" '


@st.composite
def name_addr(draw: st.DrawFn, *, tag: bool | None = None, bracket: bool | None = None) -> str:
    """A name-addr (or an addr-spec when allowed) with header parameters."""
    params = []
    if tag or (tag is None and draw(st.booleans())):
        params.append(f";tag={draw(TOKEN)}")
    params += [
        f";{n}={v}"
        for n, v in draw(st.dictionaries(st.sampled_from(["x", "y-z"]), TOKEN, max_size=2)).items()
    ]
    if bracket is False or (bracket is None and draw(st.booleans())):
        uri = draw(sip_uri_text(params=False))
        if not any(c in uri for c in ";,?"):  # RFC 3261 §20: else it must be in <>
            return uri + "".join(params)
    return f"{draw(display_name())}<{draw(sip_uri_text())}>" + "".join(params)


@st.composite
def via_value(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "udp", "x-new"]))
    value = f"SIP/2.0/{transport} {hostport(draw(HOSTS), draw(PORTS))};branch=z9hG4bK{draw(TOKEN)}"
    if draw(st.booleans()):
        value += draw(
            st.sampled_from([";rport", ";rport=5060", ";received=192.0.2.7", ";received=2001:db8::7"])
        )
    return value


@dataclass
class Line:
    key: str  # canonical name
    value: str


@st.composite
def header_lines(draw: st.DrawFn, method: str, *, request: bool, body: bytes) -> list[Line]:
    lines: list[Line] = []
    vias = draw(st.lists(via_value(), min_size=1, max_size=3))
    i = 0
    while i < len(vias):  # one per line, or several joined by commas
        n = draw(st.integers(1, len(vias) - i))
        lines.append(Line("via", " , ".join(vias[i : i + n])))
        i += n
    lines.append(Line("from", draw(name_addr(tag=True))))
    lines.append(Line("to", draw(name_addr(tag=None if request else True))))
    lines.append(
        Line("call-id", draw(st.builds(lambda a, b: a + b, WORD, st.just("") | WORD.map("@".__add__))))
    )
    lines.append(Line("cseq", f"{draw(st.integers(0, 2**31 - 1))} {method}"))
    if request or draw(st.booleans()):
        lines.append(Line("max-forwards", str(draw(st.integers(0, 255)))))
    optional: dict[str, Any] = {
        "contact": st.lists(name_addr(tag=False), min_size=1, max_size=2).map(", ".join),
        "route": st.lists(st.builds(lambda h: f"<sip:{h};lr>", HOSTS), min_size=1, max_size=3).map(",".join),
        "record-route": st.builds(lambda h: f"<sip:{h};lr>", HOSTS),
        "subject": TEXT,
        "supported": st.lists(TOKEN, max_size=3).map(", ".join),
        "allow": st.lists(st.sampled_from(KNOWN_METHODS), max_size=4).map(",".join),
        "expires": st.integers(0, 2**32 - 1).map(str),
        "user-agent": TEXT,
        "x-custom": TEXT,
        "x-other-thing": TEXT,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
        for _ in range(draw(st.integers(1, 2)) if key in ("route", "x-custom", "supported") else 1):
            lines.append(Line(key, draw(optional[key])))
    if body:
        lines.append(
            Line("content-type", draw(st.sampled_from(["application/sdp", "text/plain;charset=UTF-8"])))
        )
    if draw(st.booleans()):
        lines.append(Line("content-length", str(len(body))))
    # Random order across names; lines with the same name keep their relative order.
    order = draw(st.permutations(range(len(lines))))
    shuffled = [lines[i] for i in order]
    by_key: dict[str, list[Line]] = {}
    for line in lines:
        by_key.setdefault(line.key, []).append(line)
    return [by_key[line.key].pop(0) for line in shuffled]


@st.composite
def spelled(draw: st.DrawFn, key: str) -> str:
    """A way to write the header name ``key``: any case, compact form, space before the colon."""
    compact = [c for c, full in COMPACT_FORMS.items() if full == key]
    choices = [pretty_name(key), key, key.upper()] + compact + [c.upper() for c in compact]
    name = draw(st.sampled_from(choices))
    if draw(st.integers(0, 4)) == 0:
        name = "".join(ch.upper() if draw(st.booleans()) else ch.lower() for ch in name)
    if draw(st.integers(0, 6)) == 0:
        name += draw(st.sampled_from([" ", "\t", "  "]))
    assert canonical_name(name) == key
    return name


@st.composite
def folded(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with some header lines folded: a CRLF put before some of the white space after
    the colon, which leaves every value the same once unfolded (RFC 3261 §7.3.1)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for n in range(1, len(lines)):
        if draw(st.integers(0, 3)) == 0:
            line = lines[n]
            colon = line.index(b":")
            spaces = [i for i in range(colon + 1, len(line)) if line[i] in b" \t"]
            for i in sorted(
                draw(st.lists(st.sampled_from(spaces), unique=True, max_size=3)) if spaces else []
            )[::-1]:
                line = line[:i] + b"\r\n" + line[i:]
            lines[n] = line
    return b"\r\n".join(lines) + sep + body


@st.composite
def pairs_for(draw: st.DrawFn, lines: list[Line]) -> list[tuple[str, str]]:
    return [(draw(spelled(line.key)), line.value) for line in lines]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(METHODS)
    body = draw(st.binary(max_size=200))
    lines = draw(header_lines(method, request=True, body=body))
    return Request(method, draw(REQUEST_URIS), draw(pairs_for(lines)), body)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    body = draw(st.binary(max_size=200))
    lines = draw(header_lines(draw(METHODS), request=False, body=body))
    reason = draw(TEXT)
    return Response(draw(st.integers(100, 699)), reason, draw(pairs_for(lines)), body)


# ---------------------------------------------------------------------------------------
# Comparing typed fields
# ---------------------------------------------------------------------------------------

LIST_ATTRS = ["via", "contact", "route", "record_route", "supported", "allow", "accept", "require"]
SINGLE_ATTRS = ["call_id", "cseq", "max_forwards", "expires", "content_type", "content_length"]


def addr(a: NameAddr) -> tuple[Any, ...]:
    return (a.uri, a.display_name, dict(a.params), a.is_star)


def typed(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {attr: getattr(m, attr) for attr in SINGLE_ATTRS}
    out["via"] = [(v.protocol, v.transport, v.host, v.port, dict(v.params)) for v in m.via]
    out["from"] = addr(m.from_)
    out["to"] = addr(m.to)
    for attr in ("contact", "route", "record_route"):
        out[attr] = [addr(a) for a in getattr(m, attr)]
    for attr in ("supported", "allow", "accept", "require"):
        out[attr] = getattr(m, attr)
    out["body"] = m.body
    out["names"] = m.header_names()
    out["values"] = {name: m.header_values(name) for name in m.header_names()}
    if isinstance(m, Request):
        out["start"] = (m.method, m.uri, m.version)
    else:
        out["start"] = (m.status_code, m.reason, m.version)
    return out


def check_round_trip(m: Request | Response, data: bytes | None = None) -> None:
    """``m`` survives bytes -> parse; ``data`` (default bytes(m)) is a wire form of it."""
    data = bytes(m) if data is None else data
    parsed = parse(data)
    assert type(parsed) is type(m)
    assert parsed == m, (data, m.header_items(), parsed.header_items())
    assert bytes(parsed) == data
    assert typed(parsed) == typed(m)
    again = parse(bytes(parsed))
    assert again == parsed
    lenient = parse(data, strict=False)
    assert lenient == parsed
    assert typed(lenient) == typed(parsed)
    copy = parsed.copy()
    assert copy == parsed and bytes(copy) == data


@SETTINGS
@given(st.data())
def test_generated_requests_round_trip(data: st.DataObject) -> None:
    m = data.draw(requests())
    check_round_trip(m)
    check_round_trip(m, data.draw(folded(bytes(m))))
    assert parse(bytes(m)).uri == parse_uri(m.start_line().split(" ")[1])  # type: ignore[union-attr]


@SETTINGS
@given(st.data())
def test_generated_responses_round_trip(data: st.DataObject) -> None:
    m = data.draw(responses())
    check_round_trip(m)
    check_round_trip(m, data.draw(folded(bytes(m))))


@SETTINGS
@given(st.data(), st.sampled_from(["prepend", "add", "set", "remove", "pop", "body"]))
def test_edited_messages_round_trip(data: st.DataObject, edit: str) -> None:
    m = data.draw(requests())
    parsed = parse(data.draw(folded(bytes(m))))
    if edit == "prepend":
        parsed.prepend_header("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKedit")
    elif edit == "add":
        parsed.add_header("Record-Route", "<sip:proxy.example.com;lr>")
    elif edit == "set":
        parsed.set_header("Max-Forwards", "9")
    elif edit == "remove":
        parsed.remove_header("Route")
    elif edit == "pop":
        parsed.pop_value("Route")
    else:
        parsed.body = b"new body"
    again = parse(bytes(parsed))
    assert again == parsed
    assert typed(again) == typed(parsed)


# ---------------------------------------------------------------------------------------
# Fixed pairs -> bytes -> parse
# ---------------------------------------------------------------------------------------

PAIRS = [
    ("v", "SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9;received=192.0.2.101;rport=5061"),
    (
        "VIA",
        "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK4b43c2ff8.1, SIP/2.0/TCP 192.0.2.5:5070;branch=z9hG4bKx",
    ),
    ("max-forwards", "69"),
    ("f", '"Alice \\"A\\" Liddell" <sips:alice@atlanta.example.com>;tag=9fxced76sl'),
    ("T", "sip:bob@biloxi.example.com;tag=314159"),
    ("i", "3848276298220188511@atlanta.example.com"),
    ("CSEQ", "2 INVITE"),
    ("m", "<sips:alice@client.atlanta.example.com;transport=tls>;expires=3600;q=0.8, sip:a@192.0.2.9;q=0"),
    ("Route", "<sip:p1.example.com;lr>, <sip:[2001:db8::2]:5070;lr>"),
    ("Record-Route", "<sip:rr.example.com;lr>"),
    ("k", "100rel, timer"),
    ("Allow", "INVITE, ACK, BYE"),
    ("Expires", "99999999999"),
    ("c", "application/sdp"),
    ("Subject", "A subject line"),
    (
        "Proxy-Authorization",
        'Digest username="alice", realm="atlanta.example.com", nonce="x", uri="sip:b@c", response="0"',
    ),
]


def test_request_from_pairs_round_trips_with_the_same_fields() -> None:
    body = b"v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n"
    m = Request("INVITE", "sips:bob@biloxi.example.com", PAIRS, body)
    check_round_trip(m)
    parsed = parse(bytes(m))
    assert [v.transport for v in parsed.via] == ["TLS", "UDP", "TCP"]
    assert parsed.via[0].rport == 5061
    assert parsed.from_.display_name == 'Alice "A" Liddell'
    assert parsed.to.tag == "314159"
    assert parsed.cseq == CSeq(2, "INVITE")
    assert parsed.contact[0].expires == 3600 and parsed.contact[1].q == 0.0
    assert parsed.expires == 2**32 - 1
    assert parsed.header("subject") == "A subject line"
    assert parsed.proxy_authorization[0].params["username"] == "alice"
    assert parsed.content_length == len(body)


def test_response_from_pairs_round_trips_with_the_same_fields() -> None:
    m = Response(183, "Session Progress", PAIRS, b"")
    check_round_trip(m)
    assert parse(bytes(m)).status_code == 183  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    sip_uri_text(),
    TEXT.filter(lambda t: "\r" not in t and "\n" not in t),
    st.dictionaries(TOKEN, TOKEN, max_size=3),
)
def test_name_addr_str_parses_back(uri: str, display: str, params: dict[str, str]) -> None:
    na = NameAddr(parse_uri(uri), display, {k.lower(): v for k, v in params.items()})
    m = Request(
        "OPTIONS", "sip:x.example.com", [("To", str(na)), ("Via", "SIP/2.0/UDP h"), ("From", "<sip:f>")]
    )
    m.add_header("Call-ID", "1")
    m.add_header("CSeq", "1 OPTIONS")
    to = parse(bytes(m)).to
    assert (to.uri, to.display_name, dict(to.params)) == (na.uri, na.display_name, dict(na.params))


def test_message_built_with_a_folded_value_equals_its_parse() -> None:
    pairs = [*PAIRS[:7], ("Subject", "Folded\r\n subject line"), ("Contact", "\r\n <sip:alice@192.0.2.4>")]
    m = Request("INVITE", "sips:bob@biloxi.example.com", pairs)
    assert m.header("Subject") == "Folded subject line"
    assert m.contact[0].uri == parse_uri("sip:alice@192.0.2.4")
    assert parse(bytes(m)) == m


def test_display_name_with_a_control_character_round_trips() -> None:
    na = NameAddr(parse_uri("sip:bob@biloxi.example.com"), "Bob\x01\x7f")
    m = Request(
        "OPTIONS", "sip:x.example.com", [("To", str(na)), ("Via", "SIP/2.0/UDP h"), ("From", "<sip:f>")]
    )
    m.add_header("Call-ID", "1")
    m.add_header("CSeq", "1 OPTIONS")
    assert parse(bytes(m)).to.display_name == "Bob\x01\x7f"
