"""Server transactions: INVITE (RFC 3261 §17.2.1 as fixed by RFC 6026) and non-INVITE
(§17.2.2 with RFC 4320's rules for 100 Trying).

INVITE server transaction::

    Proceeding --TU 1xx--> (sent; retransmitted INVITEs get the last 1xx again)
      |---TU 2xx--> Accepted (Timer L): INVITE retransmissions absorbed, 2xx
      |             retransmissions from the TU sent, a matching ACK goes to the TU  RFC 6026 §8
      |---TU 300-699--> Completed (Timers G, H): final retransmitted on G and on
      |                 each INVITE retransmission; ACK --> Confirmed (Timer I)
      |---transport error--> Terminated (TU told)
    Completed --Timer H--> Terminated (TU told: no ACK);  Confirmed --Timer I--> Terminated
    Accepted --Timer L--> Terminated

Non-INVITE server transaction::

    Trying --TU 1xx--> Proceeding;  Trying/Proceeding --TU final--> Completed (Timer J)
    Trying absorbs retransmissions; Proceeding/Completed answer them with the last response.
"""

from __future__ import annotations

from typing import ClassVar

from ..message import Request, Response, make_response, parse
from .base import State, Transaction
from .events import RequestReceived, TransactionTimeout, TransactionTransportError


class ServerTransaction(Transaction):
    __slots__ = ("_interval", "_last", "created", "final_status", "to_tag")

    def start(self, now: float) -> None:
        self.created = now
        self._last: bytes | None = None
        self.final_status: int | None = None
        self.to_tag: str | None = None

    def on_request(self, request: Request, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def respond(self, response: Response, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _send_response(self, response: Response) -> None:
        if len(self.key) > 3:  # RFC 2543 matching of the ACK needs the To tag we sent
            self.to_tag = response.to.tag
        self._last = bytes(response)
        self._send(self._last)
        if response.status_code >= 200:
            self.final_status = response.status_code
            self._release()

    @property
    def last_response(self) -> Response | None:
        """The last response sent (parsed again from its bytes: nothing parsed is kept)."""
        if self._last is None:
            return None
        response = parse(self._last)
        assert isinstance(response, Response)
        return response

    def on_transport_error(self, now: float) -> None:
        if self.state is not State.TERMINATED:
            self.layer._events.append(TransactionTransportError(self))
        self._terminate()


class ServerInviteTransaction(ServerTransaction):
    __slots__ = ()
    kind: ClassVar[str] = "IST"
    TIMERS: ClassVar[tuple[str, ...]] = ("trying", "G", "H", "I", "L")

    def start(self, now: float) -> None:
        super().start(now)
        self.state = State.PROCEEDING
        delay = self.layer.invite_trying_delay
        # §17.2.1: a 100 unless the TU answers within 200 ms.
        if delay is not None:
            if delay <= 0:
                self._send_response(make_response(self.request, 100))
            else:
                self._start("trying", delay, now)

    def on_request(self, request: Request, now: float) -> None:
        state = self.state
        if request.method == "ACK":
            if state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._stop("G", "H")
                self._start_wait("I", 0.0 if self.reliable else self.layer.timers.I, now)
            elif state is State.ACCEPTED:
                # RFC 6026 §8.7: an ACK matching the transaction in Accepted goes to the TU.
                self.layer._events.append(RequestReceived(request, self.layer._source or self.address, self))
            return
        if state in (State.PROCEEDING, State.COMPLETED) and self._last is not None:
            self._send(self._last)  # retransmission of the last provisional or final
        # Accepted and Confirmed absorb retransmitted INVITEs (RFC 6026 §8.4).

    def respond(self, response: Response, now: float) -> None:
        code = response.status_code
        state = self.state
        if state is State.PROCEEDING:
            self._stop("trying")
            self._send_response(response)
            if code < 200:
                return
            timers = self.layer.timers
            if code < 300:
                self.state = State.ACCEPTED  # RFC 6026 §8.5
                self._start_wait("L", timers.L, now)
            else:
                self.state = State.COMPLETED
                if not self.reliable:
                    self._interval = timers.G
                    self._start("G", self._interval, now)
                self._start("H", timers.H, now)
        elif state is State.ACCEPTED and 200 <= code < 300:
            self._send_response(response)  # RFC 6026 §8.6: 2xx retransmissions from the TU

    def on_timer(self, name: str, now: float) -> None:
        state = self.state
        if name == "trying" and state is State.PROCEEDING and self._last is None:
            self._send_response(make_response(self.request, 100))
        elif name == "G" and state is State.COMPLETED and self._last is not None:
            self._send(self._last)
            self._interval = min(2 * self._interval, self.layer.timers.T2)
            self._start("G", self._interval, now)
        elif name == "H" and state is State.COMPLETED:
            self.layer._events.append(TransactionTimeout(self, "H"))
            self._terminate()
        elif name in ("I", "L"):
            self._terminate()


class ServerNonInviteTransaction(ServerTransaction):
    __slots__ = ()
    kind: ClassVar[str] = "NIST"
    TIMERS: ClassVar[tuple[str, ...]] = ("trying", "J")

    def start(self, now: float) -> None:
        super().start(now)
        self.state = State.TRYING
        # RFC 4320 §4.1: answer 100 once the client's Timer E has reached T2, if nothing else.
        self._start("trying", self.layer.timers.trying_nict, now)

    def on_request(self, request: Request, now: float) -> None:
        if self.state in (State.PROCEEDING, State.COMPLETED) and self._last is not None:
            self._send(self._last)

    def respond(self, response: Response, now: float) -> None:
        state = self.state
        if state not in (State.TRYING, State.PROCEEDING):
            return
        code = response.status_code
        if code < 200:
            if code != 100:
                return  # RFC 4320 §4.1: no provisional but 100 to a non-INVITE request
            if not self.reliable and now - self.created < self.layer.timers.trying_nict:
                return  # RFC 4320 §4.1: not before Timer E reaches T2 on unreliable transports
            self.state = State.PROCEEDING
            self._send_response(response)
            return
        self._stop("trying")
        self.state = State.COMPLETED
        self._send_response(response)
        self._start_wait("J", 0.0 if self.reliable else self.layer.timers.J, now)

    def on_timer(self, name: str, now: float) -> None:
        if name == "trying" and self.state is State.TRYING:
            self.state = State.PROCEEDING
            self._send_response(make_response(self.request, 100))
        elif name == "J":
            self._terminate()
