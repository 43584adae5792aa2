"""StreamParser: framing SIP on a byte stream by Content-Length (RFC 3261 §18.3), CRLFs
before a start line (§7.5), RFC 5626 §3.5.1 keep-alives (client ping CRLF CRLF, server
pong CRLF), size limits (413) and malformed-but-framed messages."""

from __future__ import annotations

from typing import Any

import pytest

from sipstack.message import Malformed, ParseError, Ping, Pong, Request, Response, StreamParser, parse


def request(method: str = "INVITE", *, body: bytes = b"", branch: str = "z9hG4bK1", extra: str = "") -> bytes:
    head = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP pc33.atlanta.example.com;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response(code: int = 200, *, body: bytes = b"") -> bytes:
    head = (
        f"SIP/2.0 {code} Whatever\r\n"
        "Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK1\r\n"
        "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        f"l: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


SDP = b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\n\r\nc=IN IP4 192.0.2.101\r\n"
BAD_VIA = request(extra="").replace(b"Via: SIP/2.0/TCP pc33", b"Via: garbage pc33")


def summary(events: list[Any]) -> list[tuple[Any, ...]]:
    """Events in a comparable form (a Malformed holds an exception, compared by identity)."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, (Request, Response)):
            out.append((type(e).__name__, bytes(e)))
        elif isinstance(e, Malformed):
            out.append(("Malformed", e.data, e.error.status_code))
        else:
            out.append((type(e).__name__,))
    return out


def feed_all(chunks: list[bytes], **kwargs: Any) -> list[tuple[Any, ...]]:
    parser = StreamParser(**kwargs)
    events: list[Any] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return summary(events)


def one_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ---------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------


def test_one_message() -> None:
    parser = StreamParser()
    data = request(body=SDP)
    events = parser.feed(data)
    assert len(events) == 1
    m = events[0]
    assert isinstance(m, Request)
    assert m == parse(data)
    assert m.body == SDP
    assert bytes(m) == data
    assert parser.buffered == 0


def test_fed_one_byte_at_a_time() -> None:
    data = request(body=SDP)
    parser = StreamParser()
    for i in range(len(data) - 1):
        assert parser.feed(data[i : i + 1]) == []
        assert parser.buffered == i + 1
    (m,) = parser.feed(data[-1:])
    assert isinstance(m, Request)
    assert m.body == SDP
    assert parser.buffered == 0


STREAM = (
    request(body=SDP) + b"\r\n\r\n" + response(180) + request("BYE", branch="z9hG4bK2") + response(body=b"x")
)
STREAM_EVENTS = [
    ("Request", request(body=SDP)),
    ("Ping",),
    ("Response", response(180)),
    ("Request", request("BYE", branch="z9hG4bK2")),
    ("Response", response(body=b"x")),
]


def test_several_messages_in_one_feed() -> None:
    assert feed_all([STREAM]) == STREAM_EVENTS


def test_split_at_every_byte_boundary() -> None:
    for i in range(len(STREAM) + 1):
        assert feed_all([STREAM[:i], STREAM[i:]]) == STREAM_EVENTS, i


def test_split_one_byte_at_a_time() -> None:
    assert feed_all(one_at_a_time(STREAM)) == STREAM_EVENTS


def test_split_in_three_places() -> None:
    n = len(STREAM)
    for i in range(0, n, 37):
        for j in range(i, n, 53):
            assert feed_all([STREAM[:i], STREAM[i:j], STREAM[j:]]) == STREAM_EVENTS


def test_body_containing_crlfcrlf() -> None:
    body = b"\r\n\r\nINVITE sip:x SIP/2.0\r\n\r\n\r\n"
    data = request("MESSAGE", body=body) + request("BYE")
    events = feed_all([data])
    assert [e[0] for e in events] == ["Request", "Request"]
    parser = StreamParser()
    first = parser.feed(data)[0]
    assert isinstance(first, Request)
    assert first.body == body
    assert feed_all(one_at_a_time(data)) == events


def test_compact_lower_case_and_folded_content_length() -> None:
    base = request(body=b"hello")
    for spelling in (b"l: 5", b"content-length:5", b"CONTENT-LENGTH \t:  5", b"Content-Length:\r\n 5"):
        data = base.replace(b"Content-Length: 5", spelling)
        (m,) = StreamParser().feed(data + request("BYE"))[:1]
        assert isinstance(m, Request)
        assert m.body == b"hello", spelling


def test_header_that_merely_ends_in_content_length_does_not_frame() -> None:
    data = request(body=b"hello", extra="X-Content-Length: 99\r\n")
    (m,) = StreamParser().feed(data)
    assert isinstance(m, Request)
    assert m.body == b"hello"


def test_missing_content_length_is_a_framing_error() -> None:
    data = request().replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(ParseError):
        StreamParser().feed(data)


def test_stray_cr_is_a_framing_error() -> None:
    with pytest.raises(ParseError):
        StreamParser().feed(b"\rINVITE")


# ---------------------------------------------------------------------------------------
# Keep-alives (RFC 5626 §3.5.1) and CRLFs before a start line (RFC 3261 §7.5)
# ---------------------------------------------------------------------------------------


def test_ping_between_messages_on_the_server() -> None:
    data = request() + b"\r\n\r\n" + request("BYE") + b"\r\n\r\n\r\n\r\n"
    expected = [("Request", request()), ("Ping",), ("Request", request("BYE")), ("Ping",), ("Ping",)]
    assert feed_all([data]) == expected
    assert feed_all(one_at_a_time(data)) == expected


def test_lone_ping_waits_for_its_fourth_byte() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [Ping()]
    assert parser.buffered == 0


def test_crlf_before_a_start_line_is_ignored_on_the_server() -> None:
    for prefix in (b"\r\n", b"\r\n\r\n\r\n"):
        data = prefix + request()
        events = feed_all([data])
        assert events[-1] == ("Request", request())
        assert all(e == ("Ping",) for e in events[:-1])
        assert feed_all(one_at_a_time(data)) == events
    assert feed_all([b"\r\n", request()]) == [("Request", request())]


def test_pong_on_the_client() -> None:
    data = response() + b"\r\n" + response(180)
    expected = [("Response", response()), ("Pong",), ("Response", response(180))]
    assert feed_all([data], client=True) == expected
    assert feed_all(one_at_a_time(data), client=True) == expected
    parser = StreamParser(client=True)
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [Pong()]
    assert parser.buffered == 0


def test_server_does_not_report_a_lone_crlf_as_pong() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r\n") == []
    (m,) = parser.feed(request())
    assert isinstance(m, Request)


def test_client_events_do_not_depend_on_segmentation() -> None:
    data = b"\r\n\r\n" + response()
    expected = [("Pong",), ("Pong",), ("Response", response())]
    assert feed_all(one_at_a_time(data), client=True) == expected
    assert feed_all([data], client=True) == expected


# ---------------------------------------------------------------------------------------
# Size limits (413)
# ---------------------------------------------------------------------------------------


def test_headers_without_end_over_max_size_is_413() -> None:
    parser = StreamParser(max_size=1000)
    assert parser.feed(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nX-Long: ") == []
    assert parser.feed(b"a" * 900) == []
    with pytest.raises(ParseError) as info:
        parser.feed(b"a" * 200)
    assert info.value.status_code == 413


def test_big_content_length_is_413_before_the_body_arrives() -> None:
    data = request().replace(b"Content-Length: 0", b"Content-Length: 100000")
    with pytest.raises(ParseError) as info:
        StreamParser(max_size=65535).feed(data)
    assert info.value.status_code == 413
    huge = request().replace(b"Content-Length: 0", b"Content-Length: 99999999999999999999999")
    with pytest.raises(ParseError) as info:
        StreamParser().feed(huge)
    assert info.value.status_code == 413


def test_message_of_exactly_max_size_is_accepted() -> None:
    data = request(body=b"x" * 100)
    (m,) = StreamParser(max_size=len(data)).feed(data)
    assert isinstance(m, Request)
    with pytest.raises(ParseError) as info:
        StreamParser(max_size=len(data) - 1).feed(data)
    assert info.value.status_code == 413


# ---------------------------------------------------------------------------------------
# Malformed but well framed: report and go on
# ---------------------------------------------------------------------------------------


def test_malformed_message_then_a_good_one() -> None:
    data = BAD_VIA + request("BYE")
    events = StreamParser().feed(data)
    assert len(events) == 2
    bad, good = events
    assert isinstance(bad, Malformed)
    assert isinstance(bad.error, ParseError)
    assert bad.error.status_code == 400
    assert bad.data == BAD_VIA
    assert isinstance(good, Request)
    assert good.method == "BYE"
    assert feed_all(one_at_a_time(data)) == summary(events)


def test_malformed_carries_the_status_code() -> None:
    v3 = request().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    (bad,) = StreamParser().feed(v3)
    assert isinstance(bad, Malformed)
    assert bad.error.status_code == 505


def test_strict_flag_is_passed_to_parse() -> None:
    data = request(extra="Contact: <sip:alice@pc33.atlanta.example.com\r\n")
    (strict,) = StreamParser().feed(data)
    assert isinstance(strict, Malformed)
    (lenient,) = StreamParser(strict=False).feed(data)
    assert isinstance(lenient, Request)
    assert bytes(lenient) == data


def test_content_length_beyond_the_frame_waits_for_more() -> None:
    data = request(body=b"hello")
    parser = StreamParser()
    assert parser.feed(data[:-1]) == []
    assert parser.buffered == len(data) - 1
    (m,) = parser.feed(data[-1:])
    assert isinstance(m, Request)


def test_content_length_with_leading_zeros_frames_its_value() -> None:
    data = request(body=b"hello").replace(b"Content-Length: 5", b"Content-Length: 0000000000005")
    events = StreamParser().feed(data + request("BYE"))
    assert [e[0] for e in summary(events)] == ["Request", "Request"]
