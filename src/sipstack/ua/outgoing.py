"""The caller's side of a call: the INVITE and its responses (RFC 3261 §13.2), forked early
and confirmed dialogs (§13.2.2.4: every 2xx is ACKed; one that is not the call's is ended
with a BYE), PRACK for reliable provisional responses (RFC 3262 §4), CANCEL (§9.1, a 2xx
crossing it gets ACK and BYE), digest challenges on the INVITE (§22.2)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..dialog import Dialog, DialogSet, RAck, is_reliable, parse_rseq
from ..errors import ParseError, SipTimeoutError, TransportError
from ..message import Request, Response
from ..offeranswer import NotAcceptable, SdpSession
from ..sdp import SessionDescription
from ..transaction import ClientTransaction, make_cancel, new_tag
from .call import SDP, Call, CallState, body_sdp
from .errors import AuthenticationFailed, CallCancelled, CallStateError, RequestFailed

if TYPE_CHECKING:
    from .agent import UserAgent

log = logging.getLogger("sipstack.ua")


class OutgoingCall(Call):
    """A call we place: made by :meth:`UserAgent.dial` (or :meth:`UserAgent.invite`, which
    waits for the answer). ``target`` is the URI called; ``provisional`` the last 1xx;
    ``response`` the final response of the INVITE; ``early_sdp`` SDP from an unreliable
    18x (early media, not yet the answer)."""

    direction = "outgoing"

    def __init__(
        self,
        ua: UserAgent,
        uri: str,
        *,
        sdp: SessionDescription | bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        late_offer: bool = False,
    ) -> None:
        super().__init__(ua, call_id=f"{new_tag()}{new_tag()}@sipstack", media=ua.new_media())
        self.target = uri
        self.from_tag = new_tag()
        self.late_offer = late_offer
        self._headers = list(headers)
        self._body = b"" if late_offer else self._offer(sdp)
        self.provisional: Response | None = None
        self.response: Response | None = None
        self.early_sdp: SessionDescription | None = None
        self.dialog_set: DialogSet | None = None
        self._answered: asyncio.Future[Response] = ua.loop.create_future()
        self._answered.add_done_callback(_retrieve)
        self._wake = asyncio.Event()
        self._cancelling = False
        self._provisional_seen = False
        self._sent: Request | None = None
        self._tx: ClientTransaction | None = None
        self._task = ua.spawn(self._run())

    # -- API --------------------------------------------------------------------------------

    async def wait_answered(self, timeout: float | None = None) -> Response:
        """Wait for the answer: the 2xx (the call is then established and ACKed). Raises
        :class:`RequestFailed` (the final response), :class:`CallCancelled`,
        :class:`SipTimeoutError` (no final response; or none within ``timeout``)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._answered), timeout)
        except TimeoutError as exc:
            if isinstance(exc, SipTimeoutError):
                raise
            raise SipTimeoutError(f"no answer from {self.target} within {timeout} s") from None

    async def cancel(self) -> Response | None:
        """Cancel the unanswered call (RFC 3261 §9.1: the CANCEL goes once a provisional
        response came) and wait for the INVITE's final response, which is returned: a 487,
        or a 2xx that crossed the CANCEL (then ACKed and ended with a BYE at once). None
        when no final response came at all. The call ends "cancelled"."""
        if self.established:
            raise CallStateError("the call is answered: hang up with bye()")
        if not self.ended:
            self._cancelling = True
            self._wake.set()
            await asyncio.shield(self._task)
        return self.response

    def abandon(self, reason: str = "unreachable") -> None:
        """End the unanswered call here, sending nothing: for a peer known to be unreachable
        (an ICMP error, a refused connection), to which no CANCEL can go (RFC 3261 §9.1:
        none before a provisional response). ``wait_answered`` raises
        :class:`CallCancelled`; the call ends with ``reason``."""
        if self.established:
            raise CallStateError("the call is answered: hang up with bye()")
        if self.ended:
            return
        self._task.cancel()
        self._end(reason, CallCancelled(f"call abandoned: {reason}", self.response))

    async def hangup(self) -> None:
        if self.established:
            await super().hangup()
        elif not self.ended:
            with contextlib.suppress(SipTimeoutError, TransportError):
                await self.cancel()

    # -- the INVITE -------------------------------------------------------------------------

    def _request(self, cseq: int) -> Request:
        ua = self.ua
        headers = list(ua.capabilities())
        if ua.prack == "required":
            headers.append(("Require", "100rel"))
        elif ua.prack == "disabled":
            headers = [(n, v) for n, v in headers if n != "Supported"]
        return ua.create_request(
            "INVITE",
            self.target,
            call_id=self.call_id,
            from_tag=self.from_tag,
            cseq=cseq,
            headers=[*headers, *self._headers],
            body=self._body,
            content_type=SDP,
        )

    async def _run(self) -> None:
        ua = self.ua
        creds = ua.credentials
        retry = False
        cseq = 1
        try:
            while True:
                request = self._request(cseq)
                if creds is not None:
                    creds.authorize(request)
                response = await self._attempt(request)
                code = response.status_code
                challenged = code in (401, 407) and not self._cancelling
                if challenged and creds is not None and creds.handle_challenge(response, retry=retry):
                    retry, cseq = True, cseq + 1  # §22.2: same Call-ID and tags, next CSeq
                    continue
                self.response = response
                if 200 <= code < 300:
                    task = self._acks.get((response.to.tag or "", response.cseq.seq))
                    try:
                        if task is not None:
                            await asyncio.shield(task)  # the ACK (and for a loser, its BYE)
                    except (SipTimeoutError, TransportError) as exc:
                        self._end("failed", exc)  # the ACK could not be sent
                        return
                    if self._cancelling:
                        self._end("cancelled", CallCancelled("a 2xx crossed the CANCEL", response))
                    elif not self.established:
                        self._end("failed", RequestFailed(self._sent or request, response))  # no To tag
                    return
                if code == 487 or self._cancelling:
                    self._end("cancelled", CallCancelled("call cancelled", response))
                else:
                    failed = AuthenticationFailed if code in (401, 407) else RequestFailed
                    self._end("rejected", failed(self._sent or request, response))
                return
        except SipTimeoutError as exc:
            self._end("cancelled" if self._cancelling else "timeout", exc)
        except TransportError as exc:
            self._end("cancelled" if self._cancelling else "unreachable", exc)
        except Exception as exc:
            self._end("failed", exc)
            raise

    async def _attempt(self, request: Request) -> Response:
        """One INVITE transaction: its first final response. A CANCEL goes out while it is
        pending once asked for and a provisional response came (§9.1)."""
        self._provisional_seen = False
        sent, tx, final = await self.ua.start_invite(
            request, contact=True, on_provisional=self._on_provisional, on_final=self._on_final
        )
        self._sent, self._tx = sent, tx
        self.invite = sent
        self._remember_credentials(sent)
        self.dialog_set = DialogSet(sent, local_contact=sent.header("contact"))
        cancel_sent = False
        while not final.done():
            if self._cancelling and self._provisional_seen and not cancel_sent:
                self._send_cancel(sent, tx)
                cancel_sent = True
            self._wake.clear()
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait([final, wake], return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
        return final.result()

    def _send_cancel(self, invite: Request, tx: ClientTransaction) -> None:
        # §9.1: the INVITE's Request-URI, Call-ID, From, To, CSeq number, Route and top Via.
        future: asyncio.Future[Response] = self.ua.loop.create_future()
        future.add_done_callback(_retrieve)
        self.ua.endpoint.send_prepared(make_cancel(invite), tx.address, future=future)

    def _end(self, reason: str, error: BaseException) -> None:
        if not self._answered.done():
            self._answered.set_exception(error)
        self._terminate(reason)

    def _terminate(self, reason: str) -> None:
        if not self._answered.done():
            self._answered.set_exception(CallCancelled(f"call ended: {reason}", self.response))
        super()._terminate(reason)

    # -- responses --------------------------------------------------------------------------

    def _on_provisional(self, response: Response) -> None:
        if self.ended or self.dialog_set is None or response.cseq.seq != self.dialog_set.invite.cseq.seq:
            return
        self.provisional = response
        self._provisional_seen = True
        self._wake.set()
        try:
            dialog, created = self.dialog_set.receive_response(response)
        except ParseError as exc:
            log.warning("call %s: bad provisional response: %s", self.call_id, exc)
            return
        if dialog is None:
            return
        if created:
            self._add_dialog(dialog)
        if not self.established:
            self.dialog = dialog
            self.state = CallState.EARLY
        reliable = is_reliable(response)
        answer = b""
        try:
            sdp = body_sdp(response)
        except ParseError:
            sdp = None
        if sdp is not None:
            if not reliable:
                self.early_sdp = sdp  # RFC 3261 §13.2.1: not the answer yet
            elif self.media.pending_offer is not None:
                self._take_answer(response)  # RFC 3262 §5: the answer, final
            elif self.media.local is None:
                try:
                    answer = bytes(self.media.create_answer(sdp))  # RFC 3262 §5: answered in PRACK
                except NotAcceptable as exc:
                    log.warning("call %s: offer in %d refused: %s", self.call_id, response.status_code, exc)
        if reliable and self.ua.prack != "disabled":
            try:
                rseq = parse_rseq(response.header("rseq") or "")
            except ParseError:
                return
            if dialog.accept_rseq(rseq):
                rack = RAck(rseq, response.cseq.seq, "INVITE")
                self.ua.spawn(self._prack(dialog, rack, answer))

    async def _prack(self, dialog: Dialog, rack: RAck, answer: bytes) -> None:
        try:
            response = await self.send_in_dialog(
                "PRACK",
                dialog=dialog,
                headers=[("RAck", str(rack))],
                body=answer,
                content_type=SDP if answer else None,
            )
        except (SipTimeoutError, TransportError, CallStateError, ValueError) as exc:
            log.warning("call %s: PRACK failed: %s", self.call_id, exc)
            return
        if not 200 <= response.status_code < 300:
            log.warning("call %s: PRACK answered %d", self.call_id, response.status_code)

    def _on_final(self, response: Response) -> None:
        """Every final response of the INVITE that goes to the TU: the first one, and each
        2xx (retransmitted, or from another fork: RFC 6026 §7.2)."""
        dialogs = self.dialog_set
        if dialogs is None or response.cseq.seq != dialogs.invite.cseq.seq:
            return
        try:
            dialog, created = dialogs.receive_response(response)
        except ParseError as exc:
            log.warning("call %s: bad final response: %s", self.call_id, exc)
            return
        if dialog is None:
            return
        if created:
            self._add_dialog(dialog)
        if (dialog.remote_tag, response.cseq.seq) in self._acks:
            self._ack(dialog, response, b"")  # a retransmission: the same ACK again
            return
        winner = dialogs.confirmed is dialog and not self._cancelling and not self.ended
        body = self._late_answer(response, winner)
        if winner:
            self._established(dialog, response)
            self._ack(dialog, response, body, after=lambda: self._answered_now(response))
        else:
            # §13.2.2.4: a 2xx from another fork (or crossing our CANCEL) is ACKed, then ended.
            self._ack(dialog, response, body, after=lambda d=dialog: self._bye_extra(d))

    def _late_answer(self, response: Response, winner: bool) -> bytes:
        if not self.late_offer or response.cseq.seq != (self.invite.cseq.seq if self.invite else -1):
            return b""
        if winner and self.media.local is not None:
            return b""  # the offer was answered already, in a PRACK (RFC 3262 §5)
        try:
            offer = body_sdp(response)
            if offer is None:
                return b""
            media = self.media if winner else SdpSession(self.media.address, self.media.port)
            return bytes(media.create_answer(offer))
        except (ParseError, NotAcceptable) as exc:
            log.warning("call %s: cannot answer the offer in the 2xx: %s", self.call_id, exc)
            return b""

    def _established(self, dialog: Dialog, response: Response) -> None:
        self.dialog = dialog
        self.state = CallState.ESTABLISHED
        self.response = response
        self._take_answer(response)
        assert self.dialog_set is not None
        for early in self.dialog_set.terminate_early():
            self.ua.unbind_dialog(early)

    def _answered_now(self, response: Response) -> None:
        if not self._answered.done():
            self._answered.set_result(response)

    async def _bye_extra(self, dialog: Dialog) -> None:
        with contextlib.suppress(SipTimeoutError, TransportError, CallStateError, ValueError):
            await self.send_in_dialog("BYE", dialog=dialog)
        dialog.terminate()
        self.ua.unbind_dialog(dialog)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (nobody may be waiting for it)."""
    if not future.cancelled():
        future.exception()
