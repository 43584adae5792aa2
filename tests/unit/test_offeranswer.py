"""RFC 3264 offer/answer on the SDP model: offers, answers (codec intersection, payload types
kept, rejected streams at port 0, directions), negotiation results, and re-offers that keep
the o= line with the version counted up (§8). Every description goes through its wire form
and back, as a peer would read it."""

from __future__ import annotations

import pytest

from sipstack.offeranswer import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    NotAcceptable,
    SdpSession,
    create_answer,
    create_offer,
    negotiate,
    next_version,
    reverse_direction,
)
from sipstack.sdp import SessionDescription


def wire(sd: SessionDescription) -> SessionDescription:
    return SessionDescription.parse(bytes(sd))


def sdp(*media: str, c: str = "IN IP4 192.0.2.9") -> SessionDescription:
    lines = ["v=0", "o=peer 7 7 IN IP4 192.0.2.9", "s=-", f"c={c}", "t=0 0", *media]
    return SessionDescription.parse("\r\n".join(lines) + "\r\n")


def test_offer_lists_pcmu_pcma_and_telephone_event() -> None:
    offer = wire(create_offer("192.0.2.1", 49170))
    (audio,) = offer.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        49170,
        "RTP/AVP",
        ["0", "8", "101"],
    )
    assert audio.get_attributes("rtpmap") == ["0 PCMU/8000", "8 PCMA/8000", "101 telephone-event/8000"]
    assert audio.get_attributes("fmtp") == ["101 0-16"]
    assert offer.connection is not None and offer.connection.host == "192.0.2.1"
    assert offer.direction(audio) == "sendrecv"
    assert offer.origin.addrtype == "IP4"
    assert wire(create_offer("::1", 4000)).origin.addrtype == "IP6"


def test_answer_intersects_codecs_and_keeps_the_offer_payload_types() -> None:
    offer = sdp(
        "m=audio 5004 RTP/AVP 8 96 0 97",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:97 telephone-event/8000",
        "a=fmtp:97 0-15",
    )
    answer = wire(create_answer(offer, "192.0.2.2", 6000))
    (audio,) = answer.media
    # Offer order; PT 97 for telephone-event (§6.1: the offer's number), opus not ours.
    assert audio.formats == ["8", "0", "97"]
    assert "97 telephone-event/8000" in audio.get_attributes("rtpmap")
    assert audio.get_attributes("fmtp") == ["97 0-15"]
    assert audio.port == 6000
    streams = negotiate(offer, answer)
    assert streams[0].accepted and [c.name for c in streams[0].codecs] == ["PCMA", "PCMU"]
    assert streams[0].telephone_event is not None and streams[0].telephone_event.payload_type == 97
    assert streams[0].remote_address == "192.0.2.2" and streams[0].remote_port == 6000


def test_static_payload_types_without_rtpmap_are_understood() -> None:
    answer = wire(create_answer(sdp("m=audio 5004 RTP/AVP 18 0"), "192.0.2.2", 6000, codecs=[PCMU]))
    assert answer.media[0].formats == ["0"]


def test_rejected_streams_get_port_zero_and_keep_a_format() -> None:
    offer = sdp(
        "m=video 5006 RTP/AVP 31",
        "m=audio 5004 RTP/AVP 0",
        "m=audio 5008 RTP/AVP 0",
        "m=audio 5010 RTP/SAVP 0",
        "m=audio 0 RTP/AVP 0",
    )
    answer = wire(create_answer(offer, "192.0.2.2", 6000))
    ports = [(m.media, m.port, m.formats) for m in answer.media]
    assert ports == [
        ("video", 0, ["31"]),
        ("audio", 6000, ["0"]),
        ("audio", 0, ["0"]),  # one RTP port: one audio stream
        ("audio", 0, ["0"]),  # SRTP not offered by us
        ("audio", 0, ["0"]),  # disabled in the offer
    ]
    streams = negotiate(answer, offer)
    assert [s.accepted for s in streams] == [False, True, False, False, False]


def test_no_common_codec_is_not_acceptable_488() -> None:
    offer = sdp(
        "m=audio 5004 RTP/AVP 96 101", "a=rtpmap:96 opus/48000/2", "a=rtpmap:101 telephone-event/8000"
    )
    with pytest.raises(NotAcceptable) as info:
        create_answer(offer, "192.0.2.2", 6000)
    assert info.value.status_code == 488


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "recvonly", "recvonly"),
        ("sendonly", "sendonly", "inactive"),
    ],
)
def test_answer_direction(offered: str, wanted: str, expected: str) -> None:
    offer = sdp("m=audio 5004 RTP/AVP 0", f"a={offered}")
    answer = wire(create_answer(offer, "192.0.2.2", 6000, direction=wanted))
    assert answer.direction(answer.media[0]) == expected
    # Both sides see the same agreement, each from its own end.
    (theirs,) = negotiate(offer, answer)
    (ours,) = negotiate(answer, offer)
    assert ours.direction == expected
    assert theirs.direction == reverse_direction(expected)


def test_session_round_trip_and_reoffer_versions() -> None:
    alice = SdpSession("192.0.2.1", 49170)
    bob = SdpSession("192.0.2.2", 51372, codecs=[PCMA, TELEPHONE_EVENT])
    offer = wire(alice.create_offer())
    answer = wire(bob.create_answer(offer))
    streams = alice.receive_answer(answer)
    assert [c.name for c in streams[0].codecs] == ["PCMA"]
    assert streams[0].remote_port == 51372 and streams[0].direction == "sendrecv"
    assert [c.name for c in bob.streams[0].codecs] == ["PCMA"]

    # Hold (§8.4): same o= line, version + 1, sendonly; the answer is recvonly.
    hold = wire(alice.create_offer(direction="sendonly"))
    assert hold.origin.sess_id == offer.origin.sess_id
    assert hold.origin.sess_version == offer.origin.sess_version + 1
    assert hold.origin.username == offer.origin.username
    hold_answer = wire(bob.create_answer(hold))
    assert hold_answer.direction(hold_answer.media[0]) == "recvonly"
    assert hold_answer.origin.sess_id == answer.origin.sess_id
    # Bob's answer did not change but its direction: a new version of Bob's description.
    assert hold_answer.origin.sess_version == answer.origin.sess_version + 1
    alice.receive_answer(hold_answer)
    assert alice.streams[0].direction == "sendonly"

    # An unchanged re-offer keeps its version (§8: same version, identical description).
    same = wire(alice.create_offer())
    assert same.origin.sess_version == hold.origin.sess_version
    assert bytes(same) == bytes(hold)


def test_reoffer_keeps_every_m_line_in_place() -> None:
    """§8.1: after answering an offer with video first, our re-offer keeps both lines."""
    bob = SdpSession("192.0.2.2", 6000)
    bob.create_answer(sdp("m=video 5006 RTP/AVP 31", "m=audio 5004 RTP/AVP 0"))
    reoffer = wire(bob.create_offer())
    assert [(m.media, m.port) for m in reoffer.media] == [("video", 0), ("audio", 6000)]


def test_answer_without_offer_and_mismatched_answers_are_refused() -> None:
    alice = SdpSession("192.0.2.1", 49170)
    with pytest.raises(NotAcceptable):
        alice.receive_answer(create_offer("192.0.2.2", 1))
    alice.create_offer()
    two_lines = sdp("m=audio 1 RTP/AVP 0", "m=audio 2 RTP/AVP 0")
    with pytest.raises(NotAcceptable):
        alice.receive_answer(two_lines)


def test_next_version() -> None:
    first = create_offer("192.0.2.1", 1000, session_id=5, session_version=9)
    changed = create_offer("192.0.2.1", 2000)
    second = next_version(first, changed)
    assert (second.origin.sess_id, second.origin.sess_version) == (5, 10)
    assert second.media[0].port == 2000
    assert next_version(first).origin.sess_version == 10


def test_codec_matching_rules() -> None:
    opus = Codec("opus", 48000, 111, channels=2)
    assert opus.matches("OPUS", 48000, 2) and not opus.matches("opus", 48000, 1)
    assert PCMU.matches("pcmu", 8000, None) and not PCMU.matches("PCMU", 16000, None)
    offer = sdp("m=audio 5004 RTP/AVP 100", "a=rtpmap:100 opus/48000/2")
    answer = wire(create_answer(offer, "192.0.2.2", 6000, codecs=[opus]))
    assert answer.media[0].get_attributes("rtpmap") == ["100 opus/48000/2"]
