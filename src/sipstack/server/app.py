"""The server process: storage, authentication, registrar and endpoint, wired from config.

Requests are dispatched by method: REGISTER for a served domain to the registrar; OPTIONS
addressed to the server itself answered by the server (RFC 3261 §11); the rest answered
501 until the proxy core takes them. SIGINT/SIGTERM stop it cleanly: listeners close, the
store is closed after in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
import time
from pathlib import Path

from ..auth import DigestAuthenticator, NonceManager
from ..endpoint import Endpoint, IncomingRequest
from ..errors import ParseError
from ..flow import FlowTokens
from ..message import Request, SipURI, UnsupportedExtension, validate_request
from ..proxy import Proxy, Target, detect_loop, preprocess_routes
from ..proxy.outbound import EdgeProxy, context_for, dialog_targets, location_targets
from ..proxy.routing import is_own_uri
from ..registrar import Registrar, RegistrarConfig, gruu_instance
from ..storage import Store, open_store
from ..transport.base import ListenSpec
from ..transport.udp import UdpListener
from .collector import Collector
from .config import ServerConfig
from .dispatch import Dispatcher, spread_at_random, steer_by_branch
from .hook import Authenticate, Call, Decision, Forward, Reply, RoutingFunction, load_routing

log = logging.getLogger("sipstack.server")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"


def database_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "sipstack.db"


def load_secret(data_dir: str | Path, name: str = "nonce.key") -> bytes:
    """The nonce secret (or the flow token secret, ``flow.key``), created on first use and kept
    in the data directory (mode 0600), so that nonces and flow tokens stay valid across
    restarts and between worker processes."""
    path = Path(data_dir) / name
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
        return secret


def open_data_store(data_dir: str | Path) -> Store:
    return open_store("sqlite", path=database_path(data_dir))


class Server:
    """A running ``sipstack serve``."""

    def __init__(self, config: ServerConfig, *, worker: int | None = None) -> None:
        self.config = config
        self.worker = worker
        """This process's index among ``config.workers`` worker processes (None: alone)."""
        self.dispatcher: Dispatcher | None = None
        self.steered = False
        """Requests reach the workers by their Via branch, in the kernel (no relaying)."""
        self.store: Store | None = None
        self.endpoint: Endpoint | None = None
        self.registrar: Registrar | None = None
        self.proxy: Proxy | None = None
        self.edge: EdgeProxy | None = None
        """The RFC 5626 edge proxy role (``[outbound] edge``)."""
        self.routing: RoutingFunction | None = load_routing(config.routing) if config.routing else None
        self.addresses: list[str] = []
        self._stopped = asyncio.Event()
        self._purger: asyncio.Task[None] | None = None
        self.collector: Collector | None = None

    def _tls_contexts(self) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
        config = self.config
        server_ctx = None
        if config.tls_cert:
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.load_cert_chain(config.tls_cert, config.tls_key)
            if config.tls_ca:
                server_ctx.load_verify_locations(config.tls_ca)
            if config.tls_verify_client:
                server_ctx.verify_mode = ssl.CERT_REQUIRED
            elif config.tls_alias:
                # RFC 5923 §5.3: an alias is taken only from a peer that proved its sent-by
                # with a certificate; ask for one (checked against tls.ca, else the system
                # store), without refusing peers that have none.
                server_ctx.verify_mode = ssl.CERT_OPTIONAL
        client_ctx = ssl.create_default_context(cafile=config.tls_ca or None)
        if config.tls_cert:
            client_ctx.load_cert_chain(config.tls_cert, config.tls_key)  # mutual TLS towards peers
        return server_ctx, client_ctx

    async def start(self) -> None:
        config = self.config
        self.store = open_data_store(config.data_dir)
        authenticators = None
        self.proxy_authenticators: dict[str, DigestAuthenticator] = {}
        if config.auth:
            nonces = NonceManager(load_secret(config.data_dir), lifetime=config.nonce_lifetime)
            # The realm is the domain (or the configured realm for every domain).
            authenticators = {
                domain.lower(): DigestAuthenticator(
                    config.realm or domain.lower(),
                    nonces,
                    algorithms=config.algorithms,
                    max_failures=config.max_failures,
                )
                for domain in config.domains
            }
            self.proxy_authenticators = {
                domain.lower(): DigestAuthenticator(
                    config.realm or domain.lower(),
                    nonces,
                    algorithms=config.algorithms,
                    max_failures=config.max_failures,
                    proxy=True,
                )
                for domain in config.domains
            }
        self.registrar = Registrar(
            self.store,
            RegistrarConfig(
                domains={d.lower() for d in config.domains},
                min_expires=config.min_expires,
                max_expires=config.max_expires,
                default_expires=config.default_expires,
                # RFC 5626 §6: a flow is a connection of one worker; several cannot keep them.
                first_hop_outbound=config.workers == 1,
                flow_timer=config.flow_timer,
            ),
            authenticators,
            user_agent=config.user_agent,
        )
        server_ctx, client_ctx = self._tls_contexts()
        # Lenient parsing: a proxy checks what it uses and forwards the rest (§16.3 step 1).
        self.endpoint = Endpoint(
            user_agent=config.user_agent,
            tls_server_context=server_ctx,
            tls_client_context=client_ctx,
            strict=False,
            invite_trying_delay=0.0,  # §16.2: a stateful proxy answers INVITE with 100 at once
            reuse_port=config.workers > 1,
            via_alias=config.tls_alias,  # RFC 5923: offer our TLS connections for reuse
            alias_tcp=config.tcp_alias,
        )
        self.proxy = Proxy(
            self.endpoint,
            default_route=config.default_route or None,
            record_route=config.record_route,
            timer_c=config.timer_c,
        )
        if config.outbound_edge:  # RFC 5626 §5
            self.edge = EdgeProxy(self.proxy, FlowTokens(load_secret(config.data_dir, "flow.key")))
        self.authenticators = authenticators
        self.endpoint.on_request(self._on_request)
        for spec in config.listen:
            address = await self.endpoint.listen(spec)
            self.addresses.append(str(address))
        if config.workers > 1:
            # Each worker sends its own requests from a port of its own, so that the
            # responses come back to the worker that holds the transaction.
            hosts = {
                ListenSpec.parse(s).host for s in config.listen if ListenSpec.parse(s).transport == "UDP"
            }
            for host in sorted(hosts):
                await self.endpoint.listen(ListenSpec("UDP", host, 0), for_requests=True)
            if self.worker is not None:
                self._spread_requests(config.workers)
        self.endpoint.pace_udp_reads(config.udp_read_pause / 1000)
        self._purger = asyncio.get_running_loop().create_task(self._purge_expired())
        # The garbage collector on a clock, each object scanned once (.collector).
        self.collector = Collector(config.gc_young_interval, config.gc_full_interval)
        self.collector.start()

    async def _on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        method = request.method
        assert self.registrar is not None and self.proxy is not None and self.endpoint is not None
        uri = request.uri
        if method == "ACK":
            if incoming.transaction is None:  # the ACK for a 2xx: end to end (RFC 6026)
                preprocess_routes(request, self.endpoint.is_local)
                if detect_loop(request, self.endpoint.is_local):
                    return
                target = None
                if not request.has_header("route") and self._is_our_aor(uri):
                    bindings = await self.store.bindings(uri.aor, time.time()) if self.store else []
                    if not bindings:
                        return
                    target = Target(bindings[0].contact, path=bindings[0].path)
                if self.edge is not None:  # RFC 5626 §5.3: an ACK for a flow of ours
                    routed = self.edge.route_ack(request, incoming.source)
                    if routed is False:
                        return
                    target = routed or target
                if target is None and self._flow_aor(request):  # RFC 5626 §5.3: a flow we keep
                    target = next(iter(await self._dialog_flows(request)), None)
                await self.proxy.forward_ack(request, incoming.source, target)
            return
        # RFC 3261 §16.3: the checks a proxy makes before anything else.
        try:
            validate_request(request, supported=(), require_headers=("proxy-require",))
        except UnsupportedExtension as exc:
            incoming.respond(420, headers=[("Unsupported", ", ".join(exc.unsupported))])
            return
        except ParseError as exc:
            incoming.respond(exc.status_code, exc.reason)
            return
        if method == "REGISTER" and isinstance(uri, SipURI) and self.registrar.serves(uri.host):
            incoming.respond(await self.registrar.handle(request, incoming.source))
            return
        if self._addressed_to_us(uri) and not request.has_header("route"):
            if method == "OPTIONS":  # §11: OPTIONS for the server itself
                incoming.respond(200, headers=[("Allow", ALLOW), ("Accept", "application/sdp")])
            else:
                incoming.respond(405 if method != "CANCEL" else 481, headers=[("Allow", ALLOW)])
            return
        if method == "CANCEL":
            self.proxy.cancel(incoming)
            return
        hops = request.max_forwards
        if hops is not None and hops <= 0:
            incoming.respond(483)  # §16.3 step 3
            return
        if self.config.auth_calls and not await self._caller_authenticated(incoming):
            return
        loose_routed = preprocess_routes(request, self.endpoint.is_local) > 0  # §16.4
        if detect_loop(request, self.endpoint.is_local):
            incoming.respond(482)  # §16.3 step 4
            return
        if self.edge is not None:  # RFC 5626 §5: flow tokens in Path, Route, Record-Route
            popped = await self.edge.preprocess(incoming)
            if popped is None:
                return
            loose_routed = loose_routed or popped > 0
        if self.routing is not None:
            decision = await self._route_hook(incoming)
            if isinstance(decision, Reply):
                incoming.respond(decision.status, decision.reason, headers=decision.headers)
                return
            if isinstance(decision, Forward):
                await self.proxy.forward(incoming, [Target(uri) for uri in decision.targets])
                return
            if isinstance(decision, Authenticate) and not await self._caller_authenticated(incoming):
                return
        if loose_routed and request.to.tag:
            # Within a dialog: the Request-URI is the remote target; relay it as it is — over
            # its flow when it is the Contact of an outbound UA we are the first hop of.
            flows = await self._dialog_flows(request) if self._flow_aor(request) else []
            if flows:
                await self.proxy.forward(incoming, flows, context_for(flows))
                return
            await self.proxy.forward(incoming, [Target(request.uri_text)])
            return
        targets = await self._targets(incoming)
        if targets is None:
            return
        await self.proxy.forward(incoming, targets, context_for(targets))  # RFC 5626 flows

    async def _route_hook(self, incoming: IncomingRequest) -> Decision:
        assert self.routing is not None
        try:
            decision = self.routing(Call(incoming.request, incoming.source))
            if inspect.isawaitable(decision):
                decision = await decision
        except Exception:
            log.exception("routing function %s failed on %s", self.config.routing, incoming.request.method)
            return Reply(500, "Routing Failed")
        if decision is not None and not isinstance(decision, (Forward, Reply, Authenticate)):
            log.error("routing function %s returned %r", self.config.routing, decision)
            return Reply(500, "Routing Failed")
        return decision

    async def _caller_authenticated(self, incoming: IncomingRequest) -> bool:
        """RFC 3261 §22.3: a request from one of our domains must carry the caller's own
        credentials (407 Proxy-Authenticate otherwise). Requests within a dialog (a To tag)
        and from other domains pass."""
        request = incoming.request
        from_uri = request.from_.uri
        if not isinstance(from_uri, SipURI) or not self.proxy_authenticators:
            return True
        # Within a dialog a request is loose-routed through us (our Record-Route came back as
        # its Route); a To tag alone proves nothing and must not open the location service.
        routes = request.route
        if request.to.tag and routes and is_own_uri(routes[0].uri, self.endpoint.is_local):
            return True
        authenticator = self.proxy_authenticators.get(from_uri.host.lower())
        if authenticator is None:
            return True
        credentials = authenticator.credentials_for(request)
        user = None
        if credentials is not None and self.store is not None:
            user = await self.store.find_user(credentials.params.get("username", ""), authenticator.realm)
        result = authenticator.verify(request, user, incoming.source.host)
        if not result.ok:
            if result.challenge is not None:
                incoming.respond(result.challenge.status, headers=result.challenge.headers)
            else:
                incoming.respond(result.status or 403)
            return False
        if user is None or user.aor.lower() != f"{from_uri.user}@{from_uri.host}".lower():
            incoming.respond(403, "Not Your Identity")
            return False
        return True

    async def _targets(self, incoming: IncomingRequest) -> list[Target] | None:
        """§16.5: the Request-URI itself, unless it is in a domain of ours and no Route is
        left, in which case the location service gives the contacts (404 for an unknown
        user, 480 for a user with no binding)."""
        request = incoming.request
        uri = request.uri
        if request.has_header("route"):
            return [Target(request.uri_text)]
        if not self._is_our_aor(uri):
            served = isinstance(uri, SipURI) and self.registrar.serves(uri.host)
            return [Target(request.uri_text, foreign=not served)]
        assert self.store is not None and isinstance(uri, SipURI)
        now = time.time()
        bindings = await self.store.bindings(uri.aor, now)
        instance = gruu_instance(uri)
        if instance is not None:  # RFC 5627: a public GRUU reaches its instance only
            bindings = [b for b in bindings if (b.instance or "").lower() == instance.lower()]
        if bindings:
            # One target per binding; per instance for outbound flows (RFC 5626 §6).
            return location_targets(bindings, self.registrar.flow_epoch)
        known = await self.store.get_user(f"{uri.user}@{uri.host.lower()}")
        incoming.respond(480 if known is not None else 404)
        return None

    async def _dialog_flows(self, request: Request) -> list[Target]:
        """RFC 5626 §5.3 (RFC 7118 §5 for WebSocket clients) when this registrar is the first
        hop: a request within a dialog for the Contact (``;ob``, or ``transport=ws``) of a UA
        that registered a flow here (its To names the AoR) goes over that flow — the UA
        accepts no connection at its Contact. Empty when that does not apply."""
        to_uri = self._flow_aor(request)
        if to_uri is None:
            return []
        uri = request.uri
        assert self.store is not None and self.registrar is not None and isinstance(uri, SipURI)
        bindings = await self.store.bindings(to_uri.aor, time.time())
        return dialog_targets(bindings, uri, request.uri_text, self.registrar.flow_epoch)

    def _flow_aor(self, request: Request) -> SipURI | None:
        """The To URI whose flows :meth:`_dialog_flows` looks up; None (the common case, told
        without a lookup) when the request cannot be for a flow of ours."""
        uri = request.uri
        if (
            self.store is None
            or self.registrar is None
            or not isinstance(uri, SipURI)
            or ("ob" not in uri.params and uri.transport not in ("ws", "wss"))
            or request.has_header("route")
        ):
            return None
        try:
            to_uri = request.to.uri
        except ParseError:
            return None
        if not isinstance(to_uri, SipURI) or to_uri.user is None or not self.registrar.serves(to_uri.host):
            return None
        return to_uri

    def _is_our_aor(self, uri: object) -> bool:
        """An address-of-record of a served domain: a user part, and no port or one of ours
        (``sip:bob@127.0.0.1:40000`` is a contact on this host, not an AoR)."""
        if not isinstance(uri, SipURI) or uri.user is None or self.registrar is None:
            return False
        if not self.registrar.serves(uri.host):
            return False
        return uri.port is None or (self.endpoint is not None and self.endpoint.is_local(uri.host, uri.port))

    def _addressed_to_us(self, uri: object) -> bool:
        return (
            isinstance(uri, SipURI)
            and uri.user is None
            and self.registrar is not None
            and (self.registrar.serves(uri.host) or any(uri.host in a for a in self.addresses))
        )

    async def _purge_expired(self) -> None:
        while True:
            await asyncio.sleep(60)
            try:
                assert self.store is not None
                removed = await self.store.purge_expired(time.time())
                if removed:
                    log.info("purged %d expired binding(s)", removed)
            except Exception:
                log.exception("purging expired bindings failed")

    def request_stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        """Start, serve until SIGINT/SIGTERM, then stop."""
        await self.start()
        config = self.config
        if self.worker is not None:
            log.info("worker %d of %d ready (pid %d)", self.worker + 1, config.workers, os.getpid())
            await self._serve_until_stopped()
            return
        log.info(
            "serving %s for %s; data in %s; authentication %s",
            ", ".join(self.addresses),
            ", ".join(config.domains),
            os.path.abspath(config.data_dir),
            "on" if config.auth else "off",
        )
        self._print_next_steps()
        await self._serve_until_stopped()

    async def _serve_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopped.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()

    def _print_next_steps(self) -> None:
        """What a newcomer does next, on stderr (the server's own output is its log)."""
        config = self.config
        domain = config.domains[0]
        where = self.addresses[0].split(":", 1)[1] if self.addresses else "127.0.0.1:5060"
        data = "" if config.data_dir == "sipstack-data" else f" --data-dir {config.data_dir}"
        lines = [
            "sipstack is running. Next steps:",
            f"  add a user:       sipstack user add alice@{domain} --password SECRET{data}",
            f"  point a phone at: {where} (UDP or TCP), domain {domain}, user alice, password SECRET",
            f"  see who is in:    sipstack registrations{data}",
            "  stop:             Ctrl-C",
        ]
        if config.auth and config.algorithms[0] != "MD5":
            lines.append(
                "  (phones that answer only the first digest challenge with MD5 need --auth-algorithms MD5)"
            )
        print("\n".join(lines), file=sys.stderr, flush=True)

    def _spread_requests(self, workers: int) -> None:
        """Every message of a transaction on the shared UDP port reaches the worker holding
        it: steered there by the kernel from the Via branch where it can; elsewhere the
        kernel spreads datagrams at random and each request goes on to the worker owning its
        call (see :mod:`.dispatch`)."""
        assert self.endpoint is not None and self.worker is not None
        shared_udp = [
            listener
            for listener in self.endpoint.listeners
            if isinstance(listener, UdpListener) and listener.socket_fileno() is not None
        ]
        # SIPSTACK_WORKER_STEERING=relay: the fallback below even where the kernel could
        # steer (what a kernel without SO_ATTACH_REUSEPORT_CBPF gets; the tests run it).
        steered = os.environ.get("SIPSTACK_WORKER_STEERING", "") != "relay"
        for listener in shared_udp if steered else ():
            with socket.socket(fileno=os.dup(listener.socket_fileno())) as shared:  # type: ignore[arg-type]
                steered = steer_by_branch(shared, workers) and steered
        if steered:
            self.steered = True
            if self.worker == 0:
                log.info("the kernel steers each request to a worker by its Via branch")
            return
        try:
            self.dispatcher = Dispatcher(
                self.endpoint, self.worker, workers, Path(self.config.data_dir) / "workers"
            )
        except OSError as exc:  # the kernel's hash alone
            log.warning("cannot relay requests between workers: %s", exc)
            return
        for listener in shared_udp:
            with socket.socket(fileno=os.dup(listener.socket_fileno())) as shared:  # type: ignore[arg-type]
                spread_at_random(shared, workers)
        self.dispatcher.start()

    async def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
        if self.collector is not None:
            self.collector.stop()
        if self.dispatcher is not None:
            self.dispatcher.close()
            self.dispatcher = None
        elif self.steered and self.endpoint is not None and self.worker is not None:
            log.info(
                "worker %d: %d request(s) handled here (steered by branch)",
                self.worker + 1,
                self.endpoint.stats["requests_in"],
            )
        if self.endpoint is not None:
            await self.endpoint.drain(5.0)  # let requests in progress finish
            if self.proxy is not None:
                await self.proxy.drain(10.0)  # and the proxied ones get their final answers
            await self.endpoint.close()
        if self.store is not None:
            await self.store.close()
        log.info("stopped")
