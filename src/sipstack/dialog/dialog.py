"""A dialog (RFC 3261 §12): its identity, state, route set, remote target and sequence
numbers, and the requests built inside it.

A UAC dialog comes from a response to the request that created it (§12.1.2: a 101–199
response with a To tag gives an early dialog, a 2xx a confirmed one); a UAS dialog from the
request and the To tag the UAS puts in its response (§12.1.1). Header values are kept as
text, as they came in; the route set is parsed only to build a request (and only its first
entry, to tell a strict router from a loose one, §12.2.1.1).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import ParseError
from ..message import NameAddr, Request, Response, SipURI
from ..message.headers import parse_name_addr, parse_routes

TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
"""Requests whose Contact (and whose 2xx's Contact) replaces the remote target (RFC 3261
§12.2, RFC 3311 §5.1, RFC 6665 §4.1.2.1, RFC 3515)."""

# RFC 3261 §19.1.1 table: URI parts a Request-URI may not carry.
_NOT_IN_REQUEST_URI = ("method",)


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogId(NamedTuple):
    """Call-ID, local tag, remote tag (RFC 3261 §12): as each side sees it."""

    call_id: str
    local_tag: str
    remote_tag: str


def uas_dialog_id(request: Request) -> DialogId:
    """The id of the dialog a received request belongs to, seen by its UAS (To tag local)."""
    return DialogId(request.call_id, request.to.tag or "", request.from_.tag or "")


def uac_dialog_id(response: Response) -> DialogId:
    """The id of the dialog a received response belongs to, seen by its UAC."""
    return DialogId(response.call_id, response.from_.tag or "", response.to.tag or "")


def _party(value: str) -> str:
    """A From or To value without its tag (the dialog's local or remote URI, §12.1)."""
    address = parse_name_addr(value)
    params = {k: v for k, v in address.params.items() if k != "tag"}
    return str(NameAddr(address.uri, address.display_name, params))


def _contact_uri(message: Request | Response) -> str | None:
    contacts = message.contact
    if not contacts or contacts[0].is_star:
        return None
    return str(contacts[0].uri)


def initial_sequence() -> int:
    """A first CSeq number for requests of a side that has sent none (§8.1.1.5: below 2**31;
    kept far enough below that the dialog never reaches 2**32)."""
    return secrets.randbelow(2**30) + 1


class Dialog:
    """One dialog: the state of RFC 3261 §12.1 and what it takes to act in it.

    ``local_contact`` is the Contact this side puts in target-refresh requests and in its
    responses (the remote side's view of our target); ``secure`` is the sips flag."""

    __slots__ = (
        "call_id",
        "local_contact",
        "local_seq",
        "local_tag",
        "local_uri",
        "remote_rseq",
        "remote_seq",
        "remote_tag",
        "remote_target",
        "remote_uri",
        "role",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        remote_target: str,
        route_set: Iterable[str] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        role: str = "UAC",
        state: DialogState = DialogState.EARLY,
        secure: bool = False,
        local_contact: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        """The local party as a name-addr without tag (From of our requests)."""
        self.remote_uri = remote_uri
        """The remote party as a name-addr without tag (To of our requests)."""
        self.remote_target = remote_target
        """Where requests go: the peer's Contact URI (§12.1.1, §12.1.2)."""
        self.route_set: list[str] = list(route_set)
        """Route values in the order our requests carry them (each as received)."""
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.role = role
        """"UAC" (this side sent the request that created the dialog) or "UAS"."""
        self.state = state
        self.secure = secure
        self.local_contact = local_contact
        self.remote_rseq: int | None = None
        """The RSeq of the last reliable provisional response taken (RFC 3262 §4)."""

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def from_response(
        cls, request: Request, response: Response, *, local_contact: str | None = None
    ) -> Dialog:
        """The UAC's dialog (RFC 3261 §12.1.2) from the request it sent (as sent) and a
        101–199 (early) or 2xx (confirmed) response carrying a To tag."""
        code = response.status_code
        if not 101 <= code < 300:
            raise ValueError(f"a {code} response creates no dialog")
        # The route set is the Record-Route list of the response, reversed.
        routes = list(reversed(response.header_values("record-route")))
        target = _contact_uri(response) or request.uri_text
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_party(request.header("from") or ""),
            remote_uri=_party(request.header("to") or ""),
            remote_target=target,
            route_set=routes,
            local_seq=request.cseq.seq,
            remote_seq=None,
            role="UAC",
            state=DialogState.CONFIRMED if code >= 200 else DialogState.EARLY,
            secure=isinstance(request.uri, SipURI) and request.uri.secure,
            local_contact=local_contact if local_contact is not None else _contact_text(request),
        )

    @classmethod
    def from_request(
        cls,
        request: Request,
        local_tag: str,
        *,
        local_contact: str | None = None,
        confirmed: bool = False,
        secure: bool = False,
    ) -> Dialog:
        """The UAS's dialog (RFC 3261 §12.1.1) from the request and the To tag of its
        response; early until the 2xx is sent (``confirmed``). ``secure``: the request came
        over TLS with a sips Request-URI."""
        target = _contact_uri(request) or str(request.from_.uri)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_party(request.header("to") or ""),
            remote_uri=_party(request.header("from") or ""),
            remote_target=target,
            # The route set is the Record-Route list of the request, in order.
            route_set=request.header_values("record-route"),
            local_seq=None,
            remote_seq=request.cseq.seq,
            role="UAS",
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
            secure=secure,
            local_contact=local_contact,
        )

    # -- identity and state -----------------------------------------------------------------

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def early(self) -> bool:
        return self.state is DialogState.EARLY

    @property
    def confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def confirm(self, response: Response | None = None) -> None:
        """Early → confirmed. For a UAC, ``response`` is the 2xx: the route set and remote
        target are recomputed from it (RFC 3261 §13.2.2.4, §12.2.1.2)."""
        if self.terminated:
            raise ValueError("a terminated dialog cannot be confirmed")
        if response is not None and self.role == "UAC" and self.state is DialogState.EARLY:
            self.route_set = list(reversed(response.header_values("record-route")))
            self.refresh_target(response)
        self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    def refresh_target(self, message: Request | Response) -> None:
        """Take the Contact of a target-refresh request or of its 2xx as the new remote
        target (RFC 3261 §12.2.1.2, §12.2.2); nothing when it has none."""
        try:
            target = _contact_uri(message)
        except ParseError:
            return
        if target is not None:
            self.remote_target = target

    # -- requests inside the dialog (UAC side of §12.2.1) -----------------------------------

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A request in this dialog (RFC 3261 §12.2.1.1): To, From, Call-ID from the
        dialog, the next local CSeq (``cseq`` to force one: an ACK's is the INVITE's), the
        Request-URI and Route from the remote target and route set — loose or strict
        routing — and our Contact on target-refresh requests. No Via: the transport adds
        it. ``headers`` come after these; ``body`` is the message body."""
        if method == "CANCEL":
            raise ValueError("a CANCEL is built from its INVITE (make_cancel), not in the dialog")
        if self.terminated:
            raise ValueError(f"cannot send {method} in a terminated dialog")
        if cseq is None:
            if method == "ACK":
                raise ValueError("an ACK takes the CSeq number of its INVITE")
            cseq = self.next_seq()
        uri, routes = self.request_uri_and_routes()
        lines: list[tuple[str, str]] = [("Route", route) for route in routes]
        lines += [
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if method in TARGET_REFRESH_METHODS and self.local_contact:
            lines.append(("Contact", self.local_contact))
        lines += list(headers)
        return Request(method, uri, lines, body)

    def create_ack(
        self, invite_cseq: int, *, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> Request:
        """The ACK for a 2xx to the INVITE (or re-INVITE) with CSeq ``invite_cseq``: built
        like any request of the dialog, with the INVITE's CSeq number (§13.2.2.4)."""
        return self.create_request("ACK", headers=headers, body=body, cseq=invite_cseq)

    def next_seq(self) -> int:
        """Take the next local CSeq number (the first one chosen at random, §12.2.1.1)."""
        self.local_seq = (self.local_seq if self.local_seq is not None else initial_sequence() - 1) + 1
        return self.local_seq

    def request_uri_and_routes(self) -> tuple[str, list[str]]:
        """The Request-URI and Route values of our next request (RFC 3261 §12.2.1.1)."""
        if not self.route_set:
            return self.remote_target, []
        first = parse_routes(self.route_set[0])[0]
        uri = first.uri
        if isinstance(uri, SipURI) and uri.lr:
            return self.remote_target, list(self.route_set)
        # A strict router first: its URI becomes the Request-URI (without the parts a
        # Request-URI may not hold), the rest of the route set follows, then the target.
        if isinstance(uri, SipURI):
            params = {k: v for k, v in uri.params.items() if k not in _NOT_IN_REQUEST_URI}
            request_uri = str(uri.copy(params=params, headers={}))
        else:
            request_uri = str(uri)
        return request_uri, [*self.route_set[1:], f"<{self.remote_target}>"]

    def receive_response(self, request: Request, response: Response) -> None:
        """A response to ``request``, which we sent in this dialog (RFC 3261 §12.2.1.2):
        481 and 408 end the dialog; a 2xx to a target-refresh request refreshes the remote
        target."""
        code = response.status_code
        if code in (408, 481):
            self.terminate()
        elif 200 <= code < 300 and request.method in TARGET_REFRESH_METHODS:
            self.refresh_target(response)

    # -- requests received in the dialog (UAS side, §12.2.2) --------------------------------

    def receive_request(self, request: Request) -> int | None:
        """Check a request received in this dialog and take its CSeq number; None when it
        is in order, else the status to answer it with (500 for a CSeq lower than the last
        one, RFC 3261 §12.2.2). ACK and CANCEL carry the number of their INVITE and are not
        counted. The remote target is refreshed by :meth:`refresh_target` once a
        target-refresh request is accepted."""
        if request.method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500
        self.remote_seq = seq
        return None

    def accept_rseq(self, rseq: int) -> bool:
        """A reliable provisional response's RSeq (UAC side, RFC 3262 §4 with erratum 4604):
        True for the first one or for one exactly one higher than the last, which is then
        PRACKed; False for a retransmission or one out of order (not PRACKed, not
        processed)."""
        if self.remote_rseq is not None and rseq != self.remote_rseq + 1:
            return False
        self.remote_rseq = rseq
        return True

    def __repr__(self) -> str:
        return f"<Dialog {self.role} {self.state.value} {self.call_id} {self.local_tag}/{self.remote_tag}>"


def _contact_text(request: Request) -> str | None:
    values = request.header_values("contact")
    return values[0] if values else None
