"""Client transactions: INVITE (RFC 3261 §17.1.1 as fixed by RFC 6026) and non-INVITE
(§17.1.2).

INVITE client transaction::

    Calling --1xx--> Proceeding --1xx--> (TU)
      |  \\--2xx--> Accepted (Timer M; each 2xx to the TU)        RFC 6026 §7.2
      |---300-699--> Completed (ACK sent, Timer D; retransmitted finals re-ACKed)
      |---Timer B / transport error--> Terminated (TU told)
    Proceeding --2xx--> Accepted; --300-699--> Completed
    Completed --Timer D--> Terminated;  Accepted --Timer M--> Terminated

Non-INVITE client transaction::

    Trying --1xx--> Proceeding;  Trying/Proceeding --200-699--> Completed (Timer K)
    Timer E retransmits (doubling to T2; at T2 in Proceeding); Timer F times out.
"""

from __future__ import annotations

from typing import ClassVar

from ..message import Request, Response, parse
from .base import State, Transaction
from .events import ResponseReceived, TransactionTimeout, TransactionTransportError


class ClientTransaction(Transaction):
    __slots__ = ("_data", "_interval", "_last", "final_status")

    def start(self, now: float) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def on_response(self, response: Response, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    @property
    def last_response(self) -> Response | None:
        """The last response passed to the TU (parsed again from its bytes)."""
        if self._last is None:
            return None
        response = parse(self._last, strict=False)
        assert isinstance(response, Response)
        return response

    def _to_tu(self, response: Response) -> None:
        self._last = bytes(response)
        self.layer._events.append(ResponseReceived(response, self.layer._source or self.address, self))
        if response.status_code >= 200:
            self.final_status = response.status_code
            self._release()

    def on_transport_error(self, now: float) -> None:
        # Figures 5 and 6: Calling, Trying, Proceeding and Completed inform the TU.
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING, State.COMPLETED):
            self.layer._events.append(TransactionTransportError(self))
        self._terminate()


class ClientInviteTransaction(ClientTransaction):
    __slots__ = ("_ack",)
    kind: ClassVar[str] = "ICT"
    TIMERS: ClassVar[tuple[str, ...]] = ("A", "B", "D", "M")

    def start(self, now: float) -> None:
        self.state = State.CALLING
        self.final_status: int | None = None
        self._last: bytes | None = None
        self._ack: bytes | None = None
        self._data = bytes(self.request)
        self._send(self._data)
        timers = self.layer.timers
        if not self.reliable:
            self._interval = timers.A
            self._start("A", self._interval, now)
        self._start("B", timers.B, now)

    def on_response(self, response: Response, now: float) -> None:
        code = response.status_code
        state = self.state
        if state in (State.CALLING, State.PROCEEDING):
            self._stop("A")
            self._data = b""  # nothing retransmits the INVITE after a response (kept up to 32 s)
            if code >= 200:
                self._stop("B")
            if code < 200:
                self.state = State.PROCEEDING
                self._to_tu(response)
            elif code < 300:
                # RFC 6026 §7.2: Accepted; 2xx retransmissions also go to the TU.
                self.state = State.ACCEPTED
                self._start_wait("M", self.layer.timers.M, now)
                self._to_tu(response)
            else:
                self.state = State.COMPLETED
                assert self.request is not None
                self._ack = bytes(make_ack(self.request, response))
                self._send(self._ack)
                self._start_wait("D", 0.0 if self.reliable else self.layer.timers.D, now)
                self._to_tu(response)
        elif state is State.ACCEPTED and 200 <= code < 300:
            self._to_tu(response)
        elif state is State.COMPLETED and code >= 300 and self._ack is not None:
            self._send(self._ack)  # §17.1.1.2: retransmitted final response, ACK again

    def on_timer(self, name: str, now: float) -> None:
        if name == "A" and self.state is State.CALLING:
            self._send(self._data)
            self._interval *= 2  # §17.1.1.2: INVITE retransmissions double without cap
            self._start("A", self._interval, now)
        elif name == "B" and self.state is State.CALLING:
            self.layer._events.append(TransactionTimeout(self, "B"))
            self._terminate()
        elif name in ("D", "M"):
            self._terminate()


class ClientNonInviteTransaction(ClientTransaction):
    __slots__ = ()
    kind: ClassVar[str] = "NICT"
    TIMERS: ClassVar[tuple[str, ...]] = ("E", "F", "K")

    def start(self, now: float) -> None:
        self.state = State.TRYING
        self.final_status = None
        self._last = None
        self._data = bytes(self.request)
        self._send(self._data)
        timers = self.layer.timers
        if not self.reliable:
            self._interval = timers.E
            self._start("E", self._interval, now)
        self._start("F", timers.F, now)

    def on_response(self, response: Response, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # Completed absorbs retransmitted responses
        if response.status_code < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._stop("E", "F")
            self._data = b""  # the request is not sent again (Timer K may keep it 5 s)
            self._start_wait("K", 0.0 if self.reliable else self.layer.timers.K, now)
        self._to_tu(response)

    def on_timer(self, name: str, now: float) -> None:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            self._send(self._data)
            t2 = self.layer.timers.T2
            # §17.1.2.2: doubling up to T2 in Trying, T2 in Proceeding.
            self._interval = t2 if self.state is State.PROCEEDING else min(2 * self._interval, t2)
            self._start("E", self._interval, now)
        elif name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            self.layer._events.append(TransactionTimeout(self, "F"))
            self._terminate()
        elif name == "K":
            self._terminate()


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, Call-ID,
    From, CSeq number and top Via as the INVITE, the response's To, the INVITE's Route."""
    headers = [
        ("Via", invite.header_values("via")[0]),
        ("Max-Forwards", "70"),
        ("From", invite.header("from") or ""),
        ("To", response.header("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    headers += [("Route", route) for route in invite.header_values("route")]
    return Request("ACK", invite.uri_text, headers)


def make_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite`` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq
    number and top Via (so the same branch), and the INVITE's Route header fields."""
    headers = [
        ("Via", invite.header_values("via")[0]),
        ("Max-Forwards", "70"),
        ("From", invite.header("from") or ""),
        ("To", invite.header("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
    ]
    headers += [("Route", route) for route in invite.header_values("route")]
    return Request("CANCEL", invite.uri_text, headers)
