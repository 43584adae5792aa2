"""Registration of a Contact with a registrar (RFC 3261 §10.2): digest authentication,
423 Interval Too Brief, refresh before expiry, removal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..auth import DigestClient
from ..errors import ParseError, SipError
from ..message import Response, SipURI, parse_uri
from ..message.headers import parse_contacts
from ..transaction import new_tag
from .agent import ALLOW

if TYPE_CHECKING:
    from .agent import UserAgent

log = logging.getLogger("sipstack.ua")


def refresh_delay(granted: int) -> float:
    """When to refresh a registration granted for ``granted`` seconds: at the later of
    three quarters of the interval and a minute before it ends (at least half a second)."""
    return max(0.5, granted * 0.75, granted - 60.0)


class Registration:
    """One AoR's binding of this UA's Contact: all its REGISTERs share a Call-ID and count
    CSeq up (RFC 3261 §10.2.4: refreshes and removal in the same Call-ID)."""

    def __init__(
        self,
        ua: UserAgent,
        aor: str,
        *,
        registrar: str | None = None,
        credentials: DigestClient | None = None,
        expires: int = 3600,
        route: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        call_id: str | None = None,
        from_tag: str | None = None,
        next_cseq: Callable[[], int] | None = None,
    ) -> None:
        self.ua = ua
        self.aor = aor
        uri = parse_uri(aor)
        if not isinstance(uri, SipURI):
            raise ValueError(f"cannot register a {uri.scheme}: address-of-record")
        # RFC 3261 §10.2: the Request-URI names the domain of the registrar (no user part).
        self.registrar = registrar or f"{uri.scheme}:{uri.host}"
        self.credentials = credentials
        self.expires = expires
        """The interval asked for (raised to the registrar's Min-Expires after a 423)."""
        self.granted = 0
        """The interval the registrar granted in its last 200 (0: not registered)."""
        self.expires_at = 0.0
        self.contact: str | None = None
        """Our Contact, fixed by the first REGISTER (its transport's listener)."""
        self.bindings: list[str] = []
        """Every Contact the registrar's last 200 listed for the AoR."""
        self.response: Response | None = None
        self.call_id = call_id or f"{new_tag()}{new_tag()}@sipstack"
        self.from_tag = from_tag or new_tag()
        self.cseq = 0
        self._refresher: asyncio.Task[None] | None = None
        # Hooks for SIP Outbound (RFC 5626, ua/outbound.py): each flow's REGISTERs take a Route
        # to its own outbound proxy (instead of the UA's), ``Supported: outbound``, and share
        # the Call-ID and CSeq space of the AoR's other flows.
        self.route = route
        """A loose Route for these REGISTERs, replacing the UA's outbound proxy."""
        self.headers = list(headers)
        """Extra header fields of every REGISTER."""
        self._shared_cseq = next_cseq

    @property
    def registered(self) -> bool:
        return self.granted > 0 and time.monotonic() < self.expires_at

    def _next_cseq(self) -> int:
        if self._shared_cseq is not None:  # RFC 5626 flows: one CSeq space per Call-ID
            self.cseq = self._shared_cseq()
            return self.cseq
        self.cseq += 1
        return self.cseq

    async def _register(self, expires: int) -> Response:
        ua = self.ua
        request = ua.create_request(
            "REGISTER",
            self.registrar,
            to=f"<{self.aor}>",
            from_aor=self.aor,
            call_id=self.call_id,
            from_tag=self.from_tag,
            cseq=self._next_cseq(),
            headers=[
                ("Expires", str(expires)),
                ("Allow", ALLOW),
                *self.headers,
            ],
        )
        if self.route is not None:
            request.set_header("Route", f"<{self.route}>")
        if self.contact is None:
            targets = await ua.endpoint.targets(request)
            self.contact = ua.contact_for(targets[0])
        return await ua.send(
            request, contact=self.contact, credentials=self.credentials, next_cseq=self._next_cseq
        )

    async def register(self) -> Response:
        """Send a REGISTER for ``expires`` seconds (once more with Min-Expires after a 423);
        the 200, or :class:`RequestFailed` (:class:`AuthenticationFailed` for a 401/407)."""
        started = time.monotonic()
        response = await self._register(self.expires)
        if response.status_code == 423:
            try:
                minimum = response.min_expires
            except ParseError:
                minimum = None
            if minimum and minimum > self.expires:
                self.expires = minimum  # RFC 3261 §10.2.8
                response = await self._register(self.expires)
        self.response = response
        if not 200 <= response.status_code < 300:
            self.granted = 0
            self.ua.check("REGISTER", response)
        self.granted = self._granted(response)
        self.expires_at = started + self.granted
        self.bindings = [str(c.uri) for c in response.contact if not c.is_star]
        log.info("registered %s as %s for %d s", self.aor, self.contact, self.granted)
        return response

    def _granted(self, response: Response) -> int:
        """The expiry the registrar gave our Contact (RFC 3261 §10.2.4: its expires
        parameter, else the Expires header, else what we asked). A Contact with a
        ``reg-id`` (RFC 5626) is ours only if the binding has the same one."""
        ours = parse_contacts(self.contact)[0] if self.contact else None
        for contact in response.contact:
            if contact.is_star or ours is None or contact.uri != ours.uri or contact.expires is None:
                continue
            reg_id = ours.params.get("reg-id")
            if reg_id is not None and contact.params.get("reg-id", reg_id) != reg_id:
                continue  # another flow's binding of the same URI
            return contact.expires
        return response.expires if response.expires is not None else self.expires

    async def start(self, *, refresh: bool = True) -> Response:
        response = await self.register()
        if refresh:
            self._refresher = self.ua.spawn(self._refresh_loop())
        return response

    async def _refresh_loop(self) -> None:
        delay = refresh_delay(self.granted)
        while True:
            await asyncio.sleep(delay)
            try:
                await self.register()
                delay = refresh_delay(self.granted)
            except (SipError, OSError) as exc:
                log.warning("refreshing the registration of %s failed: %s", self.aor, exc)
                # Try again soon, but not in a tight loop.
                delay = max(1.0, min(30.0, self.expires / 4))

    def stop(self) -> None:
        """Stop refreshing (the binding lapses at its expiry)."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    async def unregister(self) -> Response:
        """Remove our binding (Expires: 0, RFC 3261 §10.2.2) and stop refreshing; the 200,
        or :class:`RequestFailed`."""
        self.stop()
        with contextlib.suppress(ValueError):
            self.ua.registrations.remove(self)
        response = await self._register(0)
        self.response = response
        self.ua.check("REGISTER", response)
        self.granted = 0
        self.bindings = [str(c.uri) for c in response.contact if not c.is_star]
        return response
