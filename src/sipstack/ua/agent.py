"""The user agent: a UAC and UAS on one :class:`~sipstack.endpoint.Endpoint`.

It registers (with digest authentication and refresh), places and answers calls (each a
:class:`~sipstack.ua.call.Call` with its dialog and SDP offer/answer state), sends and takes
OPTIONS and MESSAGE (RFC 3428), and answers 401/407 challenges on any request it sends.
It owns its endpoint's request handler and stray-response callback: incoming requests are
dispatched to the call whose dialog they belong to (RFC 3261 §12.2.2), new INVITEs to the
handler given to :meth:`UserAgent.on_call`; 2xx retransmissions that outlive their INVITE
transaction (RFC 6026 §7.2) get their ACK again.

sipstack does not carry media: the SDP it offers and answers names the address and RTP port
(``media_address``, ``rtp_port``, one port pair per call) where the application's media
engine listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..auth import DigestClient
from ..dialog import Dialog, DialogId, uac_dialog_id, uas_dialog_id
from ..endpoint import Endpoint, IncomingRequest
from ..errors import ParseError, SipTimeoutError, TransportError
from ..message import Request, Response, SipURI, UnsupportedExtension, parse_uri, validate_request
from ..net import Address
from ..offeranswer import DEFAULT_CODECS, Codec, SdpSession
from ..sdp import SessionDescription
from ..transaction import ClientTransaction, TimerConfig, new_branch, new_tag
from ..transaction.timers import DEFAULT_TIMERS
from .errors import AuthenticationFailed, CallCancelled, CallTimeout, RequestFailed

if TYPE_CHECKING:
    from .call import Call
    from .incoming import IncomingCall
    from .outbound import Flow, FlowEvent, OutboundConfig, OutboundRegistration
    from .outgoing import OutgoingCall
    from .registration import Registration

log = logging.getLogger("sipstack.ua")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, MESSAGE"
SUPPORTED = ("100rel",)
"""Option tags this UA supports (RFC 3262's 100rel; UPDATE needs no tag, RFC 3311)."""

CallHandler = Callable[["IncomingCall"], Awaitable[None] | None]
MessageHandler = Callable[[Request], Awaitable[int | None] | int | None]

_DEFAULT: Any = object()
_MAX_AUTH_ATTEMPTS = 3  # a fresh challenge, then at most two stale nonces


class UserAgent:
    """A SIP user agent.

    ``aor`` is this UA's identity (From of its requests), e.g. ``sip:alice@example.com``
    (default: ``sip:sipstack@`` its first listening address). ``username``/``password``
    answer digest challenges on any request (:meth:`register` can set them too). ``proxy``
    is an outbound proxy URI (e.g. ``sip:192.0.2.1:5060``), put as a loose Route on requests
    outside dialogs (RFC 3261 §8.1.2).
    ``listen`` is what to listen on when the UA makes its own endpoint (or the given one
    has no listener yet); with ``pair_tcp`` each UDP listener gets a TCP one on its port
    (RFC 3261 §18.1.1: large requests come over TCP). ``prack``: ``"supported"`` (offer
    100rel on INVITEs), ``"required"`` or ``"disabled"``. With ``auto_answer`` and no
    :meth:`on_call` handler, calls are answered at once; without either they are refused
    with 480. ``instance_id`` is this UA's SIP Outbound instance URN (RFC 5626 §4.1), or
    ``instance_file`` a file that keeps one across restarts (default: one made per UA
    object); see :meth:`register_outbound`.

    Use it as an async context manager, or call :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        aor: str | None = None,
        *,
        endpoint: Endpoint | None = None,
        listen: Sequence[str] = ("udp:127.0.0.1:0",),
        username: str | None = None,
        password: str | None = None,
        display_name: str | None = None,
        proxy: str | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        media_address: str | None = None,
        rtp_port: int = 40000,
        codecs: Sequence[Codec] = DEFAULT_CODECS,
        auto_answer: bool = False,
        prack: str = "supported",
        user_agent: str = "sipstack",
        pair_tcp: bool = True,
        instance_id: str | None = None,
        instance_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if prack not in ("supported", "required", "disabled"):
            raise ValueError("prack is one of supported, required, disabled")
        self._own_endpoint = endpoint is None
        self.endpoint = endpoint or Endpoint(timers=timers, user_agent=user_agent)
        self.listen_specs = list(listen)
        self.pair_tcp = pair_tcp
        self.aor = aor
        self.display_name = display_name
        self.credentials: DigestClient | None = None
        """Digest credentials used on every request (None: challenges are not answered)."""
        if password is not None:
            self.set_credentials(username or _user_of(aor) or "sipstack", password)
        self.proxy = _loose(proxy) if proxy else None
        self.media_address = media_address
        self.codecs = tuple(codecs)
        self.auto_answer = auto_answer
        self.prack = prack
        self.user_agent = user_agent
        self._rtp_base = rtp_port
        self._rtp_next = rtp_port
        self._dialogs: dict[DialogId, Call] = {}
        self._invites: dict[object, IncomingCall] = {}  # server transaction -> call
        self.calls: set[Call] = set()
        """The calls not yet ended."""
        self.registrations: list[Registration] = []
        self._call_handler: CallHandler | None = None
        self._message_handler: MessageHandler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        # SIP Outbound (RFC 5626, ua/outbound.py).
        self._instance_id = instance_id
        if instance_id is not None:
            from .instance import normalise_instance_id

            self._instance_id = normalise_instance_id(instance_id)
        self.instance_file = instance_file
        self.outbound: OutboundRegistration | None = None
        """The flows of :meth:`register_outbound`, while they run."""

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (when the endpoint has no listener yet) and take the endpoint's requests."""
        if self._started:
            return
        if not self.endpoint.listeners:
            for spec in self.listen_specs:
                local = await self.endpoint.listen(spec)
                if local.transport == "UDP" and self.pair_tcp:
                    await self._pair_tcp(local)
        self.endpoint.on_request(self._on_request)
        self.endpoint.on_stray_response(self._on_stray_response)
        if self.aor is None:
            self.aor = f"sip:sipstack@{self.endpoint.listeners[0].local.host_port}"
        self._started = True

    async def _pair_tcp(self, udp: Address) -> None:
        """RFC 3261 §18: a UA implements TCP as well as UDP — a request too large for UDP
        comes over TCP (§18.1.1) to the port of our Contact. So a UDP listener gets a TCP
        one on the same port (unless one is configured, or the port is taken for TCP)."""
        v6 = ":" in udp.host
        if self.endpoint.local_address("TCP", v6) is not None:
            return
        if any(spec.lower().startswith("tcp:") for spec in self.listen_specs):
            return
        host = f"[{udp.host}]" if v6 else udp.host
        try:
            await self.endpoint.listen(f"tcp:{host}:{udp.port}")
        except OSError as exc:
            log.info("no TCP listener beside %s: %s", udp, exc)

    async def close(self, *, timeout: float = 2.0) -> None:
        """Hang up the calls still up and stop refreshing registrations (at most ``timeout``
        seconds), then close the endpoint if this UA made it."""
        for registration in list(self.registrations):
            registration.stop()
        if self.outbound is not None:  # RFC 5626 flows: no more refreshes, pings, recovery
            self.outbound.stop()
        pending = [self.spawn(call.hangup()) for call in list(self.calls)]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_endpoint:
            await self.endpoint.close()

    async def __aenter__(self) -> UserAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def timers(self) -> TimerConfig:
        return self.endpoint.layer.timers

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.endpoint.loop

    def set_credentials(self, username: str, password: str, *, realm: str | None = None) -> None:
        """Answer digest challenges as ``username`` with ``password`` (any realm, or ``realm``)."""
        self.credentials = DigestClient(username, password, realm=realm)

    # -- handlers ---------------------------------------------------------------------------

    def on_call(self, handler: CallHandler) -> CallHandler:
        """Register what incoming calls go to (usable as a decorator): ``handler(call)`` gets
        an :class:`~sipstack.ua.call.IncomingCall` and answers it — ``await call.ring()``,
        ``await call.accept()``, ``await call.reject(486)`` — now or later."""
        self._call_handler = handler
        return handler

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Register what MESSAGE requests outside calls go to (RFC 3428): ``handler(request)``
        returns the status to answer (None: 200)."""
        self._message_handler = handler
        return handler

    # -- identity and requests --------------------------------------------------------------

    def _from(self, tag: str, aor: str | None = None) -> str:
        uri = aor or self.aor or "sip:sipstack@invalid"
        display = f'"{self.display_name}" ' if self.display_name else ""
        return f"{display}<{uri}>;tag={tag}"

    @property
    def instance_id(self) -> str:
        """This UA's instance URN (RFC 5626 §4.1, ``urn:uuid:…``): the one given, else the
        one kept in ``instance_file``, else one made now and kept for the UA's lifetime."""
        if self._instance_id is None:
            from .instance import load_instance_id, new_instance_id

            self._instance_id = (
                load_instance_id(self.instance_file) if self.instance_file is not None else new_instance_id()
            )
        return self._instance_id

    def contact_for(self, address: Address) -> str:
        """Our Contact for requests that go to ``address``: the listener of its transport
        (and IP family), with ``transport=`` for anything but UDP; and ``ob`` when they go
        over a registered SIP Outbound flow (RFC 5626 §4.3: keep the dialog on the flow)."""
        v6 = ":" in address.host
        local = self.endpoint.local_address(address.transport, v6)
        transport = address.transport
        if local is None:
            local = next(
                (lst.local for lst in self.endpoint.listeners if (":" in lst.local.host) == v6), None
            )
            if local is None:
                local = self.endpoint.listeners[0].local
            transport = local.transport
        user = _user_of(self.aor) or "sipstack"
        suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
        scheme = "sips" if transport == "TLS" and address.secure else "sip"
        if self.outbound is not None and self.outbound.flow_to(address) is not None:
            suffix += ";ob"  # RFC 5626 §4.3
        return f"<{scheme}:{user}@{local.host_port}{suffix}>"

    def create_request(
        self,
        method: str,
        uri: str,
        *,
        to: str | None = None,
        from_aor: str | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
        cseq: int = 1,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request outside any dialog (RFC 3261 §8.1.1) from this UA to ``uri``: the
        outbound proxy as Route, From with a fresh tag, To (``to`` or the URI), a fresh
        Call-ID. No Via (the transport adds it) and no Contact (added per target)."""
        lines: list[tuple[str, str]] = []
        route = self.proxy
        if route is None and self.outbound is not None:
            route = self.outbound.route()  # RFC 5626 §4.3: over a registered flow
        if route:
            lines.append(("Route", f"<{route}>"))
        lines += [
            ("Max-Forwards", "70"),
            ("From", self._from(from_tag or new_tag(), from_aor)),
            ("To", to or f"<{uri}>"),
            ("Call-ID", call_id or f"{new_tag()}{new_tag()}@sipstack"),
            ("CSeq", f"{cseq} {method}"),
        ]
        if self.user_agent:
            lines.append(("User-Agent", self.user_agent))
        if body and content_type:
            lines.append(("Content-Type", content_type))
        lines += list(headers)
        return Request(method, uri, lines, body)

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self,
        request: Request,
        *,
        contact: str | bool | None = None,
        credentials: DigestClient | None = _DEFAULT,
        next_cseq: Callable[[], int] | None = None,
    ) -> Response:
        """Send a non-INVITE ``request`` and return its final response, whatever it is.

        Targets come from RFC 3263 (its first Route, else its Request-URI), tried in turn
        on a timeout, a transport error or a 503. A 401/407 is answered with
        ``credentials`` (default: the UA's) and the request sent again with the next CSeq
        (``next_cseq``: a dialog's; default: one more). ``contact``: a Contact value, or True
        for ours on the chosen target's transport."""
        creds = self.credentials if credentials is _DEFAULT else credentials
        retry = False
        for _attempt in range(_MAX_AUTH_ATTEMPTS + 1):
            if creds is not None:
                creds.authorize(request)
            response = await self._transaction(request, contact)
            if response.status_code not in (401, 407) or creds is None:
                return response
            if not creds.handle_challenge(response, retry=retry):
                return response
            retry = True
            seq = next_cseq() if next_cseq is not None else request.cseq.seq + 1
            request = _with_cseq(request, seq)
        return response

    async def _transaction(self, request: Request, contact: str | bool | None) -> Response:
        targets = await self.endpoint.targets(request)
        error: Exception | None = None
        response: Response | None = None
        for i, address in enumerate(targets):
            attempt = request.copy()
            assert isinstance(attempt, Request)
            if contact:
                attempt.set_header("Contact", self.contact_for(address) if contact is True else str(contact))
            future: asyncio.Future[Response] = self.loop.create_future()
            try:
                await self.endpoint.start_request(attempt, address, future=future)
                response = await future
            except (SipTimeoutError, TransportError) as exc:
                error = exc
                continue
            if response.status_code == 503 and i + 1 < len(targets):
                continue  # RFC 3263 §4.3
            return response
        if response is not None:
            return response
        raise error or TransportError(f"no target for {request.uri_text}")

    async def start_invite(
        self,
        request: Request,
        *,
        contact: bool,
        on_provisional: Callable[[Response], None],
        on_final: Callable[[Response], None],
    ) -> tuple[Request, ClientTransaction, asyncio.Future[Response]]:
        """Start an INVITE client transaction towards the first target that can be reached:
        the request as sent (with its Via), the transaction, and the future of its first
        final response. Every 2xx (retransmissions, forks) also goes to ``on_final``."""
        targets = await self.endpoint.targets(request)
        error: Exception | None = None
        for address in targets:
            attempt = request.copy()
            assert isinstance(attempt, Request)
            if contact:
                attempt.set_header("Contact", self.contact_for(address))
            future: asyncio.Future[Response] = self.loop.create_future()
            try:
                tx = await self.endpoint.start_request(
                    attempt, address, on_provisional=on_provisional, on_final=on_final, future=future
                )
            except TransportError as exc:
                error = exc
                continue
            return attempt, tx, future
        raise error or TransportError(f"no target for {request.uri_text}")

    async def send_ack(self, ack: Request) -> tuple[Request, Address]:
        """Send the ACK for a 2xx (not a transaction, RFC 3261 §13.2.2.4, §17.1.1.3) to the
        dialog's next hop with a fresh branch; the ACK as sent and where, for resending it
        when the 2xx is retransmitted."""
        targets = await self.endpoint.targets(ack)
        address = targets[0]
        local = self.endpoint.local_address(address.transport, ":" in address.host)
        if local is None:
            local = self.endpoint.listeners[0].local
        ack.prepend_header(
            "Via", f"SIP/2.0/{address.transport} {local.host_port};branch={new_branch()};rport"
        )
        self.endpoint.send_stateless(ack, address)
        return ack, address

    def resend(self, message: Request, address: Address) -> None:
        self.endpoint.send_stateless(message, address)

    @staticmethod
    def check(request: Request | str, response: Response) -> Response:
        """``response`` if it is a 2xx, else :class:`RequestFailed` (or
        :class:`AuthenticationFailed` for a 401/407 left over)."""
        if 200 <= response.status_code < 300:
            return response
        if response.status_code in (401, 407):
            raise AuthenticationFailed(request, response)
        raise RequestFailed(request, response)

    # -- requests outside dialogs -----------------------------------------------------------

    async def options(self, uri: str, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """OPTIONS (RFC 3261 §11): the 2xx, with the peer's Allow, Accept and Supported;
        :class:`RequestFailed` for another final response."""
        request = self.create_request("OPTIONS", uri, headers=[("Accept", "application/sdp"), *headers])
        return self.check(request, await self.send(request))

    async def message(
        self,
        uri: str,
        text: str | bytes,
        *,
        content_type: str = "text/plain;charset=UTF-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A MESSAGE (RFC 3428 §4) with ``text`` as its body; the 2xx (200 or 202), or
        :class:`RequestFailed`. No Contact: a MESSAGE creates no dialog."""
        body = text.encode("utf-8") if isinstance(text, str) else text
        request = self.create_request("MESSAGE", uri, headers=headers, body=body, content_type=content_type)
        return self.check(request, await self.send(request))

    async def register(
        self,
        aor: str | None = None,
        *,
        password: str | None = None,
        username: str | None = None,
        registrar: str | None = None,
        expires: int = 3600,
        refresh: bool = True,
    ) -> Registration:
        """Register this UA's Contact for ``aor`` (default: the UA's) with the registrar of
        its domain (or ``registrar``, a URI such as ``sip:127.0.0.1:5060``), answering
        digest challenges with ``password`` (and ``username``, default the AoR's user part;
        they become the UA's credentials if it has none). Refreshed before it expires while
        ``refresh``. Raises :class:`RequestFailed` when the registrar refuses."""
        from .registration import Registration

        aor, credentials = self._registering(aor, password, username)
        registration = Registration(self, aor, registrar=registrar, credentials=credentials, expires=expires)
        await registration.start(refresh=refresh)
        self.registrations.append(registration)
        return registration

    def _registering(
        self, aor: str | None, password: str | None, username: str | None
    ) -> tuple[str, DigestClient | None]:
        """The AoR to register (the UA's by default; it becomes the UA's if it had none) and
        the credentials to answer challenges with (``password`` becomes the UA's if it had
        none)."""
        aor = aor or self.aor
        if aor is None:
            raise ValueError("no address-of-record to register")
        if self.aor is None:
            self.aor = aor
        credentials = self.credentials
        if password is not None:
            credentials = DigestClient(username or _user_of(aor) or "", password)
            if self.credentials is None:
                self.credentials = credentials
        return aor, credentials

    async def unregister(self, aor: str | None = None) -> list[Response]:
        """Remove the bindings of this UA's registrations (of ``aor`` only, if given), SIP
        Outbound flows included; the registrars' 200s. Raises :class:`RequestFailed` if one
        refuses."""
        done = []
        for registration in list(self.registrations):
            if aor is None or registration.aor == aor:
                done.append(await registration.unregister())
        if self.outbound is not None and (aor is None or self.outbound.aor == aor):
            done += await self.outbound.unregister()
        return done

    async def register_outbound(
        self,
        proxies: Sequence[str],
        aor: str | None = None,
        *,
        password: str | None = None,
        username: str | None = None,
        registrar: str | None = None,
        expires: int = 3600,
        config: OutboundConfig | None = None,
        on_event: Callable[[Flow, FlowEvent], object] | None = None,
    ) -> OutboundRegistration:
        """Register ``aor`` with SIP Outbound (RFC 5626): one flow per outbound proxy URI in
        ``proxies`` (``reg-id`` 1, 2, … in that order), each REGISTER routed through its proxy,
        with this UA's ``+sip.instance`` and ``Supported: outbound``; flows are kept alive and
        re-registered after a failure with the §4.5 back-off (``config``). Requests this UA
        then sends outside dialogs go over a registered flow. Returns when every flow has
        tried once; raises the error of the first flow when none could register. One set
        of flows per UA."""
        from .outbound import OutboundRegistration

        if self.outbound is not None:
            raise RuntimeError("this UserAgent already registers with SIP Outbound")
        aor, credentials = self._registering(aor, password, username)
        outbound = OutboundRegistration(
            self,
            aor,
            proxies,
            registrar=registrar,
            credentials=credentials,
            expires=expires,
            config=config,
            on_event=on_event,
        )
        self.outbound = outbound
        try:
            return await outbound.start()
        except BaseException:
            outbound.stop()
            raise

    def dial(
        self,
        uri: str,
        sdp: SessionDescription | bytes | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        late_offer: bool = False,
    ) -> OutgoingCall:
        """Start a call to ``uri`` and return it at once (``await call.wait_answered()``,
        ``await call.cancel()``). ``sdp``: the offer (a SessionDescription or bytes; default
        one built from the UA's media settings); ``late_offer``: send the INVITE without
        one (the answerer offers in its 2xx, we answer in the ACK)."""
        from .outgoing import OutgoingCall

        if not self._started:
            raise RuntimeError("start the UserAgent first")
        return OutgoingCall(self, uri, sdp=sdp, headers=headers, late_offer=late_offer)

    async def invite(
        self,
        uri: str,
        sdp: SessionDescription | bytes | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        late_offer: bool = False,
        timeout: float | None = None,
    ) -> OutgoingCall:
        """Call ``uri`` and wait for the answer: the established call (``call.remote_sdp``
        is the answer). Raises :class:`RequestFailed` with the final response if the call is
        refused, :class:`SipTimeoutError` if nobody answers (Timer B, or ``timeout``
        seconds — the INVITE is then cancelled, and the :class:`CallTimeout` raised carries
        the final response that brought, a 487, and the call)."""
        call = self.dial(uri, sdp, headers=headers, late_offer=late_offer)
        try:
            await call.wait_answered(timeout)
        except SipTimeoutError as exc:
            if timeout is not None and not call.ended:
                with contextlib.suppress(Exception):
                    await call.cancel()
            raise CallTimeout(str(exc), call.response, call) from exc
        return call

    # -- calls bookkeeping (used by Call) ---------------------------------------------------

    def new_media(self) -> SdpSession:
        """The SDP state of a new call: our media address and the next RTP port pair."""
        address = self.media_address
        if address is None:
            local = self.endpoint.listeners[0].local.host if self.endpoint.listeners else "127.0.0.1"
            address = "127.0.0.1" if local in ("0.0.0.0", "::") else local
        port = self._rtp_next
        self._rtp_next = port + 2 if port + 2 < 65534 else self._rtp_base
        return SdpSession(address, port, codecs=self.codecs, username=_user_of(self.aor) or "sipstack")

    def bind_dialog(self, dialog: Dialog, call: Call) -> None:
        self._dialogs[dialog.id] = call

    def unbind_dialog(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def unbind_invite(self, transaction: object) -> None:
        self._invites.pop(transaction, None)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, kept referenced; its failure is logged."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed: %r", task.exception())

    # -- incoming ---------------------------------------------------------------------------

    def _on_stray_response(self, response: Response, source: Address) -> None:
        # RFC 6026 §7.2: a 2xx retransmitted after the INVITE transaction ended.
        try:
            if response.cseq.method != "INVITE" or not 200 <= response.status_code < 300:
                return
            call = self._dialogs.get(uac_dialog_id(response))
        except ParseError:
            return
        if call is not None:
            call._handle_stray_2xx(response)

    def _on_request(self, incoming: IncomingRequest) -> None:
        try:
            self._dispatch(incoming)
        except Exception:
            log.exception("UA failed on %s", incoming.method)
            if incoming.transaction is not None and not incoming.answered:
                incoming.respond(500)

    def _dispatch(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        method = request.method
        if method == "ACK":
            call = self._dialogs.get(uas_dialog_id(request))
            if call is not None:
                call._handle_ack(request)
            return
        if method == "CANCEL":
            self._on_cancel(incoming)
            return
        try:
            validate_request(request, supported=SUPPORTED, require_headers=("require",))
        except UnsupportedExtension as exc:
            incoming.respond(420, headers=[("Unsupported", ", ".join(exc.unsupported))])
            return
        except ParseError as exc:
            incoming.respond(exc.status_code, exc.reason)
            return
        if request.to.tag:
            call = self._dialogs.get(uas_dialog_id(request))
            if call is None:
                incoming.respond(481)  # RFC 3261 §12.2.2
            else:
                call._handle_request(incoming)
            return
        if method == "INVITE":
            self._on_invite(incoming)
        elif method == "OPTIONS":
            incoming.respond(200, headers=self.capabilities())
        elif method == "MESSAGE":
            self.spawn(self._on_message(incoming))
        elif method in ("BYE", "PRACK", "UPDATE", "INFO"):
            incoming.respond(481)
        else:
            incoming.respond(405, headers=[("Allow", ALLOW)])

    def capabilities(self) -> list[tuple[str, str]]:
        """Allow, Accept and Supported, as OPTIONS answers and INVITEs carry them."""
        return [("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", ", ".join(SUPPORTED))]

    async def _on_message(self, incoming: IncomingRequest) -> None:
        status: int | None = 200
        handler = self._message_handler
        if handler is not None:
            try:
                result = handler(incoming.request)
                status = (await result) if inspect.isawaitable(result) else result
            except Exception:
                log.exception("MESSAGE handler failed")
                status = 500
        incoming.respond(status or 200)  # RFC 3428 §7: no body in the 2xx

    def _on_invite(self, incoming: IncomingRequest) -> None:
        from .incoming import IncomingCall

        try:
            call = IncomingCall(self, incoming, self.new_media())
        except ParseError as exc:
            incoming.respond(exc.status_code, exc.reason)
            return
        self._invites[incoming.transaction] = call
        handler = self._call_handler
        if handler is not None:
            self.spawn(self._run_call_handler(handler, call))
        elif self.auto_answer:
            self.spawn(call.accept())
        else:
            self.spawn(call.reject(480))

    async def _run_call_handler(self, handler: CallHandler, call: IncomingCall) -> None:
        try:
            result = handler(call)
            if inspect.isawaitable(result):
                await result
        except CallCancelled:
            log.info("call %s: cancelled by the caller", call.call_id)
        except (SipTimeoutError, TransportError) as exc:
            log.warning("call %s: %s", call.call_id, exc)
        except Exception:
            log.exception("call handler failed")
            if not call.answered and not call.ended:
                await call.reject(500)

    def _on_cancel(self, incoming: IncomingRequest) -> None:
        tx = self.endpoint.layer.find_invite(incoming.request)
        call = self._invites.get(tx) if tx is not None else None
        if call is None:
            incoming.respond(481)  # RFC 3261 §9.2: no transaction to cancel
            return
        call._handle_cancel(incoming)


def _user_of(aor: str | None) -> str | None:
    if not aor:
        return None
    try:
        uri = parse_uri(aor)
    except ParseError:
        return None
    return uri.user if isinstance(uri, SipURI) else None


def _loose(proxy: str) -> str:
    """An outbound proxy's URI as a Route value: RFC 3261 §8.1.2 routes through it loosely
    (``lr`` added when missing)."""
    uri = parse_uri(proxy.strip("<>"))
    if isinstance(uri, SipURI) and not uri.lr:
        uri = uri.copy(params={**uri.params, "lr": None})
    return str(uri)


def _with_cseq(request: Request, seq: int) -> Request:
    retry = request.copy()
    assert isinstance(retry, Request)
    retry.set_header("CSeq", f"{seq} {request.method}")
    return retry


__all__ = ["ALLOW", "SUPPORTED", "UserAgent"]
