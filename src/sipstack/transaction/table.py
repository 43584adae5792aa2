"""The transaction layer: every transaction of an element, matched and timed in one place.

Three things drive it (aioquic's shape): messages received from the transport
(``receive_request`` / ``receive_response``), the transaction user (``send_request``,
``respond``, ``send_stateless``) and time (``handle_timer(now)`` when ``get_timer()`` says
so). None of them does I/O: each queues events, which the caller takes with
``drain_events()`` — :class:`SendMessage` for the transport, the rest for the TU.
``now`` is a number of seconds from any fixed origin.

Matching follows RFC 3261 §17.1.3 (responses: top Via branch and CSeq method) and §17.2.3
(requests: branch, sent-by and method, ACK matching INVITE), with the RFC 2543 rules for
branches without the magic cookie (RFC 4475 §3.2.1).
"""

from __future__ import annotations

from ..deadlines import Deadlines
from ..message import Message, ParseError, Request, Response
from ..net import Address
from .base import MAGIC_COOKIE, Transaction, response_address
from .client import ClientInviteTransaction, ClientNonInviteTransaction, ClientTransaction
from .events import RequestReceived, ResponseReceived, SendMessage, TransactionEvent
from .server import ServerInviteTransaction, ServerNonInviteTransaction, ServerTransaction
from .timers import DEFAULT_TIMERS, TimerConfig


def server_key(request: Request) -> tuple:
    """The key of the server transaction ``request`` belongs to (ACK keyed as its INVITE)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    # RFC 4475 §3.2.1: a branch that is the cookie alone identifies nothing; RFC 2543 rules.
    if branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        return (branch, via.sent_by.lower(), method)
    # RFC 2543 (§17.2.3): Request-URI, From tag, Call-ID, CSeq number, top Via, To tag.
    to_tag = None if request.method == "ACK" else request.to.tag
    return (
        branch or "",
        request.uri_text,
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        request.header_values("via")[0],
        method,
        to_tag,
    )


def client_key(message: Message) -> tuple[str, str]:
    """The key of the client transaction a request creates or a response matches."""
    return (message.top_via.branch or "", message.cseq.method)


class TransactionLayer:
    """All the transactions of one element (RFC 3261 §17)."""

    def __init__(
        self,
        timers: TimerConfig = DEFAULT_TIMERS,
        *,
        invite_trying_delay: float | None = 0.2,
        wait_grid: float = 0.0,
    ) -> None:
        self.timers = timers
        """Timer values (T1, T2, T4)."""
        self.wait_grid = wait_grid
        """Seconds: Timers D, I, J, K, L and M (which only end a transaction) fire on this
        grid, at most a sixteenth of their value late; 0 fires them exactly."""
        self.invite_trying_delay = invite_trying_delay
        """Seconds after which an INVITE server transaction sends 100 Trying if the TU has
        not answered (§17.2.1); 0 sends it at once, None never."""
        self.deadlines = Deadlines()
        """Every timer of every transaction (one heap)."""
        self._events: list[TransactionEvent] = []
        self._client: dict[tuple, ClientTransaction] = {}
        self._server: dict[tuple, ServerTransaction] = {}
        self._source: Address | None = None  # where the message being handled came from

    # -- outputs ----------------------------------------------------------------------------

    def drain_events(self) -> list[TransactionEvent]:
        """The events queued since the last call, in order."""
        events = self._events
        self._events = []
        return events

    def get_timer(self) -> float | None:
        """When ``handle_timer`` should next be called, or None."""
        return self.deadlines.next()

    def timer_update(self, armed: float | None) -> float | None:
        """``get_timer()`` for a caller with a wake-up armed at ``armed`` (None: none): the
        time to arm instead, or None while ``armed`` still serves — without a look at the
        timers when none earlier was set since the last call (the common case)."""
        new = self.deadlines.take_new_min()
        if armed is not None:
            return new if new < armed else None
        return self.deadlines.next()

    def __len__(self) -> int:
        return len(self._client) + len(self._server)

    @property
    def client_transactions(self) -> int:
        return len(self._client)

    @property
    def server_transactions(self) -> int:
        return len(self._server)

    # -- inputs -----------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        for owner, name in self.deadlines.pop_due(now):
            owner.on_timer(name, now)

    def receive_request(self, request: Request, source: Address, now: float) -> None:
        """A request from the transport: a retransmission is absorbed (or answered) by its
        transaction; a new one creates a server transaction and goes to the TU."""
        key = server_key(request)
        tx = self._server.get(key)
        if tx is None and request.method == "ACK" and len(key) > 3:
            tx = self._server.get((*key[:-1], request.to.tag))  # RFC 2543 re-INVITE's ACK
        if tx is not None:
            if request.method == "ACK" and len(key) > 3 and tx.to_tag != request.to.tag:
                tx = None  # §17.2.3: the ACK's To tag must be the one the server sent
            else:
                self._source = source
                tx.on_request(request, now)
                self._source = None
                return
        if request.method == "ACK":
            self._events.append(RequestReceived(request, source, None))
            return
        cls = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        tx = cls(self, key, request, response_address(request, source))
        self._server[key] = tx
        self._events.append(RequestReceived(request, source, tx))
        tx.start(now)

    def receive_response(self, response: Response, source: Address, now: float) -> None:
        """A response from the transport: to its client transaction, or to the TU as stray."""
        tx = self._client.get(client_key(response))
        if tx is None:
            self._events.append(ResponseReceived(response, source, None))
        else:
            self._source = source
            tx.on_response(response, now)
            self._source = None

    def send_request(
        self, request: Request, address: Address, now: float, *, branch: str | None = None
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` (its top Via already carries the
        branch; pass it as ``branch`` when known, saving a re-parse of the Vias just
        edited) towards ``address``. An ACK is not a transaction: use ``send_stateless``."""
        if request.method == "ACK":
            raise ValueError("an ACK is sent with send_stateless, not in a transaction")
        key = (branch, request.method) if branch is not None else client_key(request)
        if key in self._client:
            raise ValueError(f"a client transaction with branch {key[0]!r} exists")
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = cls(self, key, request, address)
        self._client[key] = tx
        tx.start(now)
        return tx

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send the TU's ``response`` through its server transaction."""
        transaction.respond(response, now)

    def send_stateless(self, message: Message, address: Address) -> None:
        """Queue ``message`` for the transport outside any transaction (ACK for a 2xx, a
        stateless reply, a proxied 2xx per RFC 6026)."""
        self._events.append(SendMessage(bytes(message), address, None))

    def reply_stateless(self, request: Request, source: Address, response: Response) -> None:
        """Answer ``request`` without a transaction (e.g. a 400 for a malformed request)."""
        try:
            address = response_address(request, source)
        except ParseError:
            return
        self._events.append(SendMessage(bytes(response), address, None))

    def abandon(self, transaction: Transaction) -> None:
        """Terminate ``transaction`` now (its TU gave up on it)."""
        transaction._terminate()

    def transport_error(self, transaction: Transaction, now: float) -> None:
        """The transport failed to send a message of ``transaction`` (§17.1.4, §17.2.4)."""
        if not transaction.terminated:
            transaction.on_transport_error(now)

    # -- lookups ----------------------------------------------------------------------------

    def find_server(self, request: Request) -> ServerTransaction | None:
        return self._server.get(server_key(request))

    def find_invite(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL cancels (§9.2: same matching, method
        INVITE)."""
        key = server_key(cancel)
        if len(key) == 3:
            return self._server.get((key[0], key[1], "INVITE"))
        return self._server.get((*key[:-2], "INVITE", key[-1]))

    def client_transactions_on(self, connection: int) -> list[ClientTransaction]:
        """Client transactions still waiting for a final response over ``connection``."""
        return [
            tx
            for tx in self._client.values()
            if tx.address.connection == connection and tx.final_status is None and not tx.terminated
        ]

    def client_transactions_to(self, address: Address) -> list[ClientTransaction]:
        """Client transactions still waiting for a final response from ``address`` over
        UDP (an ICMP error names the destination only)."""
        host, port = address.host, address.port
        return [
            tx
            for tx in self._client.values()
            if tx.final_status is None
            and not tx.terminated
            and tx.address.port == port
            and tx.address.host == host
            and tx.address.transport == "UDP"
        ]

    def find_client(self, key: tuple[str, str]) -> ClientTransaction | None:
        return self._client.get(key)

    # -- internal ---------------------------------------------------------------------------

    def _forget(self, transaction: Transaction) -> None:
        if isinstance(transaction, ClientTransaction):
            self._client.pop(transaction.key, None)
        else:
            self._server.pop(transaction.key, None)
