"""RFC 5118 "SIP Torture Test Messages for IPv6", section 4.

Each case of sections 4.1 to 4.10 (twelve messages: 4.5 and 4.10 are contrast pairs) is modelled
with its own addresses, names and tags, all from the documentation ranges (2001:db8::/32,
192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24).  The docstring of each test says what the RFC
says an implementation does with the case.

Hosts are compared as addresses (``ipaddress``), not as text, so a parser that normalises an IPv6
literal (for instance ``::ffff:c000:20a`` for ``::ffff:192.0.2.10``) is not failed for it; the
contract that an IPv6 host is kept in brackets is checked everywhere.
"""

from __future__ import annotations

import ipaddress

import pytest

from sipstack.message import ParseError, parse, validate_request

CRLF = "\r\n"

VALID: dict[str, bytes] = {}
INVALID: dict[str, bytes] = {}


def wire(lines: list[str], body: bytes = b"") -> bytes:
    """Join the start line and header lines with CRLF, then the empty line and the body.

    ``@LEN@`` in a line becomes the body's length in octets.
    """
    head = CRLF.join(lines).replace("@LEN@", str(len(body)))
    return head.encode("utf-8") + b"\r\n\r\n" + body


def sdp(*lines: str) -> bytes:
    return (CRLF.join(lines) + CRLF).encode("utf-8")


def valid(name: str, data: bytes) -> bytes:
    VALID[name] = data
    return data


def invalid(name: str, data: bytes) -> bytes:
    INVALID[name] = data
    return data


def v6(host: str) -> ipaddress.IPv6Address:
    """The address of an IPv6 reference host; the brackets are required (RFC 3261 IPv6reference)."""
    assert host.startswith("[") and host.endswith("]"), host
    return ipaddress.IPv6Address(host[1:-1])


def v6_tolerant(host: str) -> ipaddress.IPv6Address:
    """As v6(), reading RFC 3261's three-colon derivation ("::" + ":" IPv4) as "::" (RFC 5118 4.10)."""
    assert host.startswith("[") and host.endswith("]"), host
    return ipaddress.IPv6Address(host[1:-1].replace(":::", "::"))


def addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address written with or without IPv6 brackets (Via received)."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return ipaddress.ip_address(text)


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    names: list[str] = []
    seen: set[str] = set()
    for line in head.split(b"\r\n")[1:]:
        if not line or line[:1] in (b" ", b"\t"):
            continue
        name = line.split(b":", 1)[0].strip().decode("utf-8")
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


def register(request_uri: str) -> bytes:
    """The REGISTER of 4.1 to 4.4, which differ only in the Request-URI."""
    return wire(
        [
            f"REGISTER {request_uri} SIP/2.0",
            "To: sip:desk@example.com",
            "From: sip:desk@example.com;tag=v6r-1",
            "Via: SIP/2.0/UDP [2001:db8::7:2];branch=z9hG4bK-v6reg",
            "Call-ID: v6-register.4471@example.com",
            "Max-Forwards: 70",
            'Contact: "Desk phone" <sip:desk@[2001:db8::3]>',
            "CSeq: 5001 REGISTER",
            "Content-Length: 0",
        ]
    )


# ---------------------------------------------------------------------------------------------
# 4.1 - 4.4 IPv6 references in the Request-URI
# ---------------------------------------------------------------------------------------------

IPV6_GOOD = valid("4.1 ipv6-good", register("sip:[2001:db8::a1]"))


def test_4_1_ipv6_good_valid_message_with_ipv6_reference():
    """IPv6 references in the Request-URI, Via and Contact, delimited by "[" "]": well formed, accept."""
    req = parse(IPV6_GOOD)
    assert req.uri.scheme == "sip"
    assert v6(req.uri.host) == ipaddress.IPv6Address("2001:db8::a1")
    assert req.uri.port is None
    assert req.uri.user is None
    assert v6(req.via[0].host) == ipaddress.IPv6Address("2001:db8::7:2")
    assert req.via[0].port is None
    assert req.via[0].transport == "UDP"
    assert req.contact[0].display_name == "Desk phone"
    assert req.contact[0].uri.user == "desk"
    assert v6(req.contact[0].uri.host) == ipaddress.IPv6Address("2001:db8::3")
    validate_request(req)


IPV6_BAD = invalid("4.2 ipv6-bad", register("sip:2001:db8::a1"))


def test_4_2_ipv6_bad_ipv6_reference_without_delimiters():
    """An IPv6 address in the Request-URI without "[" "]" is not well formed: 400 Bad Request."""
    parse(IPV6_GOOD)
    with pytest.raises(ParseError) as info:
        parse(IPV6_BAD)
    assert info.value.status_code == 400


PORT_AMBIGUOUS = valid("4.3 port-ambiguous", register("sip:[2001:db8::a1:5070]"))


def test_4_3_port_ambiguous_port_inside_the_brackets():
    """ "[2001:db8::a1:5070]" is well formed: all of it is the address and there is no port."""
    req = parse(PORT_AMBIGUOUS)
    assert v6(req.uri.host) == ipaddress.IPv6Address("2001:db8::a1:5070")
    assert v6(req.uri.host) != ipaddress.IPv6Address("2001:db8::a1")
    assert req.uri.port is None


PORT_UNAMBIGUOUS = valid("4.4 port-unambiguous", register("sip:[2001:db8::a1]:5070"))


def test_4_4_port_unambiguous_port_after_the_brackets():
    """ "[2001:db8::a1]:5070" leaves no ambiguity: address 2001:db8::a1, port 5070."""
    req = parse(PORT_UNAMBIGUOUS)
    assert v6(req.uri.host) == ipaddress.IPv6Address("2001:db8::a1")
    assert req.uri.port == 5070


# ---------------------------------------------------------------------------------------------
# 4.5 IPv6 reference delimiters in the Via received parameter
# ---------------------------------------------------------------------------------------------

VIA_RECEIVED_DELIM = valid(
    "4.5 via-received-param-with-delim",
    wire(
        [
            "BYE sip:[2001:db8::a1] SIP/2.0",
            "To: sip:desk@example.com;tag=rx-peer",
            "From: sip:desk@example.com;tag=rx-self",
            "Via: SIP/2.0/UDP [2001:db8::7:2];received=[2001:db8::7:99];branch=z9hG4bK-rxd",
            "Call-ID: received-brackets.90@example.com",
            "Max-Forwards: 70",
            "CSeq: 322 BYE",
            "Content-Length: 0",
        ]
    ),
)


def test_4_5_via_received_param_with_delimiters():
    """received=[IPv6]: not strictly RFC 3261 grammar, but robust parsers must parse the top Via and go on."""
    req = parse(VIA_RECEIVED_DELIM)
    assert req.method == "BYE"
    top = req.via[0]
    assert v6(top.host) == ipaddress.IPv6Address("2001:db8::7:2")
    assert top.received is not None
    assert addr(top.received) == ipaddress.IPv6Address("2001:db8::7:99")
    assert top.branch == "z9hG4bK-rxd"
    assert v6(req.uri.host) == ipaddress.IPv6Address("2001:db8::a1")


VIA_RECEIVED_NO_DELIM = valid(
    "4.5 via-received-param-no-delim",
    wire(
        [
            "OPTIONS sip:[2001:db8::a1] SIP/2.0",
            "To: sip:desk@example.com",
            "From: sip:desk@example.com;tag=rx-bare",
            "Via: SIP/2.0/UDP [2001:db8::7:2];received=2001:db8::7:99;branch=z9hG4bK-rxn",
            "Call-ID: received-bare.91@example.com",
            "Max-Forwards: 70",
            'Contact: "Desk phone" <sip:desk@[2001:db8::7:2]>',
            "CSeq: 922 OPTIONS",
            "Content-Length: 0",
        ]
    ),
)


def test_4_5_via_received_param_without_delimiters():
    """received=IPv6 without "[" "]" is what RFC 3261's grammar says: valid, accept."""
    req = parse(VIA_RECEIVED_NO_DELIM)
    top = req.via[0]
    assert top.received is not None
    assert addr(top.received) == ipaddress.IPv6Address("2001:db8::7:99")
    assert top.branch == "z9hG4bK-rxn"
    assert v6(req.contact[0].uri.host) == ipaddress.IPv6Address("2001:db8::7:2")


# ---------------------------------------------------------------------------------------------
# 4.6 - 4.9 IPv6 in SDP, mixed address families, IPv4-mapped addresses
# ---------------------------------------------------------------------------------------------

IPV6_IN_SDP_BODY = sdp(
    "v=0",
    "o=carol 4021551 0 IN IP6 2001:db8::20",
    "s=Morning stand-up video",
    "c=IN IP6 2001:db8::20",
    "t=0 0",
    "m=audio 6000 RTP/AVP 9",
    "a=rtpmap:9 G722/8000",
    "m=video 6024 RTP/AVP 96",
    "a=rtpmap:96 H264/90000",
)
IPV6_IN_SDP = valid(
    "4.6 ipv6-in-sdp",
    wire(
        [
            "INVITE sip:carol@[2001:db8::10] SIP/2.0",
            "To: sip:carol@[2001:db8::10]",
            "From: sip:dave@example.com;tag=sdp6-1",
            "Via: SIP/2.0/UDP [2001:db8::20];branch=z9hG4bK-sdp6",
            "Call-ID: v6-sdp.8612@example.com",
            'Contact: "Dave" <sip:dave@[2001:db8::20]>',
            "CSeq: 8613 INVITE",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
        ],
        IPV6_IN_SDP_BODY,
    ),
)


def test_4_6_ipv6_in_sdp_request_with_ipv6_addresses_in_sdp_body():
    """IPv6 references in the SIP headers and bare IPv6 addresses in the SDP: valid, accept whole."""
    req = parse(IPV6_IN_SDP)
    assert req.uri.user == "carol"
    assert v6(req.uri.host) == ipaddress.IPv6Address("2001:db8::10")
    assert v6(req.to.uri.host) == ipaddress.IPv6Address("2001:db8::10")
    assert v6(req.via[0].host) == ipaddress.IPv6Address("2001:db8::20")
    assert v6(req.contact[0].uri.host) == ipaddress.IPv6Address("2001:db8::20")
    assert (req.content_type.type, req.content_type.subtype) == ("application", "sdp")
    assert req.content_length == len(IPV6_IN_SDP_BODY)
    assert req.body == IPV6_IN_SDP_BODY


MULT_IP_IN_HEADER = valid(
    "4.7 mult-ip-in-header",
    wire(
        [
            "BYE sip:eve@host.example.net SIP/2.0",
            "Via: SIP/2.0/UDP [2001:db8::44:1]:6050;branch=z9hG4bK-mix-1",
            "Via: SIP/2.0/UDP 198.51.100.3;branch=z9hG4bK-mix-2",
            "Via: SIP/2.0/TCP [2001:db8::44:ee];branch=z9hG4bK-mix-3;received=198.51.100.250",
            "Call-ID: mixed-families.97@example.net",
            "Max-Forwards: 70",
            "CSeq: 89188 BYE",
            "To: sip:eve@example.net;tag=9818--95",
            "From: sip:fay@example.com;tag=mx-1",
            "Content-Length: 0",
        ]
    ),
)


def test_4_7_mult_ip_in_header_mixed_ipv4_and_ipv6_via_values():
    """A Via list mixing IPv4 addresses and IPv6 references (with ports, received): valid, accept."""
    req = parse(MULT_IP_IN_HEADER)
    assert req.uri.host == "host.example.net"
    assert len(req.via) == 3
    top, middle, bottom = req.via
    assert (top.transport, v6(top.host), top.port) == ("UDP", ipaddress.IPv6Address("2001:db8::44:1"), 6050)
    assert (middle.transport, middle.host, middle.port) == ("UDP", "198.51.100.3", None)
    assert (bottom.transport, v6(bottom.host), bottom.port) == (
        "TCP",
        ipaddress.IPv6Address("2001:db8::44:ee"),
        None,
    )
    assert bottom.received is not None
    assert addr(bottom.received) == ipaddress.IPv4Address("198.51.100.250")
    assert [v.branch for v in req.via] == ["z9hG4bK-mix-1", "z9hG4bK-mix-2", "z9hG4bK-mix-3"]


MULT_IP_IN_SDP_BODY = sdp(
    "v=0",
    "o=gus 280744731 28977632 IN IP4 host.example.com",
    "s=",
    "t=0 0",
    "m=audio 22334 RTP/AVP 0",
    "c=IN IP4 198.51.100.9",
    "m=video 6024 RTP/AVP 96",
    "c=IN IP6 2001:db8::1:9",
    "a=rtpmap:96 H264/90000",
)
MULT_IP_IN_SDP = valid(
    "4.8 mult-ip-in-sdp",
    wire(
        [
            "INVITE sip:gus@[2001:db8::10] SIP/2.0",
            "To: sip:gus@[2001:db8::10]",
            "From: sip:hal@example.com;tag=msdp-1",
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bK-msdp",
            "Call-ID: mixed-sdp.8912@example.com",
            'Contact: "Hal" <sip:hal@[2001:db8::9:1]>',
            "Max-Forwards: 70",
            "CSeq: 8913 INVITE",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
        ],
        MULT_IP_IN_SDP_BODY,
    ),
)


def test_4_8_mult_ip_in_sdp_media_lines_on_ipv4_and_ipv6():
    """One stream on IPv4 and one on IPv6 in the SDP: valid, the body is delivered whole."""
    req = parse(MULT_IP_IN_SDP)
    assert v6(req.uri.host) == ipaddress.IPv6Address("2001:db8::10")
    assert req.content_length == len(MULT_IP_IN_SDP_BODY)
    assert req.body == MULT_IP_IN_SDP_BODY
    assert b"c=IN IP6 2001:db8::1:9\r\n" in req.body


IPV4_MAPPED_BODY = sdp(
    "v=0",
    "o=lobby 971731711378798082 0 IN IP6 ::ffff:198.51.100.2",
    "s=Ring me back",
    "c=IN IP6 ::ffff:198.51.100.2",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "m=video 6024 RTP/AVP 96",
    "a=rtpmap:96 H264/90000",
)
IPV4_MAPPED = valid(
    "4.9 ipv4-mapped-ipv6",
    wire(
        [
            "INVITE sip:ivy@example.com SIP/2.0",
            "To: sip:ivy@example.com",
            "From: sip:lobby@east.example.com;tag=map-1",
            "Via: SIP/2.0/UDP [::ffff:198.51.100.10]:19824;branch=z9hG4bK-map-1",
            "Via: SIP/2.0/UDP [::ffff:198.51.100.2];branch=z9hG4bK-map-2",
            "Call-ID: mapped.613@example.com",
            'Contact: "Lobby phone" <sip:lobby@[::ffff:198.51.100.2]>',
            "CSeq: 613 INVITE",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
        ],
        IPV4_MAPPED_BODY,
    ),
)


def test_4_9_ipv4_mapped_ipv6_addresses():
    """IPv4-mapped IPv6 addresses in Via (port after "]"), Contact and SDP: must be parsed successfully."""
    req = parse(IPV4_MAPPED)
    assert req.uri.host == "example.com"
    assert len(req.via) == 2
    assert v6(req.via[0].host) == ipaddress.IPv6Address("::ffff:198.51.100.10")
    assert v6(req.via[0].host).ipv4_mapped == ipaddress.IPv4Address("198.51.100.10")
    assert req.via[0].port == 19824
    assert v6(req.via[1].host) == ipaddress.IPv6Address("::ffff:198.51.100.2")
    assert req.via[1].port is None
    assert req.contact[0].display_name == "Lobby phone"
    assert v6(req.contact[0].uri.host) == ipaddress.IPv6Address("::ffff:198.51.100.2")
    assert req.body == IPV4_MAPPED_BODY


# ---------------------------------------------------------------------------------------------
# 4.10 The IPv6 reference bug in RFC 3261's ABNF (corrected by RFC 5954)
# ---------------------------------------------------------------------------------------------


def abnf_options(host: str, tag: str) -> bytes:
    return wire(
        [
            f"OPTIONS sip:jo@[{host}] SIP/2.0",
            f"To: sip:jo@[{host}]",
            f"From: sip:kai@example.com;tag={tag}",
            "Via: SIP/2.0/UDP lab9.west.example.com;branch=z9hG4bK-" + tag,
            "Call-ID: abnf-colons." + tag + "@example.com",
            "CSeq: 690 OPTIONS",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
    )


ABNF_3_COLONS = valid("4.10 ipv6-bug-abnf-3-colons", abnf_options("2001:db8:5:::203.0.113.7", "c3"))
ABNF_2_COLONS = valid("4.10 ipv6-correct-abnf-2-colons", abnf_options("2001:db8:5::203.0.113.7", "c2"))
EMBEDDED_V4 = ipaddress.IPv6Address("2001:db8:5::203.0.113.7")


def test_4_10_ipv6_bug_abnf_3_colons_is_tolerated():
    """ "[2001:db8:5:::203.0.113.7]" (RFC 3261 ABNF bug): "must tolerate both", as the two-colon address."""
    req = parse(ABNF_3_COLONS)
    assert req.uri.user == "jo"
    assert v6_tolerant(req.uri.host) == EMBEDDED_V4
    assert v6_tolerant(req.to.uri.host) == EMBEDDED_V4
    assert req.uri.port is None
    assert req.via[0].host == "lab9.west.example.com"


def test_4_10_ipv6_correct_abnf_2_colons():
    """ "[2001:db8:5::203.0.113.7]" is the correct form of the same reference: valid, accept."""
    req = parse(ABNF_2_COLONS)
    assert req.uri.user == "jo"
    assert v6(req.uri.host) == EMBEDDED_V4
    assert v6(req.to.uri.host) == EMBEDDED_V4
    assert req.uri.port is None


# ---------------------------------------------------------------------------------------------
# Across the cases
# ---------------------------------------------------------------------------------------------


def test_case_inventory_is_complete():
    """Sections 4.1 to 4.10: twelve messages, of which only 4.2 is invalid."""
    assert len(VALID) == 11
    assert list(INVALID) == ["4.2 ipv6-bad"]
    sections = {name.split()[0] for name in [*VALID, *INVALID]}
    assert sections == {f"4.{i}" for i in range(1, 11)}


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_case_round_trips_through_bytes(case):
    """parse(bytes(msg)) gives back the same start line, Call-ID, CSeq, body and header values."""
    data = VALID[case]
    first = parse(data)
    wire_again = bytes(first)
    assert isinstance(wire_again, bytes)
    again = parse(wire_again)
    assert type(again) is type(first)
    assert again.method == first.method
    assert str(again.uri) == str(first.uri)
    assert (again.uri.host, again.uri.port) == (first.uri.host, first.uri.port)
    assert again.call_id == first.call_id
    assert (again.cseq.seq, again.cseq.method) == (first.cseq.seq, first.cseq.method)
    assert again.body == first.body
    assert [(v.host, v.port, v.received) for v in again.via] == [
        (v.host, v.port, v.received) for v in first.via
    ]
    for name in header_names(data):
        assert again.header_values(name) == first.header_values(name), name


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_case_raises_parse_error(case):
    """Every invalid case raises ParseError with a 4xx status, and nothing else escapes parse()."""
    with pytest.raises(ParseError) as info:
        parse(INVALID[case])
    assert 400 <= info.value.status_code <= 499


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_case_passes_validate_request(case):
    """Every valid case is a request to a sip URI without option tags: validate_request accepts it."""
    validate_request(parse(VALID[case]))


@pytest.mark.parametrize(
    "request_uri",
    [
        "sip:[2001:db8::a1",
        "sip:2001:db8::a1]",
        "sip:[2001:db8::a1]]",
        "sip:[[2001:db8::a1]",
        "sip:[2001:db8::a1]:",
        "sip:[2001:db8::a1]:port",
        "sip:[2001:db8::a1:]",
        "sip:[2001:db8:::a1::2]",
        "sip:[2001:db8::g1]",
        "sip:[1:2:3:4:5:6:7:8:9]",
        "sip:[]",
        "sip:desk@[2001:db8::a1",
    ],
)
def test_4_2_ipv6_bad_malformed_references_are_rejected(request_uri):
    """IPv6 references that are not well formed (delimiters, groups, ports) are rejected: 400."""
    with pytest.raises(ParseError) as info:
        parse(register(request_uri))
    assert info.value.status_code == 400


@pytest.mark.parametrize("case", sorted({**VALID, **INVALID}))
def test_truncated_case_raises_only_parse_error(case):
    """Cut anywhere, an IPv6 torture message is accepted or raises ParseError, and nothing else."""
    data = {**VALID, **INVALID}[case]
    for cut in range(len(data)):
        try:
            msg = parse(data[:cut])
        except ParseError:
            continue
        assert isinstance(bytes(msg), bytes)
