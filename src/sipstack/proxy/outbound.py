"""SIP Outbound in the proxy (RFC 5626 §5 edge proxy, §5.3/§6 delivery over flows) and
request targeting of public GRUUs (RFC 5627).

Two roles, both over the transaction-stateful :class:`~.core.Proxy`:

- **Delivery** (the registrar's proxy, §6 and §5.3): a request for an AoR goes to each UA
  instance once — one branch per instance, not per flow — over that instance's flows in
  turn, the most recently registered first. A flow that answers 430 (Flow Failed), that
  fails at the transport, or that is already gone gives way to the instance's next flow;
  when an instance has no flow left and no other branch answers, the caller hears 480.
  :func:`location_targets` builds the target set from the bindings and
  :class:`FlowContext` runs it.
- **Edge proxy** (§5): :class:`EdgeProxy` adds a Path with a flow token and ``ob`` to
  REGISTERs with a reg-id it is the first hop of (§5.1), forwards a request whose Route
  carries one of its tokens over exactly that flow (§5.3: 403 for a token that fails its
  check, 430 when the flow is gone), and record-routes dialog-forming requests of outbound
  UAs with a token so that the dialog stays on the flow (§5.3).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..endpoint import IncomingRequest
from ..errors import ParseError
from ..flow import PATH_FLOW, Flow, FlowTokenError, FlowTokens
from ..message import Request, Response, SipURI, parse_uri
from ..net import Address
from ..storage import Binding
from .core import Branch, Proxy, ResponseContext, Target

log = logging.getLogger("sipstack.proxy.outbound")

DIALOG_FORMING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
"""Requests that create a dialog when sent outside one (no To tag)."""


@dataclass(slots=True)
class FlowTarget(Target):
    """A branch towards one UA instance over one of its flows, with the instance's other
    flows to fall back on (RFC 5626 §5.3)."""

    alternates: list[FlowTarget] = field(default_factory=list)
    """The instance's other flows, in the order to try them."""
    exhausted: int = 480
    """What the caller hears when no flow of the instance is left and nothing better came:
    480 from the registrar's proxy, 430 from an edge proxy (so that the proxy upstream moves
    on to the instance's next flow)."""


def _flow_failed(response: Response, synthetic: bool) -> bool:
    # §5.3: a 430 from the edge, or a transport failure of the flow (synthetic 503).
    code = response.status_code
    return code == 430 or (synthetic and code == 503)


class FlowContext(ResponseContext):
    """A :class:`ResponseContext` whose :class:`FlowTarget` branches move to the instance's
    next flow when theirs fails (RFC 5626 §5.3, §6)."""

    def __init__(self, proxy: Proxy, incoming: IncomingRequest, groups: list[list[Target]]) -> None:
        super().__init__(proxy, incoming, groups)
        self.exhausted: int | None = None
        """Set when an instance ran out of flows: the answer if nothing better comes."""
        self.cancelled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _usable(self, target: Target) -> bool:
        """Whether the flow of ``target`` still exists (a connection is never re-opened for an
        outbound flow: the UA cannot accept one, §3.3)."""
        flow = target.flow
        if flow is None or flow.connection is None:
            return True
        connection = self.proxy.endpoint.connections.by_id.get(flow.connection)
        return (
            connection is not None
            and not connection.closed
            and (connection.remote.host, connection.remote.port) == (flow.host, flow.port)
        )

    def _next_flow(self, target: Target) -> FlowTarget | None:
        """The instance's next flow after ``target``'s failed; None when there is none (or the
        request is over), noting that an instance ran out of flows."""
        if not isinstance(target, FlowTarget):
            return None
        if not target.alternates:
            self.exhausted = target.exhausted
            return None
        if self.answered or self.saw_6xx or self.cancelled:
            return None
        following, *rest = target.alternates
        return replace(following, alternates=rest)

    async def _start_branch(self, target: Target) -> bool:
        # A flow that is gone, or that fails at once, gives way to the next one (§5.3).
        current: Target | None = target
        while current is not None:
            if self._usable(current) and await super()._start_branch(current):
                return True
            current = self._next_flow(current)
        return False

    def _on_final(self, branch: Branch, response: Response, synthetic: bool = False) -> None:
        target = branch.target
        if isinstance(target, FlowTarget) and branch.final is None and _flow_failed(response, synthetic):
            following = self._next_flow(target)
            if following is not None:
                if branch.timer_c is not None:
                    branch.timer_c.cancel()
                    branch.timer_c = None
                task = self.proxy.endpoint.loop.create_task(self._take_over(branch, response, following))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            synthetic = True  # a 430 is about one hop's flow: never forwarded as such
        super()._on_final(branch, response, synthetic)

    async def _take_over(self, failed: Branch, response: Response, target: FlowTarget) -> None:
        # The failed branch stays pending until its successor is in place, so that the
        # request cannot be finished in between.
        if await self._start_branch(target):
            failed.final = response
            if self.cancelled or self.answered or self.saw_6xx:
                self._cancel_pending()
            return
        super()._on_final(failed, response, synthetic=True)

    def cancel(self) -> None:
        self.cancelled = True
        super().cancel()

    def _maybe_finish(self) -> None:
        if (
            self.exhausted is not None
            and self.best is None
            and not self.answered
            and all(b.final is not None for b in self.branches)
        ):
            self.answered = True
            self._done()
            self.incoming.respond(self.exhausted)
            return
        super()._maybe_finish()


def context_for(targets: Iterable[Target]) -> type[ResponseContext] | None:
    """The response context a target set needs: :class:`FlowContext` when a target is an
    outbound flow, else the default (None)."""
    return FlowContext if any(isinstance(t, FlowTarget) for t in targets) else None


# -- delivery to registered flows (RFC 5626 §6) ----------------------------------------------


def _flow_target(binding: Binding, epoch: str) -> FlowTarget | None:
    q = 1.0 if binding.q is None else binding.q
    if binding.flow == PATH_FLOW:
        # Through the first-hop edge proxy: the Path (its token in the last entry) routes it.
        return FlowTarget(binding.contact, q, list(binding.path))
    try:
        flow = Flow.parse(binding.flow)
    except ValueError:
        log.warning("binding %s of %s has an unreadable flow %r", binding.key, binding.aor, binding.flow)
        return None
    if flow.reliable and flow.epoch != epoch:
        return None  # a connection of an earlier run (or of another worker): gone
    return FlowTarget(binding.contact, q, list(binding.path), flow=flow.address)


def location_targets(bindings: Iterable[Binding], epoch: str) -> list[Target]:
    """The target set for an AoR's ``bindings`` (RFC 3261 §16.5 with RFC 5626 §6): one per
    plain binding, and one per outbound instance — its most recently registered flow, with
    its other flows as alternates. ``epoch``: the registrar's
    (:attr:`~sipstack.registrar.Registrar.flow_epoch`), to recognise its own connections."""
    targets: list[Target] = []
    instances: dict[str, list[Binding]] = {}
    for binding in bindings:
        if binding.flow and binding.instance:
            instances.setdefault(binding.instance.lower(), []).append(binding)
        elif binding.flow and binding.flow != PATH_FLOW:
            # A WebSocket client without Outbound (RFC 7118 §5): only its connection reaches it.
            target = _flow_target(binding, epoch)
            if target is not None:
                targets.append(target)
        else:
            targets.append(Target(binding.contact, 1.0 if binding.q is None else binding.q, binding.path))
    for flows in instances.values():
        flows.sort(key=lambda b: -b.updated_at)
        chain = [t for t in (_flow_target(b, epoch) for b in flows) if t is not None]
        if chain:
            first = chain[0]
            first.q = max(t.q for t in chain)
            first.alternates = chain[1:]
            targets.append(first)
    return targets


def dialog_targets(bindings: Iterable[Binding], uri: SipURI, request_uri: str, epoch: str) -> list[Target]:
    """RFC 5626 §5.3 for a registrar that is its UAs' first hop (no edge proxy between): a
    request within a dialog whose Request-URI is the Contact of a binding with a flow kept
    here goes over that flow — the UA (a WebSocket client, RFC 7118 §5, or one behind a NAT)
    accepts no connection at its Contact — then over the instance's other flows. Empty when
    no direct flow of this run has that Contact."""
    own = [b for b in bindings if b.flow and b.flow != PATH_FLOW]
    matched = [b for b in own if _same_uri(b.contact, uri)]
    if not matched:
        return []
    instances = {name for b in matched if (name := (b.instance or "").lower())}
    rest = [b for b in own if b not in matched and (b.instance or "").lower() in instances]
    chain: list[FlowTarget] = []
    for group in (matched, rest):
        for binding in sorted(group, key=lambda b: -b.updated_at):
            target = _flow_target(binding, epoch)
            if target is not None and target.flow is not None:
                chain.append(replace(target, uri=request_uri, path=[]))
    if not chain:
        return []
    first = chain[0]
    first.alternates = chain[1:]
    return [first]


def _same_uri(stored: str, uri: SipURI) -> bool:
    try:
        return parse_uri(stored) == uri
    except ParseError:
        return False


# -- the edge proxy (RFC 5626 §5) -------------------------------------------------------------


class EdgeProxy:
    """The edge proxy role of RFC 5626 over ``proxy``, with ``tokens`` for its flows."""

    def __init__(self, proxy: Proxy, tokens: FlowTokens, *, epoch: str = "") -> None:
        self.proxy = proxy
        self.endpoint = proxy.endpoint
        self.tokens = tokens
        self.epoch = epoch or secrets.token_hex(4)
        """This run of the process: tokens for connections of an earlier run name gone flows."""

    # Flows and the URIs that carry them.

    def flow_of(self, source: Address) -> Flow | None:
        """The flow a message from ``source`` arrived on, with our end of it; None if it
        cannot be kept (the connection is already gone)."""
        if source.transport == "UDP":
            local = self.endpoint.local_address("UDP", ":" in source.host)
            return None if local is None else Flow.of(source, (local.host, local.port), self.epoch)
        if source.connection is None:
            return None
        connection = self.endpoint.connections.by_id.get(source.connection)
        if connection is None or connection.closed:
            return None
        return Flow.of(source, connection.local, self.epoch)

    def flow_uri(self, flow: Flow, *, ob: bool) -> str:
        """Our URI carrying ``flow``'s token (a Path or Record-Route value): on a listener of
        the flow's transport, or of TCP (then UDP) for the WebSocket ones, which nobody but
        a browser connects to."""
        v6 = ":" in flow.remote_host
        local = None
        for transport in (flow.transport, "TCP", "UDP"):
            if transport in ("WS", "WSS"):
                continue
            local = self.endpoint.local_address(transport, v6)
            if local is not None:
                break
        if local is None:
            raise LookupError(f"no listener to name flow {flow.text()!r} with")
        params = "" if local.transport == "UDP" else f";transport={local.transport.lower()}"
        scheme = "sips" if local.transport == "TLS" else "sip"
        return f"<{scheme}:{self.tokens.encode(flow)}@{local.host_port}{params};lr{';ob' if ob else ''}>"

    def _alive(self, flow: Flow) -> bool:
        """Whether ``flow`` may still exist here: connections of this run only; a UDP flow
        while we still listen on its local socket."""
        if flow.reliable:
            return flow.epoch == self.epoch
        return self.endpoint.is_local(flow.local_host, flow.local_port)

    def _pop_routes(self, request: Request) -> tuple[int, Flow | None]:
        """Pop every leading Route of ours — with a flow token or without (RFC 5658 double
        Record-Route) — and return how many went and the flow of the first token among them.
        :class:`FlowTokenError` for a URI of ours with a user part that is no token of ours."""
        popped = 0
        flow: Flow | None = None
        while True:
            routes = request.route
            if not routes:
                break
            uri = routes[0].uri
            if not isinstance(uri, SipURI) or not self.endpoint.is_local(uri.host, uri.port):
                break
            if uri.user is not None:
                decoded = self.tokens.decode(uri.user)
                if flow is None:
                    flow = decoded
            request.pop_value("route")
            popped += 1
        return popped, flow

    # The request paths.

    async def preprocess(self, incoming: IncomingRequest) -> int | None:
        """Apply §5 to a request before it is routed: returns how many of our Routes were
        popped (the request continues, loose-routed if any), or None when it has been
        answered or forwarded over its flow here."""
        request = incoming.request
        source = incoming.source
        try:
            popped, flow = self._pop_routes(request)
        except FlowTokenError as exc:
            log.warning("%s from %s: %s", request.method, source, exc)
            incoming.respond(403, "Invalid Flow Token")  # §5.3: tampered with
            return None
        if flow is not None and not flow.carries(source):
            # §5.3: an "incoming" request, for the UA at the other end of the flow.
            await self._forward_over(incoming, flow)
            return None
        if request.method == "REGISTER":
            return popped if self._add_path(incoming) else None
        if request.method in DIALOG_FORMING and not request.to.tag and _contact_has_ob(request):
            # §5.3: a dialog-forming request from an outbound UA: stay on the dialog's path
            # with a token for its flow, so that requests towards the UA use that flow.
            own = self.flow_of(source)
            if own is not None:
                request.prepend_header("Record-Route", self.flow_uri(own, ob=False))
        return popped

    def _add_path(self, incoming: IncomingRequest) -> bool:
        """§5.1: a REGISTER with a reg-id whose first hop we are gets a Path with a token
        for its flow and ``ob``. False when it has been answered."""
        request = incoming.request
        try:
            contacts = request.contact
        except ValueError:
            return True  # the registrar answers what it cannot read
        if not any("reg-id" in contact.params for contact in contacts if not contact.is_star):
            return True
        if len(request.via) != 1:
            return True  # not the first hop: the first hop's Path (or its absence) says it
        flow = self.flow_of(incoming.source)
        if flow is None:
            incoming.respond(403, "Flow Cannot Be Kept")  # §5.1: a token, or reject
            return False
        request.prepend_header("Path", self.flow_uri(flow, ob=True))
        if "path" not in [tag.lower() for tag in request.supported]:
            # RFC 3327: the registrar must honour the Path or refuse the request.
            request.prepend_header("Require", "path")
        log.info("REGISTER %s: flow %s kept", request.to.uri, flow.text())
        return True

    async def _forward_over(self, incoming: IncomingRequest, flow: Flow) -> None:
        request = incoming.request
        if not self._alive(flow):
            incoming.respond(430)  # §5.3: the flow no longer exists
            return
        if request.method in DIALOG_FORMING and not request.to.tag:
            # §5.3: the far end's requests of the dialog come back to this flow.
            request.prepend_header("Record-Route", self.flow_uri(flow, ob=False))
        target = FlowTarget(request.uri_text, flow=flow.address, exhausted=430)
        await self.proxy.forward(incoming, [target], context=FlowContext)

    def route_ack(self, request: Request, source: Address) -> FlowTarget | bool | None:
        """§5.3 for an ACK of a 2xx (no transaction): the target over the flow its Route
        token names, None to route it on as usual, False to drop it (a bad token, or a flow
        that is gone)."""
        try:
            _, flow = self._pop_routes(request)
        except FlowTokenError:
            return False
        if flow is None or flow.carries(source):
            return None
        if not self._alive(flow):
            return False
        connection = flow.connection
        if connection is not None and connection not in self.endpoint.connections.by_id:
            return False
        return FlowTarget(request.uri_text, flow=flow.address)


def _contact_has_ob(request: Request) -> bool:
    """Whether the request's Contact URI carries ``ob`` (RFC 5626 §5.3: the UA wants the
    dialog kept on its flow)."""
    try:
        contacts = request.contact
    except ValueError:
        return False
    return any(isinstance(c.uri, SipURI) and "ob" in c.uri.params for c in contacts if not c.is_star)


__all__ = ["EdgeProxy", "FlowContext", "FlowTarget", "context_for", "dialog_targets", "location_targets"]
