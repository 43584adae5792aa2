"""``Message.top_via``: the first Via parsed alone — what a proxy reads of a response with
two or more Vias — kept coherent with the full list and with edits; ``stamp_via`` leaves the
stamped Via parsed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipstack.errors import ParseError
from sipstack.message import parse
from sipstack.message.headers import (
    _parse_via_list,
    has_more_vias,
    parse_top_via,
    parse_vias,
    split_list,
    split_top_via,
)
from sipstack.net import Address
from sipstack.transport.via import stamp_via

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy.1;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKcaller;received=192.0.2.7\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def request(via: str) -> bytes:
    return (
        f"OPTIONS sip:b@example.com SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        "Call-ID: c2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_proxy_reads_the_top_via_without_parsing_the_others() -> None:
    message = parse(RESPONSE, strict=False)
    assert "via" not in message._typed  # only the first line was parsed
    top = message.top_via
    assert (top.host, top.port, top.branch) == ("10.0.0.1", 5060, "z9hG4bKproxy.1")
    assert message.has_second_via()
    assert "via" not in message._typed
    # The full list on demand, equal in content.
    assert [v.branch for v in message.via] == ["z9hG4bKproxy.1", "z9hG4bKcaller"]
    assert str(message.via[0]) == str(top)


def test_a_malformed_lower_via_does_not_stop_a_proxy_but_a_malformed_top_one_does() -> None:
    lower_bad = RESPONSE.replace(b"SIP/2.0/UDP 10.0.0.2:5070", b"SIP/2.0/UDP 10.0.0.2:99999")
    message = parse(lower_bad, strict=False)
    assert message.top_via.branch == "z9hG4bKproxy.1"  # RFC 3261 §16.3: only what it needs
    with pytest.raises(ParseError):
        message.via  # noqa: B018
    with pytest.raises(ParseError):
        parse(lower_bad, strict=True)  # a UA checks everything
    with pytest.raises(ParseError):
        parse(RESPONSE.replace(b"10.0.0.1:5060", b"10.0.0.1:99999"), strict=False)


def test_one_via_line_with_two_values_counts_as_two() -> None:
    joined = RESPONSE.replace(b";rport=5060\r\nVia: ", b";rport=5060, ")
    message = parse(joined, strict=False)
    assert message.has_second_via()
    assert message.top_via.branch == "z9hG4bKproxy.1"
    alone = parse(request("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKone"), strict=False)
    assert not alone.has_second_via()


def test_a_proxy_reads_the_first_via_of_a_joined_line_alone() -> None:
    # SIPp's [last_Via:] writes a proxied request's Vias on one line, so a proxy receives its
    # own Via and the caller's together; it reads its own and passes the rest on unread.
    joined = RESPONSE.replace(b";rport=5060\r\nVia: ", b";rport=5060, ")
    lower_bad = joined.replace(b"SIP/2.0/UDP 10.0.0.2:5070", b"SIP/2.0/UDP 10.0.0.2:99999")
    message = parse(lower_bad, strict=False)
    assert message.top_via.branch == "z9hG4bKproxy.1"
    assert message.has_second_via()
    message.pop_value("via")
    assert b"Via: SIP/2.0/UDP 10.0.0.2:99999;branch=z9hG4bKcaller" in bytes(message)
    with pytest.raises(ParseError):
        parse(lower_bad, strict=True)
    with pytest.raises(ParseError):  # the first one is checked as ever
        parse(joined.replace(b"10.0.0.1:5060", b"10.0.0.1:99999"), strict=False)


def test_edits_to_the_via_lines_drop_the_top_via_read_before() -> None:
    message = parse(RESPONSE, strict=False)
    assert message.top_via.branch == "z9hG4bKproxy.1"
    message.pop_value("via")
    assert message.top_via.branch == "z9hG4bKcaller"
    assert not message.has_second_via()
    message.prepend_header("Via", "SIP/2.0/TCP 10.0.0.3;branch=z9hG4bKnew")
    assert message.top_via.branch == "z9hG4bKnew"
    copy = message.copy()
    copy.pop_value("via")
    assert copy.top_via.branch == "z9hG4bKcaller" and message.top_via.branch == "z9hG4bKnew"


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKa;rport",
        "SIP/2.0/UDP 10.0.0.9;rport;branch=z9hG4bKa;received=1.2.3.4",
        "SIP/2.0/UDP host.example.com:5070;branch=z9hG4bKa",
        "SIP/2.0/UDP [2001:db8::9]:5060;RPORT;branch=z9hG4bKa",
        "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKa;rport, SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKb",
    ],
)
def test_stamp_via_leaves_the_via_that_parsing_its_new_text_gives(via: str) -> None:
    message = parse(request(via), strict=False)
    stamp_via(message, Address("UDP", "198.51.100.4", 40000))
    stamped = message.top_via
    reparsed = parse(bytes(message), strict=False).top_via
    assert str(stamped) == str(reparsed)
    assert stamped.params == reparsed.params
    assert (stamped.transport, stamped.host) == (reparsed.transport, reparsed.host)
    assert stamped.port == reparsed.port
    assert stamped.received == "198.51.100.4"
    if "rport" in via.lower():
        assert stamped.rport == 40000
    assert message.via[0].params == stamped.params  # the full list agrees


# -- the common-Via fast path of parse_vias agrees with the general parser ---------------------


def _parts(vias: list) -> list[tuple]:
    return [(v.protocol, v.transport, v.host, v.port, dict(v.params)) for v in vias]


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 127.0.0.1:15080;branch=z9hG4bK-12345-1-0",
        "SIP/2.0/UDP 127.0.0.1:15060;branch=z9hG4bKa1b2.1c3;rport",
        "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKx;received=192.0.2.1;rport=5060",
        "SIP/2.0/UDP host.example:05060;branch=z9hG4bKx",
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKx;alias",
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=2001:db8::1",
        "SIP/2.0/UDP a.example;maddr=224.2.0.1;ttl=16",
    ],
)
def test_fast_path_agrees_with_the_general_parser(value: str) -> None:
    assert _parts(parse_vias(value)) == _parts(_parse_via_list(value))


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKx",  # port out of range
        "SIP/2.0/UDP 256.1.1.1;branch=z9hG4bKx",  # not an IPv4 address
        "SIP/2.0/UDP a.example;branch=",  # empty value
        "SIP/2.0/UDP a.example;;branch=z9hG4bKx",
        "SIP/2.0/UDP a.example;rport=70000",
    ],
)
def test_fast_path_refuses_what_the_general_parser_refuses(value: str) -> None:
    def outcome(parse: object) -> str:
        try:
            vias = parse(value)  # type: ignore[operator]
            for via in vias:
                via.params  # noqa: B018
        except ParseError:
            return "refused"
        return "accepted"

    assert outcome(parse_vias) == outcome(_parse_via_list) == "refused"


_TOKEN = st.text("abcXYZ019-._!%*+`'~", min_size=1, max_size=6)


@given(
    transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "Udp", "FOO"]),
    host=st.one_of(
        st.ip_addresses(v=4).map(str),
        st.from_regex(r"[a-z][a-z0-9\-]{0,8}(\.[a-z]{2,4}){0,2}", fullmatch=True),
    ),
    port=st.one_of(st.none(), st.integers(0, 99999)),
    params=st.lists(st.tuples(_TOKEN, st.one_of(st.none(), _TOKEN, st.just("1:2::3"))), max_size=4),
)
def test_fast_path_agrees_on_generated_vias(
    transport: str, host: str, port: int | None, params: list
) -> None:
    value = f"SIP/2.0/{transport} {host}" + ("" if port is None else f":{port}")
    value += "".join(f";{name}" + ("" if v is None else f"={v}") for name, v in params)

    def outcome(parse: object) -> object:
        try:
            vias = parse(value)  # type: ignore[operator]
            return _parts(vias)
        except ParseError:
            return "refused"

    assert outcome(parse_vias) == outcome(_parse_via_list)


@given(
    first=st.sampled_from(
        [
            "SIP/2.0/UDP 127.0.0.1:15060;branch=z9hG4bKa1b2.1c3;rport",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx;received=192.0.2.1;rport=5060",
            "SIP/2.0/TCP p.example:5061;branch=z9hG4bKx;alias",
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6",  # the general path
            'SIP/2.0/UDP a.example;branch=z9hG4bKq;x="a, b"',  # a comma in a quoted value
            "SIP/2.0/UDP a.example:99999;branch=z9hG4bKx",  # refused either way
        ]
    ),
    separator=st.sampled_from([", ", ",", " , ", "\t,\t", " ", ""]),
    second=st.sampled_from(
        ["", "SIP/2.0/UDP 127.0.0.1:15080;branch=z9hG4bK-1-1-0", "SIP/2.0/UDP b.example;branch=z9hG4bKy"]
    ),
)
def test_first_via_of_a_line_agrees_with_the_general_parser(first: str, separator: str, second: str) -> None:
    # Whenever the general parser reads the whole line, the first Via read alone is its first,
    # and has_more_vias says whether it found more than one; where it refuses the line, the
    # first Via is refused too unless the fault is after it.
    value = first + separator + second if separator or second else first
    try:
        everything = _parse_via_list(value)
    except ParseError:
        everything = None
    try:
        alone = _parts([parse_top_via(value)])[0]
        more = has_more_vias(value)
    except ParseError:
        alone = more = None
    if everything is not None:
        assert alone == _parts(everything)[0]
        assert more == (len(everything) > 1)
    else:
        try:
            first_alone = _parse_via_list(first)
        except ParseError:
            first_alone = None
        if first_alone is None:
            assert alone is None
        elif alone is not None:
            assert alone == _parts(first_alone)[0]


# -- pop_top_via: what a proxy does to a response it forwards upstream -------------------------


def _rebuilt(message: object) -> bytes:
    """The wire form built afresh from the lines (what ``bytes`` gives without a kept form)."""
    copy = message.copy()  # type: ignore[attr-defined]
    copy._raw = None
    return bytes(copy)


@pytest.mark.parametrize(
    "data",
    [
        RESPONSE,  # two Via lines
        RESPONSE.replace(b";rport=5060\r\nVia: ", b";rport=5060, "),  # one line, two values
        RESPONSE.replace(b";rport=5060\r\nVia: ", b";rport=5060 ,\t"),
        RESPONSE.replace(b"Call-ID: c1", b"Call-ID: c1\r\nSubject: caf\xc3\xa9 \xff"),  # not ASCII
        RESPONSE.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 4\r\n\r\nVia:"),
        RESPONSE.replace(b"Via: SIP/2.0/UDP 10.0.0.2", b"v: SIP/2.0/UDP 10.0.0.2"),
        RESPONSE.replace(b"\r\n", b"\n"),  # bare LF: no wire form kept
        RESPONSE.replace(b";rport=5060\r\n", b";rport=5060\r\n ,SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKf\r\n"),
        RESPONSE.replace(b"SIP/2.0/UDP 10.0.0.1:5060;", b"SIP/2.0/UDP [2001:db8::1]:5060;"),
    ],
)
def test_pop_top_via_removes_the_first_and_keeps_the_wire_form_true(data: bytes) -> None:
    message = parse(data, strict=False)
    before = [str(v) for v in parse(data, strict=False).via]
    assert message.pop_top_via()
    assert bytes(message) == _rebuilt(message)
    again = parse(bytes(message), strict=False)
    assert [str(v) for v in again.via] == before[1:]
    assert message.top_via.branch == again.top_via.branch
    assert again.body == parse(data, strict=False).body
    if b"\r" in data:  # the received form, edited, not rebuilt
        assert message._raw is not None


def test_pop_top_via_leaves_the_only_via() -> None:
    data = request("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKone")
    message = parse(data, strict=False)
    assert not message.pop_top_via()
    assert bytes(message) == data
    assert message.top_via.branch == "z9hG4bKone"
    trailing = parse(request("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKone ,"), strict=False)
    assert not trailing.pop_top_via()


def test_pop_top_via_after_an_edit_rebuilds_the_wire_form() -> None:
    message = parse(RESPONSE, strict=False)
    message.add_header("X-Note", "1")  # the kept wire form is gone
    assert message.pop_top_via()
    assert bytes(message) == _rebuilt(message)
    assert b"branch=z9hG4bKproxy.1" not in bytes(message)


@given(
    first=st.sampled_from(
        [
            "SIP/2.0/UDP 127.0.0.1:15060;branch=z9hG4bKa1b2.1c3;rport",
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6",
            'SIP/2.0/UDP a.example;branch=z9hG4bKq;x="a, b"',
        ]
    ),
    separator=st.sampled_from([", ", ",", " , ", "\t,\t", ",,", ", ,"]),
    rest=st.lists(
        st.sampled_from(["SIP/2.0/UDP 127.0.0.1:15080;branch=z9hG4bK-1-1-0", 'SIP/2.0/TCP b;x="p,q"']),
        max_size=3,
    ),
)
def test_split_top_via_agrees_with_the_list_split(first: str, separator: str, rest: list[str]) -> None:
    value = first + (separator + ", ".join(rest) if rest else "")
    head, tail = split_top_via(value)
    values = split_list(value)
    assert head == values[0]
    assert split_list(tail) == values[1:]
