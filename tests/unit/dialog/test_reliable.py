"""End-to-end retransmission schedules (2xx until ACK, RFC 3261 §13.3.1.4; reliable 1xx
until PRACK, RFC 3262 §3) on a number clock, and RSeq / RAck bookkeeping (RFC 3262 §3, §7)."""

from __future__ import annotations

import itertools

import pytest

from sipstack.dialog import RAck, ReliableProvisionals, Retransmission, is_reliable, parse_rack, parse_rseq
from sipstack.errors import ParseError
from sipstack.message import Response, parse

T1, T2 = 0.5, 4.0


def schedule(r: Retransmission) -> list[float]:
    """Every time the message is sent again, until the schedule gives up."""
    times = []
    while r.next_at is not None:
        now = r.next_at
        if r.fire(now):
            times.append(now)
    return times


def test_2xx_schedule_doubles_to_t2_and_gives_up_at_64_t1() -> None:
    times = schedule(Retransmission.for_2xx(0.0, T1, T2))
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # intervals 1, 2, 4, 4, 4 ...
    assert times[-1] < 64 * T1 and all(b - a <= T2 for a, b in itertools.pairwise(times))


def test_provisional_schedule_doubles_without_cap() -> None:
    times = schedule(Retransmission.for_provisional(10.0, T1))
    assert times == [10.5, 11.5, 13.5, 17.5, 25.5, 41.5]  # next at 73.5 > 10 + 64·T1: given up
    r = Retransmission.for_provisional(0.0, T1)
    assert r.active
    r.stop()
    assert not r.active and not r.fire(100.0)


def test_rseq_numbering_and_prack_matching() -> None:
    p = ReliableProvisionals(invite_cseq=3, first=41)
    assert p.next(has_sdp=True) == 41
    assert p.blocks_2xx
    with pytest.raises(ValueError):
        p.next()  # §3: one unacknowledged reliable provisional at a time
    assert not p.acknowledge(RAck(41, 4, "INVITE"))  # CSeq does not match
    assert not p.acknowledge(RAck(40, 3, "INVITE"))
    assert p.acknowledge(RAck(41, 3, "INVITE"))
    assert not p.blocks_2xx and p.pending is None
    assert not p.acknowledge(RAck(41, 3, "INVITE"))  # already acknowledged
    assert p.next() == 42 and not p.blocks_2xx


def test_random_first_rseq_is_in_range() -> None:
    for _ in range(50):
        first = ReliableProvisionals(1).next()
        assert 1 <= first <= 2**31 - 1


def test_rack_and_rseq_syntax() -> None:
    assert parse_rack("776656 1 INVITE") == RAck(776656, 1, "INVITE")
    assert str(RAck(5, 2, "INVITE")) == "5 2 INVITE"
    assert parse_rseq(" 988789 ") == 988789
    for bad in ("1 INVITE", "x 1 INVITE", "99999999999 1 INVITE"):
        with pytest.raises(ParseError):
            parse_rack(bad)
    for bad in ("", "-1", "4294967296", "１"):
        with pytest.raises(ParseError):
            parse_rseq(bad)


def response(status: int, extra: str) -> Response:
    text = (
        f"SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        f"To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    parsed = parse(text.encode())
    assert isinstance(parsed, Response)
    return parsed


def test_is_reliable() -> None:
    assert is_reliable(response(183, "Require: 100rel\r\nRSeq: 1\r\n"))
    assert not is_reliable(response(183, "RSeq: 1\r\n"))
    assert not is_reliable(response(183, "Require: 100rel\r\n"))
    assert not is_reliable(response(200, "Require: 100rel\r\nRSeq: 1\r\n"))
    assert not is_reliable(response(100, "Require: 100rel\r\nRSeq: 1\r\n"))
