"""What the UA core retransmits itself, end to end, and the bookkeeping of RFC 3262.

- :class:`Retransmission`: the schedule of a 2xx to an INVITE until its ACK (RFC 3261
  §13.3.1.4: T1, doubling up to T2, given up after 64·T1) and of a reliable provisional
  response until its PRACK (RFC 3262 §3: T1, doubling, given up after 64·T1). Sans-I/O:
  ``next_at`` says when to be woken, :meth:`Retransmission.fire` what to do then.
- RSeq / RAck (RFC 3262 §7), :func:`is_reliable`, and :class:`ReliableProvisionals`, the
  UAS side of one INVITE's reliable provisional responses.
"""

from __future__ import annotations

import re
import secrets
from typing import NamedTuple

from ..errors import ParseError
from ..message import Response

_RACK_RE = re.compile(r"([0-9]{1,10})[ \t]+([0-9]{1,10})[ \t]+([!%'*+\-.0-9A-Z_`a-z~]+)")
_MAX = 2**32 - 1


class RAck(NamedTuple):
    """``RAck: response-num CSeq-num Method`` (RFC 3262 §7.2)."""

    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rack(value: str) -> RAck:
    m = _RACK_RE.fullmatch(value.strip(" \t"))
    if m is None or int(m.group(1)) > _MAX or int(m.group(2)) > _MAX:
        raise ParseError(f"bad RAck {value[:40]!r}")
    return RAck(int(m.group(1)), int(m.group(2)), m.group(3))


def parse_rseq(value: str) -> int:
    """``RSeq: response-num`` (RFC 3262 §7.1): 1*DIGIT, at most 2**32-1."""
    text = value.strip(" \t")
    if not text.isdigit() or not text.isascii() or len(text) > 10 or int(text) > _MAX:
        raise ParseError(f"bad RSeq {value[:40]!r}")
    return int(text)


def is_reliable(response: Response) -> bool:
    """Whether a provisional response is sent reliably: 101–199 with ``Require: 100rel``
    and an RSeq (RFC 3262 §4)."""
    if not 101 <= response.status_code < 200 or not response.has_header("rseq"):
        return False
    try:
        return "100rel" in (tag.lower() for tag in response.require)
    except ParseError:
        return False


class Retransmission:
    """When to send a message again until the peer acknowledges it. Times are seconds on
    the caller's clock; nothing here reads one."""

    __slots__ = ("cap", "deadline", "interval", "next_at")

    def __init__(self, now: float, t1: float, *, cap: float | None, timeout: float) -> None:
        self.interval = t1
        self.cap = cap
        self.next_at: float | None = now + t1
        """When :meth:`fire` is due (None once stopped or given up)."""
        self.deadline = now + timeout

    @classmethod
    def for_2xx(cls, now: float, t1: float, t2: float) -> Retransmission:
        """RFC 3261 §13.3.1.4: T1 doubling to T2; the ACK is given up at 64·T1."""
        return cls(now, t1, cap=t2, timeout=64 * t1)

    @classmethod
    def for_provisional(cls, now: float, t1: float) -> Retransmission:
        """RFC 3262 §3: T1 doubling without cap; the PRACK is given up at 64·T1."""
        return cls(now, t1, cap=None, timeout=64 * t1)

    @property
    def active(self) -> bool:
        return self.next_at is not None

    def fire(self, now: float) -> bool:
        """Call at (or after) ``next_at``: True to send the message again (``next_at``
        moves on), False when the time is up (``next_at`` becomes None)."""
        if self.next_at is None:
            return False
        if now >= self.deadline:
            self.next_at = None
            return False
        self.interval = self.interval * 2 if self.cap is None else min(self.interval * 2, self.cap)
        self.next_at = min(now + self.interval, self.deadline)
        return True

    def stop(self) -> None:
        """The acknowledgement came."""
        self.next_at = None


class ReliableProvisionals:
    """The UAS side of RFC 3262 for one INVITE: RSeq numbering (a random start, then + 1)
    and the one reliable provisional response that may be unacknowledged at a time (§3)."""

    __slots__ = ("invite_cseq", "last_rseq", "pending", "pending_has_sdp")

    def __init__(self, invite_cseq: int, first: int | None = None) -> None:
        self.invite_cseq = invite_cseq
        # §3: the first RSeq is chosen between 1 and 2**31 - 1.
        self.last_rseq = (first if first is not None else secrets.randbelow(2**31 - 1) + 1) - 1
        self.pending: int | None = None
        """The RSeq of the reliable provisional response awaiting its PRACK."""
        self.pending_has_sdp = False

    def next(self, *, has_sdp: bool = False) -> int:
        """The RSeq for the next reliable provisional response; ValueError while one is
        unacknowledged (§3: no second one before the first is PRACKed)."""
        if self.pending is not None:
            raise ValueError("a reliable provisional response is still unacknowledged")
        self.last_rseq += 1
        self.pending = self.last_rseq
        self.pending_has_sdp = has_sdp
        return self.last_rseq

    def acknowledge(self, rack: RAck) -> bool:
        """A PRACK's RAck: True when it acknowledges the pending response (§3: RSeq, CSeq
        number and method all match), which is then no longer pending."""
        if self.pending is None or rack != RAck(self.pending, self.invite_cseq, "INVITE"):
            return False
        self.pending = None
        self.pending_has_sdp = False
        return True

    @property
    def blocks_2xx(self) -> bool:
        """§3: no 2xx while an unacknowledged reliable provisional response carried SDP."""
        return self.pending is not None and self.pending_has_sdp
