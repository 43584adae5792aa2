"""RFC 4475 "Session Initiation Protocol (SIP) Torture Test Messages", section 3.

Every one of the 49 cases is modelled here with its own names, hosts, tags and values: each
message carries the same defect or the same oddity as the RFC's, not the RFC's bytes.  The
docstring of each test says what the RFC says a robust implementation does with the case.

Where the RFC's verdict is taken above the parser (415, 416, 420, 401/403, 406, 483, 501, the
transaction layer's view of a bare magic cookie), the test checks that ``parse()`` accepts the
message and exposes exactly what the deciding layer needs; ``validate_request`` covers the 416
and 420 verdicts.  Every invalid case is paired with a "good twin" that differs only in the
defect, so a rejection is known to be caused by the defect and not by something incidental.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipstack.message import ParseError, parse, validate_request

CRLF = "\r\n"

# Every message parse() must accept, and every message it must reject; filled in as the cases
# are defined below and used by the round-trip, the rejection and the robustness tests at the end.
VALID: dict[str, bytes] = {}
INVALID: dict[str, bytes] = {}
# The valid requests whose Request-URI scheme and option tags validate_request accepts as they are.
APP_VALID: list[str] = []


def wire(lines: list[str], body: bytes = b"") -> bytes:
    """Join the start line and header lines with CRLF, then the empty line and the body.

    ``@LEN@`` in a line becomes the body's length in octets.  Lines are UTF-8.
    """
    head = CRLF.join(lines).replace("@LEN@", str(len(body)))
    return head.encode("utf-8") + b"\r\n\r\n" + body


def sdp(*lines: str) -> bytes:
    return (CRLF.join(lines) + CRLF).encode("utf-8")


def av_sdp(user: str, addr: str) -> bytes:
    """A small audio+video offer, as most of the RFC's INVITEs carry."""
    return sdp(
        "v=0",
        f"o={user} 2890844526 2890844527 IN IP4 {addr}",
        "s=-",
        f"c=IN IP4 {addr}",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0 8",
        "m=video 51372 RTP/AVP 31",
        "a=rtpmap:31 H261/90000",
    )


def valid(name: str, data: bytes, *, app_valid: bool = True) -> bytes:
    VALID[name] = data
    if app_valid and not data.startswith(b"SIP/"):
        APP_VALID.append(name)
    return data


def invalid(name: str, data: bytes) -> bytes:
    INVALID[name] = data
    return data


def rejected(data: bytes, status: int | None = None) -> ParseError:
    """parse() raises ParseError (and nothing else); with ``status``, that status code."""
    with pytest.raises(ParseError) as info:
        parse(data)
    if status is not None:
        assert info.value.status_code == status, repr(info.value)
    return info.value


def lower_keys(params: dict) -> dict:
    """Header parameter names are case-insensitive: compare them lower-cased."""
    return {str(k).lower(): v for k, v in params.items()}


def unquote(value: str | None) -> str | None:
    if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def squash(text: str) -> str:
    """LWS (folding included) is equivalent to one SP (RFC 3261 7.3.1)."""
    return " ".join(text.split())


def header_names(data: bytes) -> list[str]:
    """The distinct header names of the first message in ``data``, as written."""
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


# ---------------------------------------------------------------------------------------------
# 3.1.1 Valid messages
# ---------------------------------------------------------------------------------------------

WSINV_BODY = sdp(
    "v=0",
    "o=gh 1183 1183 IN IP4 192.0.2.44",
    "s=-",
    "c=IN IP4 192.0.2.45",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 8",
    "m=video 40002 RTP/AVP 31",
    "a=rtpmap:31 H261/90000",
)
WSINV = valid(
    "3.1.1.1 wsinv",
    wire(
        [
            "INVITE sip:grace@lab-7.example.com;oddparam SIP/2.0",
            "tO :",
            " sip:grace@lab-7.example.com ;   tag    = 77a1b2c3",
            'fROM   : "Q. Hopper \\\\\\""       <sip:qh@example.net>',
            "  ;",
            "  tag = 4fz91",
            "mAx-fOrWaRdS: 0042",
            "Call-ID: torture-ws.8812@192.0.2.44",
            "Content-Length   : @LEN@",
            "cSeQ: 0017",
            "  INVITE",
            "Via  : SIP  /   2.0",
            " /UDP",
            "    192.0.2.44;branch=390pqr-legacy",
            "s :",
            "WeirdNewHeader:   first strange value",
            " second strange value",
            "OddValuedHeader: ;;,,;;,;",
            "Content-Type: application/sdp",
            "Route:",
            " <sip:edge.example.org;lr;mystery=yes;bareparam>",
            "v:  SIP  / 2.0  / TCP     relay.example.org   ;",
            "  branch  =   z9hG4bKws-bb02  ,",
            " SIP  /    2.0   / UDP  198.51.100.7   ; branch=",
            " z9hG4bKws-cc03",
            'm:"Quoted \\"\\" name" <sip:qh@lab-7.example.net> ; extparam =',
            "      extvalue ;",
            "  flagparam ; q = 0.5",
        ],
        WSINV_BODY,
    ),
)


def test_3_1_1_1_wsinv_short_tortuous_invite():
    """Folding, odd LWS, mixed compact/long forms, odd case, quoted-pairs: a valid INVITE to accept."""
    req = parse(WSINV)
    assert req.method == "INVITE"
    assert req.uri.scheme == "sip"
    assert (req.uri.user, req.uri.host, req.uri.port) == ("grace", "lab-7.example.com", None)
    assert req.uri.params == {"oddparam": None}
    assert req.to.uri.user == "grace"
    assert req.to.display_name is None
    assert req.to.tag == "77a1b2c3"
    assert req.from_.display_name == 'Q. Hopper \\"'
    assert req.from_.uri.user == "qh"
    assert req.from_.tag == "4fz91"
    assert req.max_forwards == 42
    assert (req.cseq.seq, req.cseq.method) == (17, "INVITE")
    assert req.call_id == "torture-ws.8812@192.0.2.44"
    assert [(v.transport, v.host, v.port, v.branch) for v in req.via] == [
        ("UDP", "192.0.2.44", None, "390pqr-legacy"),
        ("TCP", "relay.example.org", None, "z9hG4bKws-bb02"),
        ("UDP", "198.51.100.7", None, "z9hG4bKws-cc03"),
    ]
    assert req.header("Subject") == ""
    assert squash(req.header("WeirdNewHeader")) == "first strange value second strange value"
    assert req.header("OddValuedHeader") == ";;,,;;,;"
    assert len(req.route) == 1
    assert req.route[0].uri.host == "edge.example.org"
    assert req.route[0].uri.params == {"lr": None, "mystery": "yes", "bareparam": None}
    assert len(req.contact) == 1
    contact = req.contact[0]
    assert not contact.is_star
    assert contact.display_name == 'Quoted "" name'
    assert (contact.uri.user, contact.uri.host) == ("qh", "lab-7.example.net")
    params = lower_keys(contact.params)
    assert params["extparam"] == "extvalue"
    assert "flagparam" in params
    assert params["flagparam"] is None
    assert contact.q == 0.5
    assert (req.content_type.type, req.content_type.subtype) == ("application", "sdp")
    assert req.content_length == len(WSINV_BODY)
    assert req.body == WSINV_BODY


INTMETH_METHOD = "Wei%rd!-Method.0123_*+`'~X"
INTMETH_USER = "2-odd_user.NAME~(is!it)&so'=+real$,/;?yes/"
INTMETH_PASSWORD = "&pw=+$,*(x)_~'!.-"
INTMETH_CALL_ID = "w0rd%QZ-!.*_+'~@x`~)(><:\\/\"][?}{w"
INTMETH_EXT_NAME = "Odd-Ext!.%*+_`'~Hdr"
INTMETH_EXT_VALUE = "\ufeff雷雨注意"
INTMETH = valid(
    "3.1.1.2 intmeth",
    wire(
        [
            f"{INTMETH_METHOD} sip:{INTMETH_USER}:{INTMETH_PASSWORD}@example.org SIP/2.0",
            "Via: SIP/2.0/TCP h1.example.org;branch=z9hG4bK~'`+_*%77!.-x",
            f'To: "ctl: \\\x07\\\x00\\\x7f end" <sip:{INTMETH_USER}@example.org>',
            "From: alpha~` beta'+_ gamma*%!.- <sip:plain@example.com>"
            ";weird~Param'+*_!.-%=\"работает ещё\";tag=_tok~1'+`*%!-.",
            f"Call-ID: {INTMETH_CALL_ID}",
            f"CSeq: 1392 {INTMETH_METHOD}",
            "Max-Forwards: 255",
            f"{INTMETH_EXT_NAME}:{INTMETH_EXT_VALUE}",
            "Content-Length: 0",
        ]
    ),
)


def test_3_1_1_2_intmeth_wide_range_of_valid_characters():
    """Every token/word/user/password character, quoted-pairs of NUL, BEL, DEL and UTF-8: valid."""
    req = parse(INTMETH)
    assert req.method == INTMETH_METHOD
    assert (req.cseq.seq, req.cseq.method) == (1392, INTMETH_METHOD)
    assert req.uri.user == INTMETH_USER
    assert req.uri.password == INTMETH_PASSWORD
    assert req.uri.host == "example.org"
    assert req.uri.params == {}
    assert req.via[0].branch == "z9hG4bK~'`+_*%77!.-x"
    assert req.to.display_name == "ctl: \x07\x00\x7f end"
    assert req.to.uri.user == INTMETH_USER
    assert req.to.uri.password is None
    assert req.from_.display_name == "alpha~` beta'+_ gamma*%!.-"
    assert req.from_.uri.user == "plain"
    assert req.from_.tag == "_tok~1'+`*%!-."
    params = lower_keys(req.from_.params)
    assert unquote(params["weird~param'+*_!.-%"]) == "работает ещё"
    assert req.call_id == INTMETH_CALL_ID
    assert req.max_forwards == 255
    assert req.header(INTMETH_EXT_NAME) == INTMETH_EXT_VALUE
    assert req.content_length == 0
    assert req.body == b""


ESC01_BODY = av_sdp("esc", "192.0.2.61")
ESC01 = valid(
    "3.1.1.3 esc01",
    wire(
        [
            "INVITE sip:sip%3Abob%40example.org@proxy.example.com SIP/2.0",
            "To: sip:%63ar%6Fl@example.com",
            "From: <sip:we%20like%20spaces@example.net>;tag=55x1",
            "Max-Forwards: 69",
            "i: esc-valid.993a7@example.net",
            "CSeq: 52177 INVITE",
            "Via: SIP/2.0/UDP host9.example.net;branch=z9hG4bK-esc1",
            "C: application/sdp",
            "Contact:",
            "  <sip:dial%6Cer@host9.example.net;%6C%72;f%6Fo=b%61r%25%34%32>",
            "Content-Length: @LEN@",
        ],
        ESC01_BODY,
    ),
)


def test_3_1_1_3_esc01_valid_use_of_percent_escaping():
    """Escaped user parts and URI parameters are valid and compare after one level of unescaping."""
    req = parse(ESC01)
    assert req.uri.user == "sip:bob@example.org"
    assert req.uri.host == "proxy.example.com"
    assert req.to.uri.user == "carol"
    assert req.from_.uri.user == "we like spaces"
    assert req.from_.tag == "55x1"
    assert req.call_id == "esc-valid.993a7@example.net"
    assert req.header("Call-ID") == "esc-valid.993a7@example.net"
    assert (req.content_type.type, req.content_type.subtype) == ("application", "sdp")
    assert req.contact[0].uri.user == "dialler"
    assert req.contact[0].uri.params == {"lr": None, "foo": "bar%42"}
    assert req.body == ESC01_BODY


ESCNULL = valid(
    "3.1.1.4 escnull",
    wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:zero-%00-zero@example.com",
            "From: sip:zero-%00-zero@example.com;tag=nul-0x00",
            "Max-Forwards: 70",
            "Call-ID: esc-null.8c1f0e@203.0.113.5",
            "CSeq: 88 REGISTER",
            "Via: SIP/2.0/UDP h1.example.com;branch=z9hG4bK-nul1",
            "Contact: <sip:%00@h1.example.com>",
            "Contact: <sip:%00%00@h1.example.com>",
            "L:0",
        ]
    ),
)


def test_3_1_1_4_escnull_escaped_nulls_in_uris():
    """%00 in a user part is valid; the unescaped user holds a NUL and the parser must not truncate it."""
    req = parse(ESCNULL)
    assert req.method == "REGISTER"
    assert req.to.uri.user == "zero-\x00-zero"
    assert req.from_.uri.user == "zero-\x00-zero"
    assert req.from_.tag == "nul-0x00"
    assert [c.uri.user for c in req.contact] == ["\x00", "\x00\x00"]
    assert [c.uri.host for c in req.contact] == ["h1.example.com", "h1.example.com"]
    assert req.content_length == 0


ESC02 = valid(
    "3.1.1.5 esc02",
    wire(
        [
            "PU%42LISH sip:presence.example.com SIP/2.0",
            'To: "%Q%41 literal" <sip:item@example.com>',
            'From: "%Q%41 literal" <sip:item@example.com>;tag=pct-1',
            "Call-ID: pct-not-escape.44aa@example.com",
            "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK31%gh7x",
            "CSeq: 4051 PU%42LISH",
            "Max-Forwards: 70",
            "Contact: <sip:first@h1.example.com>",
            "Con%74act: <sip:second@h2.example.com>",
            "Contact: <sip:third@h3.example.com>",
            "l: 0",
        ]
    ),
)


def test_3_1_1_5_esc02_percent_that_is_not_an_escape():
    """% in a method, quoted string, token and header name is literal: valid, nothing is unescaped."""
    req = parse(ESC02)
    assert req.method == "PU%42LISH"
    assert req.method != "PUBLISH"
    assert (req.cseq.seq, req.cseq.method) == (4051, "PU%42LISH")
    assert req.to.display_name == "%Q%41 literal"
    assert req.from_.display_name == "%Q%41 literal"
    assert req.via[0].branch == "z9hG4bK31%gh7x"
    assert [c.uri.user for c in req.contact] == ["first", "third"]
    assert req.header("Con%74act") == "<sip:second@h2.example.com>"


LWSDISP = valid(
    "3.1.1.6 lwsdisp",
    wire(
        [
            "OPTIONS sip:desk@example.com SIP/2.0",
            "To: sip:desk@example.com",
            "From: dispatcher<sip:dispatch@example.com>;tag=7q1",
            "Max-Forwards: 70",
            "Call-ID: no-lws-display.4412@example.com",
            "CSeq: 60 OPTIONS",
            "Via: SIP/2.0/UDP odd.example.com;branch=z9hG4bK-lwsd",
            "l: 0",
        ]
    ),
)


def test_3_1_1_6_lwsdisp_no_lws_between_display_name_and_laquot():
    """A token display name followed directly by "<" (LAQUOT allows no LWS) is valid."""
    req = parse(LWSDISP)
    assert req.from_.display_name == "dispatcher"
    assert req.from_.uri.user == "dispatch"
    assert req.from_.tag == "7q1"


LONG_DISPLAY = "Someone with a " + "prodigiously " * 12 + "long name"
LONG_URI_PARAM_VALUE = "loooo" * 30 + "value"
LONG_URI_PARAM_NAME = "name" * 40
LONG_VALUELESS_URI_PARAM = "Valueless" + "Param" * 25
LONG_CALLER = "unbelievablylongcaller" * 6
LONG_TAG = "7" * 120 + "42"
LONG_HDR_PARAM_NAME = "hdrparam" * 20
LONG_HDR_PARAM_VALUE = "hdrvalue" * 15
LONG_BARE_HDR_PARAM = "bare" * 20
LONG_CALL_ID = "longhaul." + "really" * 30 + "longcallid@example.net"
LONG_EXT_NAME = "X-" + "Long" * 25 + "-Header"
LONG_EXT_VALUE = "v" + "-long" * 25 + "; " + "param" * 20 + " = " + "pvalue" * 15
LONG_BRANCH = "z9hG4bK" + "long" * 60 + "branch"
VIA_SPELLINGS = ["Via", "v", "V", "ViA", "VIa", "VIA", "via", "viA", "vIa", "vIA", "V ", "v ", "V  ", "v  "]
LONGREQ_BODY = av_sdp("long", "192.0.2.77")
LONGREQ = valid(
    "3.1.1.7 longreq",
    wire(
        [
            "INVITE sip:target@example.com SIP/2.0",
            f'To: "{LONG_DISPLAY}"<sip:target@example.com:6060;p1={LONG_URI_PARAM_VALUE}'
            f";{LONG_URI_PARAM_NAME}=short;{LONG_VALUELESS_URI_PARAM}>",
            f"F: sip:{LONG_CALLER}@example.net;tag={LONG_TAG};{LONG_HDR_PARAM_NAME}={LONG_HDR_PARAM_VALUE}"
            f";{LONG_BARE_HDR_PARAM}",
            f"Call-ID: {LONG_CALL_ID}",
            "CSeq: 3882341 INVITE",
            f"{LONG_EXT_NAME}: {LONG_EXT_VALUE}",
            *[
                f"{VIA_SPELLINGS[i % len(VIA_SPELLINGS)]}: SIP/2.0/TCP hop{n}.example.com"
                for i, n in enumerate(range(33, 0, -1))
            ],
            f"Via: SIP/2.0/TCP origin.example.com;received=192.0.2.77;branch={LONG_BRANCH}",
            "Max-Forwards: 70",
            f"Contact: <sip:{LONG_CALLER}@host77.example.net>",
            "Content-Type: application/sdp",
            "l: @LEN@",
        ],
        LONGREQ_BODY,
    ),
)


def test_3_1_1_7_longreq_long_values_in_header_fields():
    """Very long names, values, parameters and 34 Via values: a valid request to accept whole."""
    req = parse(LONGREQ)
    assert req.to.display_name == LONG_DISPLAY
    assert req.to.uri.port == 6060
    assert req.to.uri.params == {
        "p1": LONG_URI_PARAM_VALUE,
        LONG_URI_PARAM_NAME: "short",
        LONG_VALUELESS_URI_PARAM.lower(): None,
    }
    assert req.from_.uri.user == LONG_CALLER
    assert req.from_.tag == LONG_TAG
    params = lower_keys(req.from_.params)
    assert params[LONG_HDR_PARAM_NAME] == LONG_HDR_PARAM_VALUE
    assert LONG_BARE_HDR_PARAM in params
    assert params[LONG_BARE_HDR_PARAM] is None
    assert req.call_id == LONG_CALL_ID
    assert squash(req.header(LONG_EXT_NAME)) == LONG_EXT_VALUE
    assert len(req.via) == 34
    assert [v.host for v in req.via[:33]] == [f"hop{n}.example.com" for n in range(33, 0, -1)]
    assert all(v.transport == "TCP" for v in req.via)
    assert req.via[-1].host == "origin.example.com"
    assert req.via[-1].received == "192.0.2.77"
    assert req.via[-1].branch == LONG_BRANCH
    assert req.contact[0].uri.user == LONG_CALLER
    assert req.body == LONGREQ_BODY


DBLREQ_SECOND = wire(
    [
        "INVITE sip:mo@example.com SIP/2.0",
        "t: sip:mo@example.com",
        "From: sip:lee@example.net;tag=second-1",
        "Max-Forwards: 8",
        "Call-ID: twice.second.77@192.0.2.130",
        "CSeq: 9 INVITE",
        "Via: SIP/2.0/UDP 192.0.2.130;branch=z9hG4bK-dbl-2",
        "Content-Type: application/sdp",
        "Content-Length: @LEN@",
    ],
    av_sdp("lee", "192.0.2.130"),
)
DBLREQ = valid(
    "3.1.1.8 dblreq",
    wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:lee@example.com",
            "From: sip:lee@example.com;tag=d0ub1e",
            "Max-Forwards: 8",
            "I: twice.4f2a9@example.com",
            "Contact: sip:lee@desk.example.com",
            "CSeq: 31 REGISTER",
            "Via: SIP/2.0/UDP 192.0.2.130;branch=z9hG4bK-dbl-1",
            "Content-Length: 0",
        ]
    )
    + DBLREQ_SECOND,
)


def test_3_1_1_8_dblreq_extra_trailing_octets_in_udp_datagram():
    """Octets after Content-Length in a datagram (here a second request) are ignored: process the first."""
    req = parse(DBLREQ)
    assert req.method == "REGISTER"
    assert req.call_id == "twice.4f2a9@example.com"
    assert (req.cseq.seq, req.cseq.method) == (31, "REGISTER")
    assert req.content_length == 0
    assert req.body == b""
    assert req.contact[0].uri.user == "lee"
    assert req.content_type is None


SEMIURI = valid(
    "3.1.1.9 semiuri",
    wire(
        [
            "OPTIONS sip:agent;role=x%40example.org@switch.example.com SIP/2.0",
            "To: sip:agent@example.com",
            "From: sip:probe@example.org;tag=sc-1",
            "Max-Forwards: 3",
            "Call-ID: semicolon-user.0ab@example.org",
            "CSeq: 8 OPTIONS",
            "Accept: application/sdp, text/plain,",
            "        message/sipfrag, application/pidf+xml,",
            "        multipart/related, application/dialog-info+xml",
            "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-semi",
            "l: 0",
        ]
    ),
)


def test_3_1_1_9_semiuri_semicolon_separated_parameters_in_user_part():
    """A ";" before "@" belongs to the user part: user "agent;role=x@example.org", no URI parameters."""
    req = parse(SEMIURI)
    assert req.uri.user == "agent;role=x@example.org"
    assert req.uri.host == "switch.example.com"
    assert req.uri.params == {}
    assert req.header_values("Accept") == [
        "application/sdp",
        "text/plain",
        "message/sipfrag",
        "application/pidf+xml",
        "multipart/related",
        "application/dialog-info+xml",
    ]


TRANSPORTS = valid(
    "3.1.1.10 transports",
    wire(
        [
            "OPTIONS sip:ops@example.com SIP/2.0",
            "To: sip:ops@example.com",
            "From: <sip:monitor@example.com>;tag=tp-1",
            "Max-Forwards: 70",
            "Call-ID:  many-transports.5kq2@example.com",
            "Accept: application/sdp",
            "CSeq: 61 OPTIONS",
            "Via: SIP/2.0/UDP u1.example.com;branch=z9hG4bK-t1",
            "Via: SIP/2.0/SCTP s2.example.com;branch=z9hG4bK-t2",
            "Via: SIP/2.0/tls t3.example.com;branch=z9hG4bK-t3",
            "Via: SIP/2.0/WARP9 w4.example.com;branch=z9hG4bK-t4",
            "Via: SIP/2.0/TCP c5.example.com;branch=z9hG4bK-t5",
            "l: 0",
        ]
    ),
)


def test_3_1_1_10_transports_varied_and_unknown_transport_types():
    """Via values with SCTP, TLS and an unknown transport token are valid and parsed, not rejected."""
    req = parse(TRANSPORTS)
    assert req.call_id == "many-transports.5kq2@example.com"
    assert [(v.transport, v.host) for v in req.via] == [
        ("UDP", "u1.example.com"),
        ("SCTP", "s2.example.com"),
        ("TLS", "t3.example.com"),
        ("WARP9", "w4.example.com"),
        ("TCP", "c5.example.com"),
    ]
    assert [v.branch for v in req.via] == [f"z9hG4bK-t{i}" for i in range(1, 6)]


MPART_BOUNDARY = "b0und4ry-55aa"
MPART_BLOB = (
    b"0\x82\x02\x0a\x06\t*\x86H\x86\xf7\r\x01\x07\x02\xa0\x82"
    + bytes(range(256))
    + b"\r\r\n\x00\n\r--b0und4ry-55a\x00\xff\xfe"
)
MPART_BODY = (
    (
        f"--{MPART_BOUNDARY}\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "Hi there\r\n"
        f"--{MPART_BOUNDARY}\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
    ).encode()
    + MPART_BLOB
    + f"\r\n--{MPART_BOUNDARY}--\r\n".encode()
)
MPART_IDENTITY = base64.b64encode(bytes(range(7, 250, 2))).decode()
MPART01 = valid(
    "3.1.1.11 mpart01",
    wire(
        [
            "MESSAGE sip:mika@example.org SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-mp-77e2;rport",
            "Max-Forwards: 70",
            "Route: <sip:127.0.0.1:5092;lr>",
            f"Identity: {MPART_IDENTITY}",
            "Contact: <sip:ren@127.0.0.1:5090>",
            "To: <sip:mika@example.org>",
            "From: <sip:ren@example.com>;tag=c0ffee11",
            "Call-ID: 5e2a81f0b3d94c7a@cmVuLWxhcHRvcA..",
            "CSeq: 7 MESSAGE",
            "Content-Transfer-Encoding: binary",
            f"Content-Type: multipart/mixed;boundary={MPART_BOUNDARY}",
            "Date: Mon, 07 Mar 2011 10:20:30 GMT",
            "User-Agent: TortureBot/1.0 (tests)",
            "Content-Length: @LEN@",
        ],
        MPART_BODY,
    ),
)


def test_3_1_1_11_mpart01_multipart_mime_with_binary_part():
    """A multipart/mixed body with a binary part (NUL, bare CR, 8-bit octets) is valid and kept exact."""
    req = parse(MPART01)
    assert req.method == "MESSAGE"
    assert (req.content_type.type, req.content_type.subtype) == ("multipart", "mixed")
    assert unquote(lower_keys(req.content_type.params)["boundary"]) == MPART_BOUNDARY
    assert str(req.content_type).lower().startswith("multipart/mixed")
    assert req.content_length == len(MPART_BODY)
    assert req.body == MPART_BODY
    assert MPART_BLOB in req.body
    assert req.via[0].port == 5090
    assert "rport" in lower_keys(req.via[0].params)
    assert req.via[0].rport is None
    assert req.route[0].uri.port == 5092
    assert req.header("Identity") == MPART_IDENTITY
    assert req.call_id == "5e2a81f0b3d94c7a@cmVuLWxhcHRvcA.."


UNREASON_PHRASE = "= 6 * 7 ≠ 43, всё хорошо"
UNREASON_BODY = av_sdp("ivan", "198.51.100.30")
UNREASON = valid(
    "3.1.1.12 unreason",
    wire(
        [
            f"SIP/2.0 200 {UNREASON_PHRASE}",
            "Via: SIP/2.0/UDP 198.51.100.30;branch=z9hG4bK-ur1",
            "Call-ID: odd-reason.77c@example.com",
            "CSeq: 19 INVITE",
            "From: sip:olga@example.com;tag=ru-1",
            "To: sip:ivan@example.org;tag=ru-2",
            "Content-Length: @LEN@",
            "Content-Type: application/sdp",
            "Contact: <sip:ivan@host30.example.org>",
        ],
        UNREASON_BODY,
    ),
)


def test_3_1_1_12_unreason_unusual_reason_phrase():
    """A reason phrase of reserved characters and UTF-8 is valid; the status code alone carries meaning."""
    resp = parse(UNREASON)
    assert resp.status_code == 200
    assert resp.reason == UNREASON_PHRASE
    assert (resp.cseq.seq, resp.cseq.method) == (19, "INVITE")
    assert resp.to.tag == "ru-2"
    assert resp.body == UNREASON_BODY


NOREASON = valid(
    "3.1.1.13 noreason",
    wire(
        [
            "SIP/2.0 100 ",
            "Via: SIP/2.0/UDP 198.51.100.31;branch=z9hG4bK-nr1",
            "Call-ID: empty-reason.2b@example.com",
            "CSeq: 35 INVITE",
            "From: <sip:olga@example.com>;tag=nr-1",
            "To: <sip:ivan@example.org>;tag=nr-2",
            "Content-Length: 0",
            "Contact: <sip:ivan@host31.example.org>",
        ]
    ),
)


def test_3_1_1_13_noreason_empty_reason_phrase():
    """ "SIP/2.0 100 " with an empty Reason-Phrase after the SP is valid."""
    resp = parse(NOREASON)
    assert resp.status_code == 100
    assert resp.reason == ""
    assert resp.call_id == "empty-reason.2b@example.com"


# ---------------------------------------------------------------------------------------------
# 3.1.2 Invalid messages: each builder takes ``bad`` and returns the defective message (True) or
# its good twin (False), which differs only in the defect.
# ---------------------------------------------------------------------------------------------


def badinv01(bad: bool = True, *, via: bool = True, contact: bool = True) -> bytes:
    return wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:quinn@example.net;tag=5151",
            "Max-Forwards: 9",
            "Call-ID: sep-extra.77x@example.net",
            "CSeq: 12 INVITE",
            "Via: SIP/2.0/UDP 203.0.113.9" + (";;,;,," if bad and via else ""),
            'Contact: "Quinn" <sip:quinn@example.net>' + (";;;;" if bad and contact else ""),
            "Content-Length: @LEN@",
            "Content-Type: application/sdp",
        ],
        av_sdp("quinn", "203.0.113.9"),
    )


invalid("3.1.2.1 badinv01", badinv01())


@pytest.mark.parametrize(
    ("via", "contact"), [(True, True), (True, False), (False, True)], ids=["both", "via", "contact"]
)
def test_3_1_2_1_badinv01_extraneous_header_field_separators(via, contact):
    """Empty Via values and empty parameters (";;,;,," and ";;;;") are malformed: 400 Bad Request."""
    parse(badinv01(False))
    rejected(badinv01(True, via=via, contact=contact), 400)


def clerr(bad: bool = True) -> bytes:
    return wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            "Max-Forwards: 80",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=cl-9999",
            "Contact: <sip:ron@hungry.example.net>",
            "Call-ID: length-too-big.3kd@example.net",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK-clerr",
            "Content-Type: application/sdp",
            "Content-Length: " + ("7777" if bad else "@LEN@"),
        ],
        av_sdp("ron", "198.51.100.55"),
    )


invalid("3.1.2.2 clerr", clerr())


def test_3_1_2_2_clerr_content_length_larger_than_message():
    """Content-Length larger than the datagram's remaining octets: over UDP, respond 400 Bad Request."""
    parse(clerr(False))
    rejected(clerr(True), 400)


def ncl(bad: bool = True) -> bytes:
    return wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            "Max-Forwards: 254",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=neg-1",
            "Call-ID: negative-length.0a@example.net",
            "CSeq: 0 INVITE",
            "Via: SIP/2.0/UDP 198.51.100.53;branch=z9hG4bK-ncl",
            "Contact: <sip:ron@h53.example.net>",
            "Content-Type: application/sdp",
            "Content-Length: " + ("-1234" if bad else "@LEN@"),
        ],
        av_sdp("ron", "198.51.100.53"),
    )


invalid("3.1.2.3 ncl", ncl())


def test_3_1_2_3_ncl_negative_content_length():
    """A negative Content-Length is malformed: 400 Bad Request."""
    parse(ncl(False))
    rejected(ncl(True), 400)


def scalar02(
    bad: bool = True,
    *,
    cseq: int | None = None,
    max_forwards: int | None = None,
    expires: str | None = None,
    contact_expires: str | None = None,
) -> bytes:
    if bad:
        cseq = 2**66 if cseq is None else cseq
        max_forwards = 256 if max_forwards is None else max_forwards
        expires = "1" + "0" * 90 if expires is None else expires
        contact_expires = "999999999999999" if contact_expires is None else contact_expires
    else:
        cseq, max_forwards, expires, contact_expires = 4711, 70, "3600", "600"
    return wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK-big-2",
            "To: <sip:val@example.com>",
            "From: <sip:val@example.com>;tag=sc4l4r",
            f"CSeq: {cseq} REGISTER",
            "Call-ID: overlarge.scalars.1q2w@example.com",
            f"Max-Forwards: {max_forwards}",
            f"Expires: {expires}",
            "Contact: <sip:val@host129.example.com>",
            f"  ;expires={contact_expires}",
            "Content-Length: 0",
        ]
    )


invalid("3.1.2.4 scalar02", scalar02())


def test_3_1_2_4_scalar02_overlarge_scalars():
    """CSeq beyond 2**31-1, Max-Forwards above 255 and overlarge expiries: 400 Bad Request (for the CSeq)."""
    parse(scalar02(False))
    rejected(scalar02(True), 400)


@pytest.mark.parametrize(("cseq", "ok"), [(2**31 - 1, True), (2**31, False), (2**32, False), (2**66, False)])
def test_3_1_2_4_scalar02_cseq_limit_alone(cseq, ok):
    """CSeq's sequence number must be below 2**31: a larger one alone makes the request a 400."""
    data = scalar02(True, cseq=cseq, max_forwards=70, expires="3600", contact_expires="600")
    if ok:
        assert parse(data).cseq.seq == cseq
    else:
        rejected(data, 400)


@pytest.mark.parametrize(("max_forwards", "ok"), [(255, True), (256, False), (300, False), (10**20, False)])
def test_3_1_2_4_scalar02_max_forwards_limit_alone(max_forwards, ok):
    """Max-Forwards is 0..255; above that the element may treat it as absent, here (contract) 400."""
    data = scalar02(True, cseq=5, max_forwards=max_forwards, expires="3600", contact_expires="600")
    if ok:
        assert parse(data).max_forwards == max_forwards
    else:
        rejected(data, 400)


def test_3_1_2_4_scalar02_overlarge_expiries_alone():
    """Only expiries overlarge: 3600 or 400 (RFC 4475), or 2**32-1, which RFC 3261 10.2.1 allows."""
    data = scalar02(True, cseq=5, max_forwards=70)
    try:
        req = parse(data)
    except ParseError as err:
        assert err.status_code == 400
    else:
        assert req.expires in (3600, None, 2**32 - 1)
        assert req.contact[0].expires in (3600, None, 2**32 - 1)


def scalarlg(bad: bool = True) -> bytes:
    return wire(
        [
            "SIP/2.0 503 Service Unavailable",
            "Via: SIP/2.0/TCP host44.example.com;branch=z9hG4bK-lg-44;received=192.0.2.144",
            "To: <sip:val@example.com>",
            "From: <sip:other@example.net>;tag=lg-1",
            "CSeq: " + ("1180591620717411303424" if bad else "44") + " OPTIONS",
            "Call-ID: overlarge.response.5t6y@example.net",
            "Retry-After: " + ("85070591730234615865843651857942052864" if bad else "300"),
            "Warning: " + ("7391" if bad else "399") + ' relay.example.com "Still in progress"',
            "Content-Length: 0",
        ]
    )


invalid("3.1.2.5 scalarlg", scalarlg())


def test_3_1_2_5_scalarlg_response_scalar_fields_overlarge():
    """A response with overlarge CSeq, Retry-After and a 4-digit warn-code is discarded (ParseError)."""
    parse(scalarlg(False))
    rejected(scalarlg(True))


def quotbal(bad: bool = True) -> bytes:
    return wire(
        [
            "INVITE sip:kj@example.com SIP/2.0",
            'To: "Dr. K. Jones' + ("" if bad else '"') + " <sip:kj@example.com>",
            "From: sip:sam@example.net;tag=qb-1",
            "Max-Forwards: 10",
            "Call-ID: unbalanced-quote.9o@example.net",
            "Contact: <sip:sam@host59.example.net>",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bK-qbal",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
        ],
        av_sdp("sam", "192.0.2.59"),
    )


invalid("3.1.2.6 quotbal", quotbal())


def test_3_1_2_6_quotbal_unterminated_quoted_string_in_display_name():
    """An unterminated quoted display name in To is malformed: 400 Bad Request."""
    assert parse(quotbal(False)).to.display_name == "Dr. K. Jones"
    rejected(quotbal(True), 400)


def _invite_for_request_line(request_line: str, call_id: str) -> bytes:
    return wire(
        [
            request_line,
            "To: sip:kim@example.com",
            "From: sip:lou@example.net;tag=rl-1",
            "Max-Forwards: 23",
            f"Call-ID: {call_id}",
            "CSeq: 1 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-rl-1",
            "Contact: <sip:lou@host5.example.net>",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
        ],
        av_sdp("lou", "192.0.2.5"),
    )


def ltgtruri(bad: bool = True) -> bytes:
    uri = "<sip:kim@example.com>" if bad else "sip:kim@example.com"
    return _invite_for_request_line(f"INVITE {uri} SIP/2.0", "angle-ruri.1@192.0.2.5")


invalid("3.1.2.7 ltgtruri", ltgtruri())


def test_3_1_2_7_ltgtruri_request_uri_enclosed_in_angle_brackets():
    """A Request-URI in <> is malformed: 400 Bad Request."""
    assert parse(ltgtruri(False)).uri.user == "kim"
    rejected(ltgtruri(True), 400)


def lwsruri(bad: bool = True) -> bytes:
    uri = "sip:kim@example.com; lr" if bad else "sip:kim@example.com;lr"
    return _invite_for_request_line(f"INVITE {uri} SIP/2.0", "lws-in-ruri.2@192.0.2.5")


invalid("3.1.2.8 lwsruri", lwsruri())


def test_3_1_2_8_lwsruri_embedded_lws_in_request_uri():
    """LWS inside the Request-URI makes the Request-Line malformed: 400 Bad Request."""
    assert parse(lwsruri(False)).uri.params == {"lr": None}
    rejected(lwsruri(True), 400)


def lwsstart(bad: bool = True) -> bytes:
    sep = "  " if bad else " "
    return _invite_for_request_line(f"INVITE{sep}sip:kim@example.com{sep}SIP/2.0", "multi-sp.3@192.0.2.5")


invalid("3.1.2.9 lwsstart", lwsstart())


def test_3_1_2_9_lwsstart_multiple_sp_separating_request_line_elements():
    """Request-Line elements are separated by exactly one SP; more is malformed: 400 Bad Request."""
    parse(lwsstart(False))
    rejected(lwsstart(True), 400)


def trws(bad: bool = True) -> bytes:
    return wire(
        [
            "OPTIONS sip:remote-end@example.com SIP/2.0" + ("  " if bad else ""),
            "Via: SIP/2.0/TCP h1.example.com;branch=z9hG4bK-trws",
            "To: <sip:remote-end@example.com>",
            "From: <sip:near-end@example.com>;tag=tw-1",
            "Call-ID: trailing-space.r4@example.com",
            "Accept: application/sdp",
            "CSeq: 238924 OPTIONS",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
    )


invalid("3.1.2.10 trws", trws())


def test_3_1_2_10_trws_sp_at_end_of_request_line():
    """SP between SIP-Version and CRLF is malformed; rejecting with 400 Bad Request is reasonable."""
    parse(trws(False))
    rejected(trws(True), 400)


def escruri(bad: bool = True) -> bytes:
    uri = "sip:kim@example.com" + ("?Route=%3Csip:example.net%3E" if bad else "")
    return _invite_for_request_line(f"INVITE {uri} SIP/2.0", "escaped-headers.4@192.0.2.5")


invalid("3.1.2.11 escruri", escruri())


def test_3_1_2_11_escruri_escaped_headers_in_request_uri():
    """A Request-URI may not carry headers ("?Route=..."): 400 Bad Request."""
    parse(escruri(False))
    rejected(escruri(True), 400)


def baddate(bad: bool = True) -> bytes:
    return wire(
        [
            "INVITE sip:kim@example.com SIP/2.0",
            "To: sip:kim@example.com",
            "From: sip:lou@example.net;tag=bd-1",
            "Max-Forwards: 70",
            "Call-ID: wrong-zone.239.z@example.net",
            "CSeq: 1392935 INVITE",
            "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-bdate",
            "Date: Tue, 05 Mar 2019 08:15:00 " + ("PST" if bad else "GMT"),
            "Contact: <sip:lou@host5.example.net>",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
        ],
        av_sdp("lou", "192.0.2.5"),
    )


invalid("3.1.2.12 baddate", baddate())


def test_3_1_2_12_baddate_invalid_timezone_in_date():
    """A Date whose zone is not "GMT" is malformed: 400 Bad Request."""
    parse(baddate(False))
    rejected(baddate(True), 400)


def regbadct(bad: bool = True) -> bytes:
    uri = "sip:kim@example.com?Route=%3Csip:edge.example.net%3E"
    return wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:kim@example.com",
            "From: sip:kim@example.com;tag=rb-1",
            "Max-Forwards: 70",
            "Call-ID: bare-contact.k9@192.0.2.10",
            "CSeq: 1 REGISTER",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-rbct",
            "Contact: " + (uri if bad else f"<{uri}>"),
            "l: 0",
        ]
    )


invalid("3.1.2.13 regbadct", regbadct())


def test_3_1_2_13_regbadct_name_addr_uri_with_header_not_in_angle_brackets():
    """A Contact URI with "?" headers must be in <>; without them the field is malformed: 400."""
    parse(regbadct(False))
    rejected(regbadct(True), 400)


def badaspec(bad: bool = True) -> bytes:
    to = '"Hale, Nathan" < sip:nhale@example.org >' if bad else '"Hale, Nathan" <sip:nhale@example.org>'
    return wire(
        [
            "OPTIONS sip:nhale@example.org SIP/2.0",
            "Via: SIP/2.0/UDP h4.example.com:5060;branch=z9hG4bK-asp",
            "Max-Forwards: 70",
            'From: "Revere, Paul" <sip:revere@example.com>;tag=433424',
            f"To: {to}",
            "Call-ID: spaces-in-addr-spec.sdf0234n",
            "Accept: application/sdp",
            "CSeq: 3923240 OPTIONS",
            "l: 0",
        ]
    )


invalid("3.1.2.14 badaspec", badaspec())


def test_3_1_2_14_badaspec_spaces_within_addr_spec():
    """Spaces inside <...> around the addr-spec are malformed: rejecting with 400 is reasonable."""
    req = parse(badaspec(False))
    assert req.to.display_name == "Hale, Nathan"
    assert req.from_.display_name == "Revere, Paul"
    rejected(badaspec(True), 400)


def baddn(bad: bool = True) -> bytes:
    def name(text: str) -> str:
        return text if bad else f'"{text}"'

    return wire(
        [
            "OPTIONS sip:cb@example.org SIP/2.0",
            "Via: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bK-bdn",
            "Max-Forwards: 70",
            f"From: {name('Lovelace, Ada')} <sip:ada@example.com>;tag=9",
            f"To: {name('Babbage, Charles')} <sip:cb@example.org>",
            "Call-ID: comma-display.31416@c.example.com",
            "Accept: application/sdp",
            "CSeq: 3923241 OPTIONS",
            "l: 0",
        ]
    )


invalid("3.1.2.15 baddn", baddn())


def test_3_1_2_15_baddn_non_token_characters_in_display_name():
    """An unquoted display name with a comma is malformed: 400 Bad Request."""
    assert parse(baddn(False)).from_.display_name == "Lovelace, Ada"
    rejected(baddn(True), 400)


def badvers(bad: bool = True) -> bytes:
    version = "SIP/4.2" if bad else "SIP/2.0"
    return wire(
        [
            f"OPTIONS sip:tw@example.org {version}",
            f"Via:     {version}/UDP c.example.com;branch=z9hG4bK-vers",
            "Max-Forwards:     70",
            "From:    A. Bee <sip:ab@example.com>;tag=vv-1",
            "To:      T. Dub <sip:tw@example.org>",
            "Call-ID: other-version.31418@c.example.com",
            "CSeq:    1 OPTIONS",
            "l: 0",
        ]
    )


invalid("3.1.2.16 badvers", badvers())


def test_3_1_2_16_badvers_unknown_protocol_version():
    """A well-formed SIP-Version other than 2.0 (also in Via): 505 Version Not Supported."""
    req = parse(badvers(False))
    assert req.from_.display_name == "A. Bee"
    rejected(badvers(True), 505)


def mismatch01(bad: bool = True) -> bytes:
    return wire(
        [
            "OPTIONS sip:pat@example.com SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=mm-1",
            "Max-Forwards: 6",
            "Call-ID: method-mismatch.dj02@example.net",
            "CSeq: 8 " + ("INVITE" if bad else "OPTIONS"),
            "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-mm1",
            "l: 0",
        ]
    )


invalid("3.1.2.17 mismatch01", mismatch01())


def test_3_1_2_17_mismatch01_cseq_method_differs_from_request_method():
    """CSeq method (INVITE) differing from the Request-Line method (OPTIONS): 400 Bad Request."""
    parse(mismatch01(False))
    rejected(mismatch01(True), 400)


def mismatch02(bad: bool = True) -> bytes:
    return wire(
        [
            "FROBNICATE sip:pat@example.com SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=mm-2",
            "Max-Forwards: 6",
            "Call-ID: unknown-method-mismatch.dj03@example.net",
            "CSeq: 8 " + ("INVITE" if bad else "FROBNICATE"),
            "Contact: <sip:ron@host.example.net>",
            "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bK-mm2",
            "Content-Type: application/sdp",
            "l: @LEN@",
        ],
        av_sdp("ron", "192.0.2.1"),
    )


invalid("3.1.2.18 mismatch02", mismatch02())


def test_3_1_2_18_mismatch02_unknown_method_with_cseq_mismatch():
    """Unknown method whose CSeq says INVITE: 501 Not Implemented, or equally 400 (contract: 400)."""
    assert parse(mismatch02(False)).method == "FROBNICATE"
    rejected(mismatch02(True), 400)


def bigcode(bad: bool = True, *, code: str = "4294967301") -> bytes:
    return wire(
        [
            f"SIP/2.0 {code if bad else '404'} hopefully nothing falls over",
            "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK-big-code",
            "Call-ID: huge-status.asd3u@example.com",
            "CSeq: 353495 INVITE",
            "From: <sip:pat@example.com>;tag=bc-1",
            "To: <sip:pat@example.edu>;tag=bc-2",
            "Content-Length: 0",
            "Contact: <sip:pat@host105.example.com>",
        ]
    )


invalid("3.1.2.19 bigcode", bigcode())


@pytest.mark.parametrize("code", ["4294967301", "1000", "99", "2OO", "-200", "+200", "200.0"])
def test_3_1_2_19_bigcode_overlarge_response_code(code):
    """A Status-Code that is not 3 digits (here 2**32+5 and friends): the response is discarded."""
    assert parse(bigcode(False)).status_code == 404
    rejected(bigcode(True, code=code))


# ---------------------------------------------------------------------------------------------
# 3.2 Transaction layer semantics
# ---------------------------------------------------------------------------------------------

BADBRANCH = valid(
    "3.2.1 badbranch",
    wire(
        [
            "OPTIONS sip:pat@example.com SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:ron@example.org;tag=bb-1",
            "Max-Forwards: 3",
            "Via: SIP/2.0/UDP 192.0.2.201;branch=z9hG4bK",
            "Accept: application/sdp",
            "Call-ID: cookie-only.sdonfo23@example.org",
            "CSeq: 8 OPTIONS",
            "l: 0",
        ]
    ),
)


def test_3_2_1_badbranch_magic_cookie_without_transaction_id():
    """Branch is just the magic cookie: parse it; the transaction layer may 400 or fall back to 2543 rules."""
    req = parse(BADBRANCH)
    assert req.via[0].branch == "z9hG4bK"
    assert req.via[0].branch.startswith("z9hG4bK")
    assert req.via[0].branch[len("z9hG4bK") :] == ""


# ---------------------------------------------------------------------------------------------
# 3.3 Application-layer semantics
# ---------------------------------------------------------------------------------------------

MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")


def insuf(bad: bool = True, *, omit: tuple[str, ...] = ("From", "To", "Call-ID")) -> bytes:
    lines = {
        "Via": "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bK-insuf",
        "From": "From: sip:ron@example.net;tag=in-1",
        "To": "To: sip:pat@example.com",
        "Call-ID": "Call-ID: missing-some.77@example.net",
        "CSeq": "CSeq: 193943 INVITE",
    }
    return wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            *[line for name, line in lines.items() if not (bad and name in omit)],
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            "l: @LEN@",
        ],
        av_sdp("ron", "192.0.2.95"),
    )


invalid("3.3.1 insuf", insuf())


def test_3_3_1_insuf_missing_required_header_fields():
    """A request without Call-ID, From and To: 400 Bad Request."""
    parse(insuf(False))
    rejected(insuf(True), 400)


@pytest.mark.parametrize("name", MANDATORY)
def test_3_3_1_insuf_each_mandatory_header_missing_alone(name):
    """Each of Via, From, To, Call-ID and CSeq is mandatory in a request: without it, 400."""
    rejected(insuf(True, omit=(name,)), 400)


UNKSCM_URI = "WibbleProto:totally/opaque;content"
UNKSCM = valid(
    "3.3.2 unkscm",
    wire(
        [
            f"OPTIONS {UNKSCM_URI} SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=us-1",
            "Max-Forwards: 3",
            "Call-ID: unknown-scheme.nasdf@example.net",
            "CSeq: 3923424 OPTIONS",
            "Via: SIP/2.0/TCP host9.example.net;branch=z9hG4bK-unkscm",
            "Content-Length: 0",
        ]
    ),
    app_valid=False,
)


def test_3_3_2_unkscm_request_uri_with_unknown_scheme():
    """An unknown Request-URI scheme parses (opaque); the element answers 416 Unsupported URI Scheme."""
    req = parse(UNKSCM)
    assert req.uri.scheme.lower() == "wibbleproto"
    # Schemes are case-insensitive and may be produced lower-cased (RFC 3986 3.1); the rest is opaque.
    scheme, colon, rest = str(req.uri).partition(":")
    assert (scheme.lower(), colon, rest) == ("wibbleproto", ":", "totally/opaque;content")
    with pytest.raises(ParseError) as info:
        validate_request(req)
    assert info.value.status_code == 416


NOVELSC_URI = "coap+tcp://198.51.100.20:5683/sensors"
NOVELSC = valid(
    "3.3.3 novelsc",
    wire(
        [
            f"OPTIONS {NOVELSC_URI} SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=ns-1",
            "Max-Forwards: 3",
            "Call-ID: novel-scheme.asdfas@example.net",
            "CSeq: 3923425 OPTIONS",
            "Via: SIP/2.0/TCP host9.example.net;branch=z9hG4bK-novel",
            "Content-Length: 0",
        ]
    ),
    app_valid=False,
)


def test_3_3_3_novelsc_request_uri_with_known_but_atypical_scheme():
    """A registered but atypical scheme is well formed; unless configured for it, answer 416."""
    req = parse(NOVELSC)
    assert req.uri.scheme == "coap+tcp"
    assert str(req.uri) == NOVELSC_URI
    with pytest.raises(ParseError) as info:
        validate_request(req)
    assert info.value.status_code == 416
    validate_request(req, schemes=("sip", "sips", "tel", "coap+tcp"))


UNKSM2 = valid(
    "3.3.4 unksm2",
    wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "To: urn:isbn:0451450523",
            "From: <https://www.example.org/people/quill>;tag=uk-2",
            "Call-ID: unknown-schemes.daksdj@hyphen-host.example.com",
            "CSeq: 234903 REGISTER",
            "Max-Forwards: 70",
            "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-unksm2",
            "Contact: <im:quill@example.net>",
            "l: 0",
        ]
    ),
)


def test_3_3_4_unksm2_unknown_uri_schemes_in_header_fields():
    """Other schemes in To/From/Contact are valid and must parse; a registrar later answers 400 (AOR)."""
    req = parse(UNKSM2)
    assert req.to.uri.scheme == "urn"
    assert str(req.to.uri) == "urn:isbn:0451450523"
    assert req.to.tag is None
    assert req.from_.uri.scheme == "https"
    assert str(req.from_.uri) == "https://www.example.org/people/quill"
    assert req.from_.tag == "uk-2"
    assert req.contact[0].uri.scheme == "im"
    assert str(req.contact[0].uri) == "im:quill@example.net"


def bext01(
    require: str = "quantumLeap, teleTransport", proxy_require: str = "warpDrive, tractorBeam"
) -> bytes:
    return wire(
        [
            "OPTIONS sip:pat@example.com SIP/2.0",
            "To: sip:pat_j@example.com",
            "From: sip:ron@example.net;tag=242etq",
            "Max-Forwards: 6",
            "Call-ID: unsupported-ext.0ha0is@example.net",
            f"Require: {require}",
            f"Proxy-Require: {proxy_require}",
            "CSeq: 8 OPTIONS",
            "Via: SIP/2.0/TLS fold-and-spindle.example.com;branch=z9hG4bK-bext",
            "Content-Length: 0",
        ]
    )


BEXT01 = valid("3.3.5 bext01", bext01(), app_valid=False)


def test_3_3_5_bext01_require_and_proxy_require_with_unsupported_extensions():
    """Unsupported option tags in Require/Proxy-Require: 420 Bad Extension listing them in Unsupported."""
    req = parse(BEXT01)
    assert req.require == ["quantumLeap", "teleTransport"]
    assert req.proxy_require == ["warpDrive", "tractorBeam"]
    with pytest.raises(ParseError) as info:
        validate_request(req)
    assert info.value.status_code == 420
    assert info.value.unsupported == ["quantumLeap", "teleTransport", "warpDrive", "tractorBeam"]
    with pytest.raises(ParseError) as info:
        validate_request(req, supported=["teleTransport", "warpDrive", "100rel"])
    assert info.value.status_code == 420
    assert info.value.unsupported == ["quantumLeap", "tractorBeam"]
    validate_request(req, supported=["quantumLeap", "teleTransport", "warpDrive", "tractorBeam"])


def test_3_3_5_bext01_unsupported_tags_are_de_duplicated_in_order():
    """Each unsupported option tag is listed once in the 420's Unsupported, in the order first seen."""
    req = parse(bext01("alpha, beta, alpha", "beta, gamma"))
    assert req.require == ["alpha", "beta", "alpha"]
    with pytest.raises(ParseError) as info:
        validate_request(req, supported=["delta"])
    assert info.value.status_code == 420
    assert info.value.unsupported == ["alpha", "beta", "gamma"]


INVUT_BODY = b'<media>\r\n <codec name="pcmu" port="443"/>\r\n</media>\r\n'
INVUT = valid(
    "3.3.6 invut",
    wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            "Contact: <sip:ron@host5.example.net>",
            "To: sip:pat.j@example.com",
            "From: sip:ron@example.net;tag=8392035",
            "Max-Forwards: 70",
            "Call-ID: unknown-type.0ha0is@example.net",
            "CSeq: 235449 INVITE",
            "Via: SIP/2.0/UDP somehost.example.net;branch=z9hG4bK-invut",
            "Content-Type: application/x-never-heard-of",
            "Content-Length: @LEN@",
        ],
        INVUT_BODY,
    ),
)


def test_3_3_6_invut_unknown_content_type():
    """An INVITE whose body type is unknown parses; the UAS answers 415 Unsupported Media Type."""
    req = parse(INVUT)
    assert (req.content_type.type, req.content_type.subtype) == ("application", "x-never-heard-of")
    assert str(req.content_type).lower().startswith("application/x-never-heard-of")
    assert req.body == INVUT_BODY


REGAUT01 = valid(
    "3.3.7 regaut01",
    wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:pat.j@example.com",
            "From: sip:pat.j@example.com;tag=87321hj24",
            "Max-Forwards: 8",
            "Call-ID: unknown-auth.0ha0is@example.com",
            "CSeq: 9339 REGISTER",
            "Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bK-regaut",
            "Authorization: FancyTokenAuth secret-blob=abc123",
            "Content-Length:0",
        ]
    ),
)


def test_3_3_7_regaut01_unknown_authorization_scheme():
    """An unknown Authorization scheme parses; the registrar answers 401 Unauthorized (or 403)."""
    req = parse(REGAUT01)
    assert len(req.authorization) == 1
    assert req.authorization[0].scheme.lower() == "fancytokenauth"
    assert req.authorization[0].params == {"secret-blob": "abc123"}
    assert req.content_length == 0


SINGLE_VALUED = {
    "From": "From: sip:ron@example.net;tag=second-from",
    "To": "To: sip:other@example.org",
    "Call-ID": "Call-ID: multi.second@192.0.2.26",
    "CSeq": "CSeq: 59 INVITE",
    "Max-Forwards": "Max-Forwards: 5",
    "Content-Length": "Content-Length: @LEN@",
    "Content-Type": "Content-Type: application/sdp",
    "Expires": "Expires: 60",
}


def multi01(
    bad: bool = True, *, extra: tuple[str, ...] = ("CSeq", "Call-ID", "To", "From", "Max-Forwards")
) -> bytes:
    return wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            "Contact: <sip:ron@host25.example.net>",
            "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bK-multi",
            "Max-Forwards: 70",
            "CSeq: 5 INVITE",
            "Call-ID: multi.first@192.0.2.25",
            "From: sip:ron@example.com;tag=3413416",
            "To: sip:pat@example.com",
            "Expires: 120",
            "Content-Type: application/sdp",
            "Content-Length: @LEN@",
            *[SINGLE_VALUED[name] for name in extra if bad],
        ],
        av_sdp("ron", "192.0.2.25"),
    )


invalid("3.3.8 multi01", multi01())


def test_3_3_8_multi01_multiple_values_in_single_value_required_fields():
    """Two CSeq, Call-ID, To, From and Max-Forwards fields: 400 Bad Request."""
    parse(multi01(False))
    rejected(multi01(True), 400)


@pytest.mark.parametrize("name", sorted(SINGLE_VALUED))
def test_3_3_8_multi01_each_single_valued_header_repeated_alone(name):
    """Any single-valued header field appearing twice (even with the same value): 400 Bad Request."""
    rejected(multi01(True, extra=(name,)), 400)


MCL01_BODY = b"Which of the two lengths is the right one? Nobody can tell.\r\n"


def mcl01(bad: bool = True) -> bytes:
    return wire(
        [
            "OPTIONS sip:pat@example.com SIP/2.0",
            "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK-mcl",
            "To: sip:pat@example.com",
            "From: sip:other@example.net;tag=3923943",
            "Call-ID: two-lengths.fhn23@example.net",
            "CSeq: 15933 OPTIONS",
            "Content-Length: " + ("11" if bad else "@LEN@"),
            "Max-Forwards: 60",
            *(["Content-Length: 4"] if bad else []),
            "Content-Type: text/plain",
        ],
        MCL01_BODY,
    )


invalid("3.3.9 mcl01", mcl01())


def test_3_3_9_mcl01_multiple_content_length_values():
    """Two different Content-Length values: the framing is unknowable, answer with an error (400)."""
    assert parse(mcl01(False)).body == MCL01_BODY
    rejected(mcl01(True), 400)


BCAST_BODY = av_sdp("pat", "198.51.100.30")
BCAST = valid(
    "3.3.10 bcast",
    wire(
        [
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP 198.51.100.30;branch=z9hG4bK-bc-1",
            "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK-bc-2",
            "Call-ID: broadcast-via.038484@example.com",
            "CSeq: 36 INVITE",
            "From: sip:pat@example.com;tag=11141344",
            "To: sip:pat@example.edu;tag=2230",
            "Content-Length: @LEN@",
            "Content-Type: application/sdp",
            "Contact: <sip:pat@host28.example.com>",
        ],
        BCAST_BODY,
    ),
)


def test_3_3_10_bcast_200_ok_with_broadcast_via_value():
    """A response whose second Via is 255.255.255.255 is well formed; it must not be sent to broadcast."""
    resp = parse(BCAST)
    assert resp.status_code == 200
    assert [v.host for v in resp.via] == ["198.51.100.30", "255.255.255.255"]
    assert resp.via[1].branch == "z9hG4bK-bc-2"
    assert resp.body == BCAST_BODY


ZEROMF = valid(
    "3.3.11 zeromf",
    wire(
        [
            "OPTIONS sip:pat@example.com SIP/2.0",
            "To: sip:pat@example.com",
            "From: sip:ron@example.net;tag=3ghsd42",
            "Call-ID: zero-hops.jfasdl@example.net",
            "CSeq: 39234322 OPTIONS",
            "Via: SIP/2.0/UDP host1.example.net;branch=z9hG4bK-zeromf",
            "Max-Forwards: 0",
            "Content-Length: 0",
        ]
    ),
)


def test_3_3_11_zeromf_max_forwards_of_zero():
    """Max-Forwards 0 is valid: a proxy answers 483 Too Many Hops, a UAS processes it normally."""
    req = parse(ZEROMF)
    assert req.max_forwards == 0
    assert req.header("Max-Forwards") == "0"


def _register_with_contact(contact: str, call_id: str, tag: str, cseq: int) -> bytes:
    return wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bK-" + tag,
            "Max-Forwards: 70",
            f"From: sip:wat@example.com;tag={tag}",
            "To: sip:wat@example.com",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: {contact}",
            "l: 0",
        ]
    )


CPARAM01 = valid(
    "3.3.12 cparam01",
    _register_with_contact(
        "sip:+15551234567@gw9.example.net;oddity", "contact-param.7071@example.com", "cp1", 2
    ),
)


def test_3_3_12_cparam01_register_with_contact_header_parameter():
    """Without <>, ";oddity" after the URI is a Contact header parameter: valid, stored as such."""
    req = parse(CPARAM01)
    contact = req.contact[0]
    assert contact.uri.user == "+15551234567"
    assert contact.uri.host == "gw9.example.net"
    assert contact.uri.params == {}
    params = lower_keys(contact.params)
    assert "oddity" in params
    assert params["oddity"] is None


CPARAM02 = valid(
    "3.3.13 cparam02",
    _register_with_contact(
        "<sip:+15551234567@gw9.example.net;oddity>", "uri-param.7072@example.com", "cp2", 3
    ),
)


def test_3_3_13_cparam02_register_with_url_parameter():
    """Inside <>, ";oddity" is a URI parameter of the Contact URI: valid, stored as such."""
    req = parse(CPARAM02)
    contact = req.contact[0]
    assert contact.uri.params == {"oddity": None}
    assert "oddity" not in lower_keys(contact.params)


REGESCRT = valid(
    "3.3.14 regescrt",
    wire(
        [
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:roamer@example.com",
            "From: sip:roamer@example.com;tag=re-8",
            "Max-Forwards: 70",
            "Call-ID: escaped-route.k345@192.0.2.1",
            "CSeq: 14398235 REGISTER",
            "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-regesc",
            "m: <sip:roamer@example.com?Route=%3Csip:edge.example.net%3E>",
            "L:0",
        ]
    ),
)


def test_3_3_14_regescrt_register_with_url_escaped_header():
    """A Contact URI with an escaped Route header is valid; a registrar accepts and stores it."""
    req = parse(REGESCRT)
    uri = req.contact[0].uri
    assert (uri.user, uri.host) == ("roamer", "example.com")
    assert lower_keys(uri.headers) == {"route": "<sip:edge.example.net>"}


SDP01_BODY = av_sdp("ron", "192.0.2.5")
SDP01 = valid(
    "3.3.15 sdp01",
    wire(
        [
            "INVITE sip:pat@example.com SIP/2.0",
            "To: sip:pat_j@example.com",
            "Contact: <sip:ron@host15.example.net>",
            "From: sip:ron@example.net;tag=235",
            "Max-Forwards: 5",
            "Call-ID: unacceptable-accept.ndaks@example.net",
            "Accept: text/x-unheard-of",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK-sdp01",
            "Content-Length: @LEN@",
            "Content-Type: application/sdp",
        ],
        SDP01_BODY,
    ),
)


def test_3_3_15_sdp01_unacceptable_accept_offering():
    """The UAC accepts only a type the UAS cannot produce: parse it; the UAS answers 406 Not Acceptable."""
    req = parse(SDP01)
    assert req.header_values("Accept") == ["text/x-unheard-of"]
    assert (req.content_type.type, req.content_type.subtype) == ("application", "sdp")
    assert req.body == SDP01_BODY


# ---------------------------------------------------------------------------------------------
# 3.4 Backward compatibility
# ---------------------------------------------------------------------------------------------

INV2543_BODY = sdp("v=0", "o=gw 29739 7272940 IN IP4 192.0.2.5", "s=-", "c=IN IP4 192.0.2.5", "t=0 0")
INV2543_BODY += b"m=audio 49217 RTP/AVP 0\r\n"
INV2543 = valid(
    "3.4.1 inv2543",
    wire(
        [
            "INVITE sip:UserB@example.com SIP/2.0",
            "Via: SIP/2.0/UDP legacy-gw.example.com",
            "From: <sip:+13035550100@legacy.client.example.net;user=phone>",
            "Record-Route: <sip:UserB@example.com;maddr=ss9.example.com>",
            "To: sip:+16505550199@ss9.example.net;user=phone",
            "Call-ID: old-style.1718@legacy.client.example.com",
            "CSeq: 57 INVITE",
            "Content-Type: application/sdp",
        ],
        INV2543_BODY,
    ),
)


def test_3_4_1_inv2543_invite_with_rfc2543_syntax():
    """No branch, no From tag, no Max-Forwards, no Content-Length (body to end): accept it."""
    req = parse(INV2543)
    assert req.via[0].host == "legacy-gw.example.com"
    assert req.via[0].branch is None
    assert req.from_.tag is None
    assert req.from_.uri.params == {"user": "phone"}
    assert req.to.uri.user == "+16505550199"
    # Not in <>: ";user=phone" is a header parameter of To, not a URI parameter (RFC 3261 20.10).
    assert req.to.uri.params == {}
    assert lower_keys(req.to.params) == {"user": "phone"}
    assert req.max_forwards is None
    assert req.record_route[0].uri.params == {"maddr": "ss9.example.com"}
    assert req.body == INV2543_BODY
    assert req.content_length == len(INV2543_BODY)


# ---------------------------------------------------------------------------------------------
# Across the cases
# ---------------------------------------------------------------------------------------------


def test_case_inventory_is_complete():
    """All 49 cases of RFC 4475 section 3 are covered: 13 valid, 19 invalid, 1 + 15 + 1 semantic."""
    cases = set(VALID) | set(INVALID)
    assert len(cases) == 49
    assert len([c for c in cases if c.startswith("3.1.1.")]) == 13
    assert len([c for c in cases if c.startswith("3.1.2.")]) == 19
    assert len([c for c in cases if c.startswith("3.2.")]) == 1
    assert len([c for c in cases if c.startswith("3.3.")]) == 15
    assert len([c for c in cases if c.startswith("3.4.")]) == 1


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_case_round_trips_through_bytes(case):
    """parse(bytes(msg)) gives back the same start line, Call-ID, CSeq, body and header values."""
    data = VALID[case]
    first = parse(data)
    wire_again = bytes(first)
    assert isinstance(wire_again, bytes)
    again = parse(wire_again)
    assert type(again) is type(first)
    if getattr(first, "method", None) is not None:
        assert again.method == first.method
        assert str(again.uri) == str(first.uri)
    else:
        assert again.status_code == first.status_code
        assert again.reason == first.reason
    assert again.call_id == first.call_id
    assert (again.cseq.seq, again.cseq.method) == (first.cseq.seq, first.cseq.method)
    assert again.body == first.body
    for name in header_names(data):
        assert again.header_values(name) == first.header_values(name), name


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_case_raises_parse_error(case):
    """Every invalid case raises ParseError (a request's with a 4xx/5xx status); nothing else escapes."""
    err = rejected(INVALID[case])
    assert isinstance(err.status_code, int)
    assert isinstance(err.reason, str)
    if not INVALID[case].startswith(b"SIP/"):
        assert 400 <= err.status_code <= 599


@pytest.mark.parametrize("case", APP_VALID)
def test_valid_request_passes_validate_request(case):
    """A valid request with a sip Request-URI and no unknown option tags passes validate_request."""
    validate_request(parse(VALID[case]))


ALL_CASES = {**VALID, **INVALID}


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_truncated_case_raises_only_parse_error(case):
    """Cut anywhere, a torture message is accepted or raises ParseError; parsers must not break."""
    data = ALL_CASES[case]
    cuts = sorted(set(range(0, min(len(data), 160))) | set(range(160, len(data), 7)))
    for cut in cuts:
        try:
            msg = parse(data[:cut])
        except ParseError:
            continue
        assert isinstance(bytes(msg), bytes)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_case_raises_only_parse_error(data):
    """Torture messages with random octets flipped, inserted or deleted never crash the parser."""
    raw = bytearray(ALL_CASES[data.draw(st.sampled_from(sorted(ALL_CASES)), label="case")])
    edits = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "insert", "delete"]),
                st.integers(0, len(raw)),
                st.sampled_from(b'\x00\r\n \t:;,"<>@%[]=\\/?\x7f\xff0aZ'),
            ),
            min_size=1,
            max_size=4,
        ),
        label="edits",
    )
    for op, pos, octet in edits:
        pos = min(pos, len(raw))
        if op == "insert":
            raw.insert(pos, octet)
        elif pos < len(raw):
            if op == "flip":
                raw[pos] = octet
            else:
                del raw[pos]
    try:
        msg = parse(bytes(raw))
    except ParseError as err:
        assert isinstance(err.status_code, int)
    else:
        assert isinstance(bytes(msg), bytes)
