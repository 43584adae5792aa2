"""Builders and a numeric clock for the transaction-layer tests.

Messages go through ``parse(bytes(...))`` so the layer sees what a transport would hand
it. Time is a number: :func:`advance` fires every timer due up to a horizon, in order,
and records what each firing produced as :class:`Rec` (time, event type, detail), where
the detail is the first line of a ``SendMessage``, the start line of a request or response
handed to the TU, or the letter of a timeout.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from sipstack.message import Request, Response, make_response, parse
from sipstack.net import Address
from sipstack.transaction import (
    RequestReceived,
    ResponseReceived,
    SendMessage,
    Transaction,
    TransactionEvent,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransactionTransportError,
)

# Where a client transaction sends, and where a server transaction's requests come from.
PEER_UDP = Address("UDP", "192.0.2.10", 5060)
PEER_TCP = Address("TCP", "192.0.2.10", 5060, 7)
# The UAC's own address: its Via sent-by and the source of the requests it sends.
UAC_HOST = "192.0.2.20"
UAC_PORT = 5070
UAC_UDP = Address("UDP", UAC_HOST, UAC_PORT)
UAC_TCP = Address("TCP", UAC_HOST, 49152, 11)

AUTO = "auto"
"""``branch=AUTO`` (the default) makes a fresh RFC 3261 branch; ``branch=None`` none."""

_branches = itertools.count(1)


def fresh_branch() -> str:
    return f"z9hG4bK-t{next(_branches):06d}"


def request(
    method: str = "INVITE",
    *,
    branch: str | None = AUTO,
    transport: str = "UDP",
    sent_by: str = f"{UAC_HOST}:{UAC_PORT}",
    via_params: str = "",
    uri: str = "sip:bob@biloxi.example.com",
    from_tag: str | None = "9fxced76sl",
    to_tag: str | None = None,
    call_id: str = "3848276298220188511@atlanta.example.com",
    cseq: int = 1,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Request:
    """A request as it comes off the wire (CSeq method = ``method``)."""
    if branch == AUTO:
        branch = fresh_branch()
    via = f"SIP/2.0/{transport} {sent_by}"
    if branch is not None:
        via += f";branch={branch}"
    via += via_params
    from_ = "Alice <sip:alice@atlanta.example.com>" + (f";tag={from_tag}" if from_tag else "")
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        *extra,
    ]
    return wire(Request(method, uri, headers, body))


def response(
    req: Request, code: int, *, to_tag: str | None = "a6c85cf", reason: str | None = None
) -> Response:
    """A response to ``req`` as it comes off the wire; a 100 carries no To tag."""
    return wire(make_response(req, code, reason, to_tag=None if code == 100 else to_tag))


def ack_for(invite: Request, final: Response, *, branch: str | None = None) -> Request:
    """The ACK a UAC sends: for a non-2xx the INVITE's top Via (same branch); for a 2xx
    ``branch`` (a new transaction, RFC 3261 §13.2.2.4)."""
    via = invite.header_values("via")[0]
    if branch is not None:
        via = f"SIP/2.0/{invite.via[0].transport} {invite.via[0].sent_by};branch={branch}"
    headers = [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", invite.header("from") or ""),
        ("To", final.header("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return wire(Request("ACK", invite.uri_text, headers))


def wire(message: Request | Response):
    """``message`` after a trip through bytes, as the transport would deliver it."""
    return parse(bytes(message))


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rec:
    time: float
    kind: str
    detail: str | None


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode("utf-8")


def describe(event: TransactionEvent) -> str | None:
    if isinstance(event, SendMessage):
        return first_line(event.data)
    if isinstance(event, RequestReceived | ResponseReceived):
        message = event.request if isinstance(event, RequestReceived) else event.response
        return message.start_line()
    if isinstance(event, TransactionTimeout):
        return event.timer
    return None


def record(now: float, events: Iterable[TransactionEvent]) -> list[Rec]:
    return [Rec(now, type(event).__name__, describe(event)) for event in events]


def advance(layer: TransactionLayer, until: float) -> list[Rec]:
    """Fire, in order, every timer due up to ``until``; what each firing produced."""
    out: list[Rec] = []
    while (when := layer.get_timer()) is not None and when <= until:
        layer.handle_timer(when)
        out += record(when, layer.drain_events())
    return out


def step(layer: TransactionLayer, now: float) -> list[TransactionEvent]:
    """Fire the timers due at ``now`` and take the events."""
    layer.handle_timer(now)
    return layer.drain_events()


def sent(recs: Iterable[Rec], prefix: str = "") -> list[float]:
    """When a message whose first line starts with ``prefix`` was sent."""
    return [
        r.time
        for r in recs
        if r.kind == "SendMessage" and r.detail is not None and r.detail.startswith(prefix)
    ]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def approx(values: Iterable[float]):
    return pytest.approx(list(values), abs=1e-9)


def kinds(events: Iterable[TransactionEvent | Rec]) -> list[str]:
    return [e.kind if isinstance(e, Rec) else type(e).__name__ for e in events]


def of(events: Iterable[TransactionEvent], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def sends(events: Iterable[TransactionEvent]) -> list[SendMessage]:
    return of(events, SendMessage)


def lines(events: Iterable[TransactionEvent]) -> list[str]:
    """First lines of the messages sent."""
    return [first_line(e.data) for e in sends(events)]


def terminated(events: Iterable[TransactionEvent | Rec], tx: Transaction | None = None) -> int:
    """How many TransactionTerminated events (for ``tx`` if given)."""
    return sum(
        1
        for e in events
        if (isinstance(e, Rec) and e.kind == "TransactionTerminated")
        or (isinstance(e, TransactionTerminated) and (tx is None or e.transaction is tx))
    )


__all__ = [
    "AUTO",
    "PEER_TCP",
    "PEER_UDP",
    "UAC_HOST",
    "UAC_PORT",
    "UAC_TCP",
    "UAC_UDP",
    "Rec",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransactionTransportError",
    "ack_for",
    "advance",
    "approx",
    "describe",
    "first_line",
    "fresh_branch",
    "gaps",
    "kinds",
    "lines",
    "of",
    "record",
    "request",
    "response",
    "sends",
    "sent",
    "step",
    "terminated",
    "wire",
]
