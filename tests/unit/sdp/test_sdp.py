"""Tests of sipstack.sdp: RFC 8866 parsing and serialisation, and the typed helpers."""

from __future__ import annotations

import ast
import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sipstack.sdp as sdp_module
from sipstack.errors import ParseError
from sipstack.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Fingerprint,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
    parse_fingerprint,
    parse_rtpmap,
    parse_sdp,
)


def crlf(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


AV_OFFER = crlf(
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com",
    "s=-",
    "c=IN IP4 192.0.2.101",
    "b=AS:512",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 8 97 101",
    "b=TIAS:64000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:97 opus/48000/2",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=sendrecv",
    "m=video 51372 RTP/AVP 31 32",
    "a=rtpmap:31 H261/90000",
    "a=rtpmap:32 MPV/90000",
    "a=recvonly",
)

RFC8866_EXAMPLE = crlf(
    "v=0",
    "o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1",
    "s=Call to John Smith",
    "i=SDP Offer #1",
    "u=http://www.jdoe.example.com/home.html",
    "e=Jane Doe <jane@jdoe.example.com>",
    "p=+1 617 555-6011",
    "c=IN IP4 198.51.100.1",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0",
    "m=audio 49180 RTP/AVP 0",
    "m=video 51372 RTP/AVP 99",
    "c=IN IP6 2001:db8::2",
    "a=rtpmap:99 h263-1998/90000",
)

FP1 = "sha-256 " + ":".join(f"{i:02X}" for i in range(32))
FP2 = "sha-256 " + ":".join(f"{255 - i:02X}" for i in range(32))

WEBRTC_OFFER = crlf(
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1 2",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS stream1",
    f"a=fingerprint:{FP1}",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:1 1 udp 2122260223 192.0.2.5 54400 typ host generation 0",
    "a=ice-ufrag:F7gI",
    "a=ice-pwd:x9cml/YzichV2+XlhiMu8g",
    "a=ice-options:trickle",
    "a=setup:actpass",
    "a=mid:0",
    "a=sendrecv",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:0 PCMU/8000",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:F7gI",
    "a=ice-pwd:x9cml/YzichV2+XlhiMu8g",
    f"a=fingerprint:{FP2}",
    "a=setup:active",
    "a=mid:1",
    "a=sendonly",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 nack pli",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=mid:2",
    "a=sctp-port:5000",
)


# -- realistic descriptions ---------------------------------------------------------


def test_audio_video_offer() -> None:
    sd = SessionDescription.parse(AV_OFFER)
    assert sd.version == 0
    assert sd.origin == Origin("alice", 2890844526, 2890844526, "IN", "IP4", "host.atlanta.example.com")
    assert sd.session_name == "-"
    assert sd.connection == Connection("IN", "IP4", "192.0.2.101")
    assert sd.bandwidths == [Bandwidth("AS", 512)]
    assert sd.times == [Timing(0, 0, [])]
    assert [m.media for m in sd.media] == ["audio", "video"]
    audio, video = sd.media
    assert (audio.port, audio.port_count, audio.proto) == (49170, None, "RTP/AVP")
    assert audio.formats == ["0", "8", "97", "101"]
    assert audio.bandwidths == [Bandwidth("TIAS", 64000)]
    assert audio.get_attribute("ptime") == "20"
    assert audio.get_attributes("fmtp") == ["101 0-15"]
    assert audio.rtpmaps() == [
        RtpMap(0, "PCMU", 8000, None),
        RtpMap(8, "PCMA", 8000, None),
        RtpMap(97, "opus", 48000, 2),
        RtpMap(101, "telephone-event", 8000, None),
    ]
    assert audio.rtpmap(97) == (97, "opus", 48000, 2)
    assert audio.rtpmap(3) is None
    assert audio.direction == "sendrecv"
    assert video.direction == "recvonly"
    assert sd.direction(video) == "recvonly"
    assert video.connections == []
    assert bytes(sd) == AV_OFFER
    assert str(sd) == AV_OFFER.decode()


def test_rfc8866_example() -> None:
    sd = parse_sdp(RFC8866_EXAMPLE)
    assert sd.information == "SDP Offer #1"
    assert sd.uri == "http://www.jdoe.example.com/home.html"
    assert sd.emails == ["Jane Doe <jane@jdoe.example.com>"]
    assert sd.phones == ["+1 617 555-6011"]
    assert len(sd.media) == 3
    video = sd.media[2]
    assert video.connections == [Connection("IN", "IP6", "2001:db8::2")]
    assert video.connections[0].host == "2001:db8::2"
    assert video.connections[0].count is None
    assert video.rtpmap(99) == RtpMap(99, "h263-1998", 90000, None)
    assert bytes(sd) == RFC8866_EXAMPLE


def test_webrtc_offer() -> None:
    sd = parse_sdp(WEBRTC_OFFER)
    assert sd.get_attribute("group") == "BUNDLE 0 1 2"
    assert sd.get_attribute("extmap-allow-mixed") == ""
    assert sd.get_attribute("msid-semantic") == " WMS stream1"
    audio, video, data = sd.media
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.get_attribute("ice-ufrag") == "F7gI"
    assert audio.get_attribute("ice-pwd") == "x9cml/YzichV2+XlhiMu8g"
    assert audio.get_attribute("rtcp-mux") == ""
    assert audio.get_attributes("candidate") == ["1 1 udp 2122260223 192.0.2.5 54400 typ host generation 0"]
    assert audio.setup == "actpass"
    assert sd.setup(audio) == "actpass"
    assert sd.setup(video) == "active"
    assert sd.setup(data) is None
    assert sd.setup() is None
    assert sd.direction(video) == "sendonly"
    assert sd.direction(data) == "sendrecv"
    assert data.proto == "UDP/DTLS/SCTP"
    assert data.formats == ["webrtc-datachannel"]
    assert data.get_attribute("sctp-port") == "5000"
    assert bytes(sd) == WEBRTC_OFFER


def test_media_level_fingerprint_overrides_session_level() -> None:
    sd = parse_sdp(WEBRTC_OFFER)
    audio, video, data = sd.media
    session_fp = Fingerprint("sha-256", FP1.split()[1])
    assert sd.fingerprints() == [session_fp]
    assert sd.fingerprints(audio) == [session_fp]  # none of its own: inherits
    assert sd.fingerprints(video) == [Fingerprint("sha-256", FP2.split()[1])]
    assert video.fingerprints == [Fingerprint("sha-256", FP2.split()[1])]
    assert audio.fingerprints == []
    assert sd.fingerprints(data) == [session_fp]


def test_multiple_media_fingerprints_and_normalisation() -> None:
    m = MediaDescription("audio", 9, "UDP/TLS/RTP/SAVP", ["0"])
    m.add_attribute("fingerprint", "SHA-1 4a:ad:b9:b1:3f:82:18:3b:54:02:12:df:3e:5d:49:6b:19:e5:7c:ab")
    m.add_attribute("fingerprint", "sha-256 AB:CD")
    sd = SessionDescription(connection=Connection("IN", "IP4", "192.0.2.1"), media=[m])
    assert sd.fingerprints(m) == [
        Fingerprint("sha-1", "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"),
        Fingerprint("sha-256", "AB:CD"),
    ]
    assert sd.fingerprints() == []
    assert str(parse_fingerprint("sha-256 ab")) == "sha-256 AB"


@pytest.mark.parametrize(
    "value",
    [
        "sha-256",
        "sha-256 ",
        "sha-256 A",
        "sha-256 ABC",
        "sha-256 AB:",
        "sha-256 :AB",
        "sha-256 AB::CD",
        "sha-256 AB-CD",
        "sha-256 GG",
        "sha-256 AB CD",
        "sha(256) AB",
        "",
    ],
)
def test_malformed_fingerprint(value: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_fingerprint(value)
    assert exc.value.status_code == 400
    sd = SessionDescription(attributes=[Attribute("fingerprint", value)])
    with pytest.raises(ParseError):
        sd.fingerprints()


def test_setup_roles() -> None:
    sd = SessionDescription(connection=Connection("IN", "IP4", "192.0.2.1"))
    sd.add_attribute("setup", "passive")
    m = MediaDescription("audio", 9, "UDP/TLS/RTP/SAVP", ["0"])
    sd.media.append(m)
    assert m.setup is None
    assert sd.setup(m) == "passive"
    m.add_attribute("setup", "HoldConn")
    assert sd.setup(m) == "holdconn"
    m.remove_attributes("setup")
    m.add_attribute("setup", "sideways")
    with pytest.raises(ParseError):
        sd.setup(m)
    m.remove_attributes("setup")
    m.add_attribute("setup")
    with pytest.raises(ParseError):
        _ = m.setup


def test_direction_fallback_and_default() -> None:
    sd = SessionDescription(connection=Connection("IN", "IP4", "192.0.2.1"))
    m = MediaDescription("audio", 49170, "RTP/AVP", ["0"])
    sd.media.append(m)
    assert m.direction is None
    assert sd.direction(m) == "sendrecv"
    assert sd.direction() == "sendrecv"
    sd.add_attribute("inactive")
    assert sd.direction(m) == "inactive"
    m.add_attribute("sendonly")
    assert sd.direction(m) == "sendonly"


def test_rtpmap_parsing() -> None:
    assert parse_rtpmap("0 PCMU/8000") == RtpMap(0, "PCMU", 8000, None)
    assert parse_rtpmap("111 opus/48000/2") == RtpMap(111, "opus", 48000, 2)
    for bad in ["", "x PCMU/8000", "0 PCMU", "0 PCMU/x", "0 /8000", "128 PCMU/8000", "0 a/1/2/3", "0 a/1/b"]:
        with pytest.raises(ParseError):
            parse_rtpmap(bad)


# -- time descriptions, connection data, bandwidth ----------------------------------


def test_multiple_time_descriptions_with_repeats_and_zone() -> None:
    data = crlf(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=Seminar",
        "c=IN IP4 224.2.17.12/127",
        "t=3034423619 3042462419",
        "r=7d 1h 0 25h",
        "r=604800 3600 0 90000",
        "t=3050000000 3060000000",
        "t=3070000000 3080000000",
        "r=1d 2h 0",
        "z=2882844526 -1h 2898848070 0",
        "a=recvonly",
        "m=audio 3456 RTP/AVP 0",
    )
    sd = parse_sdp(data)
    assert sd.times == [
        Timing(3034423619, 3042462419, ["7d 1h 0 25h", "604800 3600 0 90000"]),
        Timing(3050000000, 3060000000, []),
        Timing(3070000000, 3080000000, ["1d 2h 0"]),
    ]
    assert sd.zone == "2882844526 -1h 2898848070 0"
    assert bytes(sd) == data


def test_zone_after_plain_time_line_is_accepted() -> None:
    data = crlf("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "z=2882844526 -1h")
    assert parse_sdp(data).zone == "2882844526 -1h"


def test_connection_ttl_and_count() -> None:
    data = crlf(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 224.2.1.1/127/3",
        "t=0 0",
        "m=video 49170/2 RTP/AVP 31",
        "c=IN IP6 FF15::101/3",
        "c=IN IP4 224.2.1.1/127",
    )
    sd = parse_sdp(data)
    c = sd.connection
    assert c is not None
    assert (c.address, c.host, c.ttl, c.count) == ("224.2.1.1/127/3", "224.2.1.1", 127, 3)
    m = sd.media[0]
    assert (m.port, m.port_count) == (49170, 2)
    v6, v4 = m.connections
    assert (v6.address, v6.host, v6.ttl, v6.count) == ("FF15::101/3", "FF15::101", None, 3)
    assert (v4.host, v4.ttl, v4.count) == ("224.2.1.1", 127, None)
    assert bytes(sd) == data


def test_connection_ipv6_unicast_and_other_address_types() -> None:
    data = crlf("v=0", "o=- 1 1 IN IP6 2001:db8::1", "s=-", "c=IN IP6 2001:db8::1", "t=0 0")
    sd = parse_sdp(data)
    assert sd.origin.addrtype == "IP6"
    assert sd.connection == Connection("IN", "IP6", "2001:db8::1")
    assert sd.connection.ttl is None
    # An address type this module does not know keeps its address opaque.
    other = Connection("ATM", "NSAP", "47.0091/8100")
    assert (other.host, other.ttl, other.count) == ("47.0091/8100", None, None)


def test_bandwidth_lines() -> None:
    data = crlf(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "b=CT:1000",
        "b=AS:800",
        "t=0 0",
        "m=video 5000 RTP/AVP 96",
        "b=AS:500",
        "b=TIAS:480000",
        "b=X-YZ:1",
        "a=rtpmap:96 H264/90000",
    )
    sd = parse_sdp(data)
    assert sd.bandwidths == [Bandwidth("CT", 1000), Bandwidth("AS", 800)]
    assert sd.media[0].bandwidths == [Bandwidth("AS", 500), Bandwidth("TIAS", 480000), Bandwidth("X-YZ", 1)]
    assert bytes(sd) == data


# -- line endings, input types ------------------------------------------------------


def test_lf_only_input() -> None:
    lf = AV_OFFER.replace(b"\r\n", b"\n")
    sd = parse_sdp(lf)
    assert sd == parse_sdp(AV_OFFER)
    assert bytes(sd) == AV_OFFER  # written back with CRLF


def test_mixed_line_endings_and_missing_final_newline() -> None:
    data = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\nt=0 0"
    assert parse_sdp(data).times == [Timing(0, 0)]


def test_trailing_blank_lines_are_ignored() -> None:
    assert parse_sdp(AV_OFFER + b"\r\n\r\n") == parse_sdp(AV_OFFER)


def test_str_and_bytearray_input() -> None:
    assert parse_sdp(AV_OFFER.decode()) == parse_sdp(bytearray(AV_OFFER)) == parse_sdp(AV_OFFER)


def test_utf8_text_fields() -> None:
    data = crlf("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=Réunion 会議", "i=ünïcode", "t=0 0")
    sd = parse_sdp(data)
    assert sd.session_name == "Réunion 会議"
    assert bytes(sd) == data


def test_non_bytes_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_sdp(42)  # type: ignore[arg-type]


# -- building and serialising -------------------------------------------------------


def test_build_and_serialise_in_rfc_order() -> None:
    sd = SessionDescription(
        origin=Origin("bob", 7, 8, "IN", "IP4", "192.0.2.2"),
        session_name="Talk",
        information="info",
        uri="https://example.com/",
        emails=["bob@example.com"],
        phones=["+1 555 0100"],
        connection=Connection("IN", "IP4", "192.0.2.2"),
        bandwidths=[Bandwidth("AS", 64)],
        times=[Timing(0, 0, ["7d 1h 0"])],
        zone="2882844526 -1h",
        key="prompt",
        attributes=[Attribute("tool", "sipstack"), Attribute("recvonly")],
        media=[
            MediaDescription(
                "audio",
                4000,
                "RTP/AVP",
                ["0", "101"],
                port_count=2,
                information="voice",
                connections=[Connection("IN", "IP4", "192.0.2.3")],
                bandwidths=[Bandwidth("TIAS", 64000)],
                key="clear:secret",
                attributes=[Attribute("rtpmap", "101 telephone-event/8000")],
            )
        ],
    )
    assert str(sd) == "\r\n".join(
        [
            "v=0",
            "o=bob 7 8 IN IP4 192.0.2.2",
            "s=Talk",
            "i=info",
            "u=https://example.com/",
            "e=bob@example.com",
            "p=+1 555 0100",
            "c=IN IP4 192.0.2.2",
            "b=AS:64",
            "t=0 0",
            "r=7d 1h 0",
            "z=2882844526 -1h",
            "k=prompt",
            "a=tool:sipstack",
            "a=recvonly",
            "m=audio 4000/2 RTP/AVP 0 101",
            "i=voice",
            "c=IN IP4 192.0.2.3",
            "b=TIAS:64000",
            "k=clear:secret",
            "a=rtpmap:101 telephone-event/8000",
            "",
        ]
    )
    assert parse_sdp(bytes(sd)) == sd


def test_default_session_description_is_valid() -> None:
    sd = SessionDescription()
    assert parse_sdp(bytes(sd)) == sd
    assert bytes(sd) == b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def test_serialising_a_field_with_a_line_break_is_refused() -> None:
    for sd in [
        SessionDescription(session_name="x\r\na=injected"),
        SessionDescription(attributes=[Attribute("tool", "a\nb")]),
        SessionDescription(information="a\rb"),
        SessionDescription(information="a\x00b"),
    ]:
        with pytest.raises(ValueError):
            str(sd)


def test_attribute_helpers() -> None:
    sd = parse_sdp(AV_OFFER)
    audio = sd.media[0]
    assert audio.get_attribute("rtpmap") == "0 PCMU/8000"
    assert audio.get_attribute("RTPMAP") == "0 PCMU/8000"
    assert audio.get_attribute("nope") is None
    assert audio.get_attributes("nope") == []
    assert audio.get_attribute("sendrecv") == ""
    audio.add_attribute("ptime", "30")
    assert audio.get_attributes("ptime") == ["20", "30"]
    audio.add_attribute("rtcp-mux")
    assert audio.attributes[-1] == Attribute("rtcp-mux", None)
    audio.remove_attributes("ptime")
    assert audio.get_attribute("ptime") is None
    sd.add_attribute("tool", "x")
    assert sd.get_attribute("tool") == "x"
    sd.remove_attributes("tool")
    assert sd.attributes == []
    reparsed = parse_sdp(bytes(sd))
    assert reparsed == sd
    assert reparsed.media[0].attributes[-1] == Attribute("rtcp-mux", None)


def test_empty_attribute_value_is_kept_apart_from_a_property() -> None:
    sd = parse_sdp(crlf("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "a=foo:", "a=bar"))
    assert sd.attributes == [Attribute("foo", ""), Attribute("bar", None)]
    assert parse_sdp(bytes(sd)) == sd


def test_empty_session_name_is_tolerated() -> None:
    sd = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\r\nt=0 0\r\n")
    assert sd.session_name == ""


def test_runs_of_spaces_between_fields_are_tolerated() -> None:
    sd = parse_sdp(
        crlf(
            "v=0",
            "o=-  1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4  192.0.2.1",
            "t=0  0",
            "m=audio 4000 RTP/AVP 0 ",
        )
    )
    assert sd.origin.sess_id == 1
    assert sd.media[0].formats == ["0"]


# -- malformed input ----------------------------------------------------------------

V = "v=0"
OL = "o=- 1 1 IN IP4 192.0.2.1"
S = "s=-"
C = "c=IN IP4 192.0.2.1"
T = "t=0 0"
M = "m=audio 4000 RTP/AVP 0"

MALFORMED: list[tuple[str, list[str]]] = [
    ("missing v", [OL, S, T]),
    ("missing o", [V, S, T]),
    ("missing s", [V, OL, T]),
    ("missing t", [V, OL, S]),
    ("missing t before m", [V, OL, S, C, M]),
    ("version 1", ["v=1", OL, S, T]),
    ("version text", ["v=x", OL, S, T]),
    ("version empty", ["v=", OL, S, T]),
    ("o before v", [OL, V, S, T]),
    ("s before o", [V, S, OL, T]),
    ("duplicate v", [V, V, OL, S, T]),
    ("duplicate o", [V, OL, OL, S, T]),
    ("duplicate s", [V, OL, S, S, T]),
    ("duplicate session c", [V, OL, S, C, C, T]),
    ("duplicate i", [V, OL, S, "i=a", "i=b", T]),
    ("i before s", [V, OL, "i=x", S, T]),
    ("c after t", [V, OL, S, T, C]),
    ("b after t", [V, OL, S, T, "b=AS:1"]),
    ("a before t", [V, OL, S, "a=x", T]),
    ("t after a", [V, OL, S, T, "a=x", T]),
    ("r before t", [V, OL, S, "r=7d 1h 0", T]),
    ("r after a", [V, OL, S, T, "a=x", "r=7d 1h 0"]),
    ("r after z", [V, OL, S, T, "r=7d 1h 0", "z=1 -1h", "r=7d 1h 0"]),
    ("two z", [V, OL, S, T, "z=1 -1h", T, "z=2 1h"]),
    ("z before t", [V, OL, S, "z=1 -1h", T]),
    ("t in media", [V, OL, S, C, T, M, T]),
    ("v in media", [V, OL, S, C, T, M, V]),
    ("media a before c", [V, OL, S, C, T, M, "a=x", C]),
    ("media two i", [V, OL, S, C, T, M, "i=a", "i=b"]),
    ("unknown letter at session level", [V, OL, S, "x=1", T]),
    ("unknown letter after t", [V, OL, S, T, "q=something"]),
    ("unknown letter in media", [V, OL, S, C, T, M, "y=1"]),
    ("upper-case letter", [V, OL, S, "T=0 0"]),
    ("no equals", [V, OL, S, T, "garbage"]),
    ("space before equals", [V, OL, S, "t =0 0"]),
    ("blank line in the middle", [V, OL, "", S, T]),
    ("lone letter", [V, OL, S, T, "a"]),
    ("origin too few fields", [V, "o=- 1 1 IN IP4", S, T]),
    ("origin too many fields", [V, "o=- 1 1 IN IP4 a b", S, T]),
    ("origin sess-id not a number", [V, "o=- x 1 IN IP4 192.0.2.1", S, T]),
    ("origin sess-version negative", [V, "o=- 1 -1 IN IP4 192.0.2.1", S, T]),
    ("origin sess-id unicode digit", [V, "o=- ١ 1 IN IP4 192.0.2.1", S, T]),
    ("t one field", [V, OL, S, "t=0"]),
    ("t not numbers", [V, OL, S, "t=now later"]),
    ("t signed", [V, OL, S, "t=+1 0"]),
    ("r too short", [V, OL, S, T, "r=7d 1h"]),
    ("r bad unit", [V, OL, S, T, "r=7w 1h 0"]),
    ("z odd fields", [V, OL, S, T, "z=2882844526"]),
    ("z bad offset", [V, OL, S, T, "z=2882844526 -1x"]),
    ("c two fields", [V, OL, S, "c=IN IP4", T]),
    ("c bad ttl", [V, OL, S, "c=IN IP4 224.2.1.1/x", T]),
    ("c ttl too big", [V, OL, S, "c=IN IP4 224.2.1.1/256", T]),
    ("c too many slashes", [V, OL, S, "c=IN IP4 224.2.1.1/1/2/3", T]),
    ("c ip6 with ttl and count", [V, OL, S, "c=IN IP6 FF15::101/127/3", T]),
    ("c empty suffix", [V, OL, S, "c=IN IP4 224.2.1.1/", T]),
    ("c empty host", [V, OL, S, "c=IN IP4 /127", T]),
    ("b no colon", [V, OL, S, "b=AS", T]),
    ("b not a number", [V, OL, S, "b=AS:fast", T]),
    ("b negative", [V, OL, S, "b=AS:-1", T]),
    ("b empty type", [V, OL, S, "b=:64", T]),
    ("m too few fields", [V, OL, S, C, T, "m=audio 4000 RTP/AVP"]),
    ("m port not a number", [V, OL, S, C, T, "m=audio port RTP/AVP 0"]),
    ("m port too big", [V, OL, S, C, T, "m=audio 65536 RTP/AVP 0"]),
    ("m bad port count", [V, OL, S, C, T, "m=audio 4000/x RTP/AVP 0"]),
    ("m empty proto part", [V, OL, S, C, T, "m=audio 4000 RTP//AVP 0"]),
    ("m bad media token", [V, OL, S, C, T, "m=au:dio 4000 RTP/AVP 0"]),
    ("media without any c", [V, OL, S, T, M]),
    ("one media without c", [V, OL, S, T, M, C, M]),
    ("empty attribute", [V, OL, S, T, "a="]),
    ("attribute name not a token", [V, OL, S, T, "a=foo bar"]),
    ("attribute empty name", [V, OL, S, T, "a=:value"]),
    ("empty i", [V, OL, S, "i=", T]),
    ("empty e", [V, OL, S, "e=", T]),
    ("empty k", [V, OL, S, T, "k="]),
    ("empty media i", [V, OL, S, C, T, M, "i="]),
    ("NUL in a line", [V, OL, "s=a\x00b", T]),
    ("bare CR in a line", [V, OL, "s=a\rb", T]),
]


@pytest.mark.parametrize(("lines"), [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_is_a_400_parse_error(lines: list[str]) -> None:
    for data in [crlf(*lines), ("\n".join(lines) + "\n").encode()]:
        with pytest.raises(ParseError) as exc:
            parse_sdp(data)
        assert exc.value.status_code == 400
        assert exc.value.reason


def test_valid_neighbours_of_malformed_cases_parse() -> None:
    # Guards against the malformed table passing for the wrong reason.
    parse_sdp(crlf(V, OL, S, C, T, M))
    parse_sdp(crlf(V, OL, S, T, M, C))
    parse_sdp(crlf(V, OL, S, T, "r=7d 1h 0", "z=1 -1h", T, "a=x"))
    parse_sdp(
        crlf(V, OL, S, "i=a", "u=b", "e=c", "e=d", "p=e", "p=f", C, "b=AS:1", "b=CT:2", T, T, "k=g", "a=h")
    )
    parse_sdp(crlf(V, OL, S, T, M, "i=a", C, C, "b=AS:1", "b=CT:2", "k=x", "a=x", "a=y", M, C))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"\n\n\n",
        b"\xff\xfe\xfd",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\xc3\x28\r\nt=0 0\r\n",
        b"\xef\xbb\xbfv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n",
        b"\x00" * 64,
        b"=" * 10,
        b"v=0",
    ],
)
def test_garbage_is_a_400_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError) as exc:
        parse_sdp(data)
    assert exc.value.status_code == 400


def test_str_input_with_lone_surrogate_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_sdp("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\udc80\r\nt=0 0\r\n")


def _exercise(data: bytes) -> None:
    """Parse, use every helper and round-trip; only ParseError may come out."""
    try:
        sd = parse_sdp(data)
    except ParseError as exc:
        assert exc.status_code == 400
        return
    assert parse_sdp(bytes(sd)) == sd
    for media in [None, *sd.media]:
        for helper in (sd.fingerprints, sd.setup, sd.direction):
            with contextlib.suppress(ParseError):
                helper(media)
    for m in sd.media:
        with contextlib.suppress(ParseError):
            m.rtpmaps()
    for c in [sd.connection, *(c for m in sd.media for c in m.connections)]:
        if c is not None:
            assert (c.host, c.ttl, c.count) is not None


def test_random_garbage_bytes() -> None:
    rng = random.Random(8866)
    for _ in range(500):
        _exercise(rng.randbytes(rng.randrange(0, 200)))


def test_fuzz_mutations_only_raise_parse_error() -> None:
    rng = random.Random(20210119)
    seeds = [AV_OFFER, WEBRTC_OFFER, RFC8866_EXAMPLE]
    alphabet = b"=:/ \r\n0123456789avmtcbrzk-\x00\xff\xc3"
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                del data[min(pos, len(data) - 1)]
            elif op == 1:
                data.insert(pos, rng.choice(alphabet))
            elif op == 2 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            elif op == 3:
                del data[pos:]
            else:
                lines = bytes(data).split(b"\n")
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                if op == 4:
                    lines[i], lines[j] = lines[j], lines[i]
                else:
                    lines.insert(i, lines[j])
                data = bytearray(b"\n".join(lines))
        _exercise(bytes(data))


# -- round-trip property ------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz{|}~"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
non_ws = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16)
hosts = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/"),
    min_size=1,
    max_size=16,
)
text_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00\r\n")
texts = st.text(alphabet=text_chars, min_size=1, max_size=30)
maybe_texts = st.none() | texts
numbers = st.integers(min_value=0, max_value=2**64)
typed_time = st.builds(
    lambda n, u: f"{n}{u}", st.integers(0, 10**6), st.sampled_from(["", "d", "h", "m", "s"])
)
repeats = st.lists(typed_time, min_size=3, max_size=5).map(" ".join)
zones = st.lists(
    st.builds(lambda t, sign, off: f"{t} {sign}{off}", numbers, st.sampled_from(["", "-"]), typed_time),
    min_size=1,
    max_size=3,
).map(" ".join)
attributes = st.builds(Attribute, tokens, st.none() | st.text(alphabet=text_chars, max_size=30))
bandwidths = st.builds(Bandwidth, tokens, numbers)
timings = st.builds(Timing, numbers, numbers, st.lists(repeats, max_size=2))


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    addrtype = draw(st.sampled_from(["IP4", "IP6", "ip4", "X-ANY"]))
    host = draw(hosts)
    suffix = ""
    if addrtype.upper() == "IP4" and draw(st.booleans()):
        suffix = f"/{draw(st.integers(0, 255))}"
        if draw(st.booleans()):
            suffix += f"/{draw(st.integers(1, 1000))}"
    elif addrtype == "IP6" and draw(st.booleans()):
        suffix = f"/{draw(st.integers(1, 1000))}"
    return Connection(draw(tokens), addrtype, host + suffix)


@st.composite
def media_descriptions(draw: st.DrawFn, need_connection: bool) -> MediaDescription:
    return MediaDescription(
        media=draw(tokens),
        port=draw(st.integers(0, 65535)),
        proto=draw(st.lists(tokens, min_size=1, max_size=3).map("/".join)),
        formats=draw(st.lists(tokens, min_size=1, max_size=4)),
        port_count=draw(st.none() | st.integers(0, 100)),
        information=draw(maybe_texts),
        connections=draw(st.lists(connections(), min_size=1 if need_connection else 0, max_size=2)),
        bandwidths=draw(st.lists(bandwidths, max_size=2)),
        key=draw(maybe_texts),
        attributes=draw(st.lists(attributes, max_size=4)),
    )


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    connection = draw(st.none() | connections())
    return SessionDescription(
        origin=Origin(draw(non_ws), draw(numbers), draw(numbers), draw(tokens), draw(tokens), draw(non_ws)),
        session_name=draw(st.text(alphabet=text_chars, max_size=30)),
        information=draw(maybe_texts),
        uri=draw(maybe_texts),
        emails=draw(st.lists(texts, max_size=2)),
        phones=draw(st.lists(texts, max_size=2)),
        connection=connection,
        bandwidths=draw(st.lists(bandwidths, max_size=2)),
        times=draw(st.lists(timings, min_size=1, max_size=3)),
        zone=draw(st.none() | zones),
        key=draw(maybe_texts),
        attributes=draw(st.lists(attributes, max_size=4)),
        media=draw(st.lists(media_descriptions(need_connection=connection is None), max_size=3)),
    )


@settings(max_examples=200, deadline=None)
@given(session_descriptions())
def test_round_trip_property(sd: SessionDescription) -> None:
    data = bytes(sd)
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert parse_sdp(data) == sd
    assert parse_sdp(data.replace(b"\r\n", b"\n")) == sd


# -- module hygiene -----------------------------------------------------------------


def test_module_is_sans_io() -> None:
    assert sdp_module.__file__ is not None
    with open(sdp_module.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not imported & {"asyncio", "socket", "ssl", "selectors"}
    assert {m for m in imported if m.startswith("sipstack")} <= {"sipstack.errors"}
