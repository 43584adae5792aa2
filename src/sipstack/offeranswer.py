"""The SDP offer/answer model (RFC 3264) on :mod:`sipstack.sdp`, sans-I/O (floor 2).

Functions build descriptions; :class:`SdpSession` keeps one side's state across a call
(its origin line and version, RFC 3264 §8) so that re-offers and answers to re-offers come
out right::

    alice = SdpSession("192.0.2.1", 49170)
    offer = alice.create_offer()                      # m=audio 49170 RTP/AVP 0 8 101
    bob = SdpSession("192.0.2.2", 51372, codecs=[PCMA, TELEPHONE_EVENT])
    answer = bob.create_answer(offer)                 # m=audio 51372 RTP/AVP 8 101
    streams = alice.receive_answer(answer)            # [MediaStream(... codecs=[PCMA] ...)]
    hold = alice.create_offer(direction="sendonly")   # same o= line, version + 1

Decisions where the RFC leaves room:

* Codecs are matched by encoding name (case-insensitive), clock rate and channels; a static
  payload type without ``a=rtpmap`` means what RFC 3551's table says. The answer uses the
  offer's payload type numbers (RFC 3264 §6.1 SHOULD) and the offer's order.
* A stream is accepted only when an audio codec other than telephone-event (RFC 4733)
  matches; telephone-event alone carries no sound. One audio stream is accepted (one RTP
  port); further ones, streams of other media and other protocols than RTP/AVP are
  rejected with port 0 (§6), keeping the offer's formats (the m= line needs one).
* The answer is refused (:class:`NotAcceptable`, 488) when no stream can be accepted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from .sdp import Connection, MediaDescription, Origin, SessionDescription, Timing

__all__ = [
    "DEFAULT_CODECS",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "Codec",
    "MediaStream",
    "NotAcceptable",
    "SdpSession",
    "create_answer",
    "create_offer",
    "negotiate",
    "next_version",
    "reverse_direction",
]


class NotAcceptable(ValueError):
    """No stream of an offer can be accepted, or an answer does not fit its offer: a UAS
    answers 488 Not Acceptable Here (RFC 3261 §13.3.1.3), ``status_code``."""

    status_code = 488


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: what ``a=rtpmap`` names, and the payload type to offer it as."""

    name: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    fmtp: str | None = None

    def matches(self, name: str, clock_rate: int, channels: int | None) -> bool:
        return (
            self.name.lower() == name.lower()
            and self.clock_rate == clock_rate
            and (self.channels or 1) == (channels or 1)
        )

    @property
    def is_event(self) -> bool:
        """Whether this is telephone-event (DTMF, RFC 4733), not a voice codec."""
        return self.name.lower() == "telephone-event"

    def rtpmap(self, payload_type: int | None = None) -> str:
        pt = self.payload_type if payload_type is None else payload_type
        suffix = f"/{self.channels}" if self.channels else ""
        return f"{pt} {self.name}/{self.clock_rate}{suffix}"


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
TELEPHONE_EVENT = Codec("telephone-event", 8000, 101, fmtp="0-16")
DEFAULT_CODECS: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)

# RFC 3551 §6, Table 4: audio payload types with a static meaning.
_STATIC: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, None),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def reverse_direction(direction: str) -> str:
    """The direction seen from the other side: sendonly ↔ recvonly (RFC 3264 §6.1)."""
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)


def _combine(wanted: str, offered: str) -> str:
    """The answer's direction: what we want, limited by what the offer allows us (§6.1)."""
    allowed = reverse_direction(offered)
    send = wanted in ("sendrecv", "sendonly") and allowed in ("sendrecv", "sendonly")
    recv = wanted in ("sendrecv", "recvonly") and allowed in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (send, recv), "inactive"
    )


class _Format(NamedTuple):
    payload_type: int
    name: str
    clock_rate: int
    channels: int | None
    fmtp: str | None


def _formats(media: MediaDescription) -> list[_Format]:
    """The formats of an m= line that can be identified: rtpmap'd or static."""
    rtpmaps = {m.payload: m for m in media.rtpmaps()}
    fmtps: dict[int, str] = {}
    for value in media.get_attributes("fmtp"):
        pt, _, params = value.partition(" ")
        if pt.isdigit():
            fmtps[int(pt)] = params.strip()
    out: list[_Format] = []
    for fmt in media.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        mapped = rtpmaps.get(pt)
        if mapped is not None:
            out.append(_Format(pt, mapped.encoding, mapped.clock_rate, mapped.channels, fmtps.get(pt)))
        elif pt in _STATIC:
            name, rate, channels = _STATIC[pt]
            out.append(_Format(pt, name, rate, channels, fmtps.get(pt)))
    return out


def _origin(address: str, username: str, session_id: int | None, version: int | None) -> Origin:
    sid = session_id if session_id is not None else secrets.randbelow(2**62)
    return Origin(username, sid, sid if version is None else version, "IN", _addrtype(address), address)


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _audio(port: int, formats: list[tuple[Codec, int]], direction: str) -> MediaDescription:
    media = MediaDescription("audio", port, "RTP/AVP", [str(pt) for _, pt in formats])
    for codec, pt in formats:
        media.add_attribute("rtpmap", codec.rtpmap(pt))
        if codec.fmtp:
            media.add_attribute("fmtp", f"{pt} {codec.fmtp}")
    media.add_attribute(direction)
    return media


def create_offer(
    address: str,
    port: int,
    *,
    codecs: tuple[Codec, ...] | list[Codec] = DEFAULT_CODECS,
    direction: str = "sendrecv",
    username: str = "sipstack",
    session_id: int | None = None,
    session_version: int | None = None,
) -> SessionDescription:
    """An offer of one audio stream (RFC 3264 §5) at ``address``:``port`` with ``codecs``
    in order of preference."""
    if direction not in _DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    return SessionDescription(
        origin=_origin(address, username, session_id, session_version),
        session_name="sipstack",
        connection=Connection("IN", _addrtype(address), address),
        media=[_audio(port, [(c, c.payload_type) for c in codecs], direction)],
    )


def create_answer(
    offer: SessionDescription,
    address: str,
    port: int,
    *,
    codecs: tuple[Codec, ...] | list[Codec] = DEFAULT_CODECS,
    direction: str = "sendrecv",
    username: str = "sipstack",
    session_id: int | None = None,
    session_version: int | None = None,
) -> SessionDescription:
    """The answer to ``offer`` (RFC 3264 §6): one m= line per offered one, in order; the
    first acceptable audio stream gets ``port`` and the offered formats we support (the
    offer's payload types), every other stream port 0. Raises :class:`NotAcceptable`."""
    if direction not in _DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    answer = SessionDescription(
        origin=_origin(address, username, session_id, session_version),
        session_name="sipstack",
        connection=Connection("IN", _addrtype(address), address),
    )
    if offer.times:  # §6: the answer's t= equals the offer's
        answer.times = [Timing(t.start, t.stop, list(t.repeats)) for t in offer.times]
    accepted = False
    for offered in offer.media:
        chosen: list[tuple[Codec, int]] = []
        usable = offered.media.lower() == "audio" and offered.proto.upper() == "RTP/AVP" and offered.port
        if usable and not accepted:
            chosen = _intersect(offered, codecs)
        if chosen and any(not c.is_event for c, _ in chosen):
            accepted = True
            media_direction = _combine(direction, offer.direction(offered))
            answer.media.append(_audio(port, chosen, media_direction))
        else:
            # §6: a rejected stream has port 0 and at least one of the offered formats.
            answer.media.append(MediaDescription(offered.media, 0, offered.proto, list(offered.formats)))
    if not accepted:
        raise NotAcceptable("no acceptable media stream in the offer")
    return answer


def _intersect(offered: MediaDescription, codecs: tuple[Codec, ...] | list[Codec]) -> list[tuple[Codec, int]]:
    chosen: list[tuple[Codec, int]] = []
    for fmt in _formats(offered):
        for codec in codecs:
            if codec.matches(fmt.name, fmt.clock_rate, fmt.channels):
                # §6.1: the same payload type number as the offer; the offer's fmtp (events).
                agreed = replace(codec, payload_type=fmt.payload_type, fmtp=fmt.fmtp or codec.fmtp)
                chosen.append((agreed, fmt.payload_type))
                break
    return chosen


def next_version(previous: SessionDescription, new: SessionDescription | None = None) -> SessionDescription:
    """``new`` (or a copy of ``previous``) with ``previous``'s o= line, version + 1:
    RFC 3264 §8, a modified description keeps the origin and increments the version."""
    base = new if new is not None else SessionDescription.parse(bytes(previous))
    base.origin = replace(previous.origin, sess_version=previous.origin.sess_version + 1)
    return base


@dataclass(slots=True)
class MediaStream:
    """What an offer and its answer agreed for one m= line, from this side's view."""

    index: int
    media: str
    accepted: bool
    codecs: list[Codec] = field(default_factory=list)
    """The agreed voice codecs (their payload types as in the answer), preferred first."""
    telephone_event: Codec | None = None
    local_port: int = 0
    remote_address: str | None = None
    remote_port: int = 0
    direction: str = "inactive"
    """This side's direction: sendrecv, sendonly, recvonly or inactive."""


def negotiate(local: SessionDescription, remote: SessionDescription) -> list[MediaStream]:
    """The streams ``local`` and ``remote`` (an offer and its answer, either way round)
    agree on. Raises :class:`NotAcceptable` when the m= lines do not pair up (§6)."""
    if len(local.media) != len(remote.media):
        raise NotAcceptable("the answer does not have one m= line per offered one")
    streams: list[MediaStream] = []
    for i, (mine, theirs) in enumerate(zip(local.media, remote.media, strict=True)):
        if mine.media.lower() != theirs.media.lower():
            raise NotAcceptable(f"m= line {i + 1} changed its media type")
        accepted = mine.port != 0 and theirs.port != 0
        stream = MediaStream(i, mine.media, accepted, local_port=mine.port, remote_port=theirs.port)
        if accepted:
            ours = {f.payload_type: f for f in _formats(mine)}
            for fmt in _formats(theirs):
                if fmt.payload_type not in ours and not any(
                    o.name.lower() == fmt.name.lower() and o.clock_rate == fmt.clock_rate
                    for o in ours.values()
                ):
                    continue
                codec = Codec(fmt.name, fmt.clock_rate, fmt.payload_type, fmt.channels, fmt.fmtp)
                if codec.is_event:
                    stream.telephone_event = stream.telephone_event or codec
                else:
                    stream.codecs.append(codec)
            connection = theirs.connections[0] if theirs.connections else remote.connection
            stream.remote_address = connection.host if connection else None
            their_direction = remote.direction(theirs)
            stream.direction = _combine(local.direction(mine), their_direction)
            stream.accepted = bool(stream.codecs)
        streams.append(stream)
    return streams


class SdpSession:
    """One side of the offer/answer exchanges of a session (RFC 3264 §8): the local media
    (address, RTP port, codecs), the last local and remote descriptions, the origin line
    kept for the whole session with its version counted up on every change."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        codecs: tuple[Codec, ...] | list[Codec] = DEFAULT_CODECS,
        direction: str = "sendrecv",
        username: str = "sipstack",
    ) -> None:
        self.address = address
        self.port = port
        self.codecs = tuple(codecs)
        self.direction = direction
        self.username = username
        self.local: SessionDescription | None = None
        """The last description this side sent (offer or answer)."""
        self.remote: SessionDescription | None = None
        """The last description the other side sent."""
        self.pending_offer: SessionDescription | None = None
        """Our offer waiting for its answer (None when no offer of ours is outstanding)."""
        self.streams: list[MediaStream] = []
        """What the last completed exchange agreed."""

    def _stamp(self, description: SessionDescription) -> SessionDescription:
        """Give ``description`` the session's origin: the version goes up only when the
        content changed (§8: an unchanged version means an identical description)."""
        if self.local is None:
            return description
        description.origin = self.local.origin
        if _content(description) != _content(self.local):
            description = next_version(self.local, description)
        return description

    def create_offer(self, *, direction: str | None = None) -> SessionDescription:
        """An offer (the first, or a re-offer: hold with ``direction="sendonly"``)."""
        if direction is not None:
            self.direction = direction
        offer = create_offer(
            self.address, self.port, codecs=self.codecs, direction=self.direction, username=self.username
        )
        if self.local is not None and len(self.local.media) > 1:
            offer.media = _keep_lines(self.local.media, offer.media[0])
        offer = self._stamp(offer)
        self.local = self.pending_offer = offer
        return offer

    def create_answer(self, offer: SessionDescription | bytes) -> SessionDescription:
        """Answer the other side's ``offer``; raises :class:`NotAcceptable` (488)."""
        if not isinstance(offer, SessionDescription):
            offer = SessionDescription.parse(offer)
        answer = create_answer(
            offer,
            self.address,
            self.port,
            codecs=self.codecs,
            direction=self.direction,
            username=self.username,
        )
        answer = self._stamp(answer)
        self.streams = negotiate(answer, offer)
        self.local, self.remote = answer, offer
        self.pending_offer = None
        return answer

    def receive_answer(self, answer: SessionDescription | bytes) -> list[MediaStream]:
        """Take the answer to our pending offer; the agreed streams."""
        if not isinstance(answer, SessionDescription):
            answer = SessionDescription.parse(answer)
        if self.pending_offer is None:
            raise NotAcceptable("an answer without an offer")
        streams = negotiate(self.pending_offer, answer)
        self.streams, self.remote, self.pending_offer = streams, answer, None
        return streams

    def rollback(self) -> None:
        """Forget our pending offer (its transaction failed: RFC 3264 §8, RFC 6337 §3.1)."""
        self.pending_offer = None


def _keep_lines(previous: list[MediaDescription], audio: MediaDescription) -> list[MediaDescription]:
    """RFC 3264 §8.1: a re-offer keeps every m= line of the session in its place; ours goes
    where the audio stream was (the first audio line in use, else the first audio line),
    the others stay rejected (port 0)."""
    slot = next((i for i, m in enumerate(previous) if m.media.lower() == "audio" and m.port != 0), None)
    if slot is None:
        slot = next((i for i, m in enumerate(previous) if m.media.lower() == "audio"), None)
    lines = [MediaDescription(m.media, 0, m.proto, list(m.formats)) for m in previous]
    if slot is None:
        return [*lines, audio]
    lines[slot] = audio
    return lines


def _content(description: SessionDescription) -> bytes:
    """A description without its o= line, to tell whether anything changed."""
    return bytes(replace(description, origin=Origin("-", 0, 0, "IN", "IP4", "0.0.0.0")))
