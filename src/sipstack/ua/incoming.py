"""The callee's side of a call: provisional responses, reliable ones retransmitted until
their PRACK (RFC 3262 §3), the 2xx retransmitted until its ACK (RFC 3261 §13.3.1.4),
refusals, and the caller's CANCEL (§9.2) or early BYE (§15.1.2)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..dialog import Dialog, ReliableProvisionals, Retransmission, parse_rack
from ..endpoint import IncomingRequest
from ..errors import ParseError, SipTimeoutError
from ..message import NameAddr, Response
from ..offeranswer import NotAcceptable, SdpSession, negotiate
from ..sdp import SessionDescription
from .call import SDP, Call, CallState, body_sdp, sdp_body
from .errors import CallCancelled, CallStateError

if TYPE_CHECKING:
    from .agent import UserAgent


class IncomingCall(Call):
    """A call offered to us, given to the :meth:`UserAgent.on_call` handler. ``caller``
    and ``callee`` are the From and To of the INVITE, ``offer`` its SDP (None: the INVITE
    has none, we offer in our answer and the caller answers in its ACK)."""

    direction = "incoming"

    def __init__(self, ua: UserAgent, incoming: IncomingRequest, media: SdpSession) -> None:
        request = incoming.request
        offer = body_sdp(request)  # ParseError: answered 400 by the UA
        super().__init__(ua, call_id=request.call_id, media=media)
        self.incoming = incoming
        self.invite = request
        self._request = request  # the INVITE, typed as never None
        self.offer: SessionDescription | None = offer
        self.caller: NameAddr = request.from_
        self.callee: NameAddr = request.to
        self.local_tag = incoming.to_tag
        tags = {t.lower() for t in request.supported} | {t.lower() for t in request.require}
        self.peer_100rel = "100rel" in tags
        self.require_100rel = "100rel" in {t.lower() for t in request.require}
        self._provisionals = ReliableProvisionals(request.cseq.seq)
        self._prack_event: asyncio.Event | None = None
        self._sdp_sent_reliably = False
        self._contact = ua.contact_for(incoming.source)

    @property
    def answered(self) -> bool:
        """Whether the INVITE got its final response."""
        return self.incoming.answered

    def _dialog(self) -> Dialog:
        if self.dialog is None:
            self.dialog = Dialog.from_request(self._request, self.local_tag, local_contact=self._contact)
            self._add_dialog(self.dialog)
        return self.dialog

    def _record_route(self) -> list[tuple[str, str]]:
        """RFC 3261 §12.1.1: a response that creates the dialog copies the request's
        Record-Route values, in order (so the caller learns the route set too)."""
        return [("Record-Route", value) for value in self._request.header_values("record-route")]

    def _check_open(self) -> None:
        if self.end_reason == "cancelled":
            raise CallCancelled("the caller cancelled the call")
        if self.ended or self.answered:
            raise CallStateError(f"the INVITE is already answered ({self.state.value})")

    def _session_sdp(self) -> bytes:
        """Our SDP in the INVITE transaction: the answer to the INVITE's offer (or our
        offer when it had none), made once; NotAcceptable when nothing fits."""
        if self.media.local is None:
            if self.offer is not None:
                self.media.create_answer(self.offer)
            else:
                self.media.create_offer()
        assert self.media.local is not None
        return bytes(self.media.local)

    # -- answering --------------------------------------------------------------------------

    async def ring(
        self,
        status: int = 180,
        reason: str | None = None,
        *,
        reliable: bool | None = None,
        early_media: bool = False,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Send a provisional response (180 Ringing by default; 183 with ``early_media``
        carries our SDP). ``reliable`` (RFC 3262): default when the caller requires 100rel,
        or supports it and SDP goes along; a reliable one is retransmitted until its PRACK,
        which this waits for (SipTimeoutError after 64·T1, the INVITE then refused 500)."""
        self._check_open()
        if not 101 <= status < 200:
            raise ValueError("a provisional status is 101-199")
        if reliable is None:
            reliable = self.require_100rel or (
                early_media and self.peer_100rel and self.ua.prack != "disabled"
            )
        if reliable and not self.peer_100rel:
            raise CallStateError("the caller does not support 100rel")
        self._dialog()
        lines = [*self._record_route(), ("Contact", self._contact), *self.ua.capabilities(), *headers]
        body = b""
        if early_media:
            try:
                body = self._session_sdp()
            except NotAcceptable:
                await self.reject(488)
                raise
            lines.append(("Content-Type", SDP))
        rseq = 0
        if reliable:
            try:
                rseq = self._provisionals.next(has_sdp=bool(body))
            except ValueError as exc:
                raise CallStateError(str(exc)) from None
            lines += [("Require", "100rel"), ("RSeq", str(rseq))]
            self._sdp_sent_reliably = self._sdp_sent_reliably or bool(body)
        response = self.incoming.respond(status, reason, headers=lines, body=body)
        self.state = CallState.EARLY
        if reliable:
            await self._until_prack(response)
        return response

    async def _until_prack(self, response: Response) -> None:
        loop = self.ua.loop
        event = self._prack_event = asyncio.Event()
        schedule = Retransmission.for_provisional(loop.time(), self.ua.timers.T1)
        while schedule.next_at is not None and not event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(0.0, schedule.next_at - loop.time()))
            if not event.is_set() and schedule.fire(loop.time()) and not self.answered:
                self.incoming.respond(response)
        if self._provisionals.pending is None:
            return  # PRACKed
        self._check_open()
        # RFC 3262 §3: no PRACK within 64·T1: the INVITE is refused with a 5xx.
        await self.reject(500, "No PRACK")
        raise SipTimeoutError("no PRACK for the reliable provisional response")

    async def accept(
        self, sdp: SessionDescription | bytes | None = None, *, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """Answer 200 (with the answer to the offer — ``sdp`` or one made from the UA's
        media settings — or our offer if the INVITE had none), retransmitted until the ACK,
        which this waits for. Raises :class:`CallCancelled` if the caller cancelled,
        :class:`NotAcceptable` (after answering 488) if no stream of the offer fits,
        :class:`SipTimeoutError` if no ACK came (the call is then ended with a BYE)."""
        self._check_open()
        if self._provisionals.blocks_2xx and self._prack_event is not None:
            # RFC 3262 §3: not before the PRACK of a reliable 1xx that carried SDP.
            await self._prack_event.wait()
            self._check_open()
        answer_in_ack = False
        body = b""
        try:
            if sdp is not None:
                body = self._take_own_sdp(sdp)
                answer_in_ack = self.offer is None
            elif not self._sdp_sent_reliably:
                answer_in_ack = self.offer is None and self.media.local is None
                body = self._session_sdp()
        except NotAcceptable:
            await self.reject(488)
            raise
        dialog = self._dialog()
        dialog.confirm()
        lines = [*self._record_route(), ("Contact", self._contact), *self.ua.capabilities(), *headers]
        if body:
            lines.append(("Content-Type", SDP))
        seq = self._request.cseq.seq
        self._ack_waits[seq] = asyncio.Event()
        if answer_in_ack:
            self._answer_in_ack.add(seq)
        response = self.incoming.respond(200, headers=lines, body=body)
        self.state = CallState.ESTABLISHED
        self.ua.unbind_invite(self.incoming.transaction)
        if not await self._until_ack(self.incoming, response, seq) and self.end_reason == "no ack":
            raise SipTimeoutError("no ACK for the 2xx")
        return response

    def _take_own_sdp(self, sdp: SessionDescription | bytes) -> bytes:
        description = sdp if isinstance(sdp, SessionDescription) else SessionDescription.parse(sdp)
        self.media.local = description
        if self.offer is not None:
            self.media.remote = self.offer
            self.media.streams = negotiate(description, self.offer)
        else:
            self.media.pending_offer = description
        return sdp_body(sdp)

    async def reject(
        self, status: int = 486, reason: str | None = None, *, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """Refuse the call with a final response ≥ 300 (486 Busy Here by default)."""
        if status < 300:
            raise ValueError("a refusal is 300-699")
        self._check_open()
        response = self.incoming.respond(status, reason, headers=list(headers))
        self.ua.unbind_invite(self.incoming.transaction)
        self._terminate("rejected")
        return response

    async def hangup(self) -> None:
        if self.established:
            await super().hangup()
        elif not self.ended and not self.answered:
            with contextlib.suppress(CallStateError, CallCancelled):
                await self.reject(603)

    # -- requests from the caller -----------------------------------------------------------

    def _handle_cancel(self, cancel: IncomingRequest) -> None:
        cancel.respond(200)  # §9.2: the CANCEL itself always gets a 200
        if not self.answered:
            self.incoming.respond(487)
            self.ua.unbind_invite(self.incoming.transaction)
            self._terminate("cancelled")

    def _on_bye(self, dialog: Dialog) -> None:
        if not self.answered:
            self.incoming.respond(487)  # §15.1.2: a BYE in the early dialog ends the INVITE
            self.ua.unbind_invite(self.incoming.transaction)
        super()._on_bye(dialog)

    def _on_prack(self, incoming: IncomingRequest) -> None:
        try:
            rack = parse_rack(incoming.request.header("rack") or "")
        except ParseError as exc:
            incoming.respond(400, exc.reason)
            return
        if not self._provisionals.acknowledge(rack):
            incoming.respond(481)  # RFC 3262 §3: no such unacknowledged response
            return
        if incoming.request.body and self.media.pending_offer is not None:
            self._take_answer(incoming.request)  # the answer to the offer in our 1xx (§5)
        incoming.respond(200)
        if self._prack_event is not None:
            self._prack_event.set()

    def _terminate(self, reason: str) -> None:
        if self._prack_event is not None:
            self._prack_event.set()
        super()._terminate(reason)


__all__ = ["IncomingCall"]
