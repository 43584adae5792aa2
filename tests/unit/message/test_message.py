"""Requests and responses: start lines (RFC 3261 §7.1, §7.2, §25.1), header framing and
leniency (§7.3.1, §7.5), body framing (§18.3, §20.14), mandatory and single-valued headers
(§8.1.1, §20), strict vs lenient parsing (§16.3 step 1), byte-preserving edits,
make_response (§8.2.6), validate_request (§8.2.2) and building messages from pairs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sipstack.message import (
    REASON_PHRASES,
    CSeq,
    Message,
    ParseError,
    Request,
    Response,
    SipURI,
    UnsupportedExtension,
    make_response,
    parse,
    parse_uri,
    reason_phrase,
    validate_request,
)

REQUEST_START = "INVITE sip:bob@biloxi.example.com SIP/2.0"
RESPONSE_START = "SIP/2.0 200 OK"
BASE = [
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.example.com>",
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
]


def wire(
    *extra: str,
    start: str = REQUEST_START,
    body: bytes = b"",
    drop: tuple[str, ...] = (),
    length: int | str | None = "auto",
) -> bytes:
    """A message: start line, BASE minus lines starting with ``drop`` prefixes, ``extra``,
    Content-Length (the body's length, ``length`` if given, none if None), body."""
    lines = [line for line in BASE if not line.lower().startswith(tuple(d.lower() for d in drop))]
    lines = [start, *lines, *extra]
    if length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join([*lines, "", ""]).encode("utf-8") + body


def refused(data: bytes, status: int = 400, *, both: bool = True) -> ParseError:
    """``data`` is refused with ``status``, strictly and (with ``both``) leniently as well."""
    error = None
    for strict in (True, False) if both else (True,):
        with pytest.raises(ParseError) as info:
            parse(data, strict=strict)
        assert info.value.status_code == status, info.value
        error = info.value
    assert error is not None
    return error


# ---------------------------------------------------------------------------------------
# Start lines
# ---------------------------------------------------------------------------------------


def test_request_line() -> None:
    m = parse(wire())
    assert isinstance(m, Request)
    assert m.is_request
    assert m.method == "INVITE"
    assert m.version == "SIP/2.0"
    assert m.uri == SipURI("biloxi.example.com", "bob")
    assert m.start_line() == REQUEST_START
    assert repr(m) == f"<Request {REQUEST_START!r}>"


def test_response_line() -> None:
    m = parse(wire(start="SIP/2.0 481 Call/Transaction Does Not Exist"))
    assert isinstance(m, Response)
    assert not m.is_request
    assert m.status_code == 481
    assert m.reason == "Call/Transaction Does Not Exist"
    assert m.version == "SIP/2.0"
    assert m.start_line() == "SIP/2.0 481 Call/Transaction Does Not Exist"


@pytest.mark.parametrize("reason", ["", "OK", "Très bien", "Ringing  with  spaces ", "%41 escaped"])
def test_reason_phrase_is_kept_as_is(reason: str) -> None:
    m = parse(wire(start=f"SIP/2.0 180 {reason}"))
    assert isinstance(m, Response)
    assert m.status_code == 180
    assert m.reason == reason


@pytest.mark.parametrize("code", ["100", "199", "200", "404", "699"])
def test_status_codes_in_range(code: str) -> None:
    m = parse(wire(start=f"SIP/2.0 {code} Whatever"))
    assert isinstance(m, Response)
    assert m.status_code == int(code)


@pytest.mark.parametrize(
    "code", ["099", "000", "700", "999", "20", "2000", "2x0", "+20", " 200", "", "٢٠٠", "²⁰⁰"]
)
def test_bad_status_codes(code: str) -> None:
    refused(wire(start=f"SIP/2.0 {code} Bad"))


def test_extension_and_lower_case_methods() -> None:
    m = parse(
        wire(start="FOO-BAR.x sip:bob@biloxi.example.com SIP/2.0", drop=("CSeq",)).replace(
            b"Content-Length", b"CSeq: 1 FOO-BAR.x\r\nContent-Length"
        )
    )
    assert isinstance(m, Request)
    assert m.method == "FOO-BAR.x"
    m = parse(wire("CSeq: 1 invite", start="invite sip:bob@biloxi.example.com SIP/2.0", drop=("CSeq",)))
    assert isinstance(m, Request)
    assert m.method == "invite"


def test_cseq_method_must_match_the_request_method() -> None:
    refused(wire("CSeq: 1 OPTIONS", drop=("CSeq",)))
    refused(wire("CSeq: 1 invite", drop=("CSeq",)))  # methods are case-sensitive


@pytest.mark.parametrize(
    "start",
    [
        "INVITE sip:bob@biloxi.example.com SIP/3.0",
        "INVITE sip:bob@biloxi.example.com SIP/2.1",
        "INVITE sip:bob@biloxi.example.com SIP/1.0",
        "SIP/3.0 200 OK",
        "SIP/7.0 180 Ringing",
    ],
)
def test_unsupported_sip_version_is_505(start: str) -> None:
    refused(wire(start=start), 505)


def test_version_name_is_case_insensitive() -> None:
    assert parse(wire(start="INVITE sip:bob@biloxi.example.com sip/2.0")).version.upper() == "SIP/2.0"


@pytest.mark.parametrize(
    "start",
    [
        "INVITE sip:bob@biloxi.example.com SIP/2",
        "INVITE sip:bob@biloxi.example.com SIP/",
        "INVITE sip:bob@biloxi.example.com SIP/2.0a",
        "INVITE sip:bob@biloxi.example.com SIP/X.Y",
        "INVITE sip:bob@biloxi.example.com SIP2.0",
        "INVITE sip:bob@biloxi.example.com HTTP/1.1",
        "INVITE sip:bob@biloxi.example.com",
        "INVITE SIP/2.0",
        "SIP/2.0.1 200 OK",
        "SIP/ 200 OK",
        "HTTP/1.1 200 OK",
    ],
)
def test_garbage_versions_are_400(start: str) -> None:
    refused(wire(start=start))


@pytest.mark.parametrize(
    "start",
    [
        "INVITE  sip:bob@biloxi.example.com SIP/2.0",
        "INVITE sip:bob@biloxi.example.com  SIP/2.0",
        "INVITE sip:bob@biloxi.example.com SIP/2.0 ",
        " INVITE sip:bob@biloxi.example.com SIP/2.0",
        "INVITE\tsip:bob@biloxi.example.com\tSIP/2.0",
        "INVITE sip:bob@biloxi.example.com extra SIP/2.0",
        "INV@ITE sip:bob@biloxi.example.com SIP/2.0",
        "SIP/2.0  200 OK",
        " SIP/2.0 200 OK",
        "SIP/2.0\t200 OK",
        "",
    ],
)
def test_spaces_in_start_lines_are_exact(start: str) -> None:
    refused(wire(start=start))


# ---------------------------------------------------------------------------------------
# Mandatory, duplicate, malformed header lines
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
@pytest.mark.parametrize("start", [REQUEST_START, RESPONSE_START])
def test_missing_mandatory_header_is_400(missing: str, start: str) -> None:
    refused(wire(start=start, drop=(missing + ":",)))


def test_max_forwards_is_not_needed_to_parse() -> None:
    m = parse(wire(drop=("Max-Forwards",)))
    assert m.max_forwards is None


@pytest.mark.parametrize(
    "line",
    [
        "From: <sip:carol@chicago.example.com>;tag=2",
        "f: <sip:carol@chicago.example.com>;tag=2",
        "To: <sip:carol@chicago.example.com>",
        "Call-ID: other@host",
        "i: other@host",
        "CSeq: 1 INVITE",
        "Max-Forwards: 69",
        "Content-Length: 0",
        "l: 0",
    ],
)
def test_duplicate_single_valued_headers_are_400(line: str) -> None:
    refused(wire(line))


@pytest.mark.parametrize("name", ["Content-Type: application/sdp", "Expires: 60"])
def test_duplicate_content_type_and_expires_are_400(name: str) -> None:
    refused(wire(name, name))


def test_repeated_list_headers_are_fine() -> None:
    m = parse(
        wire("Via: SIP/2.0/UDP second.example.com", "Supported: a", "Supported: b", "X-Foo: 1", "X-Foo: 2")
    )
    assert len(m.via) == 2
    assert m.supported == ["a", "b"]
    assert m.header_values("x-foo") == ["1", "2"]


@pytest.mark.parametrize(
    "line",
    [
        "No colon here",
        ": empty name",
        "Sub ject: spaces inside the name",
        "X@Y: bad name",
        "Subject\x00: nul",
        "(x): parens",
    ],
)
def test_bad_header_lines_are_400(line: str) -> None:
    refused(wire(line))


def test_empty_header_value_is_allowed_for_unknown_headers() -> None:
    m = parse(wire("Subject:", "X-Empty:   "))
    assert m.header("Subject") == ""
    assert m.header_values("x-empty") == [""]


def test_header_name_with_whitespace_before_the_colon() -> None:
    # RFC 3261 §7.3.1: header-name *(SP / HTAB) ":" (RFC 4475 §3.1.1.1 uses it)
    m = parse(
        wire("Subject   : spaced", "X-Tab\t: tabbed", drop=("Via",)).replace(
            b"Max-Forwards", b"Via \t: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nMax-Forwards"
        )
    )
    assert m.header("subject") == "spaced"
    assert m.header("x-tab") == "tabbed"
    assert m.via[0].branch == "z9hG4bK1"
    names = [name for name, _ in m.header_items()]
    assert "Subject" in names and "X-Tab" in names and "Via" in names


# ---------------------------------------------------------------------------------------
# Line endings, folding, leading CRLFs
# ---------------------------------------------------------------------------------------


def test_leading_crlfs_are_ignored() -> None:
    data = wire()
    for prefix in (b"\r\n", b"\r\n\r\n", b"\r\n" * 5):
        m = parse(prefix + data)
        assert m == parse(data)
        assert bytes(m) == data


def test_bare_lf_messages_are_accepted() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    data = wire("Content-Type: application/sdp", body=body)
    head, _, _ = data.partition(b"\r\n\r\n")
    lf = head.replace(b"\r\n", b"\n") + b"\n\n" + body
    m = parse(lf)
    assert m == parse(data)
    assert m.body == body
    assert m.via[0].branch == "z9hG4bK776asdhds"
    assert bytes(m) == data  # written back with CRLF
    assert parse(bytes(m)) == m


def test_bare_lf_without_body_and_without_content_length() -> None:
    head = "\n".join([REQUEST_START, *BASE])
    m = parse((head + "\n\n").encode())
    assert m.body == b""
    assert m.content_length == 0


def test_bare_lf_message_with_crlfcrlf_in_the_body() -> None:
    body = b"line one\r\n\r\nline three\r\n"
    head = "\n".join([REQUEST_START, *BASE, f"Content-Length: {len(body)}"])
    m = parse(head.encode() + b"\n\n" + body)
    assert m.body == body


def test_folded_header_values() -> None:
    data = wire(
        "Subject: I know you're\r\n there,\r\n\tpick up the phone",
        "X-Start:\r\n   value on the next line",
        drop=("Via", "To"),
    ).replace(
        b"Max-Forwards",
        b"Via: SIP/2.0/UDP\r\n  pc33.atlanta.example.com\r\n ;branch=z9hG4bKfold\r\n"
        b"To:\r\n <sip:bob@biloxi.example.com>\r\nMax-Forwards",
    )
    m = parse(data)
    subject = m.header("Subject")
    assert subject is not None
    assert " ".join(subject.split()) == "I know you're there, pick up the phone"
    assert m.header("x-start") == "value on the next line"
    assert m.via[0].host == "pc33.atlanta.example.com"
    assert m.via[0].branch == "z9hG4bKfold"
    assert m.to.uri == SipURI("biloxi.example.com", "bob")
    assert bytes(m) == data  # folding is kept on the wire
    assert parse(bytes(m)) == m


def test_continuation_line_before_any_header_is_400() -> None:
    refused(wire().replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n continuation\r\n", 1))


def test_no_empty_line_after_headers_is_400() -> None:
    data = wire()
    refused(data[:-2])
    refused(data[:-4])
    refused(b"INVITE sip:bob@biloxi.example.com SIP/2.0")


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n", b"\n\n", b"\x00", b"garbage"])
def test_empty_and_garbage_datagrams(data: bytes) -> None:
    refused(data)


# ---------------------------------------------------------------------------------------
# Body framing (RFC 3261 §18.3, §20.14)
# ---------------------------------------------------------------------------------------


def test_body_with_content_length() -> None:
    body = b"v=0\r\n\r\nbinary\x00\xff\r\n"
    m = parse(wire("Content-Type: application/sdp", body=body))
    assert m.body == body
    assert m.content_length == len(body)


def test_content_length_larger_than_the_data_is_400() -> None:
    refused(wire(body=b"12345", length=6))
    refused(wire(length=1))


def test_octets_after_the_body_are_ignored() -> None:
    data = wire(body=b"12345", length=3)
    m = parse(data)
    assert m.body == b"123"
    assert m.content_length == 3
    assert bytes(m) == data[:-2]
    assert parse(bytes(m)) == m


def test_datagram_without_content_length_takes_the_rest_as_body() -> None:
    m = parse(wire(body=b"hello\r\n\r\nworld", length=None))
    assert m.body == b"hello\r\n\r\nworld"
    assert m.content_length == len(b"hello\r\n\r\nworld")
    assert m.header("Content-Length") is None


def test_content_length_zero_with_trailing_data() -> None:
    m = parse(wire(body=b"trailing", length=0))
    assert m.body == b""


# ---------------------------------------------------------------------------------------
# strict=False (RFC 3261 §16.3 step 1)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "attr"),
    [
        ("Date: 13 Nov 2010 23:29:00", "Date", None),
        ("Date: Sat, 32 Nov 2010 23:29:00 GMT", "Date", None),
        ("Date: Sat, 13 Nov 2010 25:29:00 GMT", "Date", None),
        ("Contact: <sip:alice@pc33.atlanta.example.com", "Contact", "contact"),
        ("Contact: <sip:alice@pc33.atlanta.example.com>;q=2", "Contact", "contact"),
        ("Contact: <sip:alice@300.1.1.1>", "Contact", "contact"),
    ],
)
def test_lenient_parse_accepts_what_strict_parse_refuses(line: str, name: str, attr: str | None) -> None:
    data = wire(line)
    refused(data, both=False)
    m = parse(data, strict=False)
    assert bytes(m) == data
    assert m.header(name) == line.split(":", 1)[1].strip()
    if attr is not None:
        for _ in range(2):
            with pytest.raises(ParseError) as info:
                for c in getattr(m, attr):
                    _ = (c.uri, c.params, c.q, c.expires)
            assert info.value.status_code == 400


def test_valid_date_is_accepted() -> None:
    m = parse(wire("Date: Sat, 13 Nov 2010 23:29:00 GMT"))
    assert m.header("date") == "Sat, 13 Nov 2010 23:29:00 GMT"


def test_parse_all_raises_for_the_first_malformed_header() -> None:
    m = parse(wire("Expires: never"), strict=False)
    with pytest.raises(ParseError) as info:
        m.parse_all()
    assert info.value.status_code == 400
    parse(wire("Expires: 60"), strict=False).parse_all()


# ---------------------------------------------------------------------------------------
# Edits keep other lines byte-identical
# ---------------------------------------------------------------------------------------

ODD = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"v:  SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds ;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1\r\n"
    b"max-forwards:70\r\n"
    b"t:Bob <sip:bob@biloxi.example.com>\r\n"
    b'From   :   "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n"
    b"Route: <sip:p3.example.com;lr>\r\n"
    b"Subject:   I know you're there, pick up the phone\r\n"
    b"X-Custom:    odd    spacing   \r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 5\r\n"
    b"\r\n"
    b"hello"
)


def head_lines(data: bytes) -> list[bytes]:
    """Header lines of ``data`` with continuation lines joined (CRLF kept inside)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    out: list[bytes] = []
    for line in head.split(b"\r\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            out[-1] += b"\r\n" + line
        else:
            out.append(line)
    return out


def assert_kept(original: bytes, edited: bytes, changed: set[bytes]) -> None:
    """Every line of ``original`` not starting with a prefix in ``changed`` is in ``edited``,
    byte for byte and in the same order."""
    mine = head_lines(edited)
    kept = [line for line in head_lines(original) if not line.startswith(tuple(changed))]
    positions = [mine.index(line) for line in kept]
    assert positions == sorted(positions)


FOLDED = wire("Subject: I know you're\r\n  there,\r\n\tpick up the phone", "X-After: 1")


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.prepend_header("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp"),
        lambda m: m.add_header("Record-Route", "<sip:proxy.example.com;lr>"),
        lambda m: m.set_header("Max-Forwards", "69"),
        lambda m: m.remove_header("X-After"),
    ],
)
def test_folded_line_is_kept_byte_identical_after_an_edit(edit: Callable[[Message], None]) -> None:
    m = parse(FOLDED)
    edit(m)
    out = bytes(m)
    assert b"\r\nSubject: I know you're\r\n  there,\r\n\tpick up the phone\r\n" in out
    assert parse(out) == m


def test_untouched_message_is_its_own_bytes() -> None:
    m = parse(ODD)
    assert bytes(m) == ODD
    assert m.body == b"hello"
    assert m.max_forwards == 70
    assert [v.branch for v in m.via] == ["z9hG4bK776asdhds", "z9hG4bK77ef4c2312983.1"]
    assert m.from_.display_name == "Alice"


def test_prepend_header() -> None:
    m = parse(ODD)
    assert len(m.via) == 2  # cached before the edit
    m.prepend_header("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnew")
    assert [v.host for v in m.via] == [
        "proxy.example.com",
        "pc33.atlanta.example.com",
        "bigbox3.site3.atlanta.example.com",
    ]
    out = bytes(m)
    assert out.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP proxy.example.com;")
    assert_kept(ODD, out, set())
    assert out.endswith(b"\r\n\r\nhello")
    assert parse(out) == m


def test_add_header() -> None:
    m = parse(ODD)
    assert m.record_route == []
    m.add_header("Record-Route", "<sip:p1.example.com;lr>")
    assert [str(r.uri) for r in m.record_route] == ["sip:p1.example.com;lr"]
    out = bytes(m)
    assert head_lines(out)[-1] == b"Record-Route: <sip:p1.example.com;lr>"
    assert_kept(ODD, out, set())


def test_set_header_replaces_in_place_and_keeps_the_spelling() -> None:
    m = parse(ODD)
    assert m.max_forwards == 70
    m.set_header("Max-Forwards", "69")
    assert m.max_forwards == 69
    out = bytes(m)
    lines = head_lines(out)
    assert lines[2] == b"max-forwards: 69"
    assert_kept(ODD, out, {b"max-forwards"})
    m.set_header("Route", "<sip:only.example.com;lr>")
    assert [str(r.uri) for r in m.route] == ["sip:only.example.com;lr"]
    assert m.header_values("route") == ["<sip:only.example.com;lr>"]
    m.set_header("X-New", "1")
    assert head_lines(bytes(m))[-1] == b"X-New: 1"
    assert_kept(ODD, bytes(m), {b"max-forwards", b"Route"})


def test_remove_header() -> None:
    m = parse(ODD)
    assert len(m.route) == 3
    m.remove_header("route")
    assert m.route == []
    assert not m.has_header("Route")
    m.remove_header("Not-There")
    m.remove_header("v")
    assert m.via == [] and m.header_values("Via") == []
    assert_kept(ODD, bytes(m), {b"Route", b"v:", b"Via"})


def test_pop_value_one_per_line_and_comma_joined() -> None:
    m = parse(ODD)
    assert m.pop_value("Route") == "<sip:p1.example.com;lr>"
    assert [str(r.uri.host) for r in m.route] == ["p2.example.com", "p3.example.com"]  # type: ignore[attr-defined]
    assert m.pop_value("Route") == "<sip:p2.example.com;lr>"
    assert m.header_values("Route") == ["<sip:p3.example.com;lr>"]
    assert m.pop_value("ROUTE") == "<sip:p3.example.com;lr>"
    assert m.route == []
    assert m.pop_value("Route") is None
    assert_kept(ODD, bytes(m), {b"Route"})
    assert parse(bytes(m)) == m


def test_pop_value_of_a_one_value_line_removes_the_line() -> None:
    m = parse(wire("Route: <sip:a.example.com;lr>", "Route: <sip:b.example.com;lr>, <sip:c.example.com;lr>"))
    assert m.pop_value("route") == "<sip:a.example.com;lr>"
    assert m.header_values("route") == ["<sip:b.example.com;lr>", "<sip:c.example.com;lr>"]
    assert len([line for line in head_lines(bytes(m)) if line.startswith(b"Route")]) == 1


def test_body_setter_updates_content_length() -> None:
    m = parse(ODD)
    m.body = b"v=0\r\n"
    assert m.body == b"v=0\r\n"
    assert m.content_length == 5
    m.body = b"a longer body\r\n\r\nwith an empty line"
    assert m.content_length == 35
    out = bytes(m)
    assert b"\r\nl: 35\r\n" in out
    assert out.endswith(b"\r\n\r\na longer body\r\n\r\nwith an empty line")
    again = parse(out)
    assert again.body == m.body
    assert_kept(ODD, out, {b"l:"})


def test_body_setter_adds_content_length_when_absent() -> None:
    m = parse(wire(body=b"xyz", length=None))
    assert m.header("Content-Length") is None
    m.body = b"12"
    assert m.header("Content-Length") == "2"
    assert parse(bytes(m)).body == b"12"


def test_uri_setter() -> None:
    m = parse(ODD)
    assert isinstance(m, Request)
    m.uri = "sip:bob@192.0.2.4:5060;transport=udp"
    assert m.uri == parse_uri("sip:bob@192.0.2.4:5060;transport=udp")
    assert bytes(m).startswith(b"INVITE sip:bob@192.0.2.4:5060;transport=udp SIP/2.0\r\n")
    m.uri = SipURI("biloxi.example.com", "carol", port=5070)
    assert bytes(m).startswith(b"INVITE sip:carol@biloxi.example.com:5070 SIP/2.0\r\n")
    assert_kept(ODD, bytes(m), set())
    assert parse(bytes(m)).uri == m.uri


def test_copy_is_independent() -> None:
    m = parse(ODD)
    assert isinstance(m, Request)
    c = m.copy()
    assert c == m and c is not m
    assert bytes(c) == ODD
    c.prepend_header("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKc")
    c.set_header("Max-Forwards", "69")
    c.pop_value("Route")
    c.body = b"changed"
    c.uri = "sip:elsewhere.example.com"
    assert bytes(m) == ODD
    assert len(m.via) == 2 and m.max_forwards == 70 and len(m.route) == 3 and m.body == b"hello"
    assert str(m.uri) == "sip:bob@biloxi.example.com"
    assert len(c.via) == 3 and c.max_forwards == 69 and len(c.route) == 2
    m.remove_header("Contact")
    assert len(c.contact) == 1
    assert c != m


def test_equality() -> None:
    assert parse(ODD) == parse(ODD)
    assert parse(wire()) != parse(wire("Subject: x"))
    assert parse(wire()) != parse(wire(start=RESPONSE_START))
    # names are compared canonically, values without surrounding whitespace
    assert parse(wire("Subject:  x  ")) == parse(wire("s: x"))


# ---------------------------------------------------------------------------------------
# make_response (RFC 3261 §8.2.6)
# ---------------------------------------------------------------------------------------


def test_make_response_copies_the_lines_verbatim() -> None:
    req = parse(ODD)
    assert isinstance(req, Request)
    resp = make_response(req, 180, to_tag="8321234356")
    assert isinstance(resp, Response)
    assert (resp.status_code, resp.reason) == (180, "Ringing")
    lines = head_lines(bytes(resp))
    assert lines == [
        b"v:  SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds ;received=192.0.2.1",
        b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1",
        b"t:Bob <sip:bob@biloxi.example.com>;tag=8321234356",
        b'From   :   "Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        b"CSeq: 314159 INVITE",
        b"Content-Length: 0",
    ]
    again = parse(bytes(resp))
    assert again == resp
    assert again.to.tag == "8321234356"
    assert again.via == req.via
    assert again.cseq == req.cseq


def test_make_response_keeps_an_existing_to_tag() -> None:
    req = parse(
        wire("Require: x", drop=("To",)).replace(
            b"Max-Forwards", b"To: <sip:bob@biloxi.example.com>;tag=abc\r\nMax-Forwards"
        )
    )
    assert isinstance(req, Request)
    resp = make_response(req, 200, to_tag="other")
    assert resp.to.tag == "abc"
    assert resp.header("To") == "<sip:bob@biloxi.example.com>;tag=abc"
    resp = make_response(parse(wire()), 200)  # type: ignore[arg-type]
    assert resp.to.tag is None


def test_make_response_timestamp_only_on_100() -> None:
    req = parse(ODD)
    assert isinstance(req, Request)
    assert make_response(req, 100).header("Timestamp") == "54"
    assert make_response(req, 180, to_tag="t").header("Timestamp") is None
    assert make_response(req, 200, to_tag="t").header("Timestamp") is None


def test_make_response_reason_headers_and_body() -> None:
    req = parse(wire())
    assert isinstance(req, Request)
    resp = make_response(
        req,
        486,
        "Busy Now",
        to_tag="x",
        headers=[("Retry-After", "60"), ("Contact", "<sip:bob@192.0.2.4>")],
        body=b"sorry",
    )
    assert resp.reason == "Busy Now"
    assert resp.header("Retry-After") == "60"
    assert resp.content_length == 5
    again = parse(bytes(resp))
    assert again.body == b"sorry"
    assert again.contact[0].uri == SipURI("192.0.2.4", "bob")
    assert make_response(req, 603, to_tag="x").reason == "Decline"


# ---------------------------------------------------------------------------------------
# validate_request (RFC 3261 §8.2.2)
# ---------------------------------------------------------------------------------------


def test_validate_request_accepts_a_good_request() -> None:
    req = parse(wire("Require: 100rel", "Proxy-Require: sec-agree"))
    assert isinstance(req, Request)
    validate_request(req, supported=["100rel", "SEC-AGREE"])


@pytest.mark.parametrize(
    "uri", ["mailto:bob@biloxi.example.com", "im:bob@biloxi.example.com", "urn:service:sos"]
)
def test_unsupported_request_uri_scheme_is_416(uri: str) -> None:
    req = parse(wire(start=f"INVITE {uri} SIP/2.0"))
    assert isinstance(req, Request)
    with pytest.raises(ParseError) as info:
        validate_request(req)
    assert info.value.status_code == 416
    validate_request(req, schemes=[uri.split(":")[0]])


def test_tel_and_sips_are_supported_by_default() -> None:
    for uri in ("tel:+1-201-555-0123", "sips:bob@biloxi.example.com"):
        req = parse(wire(start=f"INVITE {uri} SIP/2.0"))
        assert isinstance(req, Request)
        validate_request(req)


def test_unsupported_extensions_are_420() -> None:
    req = parse(wire("Require: foo, 100rel", "Proxy-Require: bar", "Require: foo"))
    assert isinstance(req, Request)
    with pytest.raises(UnsupportedExtension) as info:
        validate_request(req, supported=["100rel"])
    assert info.value.status_code == 420
    assert info.value.unsupported == ["foo", "bar"]
    assert isinstance(info.value, ParseError)
    with pytest.raises(UnsupportedExtension) as info:
        validate_request(req, supported=["100rel"], require_headers=["Proxy-Require"])
    assert info.value.unsupported == ["bar"]


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_are_exempt_from_require(method: str) -> None:
    req = parse(
        wire(
            "Require: foo",
            f"CSeq: 314159 {method}",
            start=f"{method} sip:bob@biloxi.example.com SIP/2.0",
            drop=("CSeq",),
        )
    )
    assert isinstance(req, Request)
    validate_request(req)


def test_validate_request_needs_the_mandatory_headers() -> None:
    req = Request(
        "OPTIONS", "sip:bob@biloxi.example.com", [("Via", "SIP/2.0/UDP h.example.com;branch=z9hG4bK1")]
    )
    with pytest.raises(ParseError) as info:
        validate_request(req)
    assert info.value.status_code == 400


def test_malformed_require_is_400_in_validate_request() -> None:
    req = parse(wire("Require: a b"), strict=False)
    assert isinstance(req, Request)
    with pytest.raises(ParseError) as info:
        validate_request(req)
    assert info.value.status_code == 400


# ---------------------------------------------------------------------------------------
# Building messages from (name, value) pairs
# ---------------------------------------------------------------------------------------

PAIRS = [
    ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8"),
    ("Max-Forwards", "70"),
    ("To", "Bob <sip:bob@biloxi.example.com>"),
    ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
    ("Call-ID", "a84b4c76e66710"),
    ("CSeq", "63104 OPTIONS"),
    ("Contact", "<sip:alice@pc33.atlanta.example.com>"),
    ("Accept", "application/sdp"),
]


def test_request_from_pairs() -> None:
    req = Request("OPTIONS", "sip:carol@chicago.example.com", PAIRS)
    data = bytes(req)
    assert data.startswith(b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33")
    assert data.endswith(b"Accept: application/sdp\r\nContent-Length: 0\r\n\r\n")
    m = parse(data)
    assert isinstance(m, Request)
    assert m == req
    assert m.method == "OPTIONS"
    assert m.uri == SipURI("chicago.example.com", "carol")
    assert m.via[0].branch == "z9hG4bKnashds8"
    assert m.cseq == CSeq(63104, "OPTIONS")
    assert m.from_.tag == "1928301774"
    assert m.to.tag is None
    assert m.call_id == "a84b4c76e66710"
    assert m.max_forwards == 70
    assert m.accept == ["application/sdp"]
    assert m.content_length == 0


def test_request_from_pairs_with_uri_object_and_body() -> None:
    uri = SipURI("chicago.example.com", "carol", params={"transport": "tcp"})
    pairs = [(n, v.replace("OPTIONS", "MESSAGE")) for n, v in PAIRS] + [("c", "text/plain")]
    req = Request("MESSAGE", uri, pairs, b"Watson, come here.")
    assert req.uri is uri
    m = parse(bytes(req))
    assert m == req
    assert m.body == b"Watson, come here."
    assert m.content_length == 18
    assert m.content_type == "text/plain"
    assert m.header("Content-Length") == "18"


def test_explicit_content_length_is_not_doubled() -> None:
    req = Request("OPTIONS", "sip:carol@chicago.example.com", [*PAIRS, ("l", "0")])
    assert req.header_values("content-length") == ["0"]
    assert parse(bytes(req)) == req


def test_response_from_pairs() -> None:
    resp = Response(200, None, PAIRS, b"v=0\r\n")
    assert resp.reason == "OK"
    data = bytes(resp)
    assert data.startswith(b"SIP/2.0 200 OK\r\n")
    m = parse(data)
    assert isinstance(m, Response)
    assert m == resp
    assert (m.status_code, m.reason) == (200, "OK")
    assert m.body == b"v=0\r\n"
    assert m.cseq == resp.cseq == CSeq(63104, "OPTIONS")
    custom = Response(299, "Custom Thing", PAIRS)
    assert parse(bytes(custom)).reason == "Custom Thing"  # type: ignore[union-attr]
    empty = Response(200, "", PAIRS)
    assert bytes(empty).startswith(b"SIP/2.0 200 \r\n")
    assert parse(bytes(empty)).reason == ""  # type: ignore[union-attr]


def test_building_with_a_bad_header_name_fails() -> None:
    with pytest.raises(ParseError):
        Request("OPTIONS", "sip:a@example.com", [("Bad Name", "x")])
    m = parse(wire())
    for edit in (m.add_header, m.prepend_header, m.set_header):
        with pytest.raises(ParseError):
            edit("Bad:Name", "x")
    assert bytes(m) == wire()


# ---------------------------------------------------------------------------------------
# Reason phrases
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (100, "Trying"),
        (180, "Ringing"),
        (200, "OK"),
        (302, "Moved Temporarily"),
        (401, "Unauthorized"),
        (407, "Proxy Authentication Required"),
        (416, "Unsupported URI Scheme"),
        (420, "Bad Extension"),
        (481, "Call/Transaction Does Not Exist"),
        (486, "Busy Here"),
        (505, "Version Not Supported"),
        (513, "Message Too Large"),
        (603, "Decline"),
    ],
)
def test_reason_phrases(code: int, phrase: str) -> None:
    assert reason_phrase(code) == phrase
    assert REASON_PHRASES[code] == phrase


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        *((199, "Early Dialog Terminated"), (155, "Trying"), (299, "OK"), (399, "Redirected")),
        *((499, "Request Failure"), (599, "Server Failure"), (699, "Global Failure")),
    ],
)
def test_reason_phrase_of_unknown_codes_is_the_class_phrase(code: int, phrase: str) -> None:
    assert reason_phrase(code) == phrase
