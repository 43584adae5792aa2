"""A call: an INVITE dialog and its session (RFC 3261 §12–§15, RFC 3264), as seen from one
side. What both sides share is here — requests sent and received inside the dialog (BYE,
re-INVITE, UPDATE of RFC 3311, INFO of RFC 2976, MESSAGE, OPTIONS), the ACK of 2xx
responses, the 2xx retransmission until the ACK; :mod:`.outgoing` and :mod:`.incoming` add
the caller's and the callee's parts of setting the call up."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..dialog import Dialog, Retransmission
from ..endpoint import IncomingRequest
from ..errors import ParseError, SipTimeoutError, TransportError
from ..message import Request, Response
from ..net import Address
from ..offeranswer import MediaStream, NotAcceptable, SdpSession
from ..sdp import SessionDescription
from .errors import CallStateError, RequestFailed

if TYPE_CHECKING:
    from .agent import UserAgent

log = logging.getLogger("sipstack.ua")

SDP = "application/sdp"
RequestHandler = Callable[[Request], Awaitable[int | None] | int | None]


class CallState(enum.Enum):
    CALLING = "calling"
    """The INVITE is sent (or received) and nothing but 100 came back."""
    EARLY = "early"
    """A provisional response: ringing, perhaps early media."""
    ESTABLISHED = "established"
    """A 2xx was sent or received: the dialog is confirmed."""
    TERMINATED = "terminated"


def sdp_body(sdp: SessionDescription | bytes | str) -> bytes:
    if isinstance(sdp, SessionDescription):
        return bytes(sdp)
    return sdp.encode() if isinstance(sdp, str) else bytes(sdp)


def body_sdp(message: Request | Response) -> SessionDescription | None:
    """The SDP a message carries (Content-Type application/sdp), or None; ParseError when
    it is malformed."""
    if not message.body:
        return None
    content_type = message.content_type
    if content_type is not None and content_type.mime != SDP:
        return None
    return SessionDescription.parse(message.body)


class Call:
    """One call. Common attributes:

    - ``state`` (:class:`CallState`), ``dialog`` (the :class:`~sipstack.dialog.Dialog`),
      ``call_id``, ``direction`` ("outgoing" or "incoming");
    - ``media``: the :class:`~sipstack.offeranswer.SdpSession` (``local_sdp``,
      ``remote_sdp`` and the agreed ``streams`` read from it);
    - ``end_reason`` once ended: "bye" (we hung up), "remote bye", "cancelled",
      "rejected", "failed", "no ack" …
    """

    direction = ""

    def __init__(self, ua: UserAgent, *, call_id: str, media: SdpSession) -> None:
        self.ua = ua
        self.call_id = call_id
        self.media = media
        self.state = CallState.CALLING
        self.dialog: Dialog | None = None
        """The dialog of the call (for an outgoing call in early state, the latest early one)."""
        self.dialogs: dict[str, Dialog] = {}
        """Every dialog of the call by remote tag (a forked INVITE has several)."""
        self.invite: Request | None = None
        """The initial INVITE (as sent, or as received)."""
        self.end_reason: str | None = None
        self._ended: asyncio.Future[str] = ua.loop.create_future()
        self._request_handler: RequestHandler | None = None
        self._invite_out = False  # our (re-)INVITE transaction is in progress
        self._ack_waits: dict[int, asyncio.Event] = {}  # UAS: 2xx sent for CSeq n, no ACK yet
        self._answer_in_ack: set[int] = set()  # UAS: 2xx with an offer for CSeq n
        self._acks: dict[tuple[str, int], asyncio.Task[tuple[Request, Address]]] = {}  # UAC
        self._acked: set[int] = set()  # UAS: CSeq numbers whose 2xx got its ACK
        self._invite_auth: dict[int, list[tuple[str, str]]] = {}  # UAC: credentials per INVITE
        ua.calls.add(self)

    # -- state ------------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        return self.state is CallState.ESTABLISHED

    @property
    def ended(self) -> bool:
        return self.state is CallState.TERMINATED

    @property
    def local_sdp(self) -> SessionDescription | None:
        """The last description we sent (offer or answer)."""
        return self.media.local

    @property
    def remote_sdp(self) -> SessionDescription | None:
        """The last description the peer sent (for a caller: the answer)."""
        return self.media.remote

    @property
    def streams(self) -> list[MediaStream]:
        """What the last offer/answer exchange agreed, stream by stream."""
        return self.media.streams

    async def wait_ended(self, timeout: float | None = None) -> str:
        """Wait until the call ends; the reason (see ``end_reason``)."""
        return await asyncio.wait_for(asyncio.shield(self._ended), timeout)

    def on_request(self, handler: RequestHandler) -> RequestHandler:
        """Register what INFO, MESSAGE, OPTIONS, NOTIFY … inside the call go to:
        ``handler(request)`` returns the status to answer (None: 200)."""
        self._request_handler = handler
        return handler

    def _terminate(self, reason: str) -> None:
        if self.state is CallState.TERMINATED:
            return
        self.state = CallState.TERMINATED
        self.end_reason = reason
        for dialog in self.dialogs.values():
            dialog.terminate()
            self.ua.unbind_dialog(dialog)
        for event in self._ack_waits.values():
            event.set()
        self.ua.calls.discard(self)
        if not self._ended.done():
            self._ended.set_result(reason)
        log.info("call %s ended: %s", self.call_id, reason)

    @property
    def awaiting_ack(self) -> bool:
        """Whether a 2xx of ours to an INVITE still waits for its ACK."""
        return any(not event.is_set() for event in self._ack_waits.values())

    def _add_dialog(self, dialog: Dialog) -> None:
        self.dialogs[dialog.remote_tag] = dialog
        self.ua.bind_dialog(dialog, self)

    # -- requests we send in the dialog ----------------------------------------------------

    def _require_dialog(self, *, early: bool = False) -> Dialog:
        dialog = self.dialog
        if self.state is CallState.TERMINATED or dialog is None or dialog.terminated:
            raise CallStateError(f"call {self.call_id} has no dialog to send in ({self.state.value})")
        if not early and not dialog.confirmed:
            raise CallStateError("the call is not established")
        return dialog

    async def send_in_dialog(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        dialog: Dialog | None = None,
    ) -> Response:
        """Send a non-INVITE request in ``dialog`` (default: the call's) and return its final
        response, whatever it is; 481 / 408 / a timeout end the dialog (RFC 3261
        §12.2.1.2), and the call with it."""
        dialog = dialog or self._require_dialog(early=True)
        lines = list(headers)
        if body and content_type:
            lines.append(("Content-Type", content_type))
        request = dialog.create_request(method, headers=lines, body=body)
        try:
            response = await self.ua.send(request, next_cseq=dialog.next_seq)
        except (SipTimeoutError, TransportError):
            dialog.terminate()
            if dialog is self.dialog and method != "BYE":
                self._terminate("timeout")
            raise
        dialog.receive_response(request, response)
        if dialog.terminated and dialog is self.dialog:
            self._terminate(f"{response.status_code} to {method}")
        return response

    async def request(
        self,
        method: str,
        *,
        body: bytes | str = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Send ``method`` inside the call; the 2xx, or :class:`RequestFailed`."""
        if method in ("INVITE", "ACK", "CANCEL", "BYE", "PRACK"):
            raise ValueError(f"use the Call's own method for {method}")
        raw = body.encode() if isinstance(body, str) else body
        response = await self.send_in_dialog(method, body=raw, content_type=content_type, headers=headers)
        if not 200 <= response.status_code < 300:
            raise RequestFailed(method, response)
        return response

    async def info(
        self,
        body: bytes | str = b"",
        content_type: str | None = "application/dtmf-relay",
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """INFO (RFC 2976, without an Info Package): the 2xx, or :class:`RequestFailed`."""
        return await self.request("INFO", body=body, content_type=content_type, headers=headers)

    async def message(self, text: str | bytes, content_type: str = "text/plain;charset=UTF-8") -> Response:
        """A MESSAGE inside the call (RFC 3428 §10): the 2xx, or :class:`RequestFailed`."""
        return await self.request("MESSAGE", body=text, content_type=content_type)

    async def options(self) -> Response:
        """OPTIONS inside the call (RFC 3261 §11): the 2xx, or :class:`RequestFailed`."""
        return await self.request("OPTIONS", headers=[("Accept", SDP)])

    async def bye(self) -> Response:
        """End the established call (RFC 3261 §15.1.1); the BYE's final response. The call
        is over whatever it is (481, a timeout …)."""
        dialog = self._require_dialog()
        try:
            response = await self.send_in_dialog("BYE", dialog=dialog)
        finally:
            self._terminate("bye")
        return response

    async def hangup(self) -> None:
        """End the call whatever its state (BYE, CANCEL or a refusal, as fits)."""
        if self.established:
            with contextlib.suppress(CallStateError, SipTimeoutError, TransportError):
                await self.bye()

    async def update(
        self,
        sdp: SessionDescription | bytes | None = None,
        *,
        direction: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """UPDATE (RFC 3311) with a new offer (default: ours re-made with ``direction``, o=
        version + 1), in an early or confirmed dialog; the 2xx (its answer taken,
        ``remote_sdp``), or :class:`RequestFailed` (491 if the peer had an offer of its own
        in progress)."""
        dialog = self._require_dialog(early=True)
        if self.media.pending_offer is not None:
            raise CallStateError("an offer is already waiting for its answer")
        offer = self._offer(sdp, direction)
        try:
            response = await self.send_in_dialog(
                "UPDATE",
                body=offer,
                content_type=SDP,
                headers=[*self.ua.capabilities(), *headers],
                dialog=dialog,
            )
        except BaseException:
            self.media.rollback()
            raise
        if not 200 <= response.status_code < 300:
            self.media.rollback()
            raise RequestFailed("UPDATE", response)
        self._take_answer(response)
        return response

    def _offer(self, sdp: SessionDescription | bytes | None, direction: str | None = None) -> bytes:
        if sdp is None:
            return bytes(self.media.create_offer(direction=direction))
        offer = sdp if isinstance(sdp, SessionDescription) else SessionDescription.parse(sdp)
        self.media.local = self.media.pending_offer = offer
        return sdp_body(sdp)

    def _take_answer(self, message: Request | Response) -> None:
        try:
            answer = body_sdp(message)
            if answer is not None and self.media.pending_offer is not None:
                self.media.receive_answer(answer)
        except (ParseError, NotAcceptable) as exc:
            log.warning("call %s: unusable answer (%s)", self.call_id, exc)
            self.media.rollback()

    async def reinvite(
        self,
        sdp: SessionDescription | bytes | None = None,
        *,
        direction: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A re-INVITE (RFC 3261 §14.1) with a new offer — by default ours re-made with
        ``direction`` (``"sendonly"`` puts the peer on hold, ``"sendrecv"`` takes it back);
        the 2xx (ACKed; its answer is ``remote_sdp``), or :class:`RequestFailed` (491 on
        glare: wait and try again, §14.1)."""
        dialog = self._require_dialog()
        if self._invite_out or self.media.pending_offer is not None:
            # §14.1: not while an INVITE of ours is pending (theirs are answered at once).
            raise CallStateError("an INVITE or an offer is already in progress")
        self._invite_out = True
        try:
            response = await self._reinvite(dialog, self._offer(sdp, direction), list(headers))
        except BaseException:
            self.media.rollback()
            raise
        finally:
            self._invite_out = False
        if not 200 <= response.status_code < 300:
            self.media.rollback()
            if dialog.terminated:
                self._terminate(f"{response.status_code} to re-INVITE")
            raise RequestFailed("INVITE", response)
        self._take_answer(response)
        return response

    async def _reinvite(self, dialog: Dialog, offer: bytes, headers: list[tuple[str, str]]) -> Response:
        ua = self.ua
        creds = ua.credentials
        retry = False
        while True:
            request = dialog.create_request(
                "INVITE", headers=[*ua.capabilities(), ("Content-Type", SDP), *headers], body=offer
            )
            if creds is not None:
                creds.authorize(request)
            sent, _tx, future = await ua.start_invite(
                request,
                contact=False,
                on_provisional=lambda r: None,
                on_final=lambda r, d=dialog: self._on_invite_2xx_in(d, r),
            )
            self._remember_credentials(sent)
            try:
                response = await future
            except (SipTimeoutError, TransportError):
                dialog.terminate()
                self._terminate("timeout")
                raise
            dialog.receive_response(sent, response)
            code = response.status_code
            if code in (401, 407) and creds is not None and creds.handle_challenge(response, retry=retry):
                retry = True
                continue
            if 200 <= code < 300:
                task = self._acks.get((response.to.tag or "", response.cseq.seq))
                if task is not None:
                    await asyncio.shield(task)
            return response

    def _on_invite_2xx_in(self, dialog: Dialog, response: Response) -> None:
        """A 2xx to our re-INVITE (first or retransmitted): ACK it (again)."""
        if 200 <= response.status_code < 300:
            self._ack(dialog, response, b"")

    def _remember_credentials(self, invite: Request) -> None:
        """§13.2.2.4 / §22.1: the ACK for a 2xx carries its INVITE's credentials."""
        self._invite_auth[invite.cseq.seq] = [
            (n, v) for n, v in invite.header_items() if n.lower() in ("authorization", "proxy-authorization")
        ]

    def _ack(
        self, dialog: Dialog, response: Response, body: bytes, after: Callable[[], Any] | None = None
    ) -> None:
        """ACK a 2xx (RFC 3261 §13.2.2.4) once, and again for each retransmission of it."""
        key = (dialog.remote_tag, response.cseq.seq)
        task = self._acks.get(key)
        if task is not None:
            if task.done() and not task.cancelled() and task.exception() is None:
                ack, address = task.result()
                self.ua.resend(ack, address)
            return
        self._acks[key] = self.ua.spawn(self._send_ack(dialog, response, body, after))

    async def _send_ack(
        self, dialog: Dialog, response: Response, body: bytes, after: Callable[[], Any] | None
    ) -> tuple[Request, Address]:
        headers = list(self._invite_auth.get(response.cseq.seq, ()))
        if body:
            headers.append(("Content-Type", SDP))
        ack = dialog.create_ack(response.cseq.seq, headers=headers, body=body)
        sent = await self.ua.send_ack(ack)
        if after is not None:
            result = after()
            if inspect.isawaitable(result):
                await result
        return sent

    def _handle_stray_2xx(self, response: Response) -> None:
        """A 2xx retransmission that came after its INVITE transaction (RFC 6026 §7.2)."""
        dialog = self.dialogs.get(response.to.tag or "")
        if dialog is not None:
            self._ack(dialog, response, b"")

    # -- requests we receive in the dialog (RFC 3261 §12.2.2) -------------------------------

    def _handle_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        dialog = self.dialogs.get(request.from_.tag or "")
        if dialog is None or dialog.terminated:
            incoming.respond(481)
            return
        status = dialog.receive_request(request)
        if status is not None:
            incoming.respond(status)  # §12.2.2: a CSeq lower than the last one
            return
        method = request.method
        if method == "BYE":
            incoming.respond(200)
            self._on_bye(dialog)
        elif method == "INVITE":
            self._on_reinvite(incoming, dialog)
        elif method == "UPDATE":
            self._on_update(incoming, dialog)
        elif method == "PRACK":
            self._on_prack(incoming)
        else:
            self.ua.spawn(self._on_other(incoming))

    def _on_bye(self, dialog: Dialog) -> None:
        if dialog is self.dialog:
            self._terminate("remote bye")
        else:
            dialog.terminate()
            self.ua.unbind_dialog(dialog)

    def _on_prack(self, incoming: IncomingRequest) -> None:
        incoming.respond(481)  # no reliable provisional response of ours to acknowledge

    async def _on_other(self, incoming: IncomingRequest) -> None:
        status: int | None = 200
        handler = self._request_handler
        if handler is not None:
            try:
                result = handler(incoming.request)
                status = (await result) if inspect.isawaitable(result) else result
            except Exception:
                log.exception("call %s: request handler failed", self.call_id)
                status = 500
        headers = self.ua.capabilities() if incoming.method == "OPTIONS" else []
        incoming.respond(status or 200, headers=headers)

    def _answer_offer(self, incoming: IncomingRequest) -> tuple[bytes, bool] | None:
        """Our SDP for the 2xx to a request that may carry an offer: the answer to its
        offer, or our offer when it has none (then True: the answer comes later). None when
        the offer was refused (the request is answered 488 or 400 here)."""
        try:
            offer = body_sdp(incoming.request)
            if offer is None:
                return bytes(self.media.create_offer()), True
            return bytes(self.media.create_answer(offer)), False
        except NotAcceptable as exc:
            incoming.respond(488, headers=[("Warning", f'304 sipstack "{exc}"')])
        except ParseError as exc:
            incoming.respond(400, f"Bad SDP: {exc.reason}"[:100])
        return None

    def _on_reinvite(self, incoming: IncomingRequest, dialog: Dialog) -> None:
        if self._invite_out or self.media.pending_offer is not None:
            incoming.respond(491)  # RFC 3261 §14.2: glare
            return
        sdp = self._answer_offer(incoming)
        if sdp is None:
            return
        body, offered = sdp
        dialog.refresh_target(incoming.request)
        seq = incoming.request.cseq.seq
        self._ack_waits[seq] = asyncio.Event()  # before the 2xx leaves: its ACK may come first
        response = incoming.respond(
            200, headers=[*_contact(dialog), *self.ua.capabilities(), ("Content-Type", SDP)], body=body
        )
        if offered:
            self._answer_in_ack.add(seq)
        self.ua.spawn(self._until_ack(incoming, response, seq))

    def _on_update(self, incoming: IncomingRequest, dialog: Dialog) -> None:
        # RFC 3311 §5.2: an offer of ours waiting → 491; theirs unanswered → 500.
        if self.media.pending_offer is not None:
            incoming.respond(491)
            return
        if self.media.local is None and incoming.request.body:
            incoming.respond(500, headers=[("Retry-After", str(random.randint(0, 10)))])
            return
        headers = [*_contact(dialog), *self.ua.capabilities()]
        body = b""
        if incoming.request.body:
            try:
                offer = body_sdp(incoming.request)
                if offer is not None:
                    body = bytes(self.media.create_answer(offer))
                    headers.append(("Content-Type", SDP))
            except NotAcceptable:
                incoming.respond(488)
                return
            except ParseError as exc:
                incoming.respond(400, f"Bad SDP: {exc.reason}"[:100])
                return
        dialog.refresh_target(incoming.request)  # UPDATE is a target refresh (§5.2)
        incoming.respond(200, headers=headers, body=body)

    def _handle_ack(self, request: Request) -> None:
        """An ACK in the dialog: the 2xx it acknowledges is no longer retransmitted; an
        answer it carries (to the offer in our 2xx) is taken."""
        seq = request.cseq.seq
        event = self._ack_waits.get(seq)
        if event is None or event.is_set():
            return
        if seq in self._answer_in_ack:
            self._answer_in_ack.discard(seq)
            self._take_answer(request)
            if self.media.pending_offer is not None:
                self.media.rollback()  # an ACK without the answer: the offer lapses
        self._acked.add(seq)
        event.set()

    async def _until_ack(self, incoming: IncomingRequest, response: Response, seq: int) -> bool:
        """Retransmit our 2xx to an INVITE until its ACK (RFC 3261 §13.3.1.4); without one
        within 64·T1 the call is ended with a BYE. True when the ACK came."""
        loop = self.ua.loop
        timers = self.ua.timers
        event = self._ack_waits.setdefault(seq, asyncio.Event())
        schedule = Retransmission.for_2xx(loop.time(), timers.T1, timers.T2)
        try:
            while schedule.next_at is not None:
                try:
                    await asyncio.wait_for(event.wait(), max(0.0, schedule.next_at - loop.time()))
                    break
                except TimeoutError:
                    if schedule.fire(loop.time()):
                        incoming.respond(response)
        finally:
            self._ack_waits.pop(seq, None)
            self._answer_in_ack.discard(seq)
        if seq in self._acked:
            self._acked.discard(seq)
            return True
        if self.state is CallState.TERMINATED:
            return False  # ended meanwhile (a BYE, a CANCEL that lost the race …)
        log.warning("call %s: no ACK for the 2xx to CSeq %d", self.call_id, seq)
        if self.dialog is not None and not self.dialog.terminated:
            with contextlib.suppress(CallStateError, SipTimeoutError, TransportError, ValueError):
                await self.send_in_dialog("BYE", dialog=self.dialog)
        self._terminate("no ack")
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id} {self.state.value}>"


def _contact(dialog: Dialog) -> list[tuple[str, str]]:
    return [("Contact", dialog.local_contact)] if dialog.local_contact else []
