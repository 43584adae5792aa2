"""SIP Outbound (RFC 5626) in the user agent: one registration per flow, kept alive, recovered.

A UA using Outbound registers the same Contact over several *flows*, one to each URI of its
outbound-proxy set (§4.2): each REGISTER carries a Route to that proxy (``;lr``), the UA's
stable ``+sip.instance`` (§4.1) and the flow's ``reg-id``, and says ``Supported: outbound``.
The proxy (or the registrar, when it is the first hop) then reaches the UA over the flow the
REGISTER came in on — a connection the UA opened, or the NAT binding its UDP datagrams made.

Each :class:`Flow` here:

- registers (digest answered, refreshed before expiry) — all flows share one Call-ID and one
  CSeq space (RFC 3261 §10.2: one Call-ID per registrar), each has its own ``reg-id``;
- keeps the flow alive and watches it (§4.4): CRLF ping/pong over TCP, TLS and WebSocket
  (:class:`~sipstack.transport.keepalive.CrlfKeepalive`, a connection closing counts at once),
  STUN Binding requests over UDP (:class:`~sipstack.transport.keepalive.StunKeepalive`, a
  changed mapped address counts as a failure), at 80–100 % of the registrar's Flow-Timer or
  the defaults, when the 200 said ``Require: outbound`` (or always / never, see
  :class:`OutboundConfig`);
- recovers from a failure (§4.5) by registering again over a new flow — the same ``reg-id``,
  after a random delay of 50–100 % of ``min(max-time, base-time * 2 ** consecutive-failures)``,
  with base-time 30 s when every flow of the set has failed and 90 s otherwise, max-time
  1800 s; consecutive-failures counts the attempts since the flow was last *successful*
  (registered and, when keep-alives are in use, one keep-alive answered).

:class:`OutboundRegistration` owns the flows of one address-of-record; the UA sends its own
requests outside dialogs over a registered flow (a Route to its proxy, §4.3) and marks the
Contact of dialog-forming requests sent over a flow with ``;ob``.

Instance ids (§4.1) are made and kept by :mod:`sipstack.ua.instance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ParseError, SipError
from ..message import Response, SipURI, parse_uri
from ..message.headers import parse_contacts
from ..net import Address
from ..transaction import new_tag
from ..transport import stun
from ..transport.keepalive import PONG_TIMEOUT, CrlfKeepalive, FlowKeepalive, StunKeepalive
from .errors import RequestFailed
from .instance import load_instance_id, new_instance_id, normalise_instance_id
from .registration import Registration, refresh_delay

if TYPE_CHECKING:
    from ..auth import DigestClient
    from ..transport.stream import Connection
    from .agent import UserAgent

log = logging.getLogger("sipstack.ua")

OPTION_TAG = "outbound"
"""RFC 5626 §11: the option tag a UA puts in Supported of its REGISTERs."""

BASE_TIME_ALL_FAILED = 30.0
"""RFC 5626 §4.5: base-time when every flow of the outbound-proxy set has failed."""
BASE_TIME_SOME_OK = 90.0
"""RFC 5626 §4.5: base-time while at least one flow has not failed."""
MAX_TIME = 1800.0
"""RFC 5626 §4.5: upper bound of the wait."""

KEEPALIVE_MODES = ("auto", "always", "never")


# -- configuration and back-off (RFC 5626 §4.5) -------------------------------------------------


@dataclass(slots=True)
class OutboundConfig:
    """How flows are kept and recovered. The defaults are RFC 5626's; tests shorten them."""

    base_time_all_failed: float = BASE_TIME_ALL_FAILED
    base_time_some_ok: float = BASE_TIME_SOME_OK
    max_time: float = MAX_TIME
    keepalive: str = "auto"
    """``auto``: keep-alives when the registrar's 200 has ``Require: outbound`` (or a
    Flow-Timer); ``always``: on every registered flow (e.g. towards a registrar that does not
    support Outbound but is the first hop); ``never``."""
    flow_timer: float | None = None
    """Keep-alive period in seconds to use instead of the 200's Flow-Timer (None: the
    Flow-Timer, else the §4.4 defaults)."""
    pong_timeout: float = PONG_TIMEOUT
    """§4.4.1: how long a CRLF pong may take (10 s)."""
    stun_rto: float = stun.DEFAULT_RTO
    stun_rc: int = stun.DEFAULT_RC
    stun_rm: int = stun.DEFAULT_RM
    """The RFC 5389 §7.2.1 schedule of STUN keep-alives (no answer after it: flow failure)."""
    reflexive_contact: bool = False
    """On UDP flows, learn the server-reflexive address with STUN before each REGISTER and
    put it in the Contact (reachable through a NAT even by a registrar that routes to the
    Contact rather than to the flow)."""
    rng: random.Random = field(default_factory=random.Random)
    """The source of the random delays (a seeded one makes a test reproducible)."""

    def __post_init__(self) -> None:
        if self.keepalive not in KEEPALIVE_MODES:
            raise ValueError(f"keepalive is one of {', '.join(KEEPALIVE_MODES)}")
        if min(self.base_time_all_failed, self.base_time_some_ok, self.max_time) <= 0:
            raise ValueError("back-off times must be positive")

    def wait_time(self, consecutive_failures: int, *, all_failed: bool) -> float:
        """§4.5: ``min(max-time, base-time * 2 ** consecutive-failures)``."""
        base = self.base_time_all_failed if all_failed else self.base_time_some_ok
        return min(self.max_time, base * 2 ** min(consecutive_failures, 62))

    def delay(self, consecutive_failures: int, *, all_failed: bool) -> float:
        """§4.5: the delay before the next attempt, uniformly 50–100 % of the wait time."""
        wait = self.wait_time(consecutive_failures, all_failed=all_failed)
        return self.rng.uniform(0.5 * wait, wait)


# -- one flow ------------------------------------------------------------------------------------


@dataclass(slots=True)
class FlowEvent:
    """What happened to a flow, for the application's log and for tests: ``kind`` is
    ``registered``, ``failed`` (the flow broke), ``attempt-failed`` (a REGISTER over a new
    flow did not succeed), ``waiting`` (back-off before the next attempt) or ``stopped``."""

    at: float
    """``time.monotonic()`` when it happened."""
    kind: str
    reason: str = ""
    delay: float | None = None
    """``waiting``: seconds until the next attempt."""
    base_time: float | None = None
    consecutive_failures: int | None = None


class Flow:
    """One registration flow: ``reg-id`` and the outbound proxy it goes through."""

    def __init__(self, owner: OutboundRegistration, reg_id: int, proxy: str) -> None:
        self.owner = owner
        self.reg_id = reg_id
        self.proxy = _loose_route(proxy)
        """The outbound proxy's URI, as the Route of this flow's requests (with ``lr``)."""
        self.state = "new"
        """``new``, ``registering``, ``registered``, ``failed`` (waiting to try again), ``stopped``."""
        self.address: Address | None = None
        """Where the flow goes (the proxy's transport address), once registered."""
        self.connection: Connection | None = None
        """The connection carrying the flow (TCP, TLS, WS), or None (UDP)."""
        self.keepalive: FlowKeepalive | None = None
        self.mapped: Address | None = None
        """The server-reflexive address STUN reported (UDP flows)."""
        self.flow_timer: float | None = None
        """The Flow-Timer of the last 200 (seconds), None without one."""
        self.outbound_supported = False
        """Whether the last 200 said ``Require: outbound`` (the registrar applied §6)."""
        self.consecutive_failures = 0
        self.registrations = 0
        """REGISTERs that succeeded over this flow (refreshes and recoveries included)."""
        self.failures = 0
        """Times the flow broke after being registered."""
        self.error: BaseException | None = None
        """Why the last attempt failed."""
        self.events: list[FlowEvent] = []
        self.registration = Registration(
            owner.ua,
            owner.aor,
            registrar=owner.registrar,
            credentials=owner.credentials,
            expires=owner.expires,
            route=self.proxy,
            headers=[("Supported", f"{OPTION_TAG}, path")],
            call_id=owner.call_id,
            from_tag=owner.from_tag,
            next_cseq=owner.next_cseq,
        )
        self._task: asyncio.Task[None] | None = None
        self._failure: asyncio.Future[str] | None = None
        self._changed = asyncio.Event()
        self.first_attempt = asyncio.Event()
        """Set once the first REGISTER over this flow has succeeded or failed."""

    def __repr__(self) -> str:
        return f"<Flow reg-id={self.reg_id} {self.proxy} {self.state}>"

    @property
    def registered(self) -> bool:
        return self.state == "registered"

    @property
    def successful(self) -> bool:
        """§4.5: registered and, with keep-alives, at least one keep-alive answered."""
        if self.state != "registered":
            return False
        return self.keepalive is None or self.keepalive.probes > 0

    @property
    def contact(self) -> str | None:
        """The Contact this flow registers (with ``ob``, ``reg-id`` and ``+sip.instance``)."""
        return self.registration.contact

    async def wait_for(self, predicate: Callable[[Flow], bool], timeout: float) -> None:
        """Wait until ``predicate(flow)`` holds (checked at each change of the flow's state or
        events, and every 50 ms for what changes silently, such as keep-alive counts), at
        most ``timeout`` seconds (then TimeoutError)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)

    # -- the flow's life --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = self.owner.ua.spawn(self._run())

    def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._stop_keepalive()
        self._set_state("stopped")
        self._note("stopped")

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            if self.state != "registered":  # a refresh keeps the flow registered meanwhile
                self._set_state("registering")
            try:
                await self._register()
            except Exception as exc:  # the flow keeps trying, whatever went wrong
                if not isinstance(exc, (SipError, OSError, stun.StunError)):
                    log.exception("outbound flow reg-id=%d: unexpected failure", self.reg_id)
                self.error = exc
                self.first_attempt.set()
                delay = self._back_off("attempt-failed", _describe(exc), _retry_after(exc))
                continue
            self.first_attempt.set()
            reason = await self._watch(refresh_delay(self.registration.granted))
            if reason is None:
                delay = 0.0  # refresh over the same flow
                continue
            self.failures += 1
            delay = self._back_off("failed", reason, None)
            # §4.5: the failed flow is done with — close it now (a ping with no pong leaves it
            # open), so the far end stops delivering over it and answers 430 instead.
            await self._drop_connection()

    async def _register(self) -> Response:
        """One REGISTER over this flow (a new flow when the old one is gone): the 200, or an
        exception. Sets up (or keeps) the keep-alive of the flow it went over."""
        ua = self.owner.ua
        registration = self.registration
        # A flow that broke is replaced by a new one (§4.5): forget its connection.
        if self.state != "registered":
            await self._drop_connection()
        proxy = _uri(self.proxy)
        if proxy.transport in ("ws", "wss") and (self.connection is None or self.connection.closed):
            # RFC 7118 §5: only the UA opens WebSocket connections; a new flow is a new one.
            scheme = "wss" if proxy.secure or proxy.transport == "wss" else "ws"
            await ua.endpoint.connect_ws(f"{scheme}://{proxy.host_port}/")
        targets = await ua.endpoint.resolver.resolve(proxy)
        if not targets:
            raise SipError(f"no address for {self.proxy}")
        address = targets[0]
        mapped = None
        if address.transport == "UDP" and self.owner.config.reflexive_contact:
            config = self.owner.config
            mapped = await ua.endpoint.stun_binding(
                address, rto=config.stun_rto, rc=config.stun_rc, rm=config.stun_rm
            )
        registration.contact = self.owner.contact_for(address, self.reg_id, mapped)
        response = await registration.register()
        self._registered(response, address, mapped)
        return response

    def _registered(self, response: Response, address: Address, mapped: Address | None) -> None:
        ua = self.owner.ua
        config = self.owner.config
        self.address = Address(address.transport, address.host, address.port)
        self.outbound_supported = OPTION_TAG in [tag.lower() for tag in response.require]
        self.flow_timer = _flow_timer(response)
        connection = None
        if address.transport != "UDP":
            connection = ua.endpoint.connections.find(self.address)
        period = config.flow_timer if config.flow_timer is not None else self.flow_timer
        wanted = config.keepalive == "always" or (
            config.keepalive == "auto" and (self.outbound_supported or self.flow_timer is not None)
        )
        keepalive = self.keepalive
        same = (
            keepalive is not None
            and keepalive.running
            and keepalive.flow_timer == period
            and (connection is None or getattr(keepalive, "connection", None) is connection)
        )
        if not wanted or not same:
            self._stop_keepalive()
        self.connection = connection
        if self._failure is None or self._failure.done():
            self._failure = asyncio.get_running_loop().create_future()
        if connection is not None and self._on_close not in connection.close_callbacks:
            # A connection that closes is a failed flow (§4.4), keep-alives or not.
            connection.close_callbacks.append(self._on_close)
        if wanted and not same:
            if connection is not None:
                self.keepalive = CrlfKeepalive(
                    connection,
                    on_failure=self._on_keepalive_failure,
                    flow_timer=period,
                    pong_timeout=config.pong_timeout,
                    rng=config.rng,
                )
            else:
                listener = ua.endpoint._udp_listener(self.address, requests=True)  # the flow's socket
                self.keepalive = StunKeepalive(
                    listener,
                    self.address,
                    on_failure=self._on_keepalive_failure,
                    flow_timer=period,
                    mapped=mapped if mapped is not None else self.mapped,
                    rto=config.stun_rto,
                    rc=config.stun_rc,
                    rm=config.stun_rm,
                    rng=config.rng,
                )
            self.keepalive.start()
        if mapped is not None:
            self.mapped = mapped
        self.registrations += 1
        self.error = None
        self._set_state("registered")
        self._note("registered")
        log.info(
            "outbound flow reg-id=%d via %s registered (%s, keep-alive %s)",
            self.reg_id,
            self.proxy,
            "Require: outbound" if self.outbound_supported else "registrar without outbound",
            "off" if self.keepalive is None else f"every ~{period or 'default'} s",
        )

    async def _watch(self, refresh_in: float) -> str | None:
        """Wait for the refresh time (None) or a failure of the flow (its reason)."""
        failure = self._failure
        assert failure is not None
        try:
            return await asyncio.wait_for(asyncio.shield(failure), refresh_in)
        except TimeoutError:
            return None

    def _back_off(self, kind: str, reason: str, retry_after: float | None) -> float:
        """§4.5: the flow (or an attempt to form it) failed; how long to wait."""
        was_successful = self.successful
        self._stop_keepalive()
        self._set_state("failed")
        if was_successful:
            self.consecutive_failures = 0
        owner = self.owner
        all_failed = not any(flow.registered for flow in owner.flows if flow is not self)
        config = owner.config
        n = self.consecutive_failures
        delay = config.delay(n, all_failed=all_failed)
        if retry_after is not None and retry_after > delay:
            delay = retry_after  # a 503's Retry-After may make the UA wait longer
        self.consecutive_failures = n + 1
        base = config.base_time_all_failed if all_failed else config.base_time_some_ok
        self._note(kind, reason)
        self._note("waiting", reason, delay=delay, base_time=base, consecutive_failures=n)
        log.warning(
            "outbound flow reg-id=%d via %s %s: %s; next attempt in %.1f s",
            self.reg_id,
            self.proxy,
            "failed" if kind == "failed" else "could not be formed",
            reason,
            delay,
        )
        return delay

    def _on_keepalive_failure(self, reason: str) -> None:
        self._fail(reason)

    def _on_close(self, connection: Connection) -> None:
        if connection is self.connection:
            self._fail(f"{connection!r} closed")

    def _fail(self, reason: str) -> None:
        future = self._failure
        if future is not None and not future.done():
            future.set_result(reason)

    def _stop_keepalive(self) -> None:
        keepalive, self.keepalive = self.keepalive, None
        if keepalive is not None:
            keepalive.stop()

    async def _drop_connection(self) -> None:
        """Close the connection of a failed flow (a ping that got no pong may leave it open)
        and wait until it is gone, so that the next REGISTER opens a new one."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        with contextlib.suppress(ValueError):
            connection.close_callbacks.remove(self._on_close)
        if connection.closed:
            return
        transport = connection._transport
        if transport is not None:
            transport.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while not connection.closed:
                    await asyncio.sleep(0.01)

    def _set_state(self, state: str) -> None:
        self.state = state
        self._changed.set()

    def _note(self, kind: str, reason: str = "", **extra: float | int | None) -> None:
        self.events.append(FlowEvent(time.monotonic(), kind, reason, **extra))  # type: ignore[arg-type]
        self._changed.set()
        callback = self.owner.on_event
        if callback is not None:
            try:
                callback(self, self.events[-1])
            except Exception:
                log.exception("outbound event callback failed")


# -- the flows of one address-of-record ----------------------------------------------------------


class OutboundRegistration:
    """The Outbound registrations of one AoR: a :class:`Flow` per outbound proxy, ``reg-id``
    1, 2, … in the order the proxies are given. Made by
    :meth:`~sipstack.ua.UserAgent.register_outbound`."""

    def __init__(
        self,
        ua: UserAgent,
        aor: str,
        proxies: Sequence[str],
        *,
        registrar: str | None = None,
        credentials: DigestClient | None = None,
        expires: int = 3600,
        config: OutboundConfig | None = None,
        on_event: Callable[[Flow, FlowEvent], object] | None = None,
    ) -> None:
        if not proxies:
            raise ValueError("Outbound needs at least one outbound proxy")
        self.ua = ua
        self.aor = aor
        self.registrar = registrar
        self.credentials = credentials
        self.expires = expires
        self.config = config or OutboundConfig()
        self.on_event = on_event
        """Called with (flow, event) for every :class:`FlowEvent`."""
        self.instance_id = ua.instance_id
        # RFC 3261 §10.2: one Call-ID (and so one CSeq space) for the registrations to one
        # registrar; every flow reaches the same registrar.
        self.call_id = f"{new_tag()}{new_tag()}@sipstack"
        self.from_tag = new_tag()
        self._cseq = 0
        self.flows = [Flow(self, reg_id, proxy) for reg_id, proxy in enumerate(proxies, start=1)]

    def next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    @property
    def registered_flows(self) -> list[Flow]:
        return [flow for flow in self.flows if flow.registered]

    def flow(self, reg_id: int) -> Flow:
        for flow in self.flows:
            if flow.reg_id == reg_id:
                return flow
        raise KeyError(reg_id)

    def flow_to(self, address: Address) -> Flow | None:
        """The registered flow whose next hop is ``address`` (its connection, if it names one)."""
        for flow in self.flows:
            if not flow.registered or flow.address is None:
                continue
            if address.connection is not None and flow.connection is not None:
                if flow.connection.id == address.connection:
                    return flow
                continue
            if (flow.address.transport, flow.address.host, flow.address.port) == (
                address.transport,
                address.host,
                address.port,
            ):
                return flow
        return None

    def route(self) -> str | None:
        """§4.3: the outbound proxy of a registered flow (the lowest reg-id), as the Route of
        the UA's requests outside dialogs; None when no flow is up."""
        for flow in self.flows:
            if flow.registered:
                return flow.proxy
        return None

    def contact_for(self, address: Address, reg_id: int, mapped: Address | None = None) -> str:
        """The Contact registered over a flow to ``address`` (§4.2): the UA's Contact for
        that transport (at ``mapped``, the reflexive address, when given) with ``ob``, then
        ``reg-id`` and ``+sip.instance``."""
        base = self.ua.contact_for(address)
        uri = _uri(base.strip("<>"))
        if mapped is not None:
            uri = uri.copy(host=mapped.host, port=mapped.port)
        if "ob" not in uri.params:
            uri = uri.copy(params={**uri.params, "ob": None})
        return f'<{uri}>;reg-id={reg_id};+sip.instance="<{self.instance_id}>"'

    async def start(self) -> OutboundRegistration:
        """Start every flow and wait until each has made its first attempt. Raises the first
        flow's error when none could register (and stops them all)."""
        for flow in self.flows:
            flow.start()
        await asyncio.gather(*(flow.first_attempt.wait() for flow in self.flows))
        if not self.registered_flows:
            error = next((flow.error for flow in self.flows if flow.error is not None), None)
            self.stop()
            if error is not None:
                raise error
            raise SipError("no flow could register")
        return self

    async def wait_registered(self, count: int | None = None, timeout: float = 32.0) -> None:
        """Wait until ``count`` flows (default: all) are registered."""
        wanted = len(self.flows) if count is None else count
        async with asyncio.timeout(timeout):
            while len(self.registered_flows) < wanted:
                waiters = [asyncio.ensure_future(flow._changed.wait()) for flow in self.flows]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                for flow in self.flows:
                    flow._changed.clear()

    def stop(self) -> None:
        """Stop refreshing, keeping alive and recovering (the bindings lapse at expiry)."""
        for flow in self.flows:
            if flow.state != "stopped":
                flow.stop()
        if self.ua.outbound is self:
            self.ua.outbound = None

    async def unregister(self) -> list[Response]:
        """Stop, then remove each registered flow's binding (Expires: 0 over the flow); the
        registrar's 200s. Raises :class:`RequestFailed` if one refuses."""
        up = [flow for flow in self.flows if flow.registered]
        self.stop()
        responses = []
        for flow in up:
            responses.append(await flow.registration.unregister())
        return responses


def _loose_route(proxy: str) -> str:
    uri = _uri(proxy.strip().strip("<>"))
    if not uri.lr:
        uri = uri.copy(params={**uri.params, "lr": None})
    return str(uri)


def _uri(text: str) -> SipURI:
    uri = parse_uri(text)
    if not isinstance(uri, SipURI):
        raise ValueError(f"not a SIP URI: {text!r}")
    return uri


def _flow_timer(response: Response) -> float | None:
    value = response.header("flow-timer")
    if value is None:
        return None
    try:
        seconds = int(value.strip())
    except ValueError:
        return None
    return float(seconds) if seconds > 0 else None


def _retry_after(exc: BaseException) -> float | None:
    if not isinstance(exc, RequestFailed):
        return None
    value = exc.response.header("retry-after")
    if value is None:
        return None
    try:
        return float(int(value.split(";")[0].split("(")[0].strip()))
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RequestFailed):
        return f"{exc.response.status_code} {exc.response.reason}"
    return f"{type(exc).__name__}: {exc}"


def registered_contacts(response: Response) -> list[tuple[str, int | None, str | None]]:
    """The bindings a registrar's 200 lists: (URI, reg-id, +sip.instance) for each."""
    out = []
    for value in response.header_values("contact"):
        try:
            contacts = parse_contacts(value)
        except ParseError:
            continue
        for contact in contacts:
            if contact.is_star:
                continue
            reg_id = contact.params.get("reg-id")
            out.append(
                (
                    str(contact.uri),
                    int(reg_id) if reg_id and reg_id.isdigit() else None,
                    contact.params.get("+sip.instance"),
                )
            )
    return out


__all__ = [
    "BASE_TIME_ALL_FAILED",
    "BASE_TIME_SOME_OK",
    "MAX_TIME",
    "OPTION_TAG",
    "Flow",
    "FlowEvent",
    "OutboundConfig",
    "OutboundRegistration",
    "load_instance_id",
    "new_instance_id",
    "normalise_instance_id",
    "registered_contacts",
]
