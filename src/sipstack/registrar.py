"""The registrar (RFC 3261 §10.3, Path of RFC 3327, the binding data RFC 5626 needs).

:meth:`Registrar.handle` takes a REGISTER and returns the response to send; the bindings it
changes are durable in the location store before it returns (so before the 200 OK leaves).
Steps are numbered as in RFC 3261 §10.3.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

from .auth import DigestAuthenticator
from .errors import ParseError
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
    supported: tuple[str, ...] = ("path",)
    """Option tags understood (RFC 3261 §8.2.2.3; Path is RFC 3327)."""


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
    ) -> None:
        self.store = store
        self.config = config or RegistrarConfig()
        self.authenticators = authenticators
        """Digest authenticator per served domain (the realm is the domain); None: no auth."""
        self.clock = clock
        self.user_agent = user_agent

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
        if any(contact.is_star for contact in contacts):
            if len(contacts) != 1 or request.expires != 0:
                raise _Rejected(400, "Contact * needs Expires: 0 and no other Contact")
            updater = self._remove_all(call_id, cseq)
        else:
            wanted = [self._wanted(contact, request, source, now) for contact in contacts]
            updater = self._apply(aor, wanted, call_id, cseq)
        # Steps 7 and 8: update the bindings atomically and durably, then answer.
        current = await self.store.update(aor, updater, now)
        log.info("REGISTER %s from %s: %d binding(s)", aor, source, len(current))
        return self._ok(request, current, now)

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

    def _wanted(self, contact: NameAddr, request: Request, source: Address, now: float) -> tuple:
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
                match = next((i for i, b in enumerate(result) if _same_contact(b.contact, uri)), None)
                if match is not None:
                    self._check_order(result[match], call_id, cseq)
                    del result[match]
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

    def _ok(self, request: Request, bindings: Iterable[Binding], now: float) -> Response:
        headers: list[tuple[str, str]] = []
        for binding in bindings:
            headers.append(
                ("Contact", f"<{binding.contact}>;expires={binding.remaining(now)}{binding.params}")
            )
        # RFC 3327 §5.3: echo Path when the UA supports it.
        if request.has_header("path") and "path" in [tag.lower() for tag in request.supported]:
            headers += [("Path", value) for value in request.header_values("path")]
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
