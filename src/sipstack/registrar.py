"""The registrar (RFC 3261 §10.3, Path of RFC 3327, SIP Outbound of RFC 5626 §6, public
GRUUs of RFC 5627).

:meth:`Registrar.handle` takes a REGISTER and returns the response to send; the bindings it
changes are durable in the location store before it returns (so before the 200 OK leaves).
Steps are numbered as in RFC 3261 §10.3.

Outbound (RFC 5626 §6): a REGISTER with ``Supported: outbound`` whose Contact carries
``+sip.instance`` and ``reg-id`` registers a *flow*: its binding is keyed by (AoR, instance,
reg-id) instead of the Contact URI, so another reg-id adds a flow and the same one replaces
it, and it records how to reach the flow — the first-hop edge proxy's Path entry (which must
carry ``ob``), or, when the UA reached this registrar directly, the flow itself. A first hop
without outbound support is answered 439. The 200 then carries ``Require: outbound`` (and a
Flow-Timer when configured).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

from .auth import DigestAuthenticator
from .errors import ParseError
from .flow import PATH_FLOW, Flow
from .message import NameAddr, Request, Response, SipURI, make_response, parse_uri, validate_request
from .message.abnf import format_params
from .message.headers import MAX_DELTA_SECONDS
from .net import Address
from .storage import Binding, Store

log = logging.getLogger("sipstack.registrar")

# Contact parameters the registrar interprets; the others are kept and echoed back.
_OWN_PARAMS = ("expires", "q")


@dataclass(slots=True)
class RegistrarConfig:
    domains: set[str] = field(default_factory=lambda: {"localhost", "127.0.0.1"})
    """Domains whose bindings this registrar keeps (lower-case hosts)."""
    min_expires: int = 60
    """Shortest registration accepted (423 Interval Too Brief below it, RFC 3261 §10.3 step 7)."""
    max_expires: int = 7200
    """Longer requests are shortened to this."""
    default_expires: int = 3600
    """When neither the Contact nor the request says."""
    supported: tuple[str, ...] = ("path", "outbound", "gruu")
    """Option tags understood (RFC 3261 §8.2.2.3; Path is RFC 3327, outbound RFC 5626, gruu
    RFC 5627); sent in the Supported header of the 200."""
    first_hop_outbound: bool = True
    """Keep the flows of UAs registering directly, with no edge proxy between (RFC 5626 §6:
    the registrar is then the first hop). Off, such a REGISTER with reg-id gets 439."""
    flow_timer: int = 0
    """Seconds between keep-alives the server wants on outbound flows: the Flow-Timer of the
    200 (RFC 5626 §4.4, §6); 0: none (the UA uses its defaults)."""


class _Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _canonical_aor(uri: SipURI) -> str:
    """RFC 3261 §10.3 step 5: scheme, user and host of the To URI, other parts dropped."""
    return uri.aor


class Registrar:
    """Answers REGISTER requests for the configured domains."""

    def __init__(
        self,
        store: Store,
        config: RegistrarConfig | None = None,
        authenticators: dict[str, DigestAuthenticator] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        user_agent: str | None = None,
        flow_epoch: str = "",
    ) -> None:
        self.store = store
        self.config = config or RegistrarConfig()
        self.authenticators = authenticators
        """Digest authenticator per served domain (the realm is the domain); None: no auth."""
        self.clock = clock
        self.user_agent = user_agent
        self.flow_epoch = flow_epoch or secrets.token_hex(4)
        """Names this run of the process in the flows it records (connection ids restart)."""

    def serves(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.config.domains

    async def handle(self, request: Request, source: Address) -> Response:
        try:
            return await self._handle(request, source)
        except _Rejected as exc:
            return self._reply(request, exc.status, exc.reason)
        except ParseError as exc:
            return self._reply(request, exc.status_code, exc.reason)

    async def _handle(self, request: Request, source: Address) -> Response:
        config = self.config
        # Step 1: the Request-URI names a domain we keep bindings for.
        uri = request.uri
        if not isinstance(uri, SipURI) or not self.serves(uri.host):
            raise _Rejected(404, "Domain Not Served")
        # Step 2: Require (420 with Unsupported).
        try:
            validate_request(request, supported=config.supported, require_headers=("require",))
        except ParseError as exc:
            unsupported = getattr(exc, "unsupported", None)
            if unsupported:
                return self._reply(request, 420, None, [("Unsupported", ", ".join(unsupported))])
            raise
        # Step 5 (read early, used by steps 3 and 4): the address-of-record.
        to_uri = request.to.uri
        if not isinstance(to_uri, SipURI) or to_uri.user is None:
            raise _Rejected(404, "Not Found")
        # Step 5: the AoR must be valid for the domain in the Request-URI.
        if to_uri.host.lower().rstrip(".") != uri.host.lower().rstrip(".") or not self.serves(to_uri.host):
            raise _Rejected(404, "Not Found")
        aor = _canonical_aor(to_uri)
        # Steps 3 and 4: authenticate, and the credentials must be the AoR's own.
        if self.authenticators is not None:
            authenticator = self.authenticators.get(to_uri.host.lower())
            if authenticator is None:
                raise _Rejected(403, "Forbidden")
            denied = await self._authenticate(authenticator, request, source, aor)
            if denied is not None:
                return denied
        # Step 6: the Contacts and their expiry.
        contacts = request.contact
        now = self.clock()
        if not contacts:
            current = await self.store.bindings(aor, now)
            return self._ok(request, current, now)
        call_id = request.call_id
        cseq = request.cseq.seq
        flow = ""
        if any(contact.is_star for contact in contacts):
            if len(contacts) != 1 or request.expires != 0:
                raise _Rejected(400, "Contact * needs Expires: 0 and no other Contact")
            updater = self._remove_all(call_id, cseq)
        else:
            flow = self._outbound_flow(request, contacts, source)
            connection = self._websocket_flow(request, source)
            wanted = [self._wanted(contact, request, source, now, flow, connection) for contact in contacts]
            updater = self._apply(aor, wanted, call_id, cseq)
        # Steps 7 and 8: update the bindings atomically and durably, then answer.
        current = await self.store.update(aor, updater, now)
        log.info("REGISTER %s from %s: %d binding(s)", aor, source, len(current))
        return self._ok(request, current, now, outbound=bool(flow))

    def _outbound_flow(self, request: Request, contacts: list[NameAddr], source: Address) -> str:
        """RFC 5626 §6: the flow of an outbound registration (``Binding.flow``), or "" when
        outbound does not apply (then instance and reg-id are only kept and echoed)."""
        # §6: a Contact without +sip.instance follows the binding rules of RFC 3261 (its
        # reg-id is only kept).
        with_reg_id = [c for c in contacts if "reg-id" in c.params and c.params.get("+sip.instance")]
        if not with_reg_id or "outbound" not in [tag.lower() for tag in request.supported]:
            return ""
        # One flow per REGISTER: a request arrives over exactly one (§4.2).
        if len(with_reg_id) > 1:
            raise _Rejected(400, "More Than One Contact With reg-id")
        reg_id = with_reg_id[0].params.get("reg-id") or ""
        if not reg_id.isdigit() or not 1 <= int(reg_id) <= 2**31 - 1:
            raise _Rejected(400, "reg-id Must Be A Number From 1")
        # The first hop must support outbound: through proxies, its Path entry carries "ob" —
        # the last entry, as each proxy adds its own on top (RFC 3327 §5.2); with no Path and
        # one Via, the UA reached us directly and we are the first hop.
        paths = request.path
        if paths:
            first_hop = paths[-1].uri
            if isinstance(first_hop, SipURI) and "ob" in first_hop.params:
                return PATH_FLOW
        elif len(request.via) == 1 and self.config.first_hop_outbound:
            return Flow.of(source, epoch=self.flow_epoch).text()
        raise _Rejected(439, "First Hop Lacks Outbound Support")

    async def _authenticate(
        self, authenticator: DigestAuthenticator, request: Request, source: Address, aor: str
    ) -> Response | None:
        credentials = authenticator.credentials_for(request)
        user = None
        if credentials is not None:
            username = credentials.params.get("username", "")
            user = await self.store.find_user(username, authenticator.realm)
        # Guesses are counted per IP address (a new port or connection is no fresh start).
        result = authenticator.verify(request, user, source.host)
        if not result.ok:
            if result.challenge is not None:
                log.info("REGISTER %s from %s: challenged (%s)", aor, source, result.reason)
                return self._reply(request, result.challenge.status, None, result.challenge.headers)
            log.warning("REGISTER %s from %s: refused (%s)", aor, source, result.reason)
            return self._reply(request, result.status or 403, None)
        # Step 4: the user part compares case-sensitively, the host not (§19.1.4).
        to_uri = request.to.uri
        assert isinstance(to_uri, SipURI)
        if user is None or user.aor != f"{to_uri.user}@{to_uri.host.lower()}":
            log.warning("REGISTER %s from %s: %s may not register it", aor, source, result.username)
            return self._reply(request, 403, "Forbidden")
        return None

    def _expiry(self, contact: NameAddr, request: Request) -> int:
        value = contact.expires
        if value is None:
            value = request.expires
        if value is None:
            value = self.config.default_expires
        return min(value, MAX_DELTA_SECONDS)

    def _websocket_flow(self, request: Request, source: Address) -> str:
        """RFC 7118 §5: a WebSocket client accepts no connections, so a REGISTER that reached
        us directly over WebSocket binds its Contacts to that connection even without
        Outbound (``Binding.flow``; keyed by Contact as usual); "" otherwise."""
        if source.transport not in ("WS", "WSS") or not self.config.first_hop_outbound:
            return ""
        if len(request.via) != 1 or request.has_header("path"):
            return ""
        return Flow.of(source, epoch=self.flow_epoch).text()

    def _wanted(
        self,
        contact: NameAddr,
        request: Request,
        source: Address,
        now: float,
        flow: str,
        connection: str = "",
    ) -> tuple:
        expires = self._expiry(contact, request)
        config = self.config
        # Step 7: 423 iff the interval is above zero, below an hour and below the minimum.
        if 0 < expires < 3600 and expires < config.min_expires:
            raise _Rejected(423, "Interval Too Brief")
        expires = min(expires, config.max_expires)
        params = {k: v for k, v in contact.params.items() if k not in _OWN_PARAMS}
        instance = params.get("+sip.instance")
        reg_id_text = params.get("reg-id")
        reg_id = int(reg_id_text) if reg_id_text and reg_id_text.isdigit() else None
        uri = contact.uri
        binding = Binding(
            aor="",
            contact=str(uri),
            expires_at=now + expires,
            call_id=request.call_id,
            cseq=request.cseq.seq,
            q=contact.q,
            path=request.header_values("path"),
            instance=instance,
            reg_id=reg_id,
            params=format_params(params),
            source=str(source),
            user_agent=request.header("user-agent") or "",
            updated_at=now,
            # RFC 5626 §6: only the Contact with the reg-id is the outbound flow.
            flow=flow if flow and reg_id is not None and instance else connection,
        )
        return uri, expires, binding

    @staticmethod
    def _check_order(existing: Binding, call_id: str, cseq: int) -> None:
        # Step 7: same Call-ID needs a higher CSeq, else the request fails.
        if existing.call_id == call_id and cseq <= existing.cseq:
            raise _Rejected(500, "Out Of Order Request")

    def _apply(
        self, aor: str, wanted: list[tuple], call_id: str, cseq: int
    ) -> Callable[[list[Binding]], list[Binding]]:
        def updater(current: list[Binding]) -> list[Binding]:
            result = list(current)
            for uri, expires, binding in wanted:
                if binding.flow:
                    # RFC 5626 §6: an outbound flow replaces the flow of the same instance and
                    # reg-id, whatever its Contact URI, and a plain binding of its URI.
                    key = binding.key
                    matches = [
                        b for b in result if b.key == key or (not b.flow and _same_contact(b.contact, uri))
                    ]
                else:
                    matches = [b for b in result if _same_contact(b.contact, uri)]
                for existing in matches:
                    self._check_order(existing, call_id, cseq)
                    result.remove(existing)
                if expires > 0:
                    binding.aor = aor
                    result.append(binding)
            return result

        return updater

    def _remove_all(self, call_id: str, cseq: int) -> Callable[[list[Binding]], list[Binding]]:
        def updater(current: list[Binding]) -> list[Binding]:
            for binding in current:
                self._check_order(binding, call_id, cseq)
            return []

        return updater

    def _ok(
        self, request: Request, bindings: Iterable[Binding], now: float, *, outbound: bool = False
    ) -> Response:
        headers: list[tuple[str, str]] = []
        supported = [tag.lower() for tag in request.supported]
        gruu = "gruu" in supported and "gruu" in self.config.supported
        for binding in bindings:
            extra = ""
            if gruu and binding.instance:
                # RFC 5627 §6 (registrar behaviour): the public GRUU of the instance.
                extra = f';pub-gruu="{public_gruu(binding.aor, binding.instance)}"'
            headers.append(
                ("Contact", f"<{binding.contact}>;expires={binding.remaining(now)}{binding.params}{extra}")
            )
        # RFC 3327 §5.3: echo Path when the UA supports it.
        if request.has_header("path") and "path" in supported:
            headers += [("Path", value) for value in request.header_values("path")]
        if outbound:
            # RFC 5626 §6: the registrar applied outbound processing.
            headers.append(("Require", "outbound"))
            if self.config.flow_timer > 0:
                headers.append(("Flow-Timer", str(self.config.flow_timer)))
        if self.config.supported:
            headers.append(("Supported", ", ".join(self.config.supported)))
        headers.append(("Date", formatdate(now, usegmt=True)))
        return self._reply(request, 200, None, headers)

    def _reply(
        self, request: Request, status: int, reason: str | None, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        extra = list(headers or [])
        if status == 423:
            extra.append(("Min-Expires", str(self.config.min_expires)))
        if self.user_agent:
            extra.append(("Server", self.user_agent))
        tag = request.to.tag or _tag_for(request)
        return make_response(request, status, reason, to_tag=tag, headers=extra)


def public_gruu(aor: str, instance: str) -> str:
    """RFC 5627 §3.1: the public GRUU of ``instance`` (``<urn:uuid:…>``) registered to ``aor``
    (``sip:user@domain``): the AoR with a ``gr`` parameter holding the instance URN."""
    return f"{aor};gr={instance.strip().removeprefix('<').removesuffix('>')}"


def gruu_instance(uri: SipURI) -> str | None:
    """The ``+sip.instance`` value (``<urn:…>``) a public GRUU names (RFC 5627 §3.1); None
    for a URI without a valued ``gr`` parameter (temporary GRUUs are not issued here)."""
    value = uri.params.get("gr")
    return f"<{value}>" if value else None


def _same_contact(stored: str, uri: object) -> bool:
    """RFC 3261 §10.3 step 7: bindings are compared with the URI equality of §19.1.4."""
    try:
        return parse_uri(stored) == uri
    except ParseError:
        return stored == str(uri)


def _tag_for(request: Request) -> str:
    # A stable To tag per REGISTER transaction: retransmissions get the same one.
    branch = request.via[0].branch or request.call_id
    return hashlib.blake2s(branch.encode(), digest_size=6).hexdigest()
