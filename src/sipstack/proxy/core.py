"""The transaction-stateful proxy (RFC 3261 §16, with RFC 5658, RFC 6026 and the working
group's 503 rule).

:meth:`Proxy.forward` takes a validated request with its server transaction and a target
set, forks it (parallel within a q-value, sequential across q-values, §16.5/§16.6), and
keeps a :class:`ResponseContext` that forwards provisional and 2xx responses at once and
the best final response at the end (§16.7). CANCEL, Timer C and the stateless paths
(2xx retransmissions and ACKs for 2xx, RFC 6026) are here too. Deciding the targets — the
location service, the routing hook — is the caller's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..endpoint import Endpoint, IncomingRequest
from ..errors import ParseError, SipTimeoutError, TransportError
from ..message import Request, Response, SipURI, parse_uri
from ..net import Address
from ..transaction import MAGIC_COOKIE, ClientTransaction, ServerTransaction, make_cancel, random_hex
from ..transport.resolver import is_ip_literal
from .routing import add_record_route, loop_hash, proxy_branch

log = logging.getLogger("sipstack.proxy")

TIMER_C = 180.0  # §16.6 step 11: greater than 3 minutes


@dataclass(slots=True)
class Target:
    """Where one branch goes: the Request-URI to put in it, its q-value, and the Path of the
    binding it came from (RFC 3327: pre-loaded as Route headers)."""

    uri: str
    q: float = 1.0
    path: list[str] = field(default_factory=list)
    foreign: bool = False
    """The Request-URI of a domain this proxy does not serve: the default route applies."""
    flow: Address | None = None
    """RFC 5626 (outbound): send over exactly this flow (its connection), not by routing."""


@dataclass(slots=True)
class Branch:
    target: Target
    request: Request | None = None
    address: Address | None = None
    tx: ClientTransaction | None = None
    provisional: bool = False
    final: Response | None = None
    cancel_wanted: bool = False
    cancelled: bool = False
    timer_c: asyncio.TimerHandle | None = None
    timer_c_at: float = 0.0
    """When Timer C fires; a provisional moves it on without re-arming the handle."""


def _class_rank(code: int) -> int:
    # §16.7 step 6: 6xx first, then the lowest class; among 4xx prefer the ones the UAC can
    # act on (401, 407, 415, 420, 484).
    if code >= 600:
        return 0
    preferred = 1 if code in (401, 407, 415, 420, 484) else 2
    return code // 100 * 10 + preferred


class ResponseContext:
    """One proxied request and its branches (§16.7)."""

    def __init__(self, proxy: Proxy, incoming: IncomingRequest, groups: list[list[Target]]) -> None:
        self.proxy = proxy
        self.incoming = incoming
        self.request = incoming.request
        self.is_invite = incoming.request.method == "INVITE"
        self.groups = groups
        self.branches: list[Branch] = []
        self.answered = False
        self.best: Response | None = None
        self.responses: list[Response] = []
        self.saw_6xx = False
        self._loop_hash: str | None = None

    async def start(self) -> None:
        await self._next_group()

    async def _next_group(self) -> None:
        while self.groups and not self.answered and not self.saw_6xx:
            group = self.groups.pop(0)
            if len(group) == 1:  # the common case: no Task for a single branch
                started = [await self._start_branch(group[0])]
            else:
                started = await asyncio.gather(*(self._start_branch(target) for target in group))
            if any(started):
                return
        self._maybe_finish()

    async def _start_branch(self, target: Target) -> bool:
        proxy = self.proxy
        branch = Branch(target)
        self.branches.append(branch)
        request = self.request.copy()
        assert isinstance(request, Request)
        request.uri = target.uri  # §16.6 step 2
        # Step 3: Max-Forwards.
        hops = request.max_forwards
        request.set_header("Max-Forwards", str(70 if hops is None else hops - 1))
        # Step 5: the target's Path becomes the first Routes (RFC 3327 §5.3).
        for value in reversed(target.path):
            request.prepend_header("Route", value)
        try:
            # RFC 5626 §5.3/§6: a target on an outbound flow goes over that flow.
            address = (
                target.flow
                or proxy.known_hop(request, foreign=target.foreign)
                or await proxy.resolve_hop(request, foreign=target.foreign)
            )
        except TransportError as exc:
            log.info("%s %s: no route to %s: %s", request.method, self.request.call_id, target.uri, exc)
            branch.final = Response(503 if "resolve" in str(exc) else 408, headers=())
            return False
        # Step 4: Record-Route, two entries across transports or IP families (RFC 5658).
        if proxy.record_route and request.method in ("INVITE", "SUBSCRIBE", "REFER", "NOTIFY"):
            incoming = proxy.endpoint.local_address(
                self.incoming.source.transport, ":" in self.incoming.source.host
            )
            outgoing = proxy.endpoint.local_address(address.transport, ":" in address.host)
            add_record_route(request, incoming, outgoing)
        branch.request = request
        branch.address = address
        try:
            branch.tx = await proxy.endpoint.start_request(
                request,
                address,
                on_provisional=lambda r: self._on_provisional(branch, r),
                on_final=lambda r: self._on_final(branch, r),
                on_error=lambda exc: self._on_error(branch, exc),
                branch=self._branch_id(len(self.branches)),
            )
        except TransportError as exc:
            log.info("%s to %s failed: %s", request.method, address, exc)
            branch.final = Response(503, headers=())
            return False
        if self.is_invite:
            self._arm_timer_c(branch)
        return True

    def _branch_id(self, index: int) -> str:
        """§16.6 step 8: the branch of the ``index``-th copy; the loop hash is the request's,
        the same for every branch."""
        if self._loop_hash is None:
            self._loop_hash = loop_hash(self.request)
        return f"{MAGIC_COOKIE}{self._loop_hash}.{index}{random_hex(3)}"

    # -- responses ---------------------------------------------------------------------------

    def _arm_timer_c(self, branch: Branch) -> None:
        # §16.6 step 11 / §16.7 step 2: (re)start Timer C. A provisional only moves the
        # deadline on; the one handle, when it fires early, sleeps again until then.
        loop = self.proxy.endpoint.loop
        branch.timer_c_at = loop.time() + self.proxy.timer_c
        if branch.timer_c is None:
            branch.timer_c = loop.call_at(branch.timer_c_at, self._timer_c, branch)

    def _timer_c(self, branch: Branch) -> None:
        # §16.8: with a provisional, CANCEL the branch; without, treat it as a 408.
        branch.timer_c = None
        if branch.final is not None:
            return
        loop = self.proxy.endpoint.loop
        if loop.time() < branch.timer_c_at:  # moved on by a provisional since
            branch.timer_c = loop.call_at(branch.timer_c_at, self._timer_c, branch)
            return
        if branch.provisional:
            self._cancel_branch(branch)
        else:
            self._on_final(branch, Response(408, headers=()), synthetic=True)

    def _on_error(self, branch: Branch, error: Exception) -> None:
        # Timer B/F or a transport failure: the branch answered 408 / 503 in effect (§16.7
        # step 2 treats a timeout as a 408); neither is sent upstream as such by itself.
        code = 408 if isinstance(error, SipTimeoutError) else 503
        self._on_final(branch, Response(code, headers=()), synthetic=True)

    def _on_provisional(self, branch: Branch, response: Response) -> None:
        branch.provisional = True
        if self.is_invite:
            self._arm_timer_c(branch)
        if branch.cancel_wanted and not branch.cancelled:
            self._cancel_branch(branch)
        if response.status_code == 100 or self.answered:
            return  # §16.7 step 5: 100 is not forwarded
        self._forward_upstream(response)

    def _on_final(self, branch: Branch, response: Response, synthetic: bool = False) -> None:
        if branch.timer_c is not None:
            branch.timer_c.cancel()
            branch.timer_c = None
        if branch.final is not None and not (200 <= response.status_code < 300):
            return
        code = response.status_code
        if 200 <= code < 300:
            # §16.7 step 5 and RFC 6026: every 2xx goes upstream at once (retransmissions too).
            branch.final = response
            self._forward_upstream(response)
            self.answered = True
            self._cancel_pending()
            self._done()
            return
        branch.final = response
        if code >= 600:
            self.saw_6xx = True
            self._cancel_pending()  # §16.7 step 5
        # A synthetic final (timeout, transport failure) is a code, not a message to forward.
        if not synthetic:
            self.responses.append(response)
            if self.best is None or _class_rank(code) < _class_rank(self.best.status_code):
                self.best = response
        if all(b.final is not None for b in self.branches):
            if self.groups and not self.answered and not self.saw_6xx:
                self.proxy.endpoint.loop.create_task(self._next_group())
            else:
                self._maybe_finish()

    def _done(self) -> None:
        if self.answered and all(b.final is not None for b in self.branches):
            if self.incoming.transaction:
                self.proxy.forget(self.incoming.transaction.key)
            # What stays alive until the transactions end (Timer J/K/L/M: up to 32 s) is
            # only what a 2xx retransmission needs: the requests are done with.
            for branch in self.branches:
                branch.request = None
                if branch.final is not None:
                    branch.final.release_parsed()
            # Should anything still hold the context (a cancelled branch's give-up timer),
            # its request keeps no parsed parts for the garbage collector to scan.
            self.request.release_parsed()
            # Nothing more needs the context: a non-INVITE's transactions answer
            # retransmissions themselves, and an INVITE's branches have only 2xx
            # retransmissions to relay upstream (RFC 6026 §7.1, while Timer M runs) — through
            # the server transaction, which passes them on while Timer L runs. Let go now, not
            # after Timers J/K/L/M: the context, its branches, requests, responses and
            # callbacks (twenty-odd objects the garbage collector would scan) go at once.
            server_tx = self.incoming.transaction
            if server_tx is not None:
                server_tx.user_data = None
            relay = _Relay2xx(self.proxy.endpoint, server_tx) if self.is_invite and server_tx else None
            for branch in self.branches:
                if branch.tx is not None:
                    self.proxy.endpoint.redirect_responses(branch.tx, relay)

    def _maybe_finish(self) -> None:
        if self.answered or not all(b.final is not None for b in self.branches):
            self._done()
            return
        self.answered = True
        self._done()
        best = self.best
        if best is None:
            # No branch answered (§16.7 step 6 with only synthetic finals): 408 when a branch
            # timed out — but never to a non-INVITE (RFC 4320 §4.2) — else 503 (unreachable).
            codes = [b.final.status_code for b in self.branches if b.final is not None]
            if 408 in codes:
                if self.is_invite:
                    self.incoming.respond(408)
                return
            # §16.9: a transport failure counts as a 503, and a 503 goes upstream as 500.
            self.incoming.respond(500 if codes else 480)
            return
        if best.status_code == 503:
            # The working group's 503 rule: a 503 is not passed upstream (§16.7 step 6).
            self.incoming.respond(500, "Server Internal Error", headers=_retry_after(best))
            return
        if best.status_code in (401, 407):
            self._forward_upstream(best, extra_challenges=True)
            return
        self._forward_upstream(best)

    def _forward_upstream(self, response: Response, *, extra_challenges: bool = False) -> None:
        """§16.7 step 9: the response without our Via, through the server transaction."""
        # Edited in place, not copied: nothing reads a response once it has gone upstream
        # (the context keeps only its status code and, for §16.7 step 7, the branches'
        # challenges, which losing a Via does not touch).
        upstream = response
        if not upstream.pop_top_via():
            # §16.7 step 3: no Via left: the response was meant for us, not forwarded. A final
            # one still ends the caller's transaction, with our own response of that status.
            log.warning("%d without a Via for the caller: answering it ourselves", response.status_code)
            if response.status_code >= 200 and self.incoming.transaction is not None:
                self.incoming.respond(response.status_code, response.reason)
            return
        if extra_challenges:
            # §16.7 step 7: collect every challenge of every 401/407 branch.
            for other in self.responses:
                if other is response or other.status_code not in (401, 407):
                    continue
                for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                    for value in other.header_values(name):
                        upstream.add_header(name, value)
        if self.incoming.transaction is None:
            return
        try:
            self.incoming.respond(upstream)
        except ParseError as exc:
            log.warning("cannot forward %d upstream: %s", response.status_code, exc.reason)

    # -- CANCEL ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """The UAC cancelled (§16.10): cancel every pending branch; the 487s come back."""
        self.groups.clear()
        self._cancel_pending()

    def _cancel_pending(self) -> None:
        for branch in self.branches:
            if branch.final is None and branch.tx is not None and branch.request is not None:
                if branch.request.method != "INVITE":
                    continue
                if branch.provisional:
                    self._cancel_branch(branch)
                else:
                    branch.cancel_wanted = True  # §9.1: only after a provisional response

    def _cancel_branch(self, branch: Branch) -> None:
        if branch.cancelled or branch.request is None or branch.address is None:
            return
        branch.cancelled = True
        # RFC 3261 §9.1: no final response 64*T1 after the CANCEL: the branch is over.
        give_up = 64 * self.proxy.endpoint.layer.timers.T1
        self.proxy.endpoint.loop.call_later(give_up, self._abandon, branch)
        cancel = make_cancel(branch.request)
        try:
            self.proxy.endpoint.send_prepared(cancel, branch.address)
        except (TransportError, ValueError) as exc:
            log.info("could not CANCEL branch to %s: %s", branch.address, exc)

    def _abandon(self, branch: Branch) -> None:
        if branch.final is not None:
            return
        if branch.tx is not None:
            self.proxy.endpoint.abandon(branch.tx)
        self._on_final(branch, Response(408, headers=()), synthetic=True)


class _Relay2xx:
    """What an answered INVITE keeps for its branches' 2xx retransmissions: the endpoint and
    the server transaction they go upstream through (§16.7 step 9 without the context)."""

    __slots__ = ("endpoint", "server_tx")

    def __init__(self, endpoint: Endpoint, server_tx: ServerTransaction) -> None:
        self.endpoint = endpoint
        self.server_tx = server_tx

    def __call__(self, response: Response) -> None:
        if not 200 <= response.status_code < 300:
            return
        if not response.pop_top_via():  # in place: the retransmission is not read again
            return
        self.endpoint.send_response(self.server_tx, response)


def _retry_after(response: Response) -> list[tuple[str, str]]:
    value = response.header("retry-after")
    return [("Retry-After", value)] if value else []


class Proxy:
    """Forwarding machinery over an :class:`Endpoint`."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        record_route: bool = True,
        default_route: str | None = None,
        timer_c: float = TIMER_C,
    ) -> None:
        self.endpoint = endpoint
        self.record_route = record_route
        self.default_route = parse_uri(default_route) if default_route else None
        self._default_hop: Address | None = None
        self._numeric_hops: dict[str, Address] = {}
        self.timer_c = timer_c
        self.contexts: dict[object, ResponseContext] = {}
        endpoint.on_stray_response(self.forward_stray_response)

    @staticmethod
    def _route_target(request: Request) -> tuple[object, str]:
        """What the next hop is resolved from (§16.6 step 7) and its text, the key of the
        numeric hops kept: the first Route when it is a loose router's, else the
        Request-URI (None then: read from the request when needed)."""
        routes = request.route
        if routes:
            uri = routes[0].uri
            if isinstance(uri, SipURI) and uri.lr:
                return uri, routes[0].uri_text
        return None, request.uri_text

    def known_hop(self, request: Request, *, foreign: bool = False) -> Address | None:
        """:meth:`next_hop` when it is known without resolving anything (a numeric default
        route, a numeric Route or Request-URI seen before: most requests); else None."""
        if foreign and self.default_route is not None and not request.has_header("route"):
            return self._default_hop
        return self._numeric_hops.get(self._route_target(request)[1])

    async def next_hop(self, request: Request, *, foreign: bool = False) -> Address:
        """§16.6 step 7: the first Route (loose routing), the default route for a
        ``foreign`` target (a domain we are not responsible for), else RFC 3263 resolution
        of the Request-URI."""
        hop = self.known_hop(request, foreign=foreign)
        return hop if hop is not None else await self.resolve_hop(request, foreign=foreign)

    async def resolve_hop(self, request: Request, *, foreign: bool = False) -> Address:
        """:meth:`next_hop` once :meth:`known_hop` found nothing."""
        if foreign and not request.has_header("route") and isinstance(self.default_route, SipURI):
            uri = self.default_route
            targets = await self.endpoint.resolver.resolve(uri)
            if is_ip_literal(uri.maddr or uri.host):
                self._default_hop = targets[0]  # no DNS involved: it cannot change
            return targets[0]
        # A numeric next hop (a Route or Request-URI with an IP address: what Record-Route
        # and Contact carry) resolves to the same Address every time: kept, no resolver.
        target, uri_text = self._route_target(request)
        if target is None:
            target = request.uri
        targets = await self.endpoint.targets(request)
        if isinstance(target, SipURI) and is_ip_literal(target.maddr or target.host):
            if len(self._numeric_hops) >= 4096:
                self._numeric_hops.clear()
            self._numeric_hops[uri_text] = targets[0]
        return targets[0]

    async def forward(
        self,
        incoming: IncomingRequest,
        targets: Iterable[Target],
        context: type[ResponseContext] | None = None,
    ) -> None:
        """Proxy ``incoming`` to ``targets`` statefully; answers it in every case. ``context``:
        a ResponseContext subclass to run the branches (RFC 5626 flow failover uses one)."""
        groups: list[list[Target]] = []
        if isinstance(targets, list) and len(targets) == 1:
            groups.append(targets)  # the common case: one target
        else:
            for target in sorted(targets, key=lambda t: -t.q):
                if groups and groups[-1][0].q == target.q:
                    groups[-1].append(target)
                else:
                    groups.append([target])
        if not groups:
            incoming.respond(480)
            return
        context = (context or ResponseContext)(self, incoming, groups)
        incoming.defer()  # the context answers when the branches do
        if incoming.transaction is not None:
            self.contexts[incoming.transaction.key] = context
            incoming.transaction.user_data = context
        await context.start()

    def cancel(self, incoming: IncomingRequest) -> None:
        """A CANCEL (§16.10): answer it, then cancel the matching INVITE's branches."""
        invite_tx = self.endpoint.layer.find_invite(incoming.request)
        context = None if invite_tx is None else self.contexts.get(invite_tx.key)
        if context is None:
            incoming.respond(481)
            return
        incoming.respond(200)
        context.cancel()

    def forget(self, key: object) -> None:
        self.contexts.pop(key, None)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every proxied request has had its final answer."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(not c.answered for c in self.contexts.values()):
            if asyncio.get_running_loop().time() >= deadline:
                log.warning("%d proxied request(s) still unanswered at shutdown", len(self.contexts))
                return
            await asyncio.sleep(0.05)

    # -- stateless paths (RFC 6026) ---------------------------------------------------------

    def forward_stray_response(self, response: Response, source: Address) -> None:
        """A 2xx that matched no client transaction (a retransmission after ours ended):
        forwarded statelessly by the next Via (RFC 6026 §7.1, RFC 3261 §16.11)."""
        if not 200 <= response.status_code < 300:
            return
        top = response.top_via
        if not self.endpoint.is_local(top.host, top.port):
            return  # §18.1.2: not ours
        if not response.pop_top_via():  # in place, as the other relays: it is not read again
            return
        via = response.top_via
        host = via.received or via.host
        port = via.rport or via.port or 5060
        self.endpoint.send_stateless(response, Address(via.transport, host.strip("[]"), port))

    async def forward_ack(self, request: Request, source: Address, target: Target | None = None) -> None:
        """An ACK for a 2xx is end to end: routed statelessly by its Route set, or to
        ``target`` (a binding) when its Request-URI is an AoR of ours (RFC 6026)."""
        # Edited in place: nothing reads the received ACK again. The branch's loop hash is
        # the ACK's as received (§16.6 step 8), taken before the edits.
        ack = request
        branch = proxy_branch(request, 0)
        if target is not None:
            ack.uri = target.uri
            for value in reversed(target.path):
                ack.prepend_header("Route", value)
        hops = ack.max_forwards
        if hops is not None and hops <= 0:
            return
        ack.set_header("Max-Forwards", str(70 if hops is None else hops - 1))
        try:
            # RFC 5626 §5.3: an ACK towards an outbound flow goes over it.
            address = (
                (target.flow if target is not None else None)
                or self.known_hop(ack)
                or await self.resolve_hop(ack)
            )
        except (TransportError, SipTimeoutError, IndexError) as exc:
            log.info("cannot route ACK %s: %s", ack.call_id, exc)
            return
        local = self.endpoint.local_address(address.transport, ":" in address.host)
        if local is None:
            return
        ack.prepend_header("Via", f"SIP/2.0/{address.transport} {local.host_port};branch={branch}")
        self.endpoint.send_stateless(ack, address)
