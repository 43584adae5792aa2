"""Typed header accessors of Message (RFC 3261 §20, grammar of §25.1), header()/header_values()
with compact forms (§7.3.3), list headers across lines (§7.3.1), and the error contract: a
malformed value is a ParseError 400 — at parse time with strict=True, at first access with
strict=False — and the same error each time it is read again."""

from __future__ import annotations

from typing import Any

import pytest

from sipstack.message import (
    STAR,
    Auth,
    CSeq,
    MediaType,
    Message,
    NameAddr,
    ParseError,
    SipURI,
    Via,
    canonical_name,
    parse,
    pretty_name,
)
from sipstack.message.headers import split_list

BASE = [
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.example.com>",
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
]


def wire(
    *extra: str, drop: tuple[str, ...] = (), start: str = "INVITE sip:bob@biloxi.example.com SIP/2.0"
) -> bytes:
    """A request: BASE minus the headers named in ``drop`` (canonical names), then ``extra``."""
    lines = [line for line in BASE if canonical_name(line.split(":", 1)[0]) not in drop]
    return ("\r\n".join([start, *lines, *extra, "Content-Length: 0", "", ""])).encode("utf-8")


def msg(*extra: str, drop: tuple[str, ...] = (), strict: bool = True) -> Message:
    return parse(wire(*extra, drop=drop), strict=strict)


def deep(value: Any) -> Any:
    """Read every part of a typed value, so that lazily decoded parts are decoded too."""
    if isinstance(value, list):
        for item in value:
            deep(item)
    elif isinstance(value, Via):
        _ = (value.transport, value.host, value.port, value.protocol, value.sent_by)
        _ = (dict(value.params), value.branch, value.received, value.rport, value.maddr, str(value))
    elif isinstance(value, NameAddr):
        if not value.is_star:
            _ = (
                value.uri,
                value.display_name,
                dict(value.params),
                value.tag,
                value.expires,
                value.q,
                str(value),
            )
    elif isinstance(value, (MediaType, Auth, CSeq)):
        str(value)
    return value


def read(m: Message, attr: str) -> Any:
    return deep(getattr(m, attr))


def assert_malformed(line: str, attr: str, *, drop: tuple[str, ...] = ()) -> None:
    """``line`` is refused with a 400: strict parse refuses it; a lenient parse either refuses it
    (a header every element relies on) or raises the same ParseError on every read of ``attr``."""
    data = wire(line, drop=drop)
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.status_code == 400
    try:
        m = parse(data, strict=False)
    except ParseError as exc:
        assert exc.status_code == 400
        return
    seen = set()
    for _ in range(3):
        with pytest.raises(ParseError) as info:
            read(m, attr)
        seen.add((type(info.value), info.value.reason, info.value.status_code))
    assert len(seen) == 1, seen
    assert seen.pop()[2] == 400
    # the rest of the message stays readable
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert bytes(m) == data


# ---------------------------------------------------------------------------------------
# Via (§20.42)
# ---------------------------------------------------------------------------------------


def test_via_lines_and_comma_joined_values_make_one_list() -> None:
    m = msg(
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
        "Via: SIP/2.0/TCP b.example.com:5061;branch=z9hG4bK2, SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bK3",
        drop=("via",),
    )
    vias = m.via
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "a.example.com", None, "z9hG4bK1"),
        ("TCP", "b.example.com", 5061, "z9hG4bK2"),
        ("TLS", "[2001:db8::9]", 5061, "z9hG4bK3"),
    ]
    assert vias[0].protocol == "SIP/2.0"
    assert vias[1].sent_by == "b.example.com:5061"
    assert vias[2].sent_by == "[2001:db8::9]:5061"
    same = msg(
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
        "Via: SIP/2.0/TCP b.example.com:5061;branch=z9hG4bK2",
        "Via: SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bK3",
        drop=("via",),
    )
    assert same.via == vias
    assert (
        same.header_values("Via")
        == m.header_values("via")
        == [
            "SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
            "SIP/2.0/TCP b.example.com:5061;branch=z9hG4bK2",
            "SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bK3",
        ]
    )
    assert m.header("via") == "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"


def test_via_rport_with_and_without_value() -> None:
    v = msg("Via: SIP/2.0/UDP h.example.com;rport;branch=z9hG4bK1", drop=("via",)).via[0]
    assert "rport" in v.params and v.params["rport"] is None
    assert v.rport is None
    v = msg("Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;rport=5070", drop=("via",)).via[0]
    assert v.rport == 5070
    v = msg(drop=()).via[0]
    assert "rport" not in v.params and v.rport is None


@pytest.mark.parametrize(
    ("value", "received"),
    [
        ("received=192.0.2.4", "192.0.2.4"),
        ("received=2001:db8::9", "2001:db8::9"),  # RFC 5118 §4.5: bare IPv6
        ("received=[2001:db8::9]", "[2001:db8::9]"),  # RFC 5118 §4.6: bracketed
        ("received=::ffff:192.0.2.4", "::ffff:192.0.2.4"),
        ("received=[2001:db8::192.0.2.4]", "[2001:db8::192.0.2.4]"),
    ],
)
def test_via_received(value: str, received: str) -> None:
    for strict in (True, False):
        v = msg(f"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;{value}", drop=("via",), strict=strict).via[
            0
        ]
        assert v.received == received
        assert v.branch == "z9hG4bK1"


def test_via_ttl_maddr_and_other_parameters() -> None:
    v = msg(
        "Via: SIP/2.0/UDP h.example.com;ttl=16;maddr=224.2.0.1;branch=z9hG4bK1;X-Ext=Val", drop=("via",)
    ).via[0]
    assert v.maddr == "224.2.0.1"
    assert v.params["ttl"] == "16"
    assert v.params["x-ext"] == "Val"  # names are case-insensitive, values kept
    for ttl in ("0", "255"):
        assert msg(f"Via: SIP/2.0/UDP h.example.com;ttl={ttl}", drop=("via",)).via[0].params["ttl"] == ttl


def test_via_unknown_transport_and_case() -> None:
    v = msg("Via: sip/2.0/sctp-x h.example.com;branch=z9hG4bK1", drop=("via",)).via[0]
    assert v.transport == "SCTP-X"
    assert v.protocol == "SIP/2.0"
    v = msg("Via: SIP/2.0/WSS h.example.com", drop=("via",)).via[0]
    assert v.transport == "WSS"
    assert v.branch is None


def test_via_lws_around_separators() -> None:
    # SLASH, SEMI, EQUAL and COMMA may carry whitespace (RFC 3261 §25.1)
    vias = msg(
        "Via: SIP / 2.0 / UDP h.example.com : 5060 ; branch = z9hG4bK1 ,SIP/2.0/TCP g.example.com",
        drop=("via",),
    ).via
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "h.example.com", 5060, "z9hG4bK1"),
        ("TCP", "g.example.com", None, None),
    ]


@pytest.mark.parametrize(("port", "expected"), [("0", 0), ("5060", 5060), ("65535", 65535)])
def test_via_port(port: str, expected: int) -> None:
    assert msg(f"Via: SIP/2.0/UDP 192.0.2.1:{port}", drop=("via",)).via[0].port == expected


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP",  # no sent-by
        "SIP/2.0 h.example.com",  # no transport
        "SIP/2.0/UDP h.example.com:65536",
        "SIP/2.0/UDP h.example.com:",
        "SIP/2.0/UDP h.example.com:abc",
        "SIP/2.0/UDP 2001:db8::1",  # unbracketed IPv6 sent-by
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP 192.0.2.256",
        "SIP/2.0/UDP h.example.com;branch=",
        "SIP/2.0/UDP h.example.com;;branch=z9hG4bK1",
        "SIP/2.0/UDP h.example.com branch=z9hG4bK1",
        "SIP/2.0/UDP h.example.com,",
        "SIP/2.0/UDP h.example.com,,SIP/2.0/UDP g.example.com",
        "SIP/2.0/UDP h.example.com SIP/2.0/UDP g.example.com",
        "",
    ],
)
def test_malformed_via(value: str) -> None:
    assert_malformed(f"Via: {value}", "via", drop=("via",))


@pytest.mark.parametrize(
    "param",
    [
        "received=192.0.2.300",
        "received=2001:db8::g",
        "received=[2001:db8::1",
        "received=",
        "rport=abc",
        "rport=65536",
        "rport=-1",
        "ttl=256",
        "ttl=abc",
    ],
)
def test_malformed_via_parameter(param: str) -> None:
    assert_malformed(f"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;{param}", "via", drop=("via",))


@pytest.mark.parametrize("param", ["maddr=300.1.1.1", "maddr=bad..host", "maddr=-host-"])
def test_malformed_via_maddr(param: str) -> None:
    assert_malformed(f"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;{param}", "via", drop=("via",))


# ---------------------------------------------------------------------------------------
# From and To (§20.20, §20.39)
# ---------------------------------------------------------------------------------------


def test_quoted_display_name_with_escapes() -> None:
    m = msg('From: "Alice \\"Al\\" Smith\\\\" <sip:alice@atlanta.example.com>;tag=88', drop=("from",))
    assert m.from_.display_name == 'Alice "Al" Smith\\'
    assert m.from_.tag == "88"
    assert m.from_.uri == SipURI("atlanta.example.com", "alice")


def test_utf8_and_empty_quoted_display_names() -> None:
    m = msg('From: "Jörg Müller" <sip:j@atlanta.example.com>;tag=1', drop=("from",))
    assert m.from_.display_name == "Jörg Müller"
    m = msg('From: "" <sip:j@atlanta.example.com>;tag=1', drop=("from",))
    assert m.from_.display_name == ""


def test_token_display_names() -> None:
    m = msg("To: Bob  Q. Public <sip:bob@biloxi.example.com>", drop=("to",))
    assert m.to.display_name is not None
    assert m.to.display_name.split() == ["Bob", "Q.", "Public"]
    m = msg("To: Bob<sip:bob@biloxi.example.com>", drop=("to",))  # RFC 4475 §3.1.1.6: no LWS needed
    assert m.to.display_name == "Bob"


def test_no_display_name_and_tag_absent() -> None:
    m = msg("To: <sip:bob@biloxi.example.com>", drop=("to",))
    assert m.to.display_name is None
    assert m.to.tag is None
    assert m.to.params == {}
    assert str(m.to.uri) == "sip:bob@biloxi.example.com"


def test_addr_spec_form_parameters_belong_to_the_header() -> None:
    # RFC 3261 §20: without <>, parameters after the URI are header parameters
    m = msg("To: sip:bob@biloxi.example.com;tag=a73kszlfl;transport=udp", drop=("to",))
    assert m.to.tag == "a73kszlfl"
    assert m.to.params == {"tag": "a73kszlfl", "transport": "udp"}
    assert isinstance(m.to.uri, SipURI)
    assert m.to.uri.params == {}
    m = msg("To: <sip:bob@biloxi.example.com;transport=udp>;tag=x", drop=("to",))
    assert isinstance(m.to.uri, SipURI)
    assert m.to.uri.params == {"transport": "udp"}
    assert m.to.params == {"tag": "x"}


def test_from_to_compact_forms_and_other_uri_schemes() -> None:
    m = msg("f: <tel:+1-201-555-0123>;tag=3", "t: <sip:bob@[2001:db8::10]:5060>", drop=("from", "to"))
    assert str(m.from_.uri) == "tel:+1-201-555-0123"
    assert m.from_.tag == "3"
    assert isinstance(m.to.uri, SipURI)
    assert m.to.uri.host == "[2001:db8::10]"


def test_name_addr_params_with_quoted_and_bracketed_values() -> None:
    m = msg('From: <sip:a@atlanta.example.com>;tag=1;x="a;b,c";y=[2001:db8::1];z', drop=("from",))
    assert m.from_.params == {"tag": "1", "x": "a;b,c", "y": "[2001:db8::1]", "z": None}


@pytest.mark.parametrize(
    "value",
    [
        "<sip:alice@atlanta.example.com",
        "sip:alice@atlanta.example.com>",
        '"unterminated <sip:alice@atlanta.example.com>',
        "<>",
        "<sip:alice@256.1.1.1>",
        "<sip:alice@atlanta.example.com>;tag=",
        "<sip:alice@atlanta.example.com>;tag=1;",
        "<sip:alice@atlanta.example.com> garbage",
        "Alice",
        "<sip:a@atlanta.example.com> <sip:b@atlanta.example.com>",
        "<sip:a@atlanta.example.com>, <sip:b@atlanta.example.com>",
        "sip:bob@biloxi.example.com?subject=x",  # '?' is not allowed outside <>
        "<not a uri>",
        "",
    ],
)
@pytest.mark.parametrize(("name", "attr"), [("From", "from_"), ("To", "to")])
def test_malformed_from_and_to(name: str, attr: str, value: str) -> None:
    assert_malformed(f"{name}: {value}", attr, drop=(name.lower(),))


# ---------------------------------------------------------------------------------------
# Call-ID, CSeq, Max-Forwards, Content-Length, Expires
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com", "a84b4c76e66710", 'x(y)<z>:\\"/[a]?{b}@h']
)
def test_call_id(value: str) -> None:
    assert msg(f"Call-ID: {value}", drop=("call-id",)).call_id == value
    assert msg(f"i: {value}", drop=("call-id",)).call_id == value


@pytest.mark.parametrize("value", ["a b", "@host", "a@", "a@b@c", "a;b", ""])
def test_malformed_call_id(value: str) -> None:
    assert_malformed(f"Call-ID: {value}", "call_id", drop=("call-id",))


@pytest.mark.parametrize(
    ("value", "seq"), [("0 INVITE", 0), ("1 INVITE", 1), ("2147483647 INVITE", 2**31 - 1)]
)
def test_cseq_bounds(value: str, seq: int) -> None:
    assert msg(f"CSeq: {value}", drop=("cseq",)).cseq == CSeq(seq, "INVITE")


def test_cseq_fields_and_leading_zeros() -> None:
    cseq = msg("CSeq:   0042   INVITE", drop=("cseq",)).cseq
    assert (cseq.seq, cseq.method) == (42, "INVITE")
    assert str(cseq) == "42 INVITE"


@pytest.mark.parametrize(
    "value",
    [
        *("2147483648 INVITE", "4294967296 INVITE", "99999999999999999999 INVITE", "abc INVITE", "-1 INVITE"),
        *("1", "INVITE", "1INVITE", "1 INV ITE", "1.5 INVITE", "1 INVITE extra", ""),
    ],
)
def test_malformed_cseq(value: str) -> None:
    assert_malformed(f"CSeq: {value}", "cseq", drop=("cseq",))


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("70", 70), ("255", 255), ("070", 70), ("00", 0)])
def test_max_forwards(value: str, expected: int) -> None:
    assert msg(f"Max-Forwards: {value}", drop=("max-forwards",)).max_forwards == expected


def test_max_forwards_absent() -> None:
    assert msg(drop=("max-forwards",)).max_forwards is None


@pytest.mark.parametrize("value", ["256", "1000", "99999999999", "-1", "1.5", "abc", "7 0", "", "٧٠"])
def test_malformed_max_forwards(value: str) -> None:
    assert_malformed(f"Max-Forwards: {value}", "max_forwards", drop=("max-forwards",))


@pytest.mark.parametrize(
    ("line", "attr", "expected"),
    [
        ("Max-Forwards: 0000070", "max_forwards", 70),
        ("CSeq: 00000000001 INVITE", "cseq", CSeq(1, "INVITE")),
        ("Expires: 000000000005", "expires", 5),
        pytest.param("Via: SIP/2.0/UDP h.example.com:0000005060", "via", 5060),
        ("Via: SIP/2.0/UDP h.example.com;rport=0000005060", "via", 5060),
        ("Contact: <sip:a@h.example.com>;expires=000000000060", "contact", 60),
    ],
)
def test_leading_zeros_do_not_change_a_number(line: str, attr: str, expected: Any) -> None:
    name = canonical_name(line.split(":", 1)[0])
    value = getattr(msg(line, drop=(name,)), attr)
    if attr == "via":
        value = value[0].rport if "rport" in line else value[0].port
    elif attr == "contact":
        value = value[0].expires
    assert value == expected


def test_content_length() -> None:
    m = parse(wire().replace(b"Content-Length: 0\r\n\r\n", b"l: 4\r\n\r\nbody"))
    assert m.content_length == 4
    assert m.header("Content-Length") == "4"
    m = parse(wire().replace(b"Content-Length: 0\r\n\r\n", b"\r\nbody"))  # datagram without it
    assert m.content_length == 4
    assert m.header("Content-Length") is None


@pytest.mark.parametrize("value", ["abc", "-1", "1.0", "1 2", "", "99999999999999999999"])
def test_malformed_content_length(value: str) -> None:
    data = wire().replace(b"Content-Length: 0", f"Content-Length: {value}".encode())
    for strict in (True, False):
        with pytest.raises(ParseError) as info:
            parse(data, strict=strict)
        assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("3600", 3600), ("4294967295", 2**32 - 1), ("4294967296", 2**32 - 1), ("9" * 40, 2**32 - 1)],
)
def test_expires_and_min_expires(value: str, expected: int) -> None:
    m = msg(f"Expires: {value}", f"Min-Expires: {value}")
    assert m.expires == expected
    assert m.min_expires == expected


def test_expires_absent() -> None:
    assert msg().expires is None
    assert msg().min_expires is None


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "36 00", "", "Thu, 01 Dec 1994 16:00:00 GMT"])
@pytest.mark.parametrize(("name", "attr"), [("Expires", "expires"), ("Min-Expires", "min_expires")])
def test_malformed_expires(name: str, attr: str, value: str) -> None:
    assert_malformed(f"{name}: {value}", attr)


# ---------------------------------------------------------------------------------------
# Contact (§20.10)
# ---------------------------------------------------------------------------------------


def test_contact_star() -> None:
    m = parse(
        wire("Contact: *", "Expires: 0", start="REGISTER sip:registrar.example.com SIP/2.0").replace(
            b"314159 INVITE", b"1 REGISTER"
        )
    )
    assert len(m.contact) == 1
    assert m.contact[0].is_star
    assert m.contact == [STAR]
    assert str(m.contact[0]) == "*"


def test_several_contacts_across_lines_and_commas() -> None:
    m = msg(
        'Contact: "Mr. Watson" <sip:watson@worcester.example.com>;q=0.7;expires=3600, '
        "<mailto:watson@bell-telephone.example.com>;q=0.1",
        'm: "Doe, John" <sip:j@192.0.2.7:5070;transport=tcp>;'
        '+sip.instance="<urn:uuid:00000000-0000-1000-8000-'
        '000A95A0E128>";reg-id=1',
        "Contact: sip:k@h.example.com;expires=60",
    )
    c = m.contact
    assert len(c) == 4
    assert c[0].display_name == "Mr. Watson"
    assert c[0].q == 0.7 and c[0].expires == 3600
    assert str(c[1].uri) == "mailto:watson@bell-telephone.example.com"
    assert c[1].q == 0.1 and c[1].expires is None
    assert c[2].display_name == "Doe, John"
    assert c[2].params["+sip.instance"] == "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    assert c[2].params["reg-id"] == "1"
    assert isinstance(c[2].uri, SipURI) and c[2].uri.port == 5070
    assert c[3].expires == 60  # header parameter of an addr-spec
    assert isinstance(c[3].uri, SipURI) and c[3].uri.params == {}
    assert len(m.header_values("contact")) == 4


@pytest.mark.parametrize(
    ("q", "value"), [("0", 0.0), ("0.", 0.0), ("0.5", 0.5), ("0.123", 0.123), ("1", 1.0)]
)
def test_valid_q_values(q: str, value: float) -> None:
    assert msg(f"Contact: <sip:a@h.example.com>;q={q}").contact[0].q == value
    assert msg(f"Contact: <sip:a@h.example.com>;q=1.{'0' * min(len(q), 3)}").contact[0].q == 1.0


@pytest.mark.parametrize("q", ["1.5", "0.1234", "2", "1.0001", ".5", "abc", "-0.5", "1.01", ""])
def test_invalid_q_values(q: str) -> None:
    assert_malformed(f"Contact: <sip:a@h.example.com>;q={q}", "contact")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("3600", 3600), ("4294967295", 2**32 - 1), ("4294967296", 2**32 - 1), ("1" * 30, 2**32 - 1)],
)
def test_contact_expires_is_clamped(value: str, expected: int) -> None:
    assert msg(f"Contact: <sip:a@h.example.com>;expires={value}").contact[0].expires == expected


@pytest.mark.parametrize(
    "value",
    [
        "<sip:a@h.example.com>;expires=abc",
        "<sip:a@h.example.com>;expires=-1",
        "<sip:a@h.example.com",
        "<sip:a@h.example.com>,",
        "<sip:a@h.example.com> <sip:b@h.example.com>",
        "<sip:a@999.0.0.1>",
        "<sip:a@h.example.com>;expires=60, <not-a-uri>",
        "* ;expires=0",
        "**",
        "",
    ],
)
def test_malformed_contact(value: str) -> None:
    assert_malformed(f"Contact: {value}", "contact")


# ---------------------------------------------------------------------------------------
# Route, Record-Route, Path, Service-Route (§20.30, §20.34, RFC 3327, RFC 3608)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("Route", "route"),
        ("Record-Route", "record_route"),
        ("Path", "path"),
        ("Service-Route", "service_route"),
    ],
)
def test_route_like_headers(name: str, attr: str) -> None:
    m = msg(
        f"{name}: <sip:p1.example.com;lr>, Proxy Two <sip:p2.example.com;lr;transport=tcp>;x=1",
        f"{name}: <sip:[2001:db8::5]:5070;lr>",
    )
    routes = getattr(m, attr)
    assert [str(r.uri) for r in routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr;transport=tcp",
        "sip:[2001:db8::5]:5070;lr",
    ]
    assert all(isinstance(r.uri, SipURI) and r.uri.lr for r in routes)
    assert routes[1].display_name == "Proxy Two"
    assert routes[1].params == {"x": "1"}
    assert m.header_values(name) == [
        "<sip:p1.example.com;lr>",
        "Proxy Two <sip:p2.example.com;lr;transport=tcp>;x=1",
        "<sip:[2001:db8::5]:5070;lr>",
    ]
    assert getattr(msg(), attr) == []


@pytest.mark.parametrize(
    "value",
    [
        "sip:p1.example.com;lr",  # must be name-addr: in <>
        "<sip:p1.example.com;lr>, sip:p2.example.com",
        "<sip:p1.example.com;lr",
        "<sip:p1.example.com;lr>,,<sip:p2.example.com>",
        "<sip:p1..example.com;lr>",
        "<sip:p1.example.com;lr;>",
        "",
    ],
)
@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("Route", "route"),
        ("Record-Route", "record_route"),
        ("Path", "path"),
        ("Service-Route", "service_route"),
    ],
)
def test_malformed_route_like_headers(name: str, attr: str, value: str) -> None:
    assert_malformed(f"{name}: {value}", attr)


# ---------------------------------------------------------------------------------------
# Content-Type and Accept (§20.15, §20.1)
# ---------------------------------------------------------------------------------------


def test_content_type() -> None:
    ct = msg("Content-Type: Application/SDP").content_type
    assert isinstance(ct, MediaType)
    assert (ct.type, ct.subtype, ct.mime) == ("application", "sdp", "application/sdp")
    assert ct == "application/sdp" and ct == "APPLICATION/sdp"
    assert ct.params == {}
    ct = msg('c: multipart/mixed ; boundary="unique boundary 1"; charset=UTF-8').content_type
    assert ct is not None
    assert ct.mime == "multipart/mixed"
    assert ct.params == {"boundary": "unique boundary 1", "charset": "UTF-8"}
    assert msg().content_type is None


@pytest.mark.parametrize(
    "value",
    [
        *(
            "application",
            "application/",
            "/sdp",
            "application/sdp;charset",
            "application/sdp garbage",
            "a/b/c",
        ),
        *("", 'text/plain;charset="utf-8', "application/sdp;=x"),
    ],
)
def test_malformed_content_type(value: str) -> None:
    assert_malformed(f"Content-Type: {value}", "content_type")


def test_accept() -> None:
    m = msg("Accept: application/sdp, application/pidf+xml;q=0.5", "Accept: */*, text/*;level=1")
    assert [a.mime for a in m.accept] == ["application/sdp", "application/pidf+xml", "*/*", "text/*"]
    assert msg("Accept:").accept == []  # RFC 3261 §20.1: an empty Accept is allowed
    assert msg().accept == []


@pytest.mark.parametrize("value", ["application", "application/sdp;", "application/sdp text/plain", "/"])
def test_malformed_accept(value: str) -> None:
    assert_malformed(f"Accept: {value}", "accept")


# ---------------------------------------------------------------------------------------
# Option tags and methods: Require, Proxy-Require, Supported, Unsupported, Allow
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("Require", "require"),
        ("Proxy-Require", "proxy_require"),
        ("Supported", "supported"),
        ("Unsupported", "unsupported"),
        ("Allow", "allow"),
    ],
)
def test_token_lists(name: str, attr: str) -> None:
    m = msg(f"{name}: 100rel , timer,gruu", f"{name}:path")
    assert getattr(m, attr) == ["100rel", "timer", "gruu", "path"]
    assert m.header_values(name) == ["100rel", "timer", "gruu", "path"]
    assert getattr(msg(), attr) == []


def test_supported_and_allow_may_be_empty() -> None:
    m = msg("Supported:", "Allow:  ")
    assert m.supported == []
    assert m.allow == []
    assert msg("k: ").supported == []


@pytest.mark.parametrize(
    ("name", "attr"),
    [("Require", "require"), ("Proxy-Require", "proxy_require"), ("Unsupported", "unsupported")],
)
def test_empty_option_tag_list_is_malformed(name: str, attr: str) -> None:
    assert_malformed(f"{name}:", attr)


@pytest.mark.parametrize("value", ["100rel,,timer", "100rel timer", "a;b", ",", "foo,", "<x>", '"x"'])
@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("Require", "require"),
        ("Proxy-Require", "proxy_require"),
        ("Supported", "supported"),
        ("Unsupported", "unsupported"),
        ("Allow", "allow"),
    ],
)
def test_malformed_token_lists(name: str, attr: str, value: str) -> None:
    assert_malformed(f"{name}: {value}", attr)


# ---------------------------------------------------------------------------------------
# Authentication headers (§20.7, §20.27, §20.28, §20.44, §25.1)
# ---------------------------------------------------------------------------------------

CREDENTIALS = (
    'Digest username="alice", realm="atlanta.example.com", nonce="84a4cc6f3082121f32b42a2187831a9e", '
    'uri="sip:alice@atlanta.example.com", response="7587245234b3434cc3412213e5f113a5", algorithm=MD5, '
    'cnonce="0a4f113b", qop=auth, nc=00000001, opaque=""'
)
CHALLENGE = (
    'Digest realm="atlanta.example.com", qop="auth,auth-int", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", '
)
CHALLENGE += "stale=FALSE, algorithm=MD5"


@pytest.mark.parametrize(
    ("name", "attr", "value"),
    [
        ("Authorization", "authorization", CREDENTIALS),
        ("Proxy-Authorization", "proxy_authorization", CREDENTIALS),
        ("WWW-Authenticate", "www_authenticate", CHALLENGE),
        ("Proxy-Authenticate", "proxy_authenticate", CHALLENGE),
    ],
)
def test_digest_headers(name: str, attr: str, value: str) -> None:
    (auth,) = getattr(msg(f"{name}: {value}"), attr)
    assert isinstance(auth, Auth)
    assert auth.scheme == "Digest"
    if attr.endswith("authorization"):
        assert auth.params == {
            "username": "alice",
            "realm": "atlanta.example.com",
            "nonce": "84a4cc6f3082121f32b42a2187831a9e",
            "uri": "sip:alice@atlanta.example.com",
            "response": "7587245234b3434cc3412213e5f113a5",
            "algorithm": "MD5",
            "cnonce": "0a4f113b",
            "qop": "auth",
            "nc": "00000001",
            "opaque": "",
        }
    else:
        assert auth.params == {
            "realm": "atlanta.example.com",
            "qop": "auth,auth-int",
            "nonce": "ea9c8e88df84f1cec4341ae6cbe5a359",
            "stale": "FALSE",
            "algorithm": "MD5",
        }
    # str() writes a value that parses back to the same parameters
    (again,) = getattr(msg(f"{name}: {auth}"), attr)
    assert again == auth


def test_several_challenges_are_lines_not_comma_lists() -> None:
    m = msg(f"WWW-Authenticate: {CHALLENGE}", 'WWW-Authenticate: Other realm="x", Param=tok')
    assert [a.scheme for a in m.www_authenticate] == ["Digest", "Other"]
    assert m.www_authenticate[1].params == {"realm": "x", "param": "tok"}
    assert m.header_values("www-authenticate") == [CHALLENGE, 'Other realm="x", Param=tok']


def test_auth_parameter_names_case_and_escaped_quotes() -> None:
    (auth,) = msg('Authorization: digest REALM = "a \\"b\\" c" ,USERNAME=bob').authorization
    assert auth.scheme == "digest"
    assert auth.params == {"realm": 'a "b" c', "username": "bob"}


@pytest.mark.parametrize(
    "value",
    [
        "Digest",
        "Digest realm",
        'Digest realm="x',
        'Digest realm="x",',
        'Digest realm="x" nonce="y"',
        'Digest realm="x",,nonce="y"',
        'realm="x"',
        "",
    ],
)
@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("Authorization", "authorization"),
        ("Proxy-Authorization", "proxy_authorization"),
        ("WWW-Authenticate", "www_authenticate"),
        ("Proxy-Authenticate", "proxy_authenticate"),
    ],
)
def test_malformed_auth_headers(name: str, attr: str, value: str) -> None:
    assert_malformed(f"{name}: {value}", attr)


# ---------------------------------------------------------------------------------------
# header() / header_values(): names, compact forms, list splitting
# ---------------------------------------------------------------------------------------

COMPACT = {
    "i": "call-id",
    "m": "contact",
    "v": "via",
    "f": "from",
    "t": "to",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "y": "identity",
    "a": "accept-contact",
    "x": "session-expires",
}


@pytest.mark.parametrize(("compact", "full"), sorted(COMPACT.items()))
def test_canonical_name_of_compact_forms(compact: str, full: str) -> None:
    assert canonical_name(compact) == full
    assert canonical_name(compact.upper()) == full
    assert canonical_name(full.upper()) == full
    assert canonical_name(pretty_name(full)) == full


def test_pretty_names() -> None:
    assert pretty_name("call-id") == "Call-ID"
    assert pretty_name("cseq") == "CSeq"
    assert pretty_name("www-authenticate") == "WWW-Authenticate"
    assert pretty_name("max-forwards") == "Max-Forwards"
    assert pretty_name("x-custom-thing") == "X-Custom-Thing"


def test_every_compact_form_reads_as_its_full_name() -> None:
    values = {
        "i": "a84b4c76e66710@pc33.atlanta.example.com",
        "m": "<sip:alice@pc33.atlanta.example.com>",
        "v": "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "f": "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "t": "Bob <sip:bob@biloxi.example.com>",
        "c": "application/sdp",
        "k": "100rel",
        "s": "Need more boxes",
        "e": "gzip",
        "o": "presence",
        "u": "dialog",
        "r": "<sip:carol@chicago.example.com>",
        "b": "<sip:dave@example.com>",
        "y": "abc",
        "a": "*;audio",
        "x": "1800",
    }
    lines = [f"{k}: {v}" for k, v in values.items()]
    data = "\r\n".join(
        ["INVITE sip:bob@biloxi.example.com SIP/2.0", "CSeq: 1 INVITE", *lines, "l: 0", "", ""]
    )
    m = parse(data.encode())
    values["l"] = "0"
    for compact, value in values.items():
        full = COMPACT[compact]
        for spelling in (compact, compact.upper(), full, full.upper(), pretty_name(full), full.title()):
            assert m.has_header(spelling)
            assert m.header(spelling) == value, spelling
    assert m.call_id == values["i"]
    assert m.via[0].branch == "z9hG4bK776asdhds"
    assert m.from_.tag == "1928301774"
    assert m.content_type == "application/sdp"
    assert m.supported == ["100rel"]
    assert m.contact[0].uri == SipURI("pc33.atlanta.example.com", "alice")
    assert m.content_length == 0
    assert set(m.header_names()) == set(COMPACT.values()) | {"cseq"}
    assert [name for name, _ in m.header_items()][:3] == ["CSeq", "i", "m"]


def test_header_lookup_is_case_insensitive_and_absent_headers_are_empty() -> None:
    m = msg("X-Custom-Header: Some Value")
    for spelling in ("X-Custom-Header", "x-custom-header", "X-CUSTOM-HEADER", "x-CuStOm-HeAdEr"):
        assert m.header(spelling) == "Some Value"
        assert m.header_values(spelling) == ["Some Value"]
        assert m.has_header(spelling)
    assert m.header("Subject") is None
    assert m.header_values("Subject") == []
    assert not m.has_header("Subject")
    assert m.header("CALL-id") == "a84b4c76e66710@pc33.atlanta.example.com"


def test_header_values_of_a_non_list_header_are_not_split() -> None:
    m = msg("Subject: Lunch, tomorrow?", "Subject: second line, too")
    assert m.header("subject") == "Lunch, tomorrow?"
    assert m.header_values("s") == ["Lunch, tomorrow?", "second line, too"]


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("Allow", ["INVITE", "ACK", "OPTIONS", "CANCEL", "BYE"]),
        ("Supported", ["100rel", "timer", "path"]),
        ("Route", ["<sip:p1.example.com;lr>", '"A, B" <sip:p2.example.com;lr>', "<sip:p3.example.com;lr>"]),
        ("Contact", ['"x,y" <sip:a@h.example.com>;q=0.5', "<sip:b@h.example.com;x=1>;expires=60"]),
        ("Accept", ["application/sdp", 'text/plain;charset="a,b"']),
    ],
)
def test_lines_and_comma_joined_values_are_the_same(name: str, values: list[str]) -> None:
    per_line = msg(*(f"{name}: {v}" for v in values))
    joined = msg(f"{name}: " + " , ".join(values))
    mixed = msg(f"{name}: " + ",".join(values[:2]), *(f"{name}: {v}" for v in values[2:]))
    assert per_line.header_values(name) == joined.header_values(name) == mixed.header_values(name) == values
    attr = {
        "Allow": "allow",
        "Supported": "supported",
        "Route": "route",
        "Contact": "contact",
        "Accept": "accept",
    }
    typed = [getattr(m, attr[name]) for m in (per_line, joined, mixed)]
    assert typed[0] == typed[1] == typed[2]
    assert len(typed[0]) == len(values)


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("a", ["a"]),
        ("", []),
        (" a\t,\tb ", ["a", "b"]),
        ('"Doe, John" <sip:j@h>, <sip:k@h>', ['"Doe, John" <sip:j@h>', "<sip:k@h>"]),
        ('"a\\", b" <sip:x@h>, <sip:y@h>', ['"a\\", b" <sip:x@h>', "<sip:y@h>"]),
        ("<sip:a@h;x=1,2>, <sip:b@h>", ["<sip:a@h;x=1,2>", "<sip:b@h>"]),
        ('<sip:a@h>;p="1,2", <sip:b@h>', ['<sip:a@h>;p="1,2"', "<sip:b@h>"]),
        ('"<a,b" <sip:a@h>, x', ['"<a,b" <sip:a@h>', "x"]),
        ('<sip:a@h>;+sip.instance="<urn:uuid:1,2>", x', ['<sip:a@h>;+sip.instance="<urn:uuid:1,2>"', "x"]),
    ],
)
def test_split_list_respects_quotes_and_angle_brackets(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


# ---------------------------------------------------------------------------------------
# Lazy reads: strict=False leaves other headers raw; errors are stable
# ---------------------------------------------------------------------------------------


def test_typed_values_are_cached_until_the_header_changes() -> None:
    m = msg("Contact: <sip:a@h.example.com>")
    assert m.contact is m.contact
    assert m.via is m.via
    m.set_header("Contact", "<sip:b@h.example.com>")
    assert m.contact[0].uri == SipURI("h.example.com", "b")


def test_lenient_parse_defers_errors_of_non_core_headers_and_repeats_them() -> None:
    data = wire(
        "Contact: <sip:a@h.example.com",
        "Expires: soon",
        "Content-Type: nonsense",
        "Require: a b",
        "Authorization: Digest",
        "Accept: x",
    )
    with pytest.raises(ParseError):
        parse(data)
    m = parse(data, strict=False)
    for attr in ("contact", "expires", "content_type", "require", "authorization", "accept"):
        errors = []
        for _ in range(2):
            with pytest.raises(ParseError) as info:
                read(m, attr)
            errors.append((info.value.reason, info.value.status_code))
        assert errors[0] == errors[1]
        assert errors[0][1] == 400
    # raw access and the core headers still work, and the bytes are untouched
    assert m.header("Expires") == "soon"
    assert m.header_values("Contact") == ["<sip:a@h.example.com"]
    assert m.cseq == CSeq(314159, "INVITE")
    assert m.via[0].branch == "z9hG4bK776asdhds"
    assert bytes(m) == data
