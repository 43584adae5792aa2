"""The client side of HTTP Digest for SIP (RFC 3261 §22.2–§22.4, RFC 7616, RFC 8760), sans-I/O.

A UAC that gets 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) hands the response to
:meth:`DigestClient.handle_challenge`; if that says a retry can succeed, every later request
goes through :meth:`DigestClient.authorize`, which adds one Authorization (or
Proxy-Authorization) header per protection space (realm) it holds, with the next
nonce-count. Credentials are thus reused for the next requests to the same realms
(RFC 3261 §22.3: a UA caches them per realm), without a new round trip while the nonce lasts.

Choices, with their reasons:

- Of several challenges for one realm (RFC 8760 §2.4: one per algorithm), the one with the
  strongest algorithm this client supports is answered (SHA-512-256, SHA-256, MD5, each before
  its ``-sess`` form; ``algorithms`` changes the order); a server that lists them by
  preference, as RFC 8760 asks, gets its topmost supported one.
- ``qop``: ``auth`` when offered (it does not depend on the body, which proxies may not
  keep), else ``auth-int``; no qop only if the challenge offers none (the RFC 2069 form).
- One ``cnonce`` per nonce, with ``nc`` counting up from 1: for a ``-sess`` algorithm
  H(A1) is fixed by the first cnonce (RFC 7616 §3.4.2), and a server that recomputes it
  from each request's cnonce gets the same value.
- A new challenge for a realm whose credentials were already sent means they were refused,
  unless it says ``stale=true`` (RFC 7616 §3.3: only the nonce was old): then the client
  answers the fresh nonce, else :meth:`handle_challenge` returns False and the caller stops.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ParseError
from ..message import Auth, Request, Response

PREFERENCE = ("SHA-512-256", "SHA-512-256-sess", "SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
"""Algorithms this client answers, strongest first (RFC 7616 §3.4, RFC 8760 §2.2)."""

_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def _canonical_algorithm(name: str) -> str | None:
    """``sha-256-SESS`` → ``SHA-256-sess``; None for an algorithm we do not know."""
    upper = name.strip().upper()
    base, sess = (upper[:-5], True) if upper.endswith("-SESS") else (upper, False)
    if base not in _HASHES:
        return None
    return base + ("-sess" if sess else "")


def _hash(algorithm: str, data: str | bytes) -> str:
    base = algorithm[:-5] if algorithm.endswith("-sess") else algorithm
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(_HASHES[base], raw, usedforsecurity=False).hexdigest()


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` parameter of RFC 7616 §3.4.1 from the password.

    H(A1) = H(username:realm:password), for ``-sess`` H(H(A1):nonce:cnonce) (§3.4.2);
    A2 = method:uri, with :H(body) for ``auth-int`` (§3.4.3); with a qop the response is
    KD(H(A1), nonce:nc:cnonce:qop:H(A2)), without one the RFC 2069 form
    KD(H(A1), nonce:H(A2)).
    """
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce or ''}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + _hash(algorithm, body)
    ha2 = _hash(algorithm, a2)
    if qop is None:
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(slots=True)
class ProtectionSpace:
    """What the client holds for one realm that challenged it: the challenge answered and
    the nonce-count reached."""

    header: str
    """``Authorization`` (after a 401) or ``Proxy-Authorization`` (after a 407)."""
    realm: str
    nonce: str
    algorithm: str
    """As the challenge named it (None there means MD5); canonical spelling."""
    qop: str | None
    opaque: str | None
    cnonce: str
    nc: int = 0
    """The nonce-count of the last request authorised with this nonce."""
    algorithm_param: bool = True
    """Whether the challenge named its algorithm (then the credentials name it too)."""


class DigestClient:
    """Answers Digest challenges for one user (RFC 3261 §22.2, §22.3).

    ``realm`` restricts the credentials to one realm (None: any realm that asks, which is
    what a phone configured with one account does). ``algorithms`` lists what may be
    answered, in order of preference; ``qop`` likewise for the quality of protection.
    ``cnonce`` makes client nonces (tests pass a fixed one)."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        realm: str | None = None,
        algorithms: Iterable[str] = PREFERENCE,
        qop: Iterable[str] = ("auth", "auth-int"),
        cnonce: Callable[[], str] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.realm = realm
        self.algorithms: tuple[str, ...] = ()
        for name in algorithms:
            canonical = _canonical_algorithm(name)
            if canonical is None:
                raise ValueError(f"unknown digest algorithm {name!r}")
            self.algorithms += (canonical,)
        self.qop = tuple(q.lower() for q in qop)
        if not self.algorithms or any(q not in ("auth", "auth-int") for q in self.qop):
            raise ValueError("need at least one algorithm, and qop among auth, auth-int")
        self._cnonce = cnonce or (lambda: secrets.token_hex(8))
        self.spaces: dict[tuple[str, str], ProtectionSpace] = {}
        """Protection spaces by (header, realm)."""

    # -- challenges -------------------------------------------------------------------------

    def handle_challenge(self, response: Response, *, retry: bool = False) -> bool:
        """Take the Digest challenges of a 401 or 407. True when the request should be sent
        again (after :meth:`authorize`) with the fresh nonces taken; False when nothing can
        help: no challenge this client can answer, or the credentials were refused.

        ``retry`` says that the request which drew ``response`` was itself a retry after a
        challenge: its credentials were computed for that very challenge, so a realm
        challenging it again without ``stale=true`` refused them (RFC 3261 §22.2). On a
        first attempt (``retry`` False) credentials cached from earlier requests may just
        have aged out, and every realm's new nonce is taken."""
        if response.status_code == 401:
            header, name = "Authorization", "www-authenticate"
        elif response.status_code == 407:
            header, name = "Proxy-Authorization", "proxy-authenticate"
        else:
            return False
        try:
            challenges = response._typed_value(name)
        except ParseError:
            return False
        by_realm: dict[str, list[Auth]] = {}
        for challenge in challenges:
            realm = challenge.params.get("realm")
            if challenge.scheme.lower() != "digest" or realm is None or "nonce" not in challenge.params:
                continue
            if self.realm is not None and realm != self.realm:
                continue
            by_realm.setdefault(realm, []).append(challenge)
        renewed = False
        for realm, offered in by_realm.items():
            chosen = self._choose(offered)
            if chosen is None:
                continue
            challenge, algorithm, qop = chosen
            key = (header, realm)
            old = self.spaces.get(key)
            stale = any(c.params.get("stale", "").lower() == "true" for c in offered)
            if retry and old is not None and old.nc > 0 and not stale:
                # RFC 3261 §22.2: our credentials for this realm were not accepted.
                del self.spaces[key]
                continue
            params = challenge.params
            self.spaces[key] = ProtectionSpace(
                header=header,
                realm=realm,
                nonce=params["nonce"],
                algorithm=algorithm,
                qop=qop,
                opaque=params.get("opaque"),
                cnonce=self._cnonce(),
                algorithm_param="algorithm" in params,
            )
            renewed = True
        return renewed

    def _choose(self, offered: list[Auth]) -> tuple[Auth, str, str | None] | None:
        """The challenge to answer among one realm's, its algorithm and qop."""
        best: tuple[int, Auth, str, str | None] | None = None
        for challenge in offered:
            algorithm = _canonical_algorithm(challenge.params.get("algorithm", "MD5"))
            if algorithm is None or algorithm not in self.algorithms:
                continue
            qop_text = challenge.params.get("qop")
            qop: str | None = None
            if qop_text is not None:
                options = [q.strip().lower() for q in qop_text.split(",")]
                qop = next((q for q in self.qop if q in options), None)
                if qop is None:
                    continue  # RFC 7616 §3.3: qop offered, none of ours
            elif algorithm.endswith("-sess"):
                continue  # a -sess answer needs a cnonce, which needs a qop
            rank = self.algorithms.index(algorithm)
            if best is None or rank < best[0]:
                best = (rank, challenge, algorithm, qop)
        return None if best is None else best[1:]

    # -- credentials ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether some protection space is held (requests get credentials)."""
        return bool(self.spaces)

    def credentials(self, space: ProtectionSpace, method: str, uri: str, body: bytes = b"") -> Auth:
        """The next credentials for ``space`` (its nonce-count advanced): RFC 7616 §3.4."""
        space.nc += 1
        nc = f"{space.nc:08x}" if space.qop is not None else None
        cnonce = space.cnonce if space.qop is not None else None
        response = digest_response(
            algorithm=space.algorithm,
            username=self.username,
            realm=space.realm,
            password=self.password,
            nonce=space.nonce,
            method=method,
            uri=uri,
            qop=space.qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        params = {"username": self.username, "realm": space.realm, "nonce": space.nonce, "uri": uri}
        params["response"] = response
        if space.algorithm_param or space.algorithm != "MD5":
            params["algorithm"] = space.algorithm
        if space.opaque is not None:
            params["opaque"] = space.opaque  # RFC 7616 §3.4: returned unchanged
        if space.qop is not None:
            params.update(qop=space.qop, nc=nc or "", cnonce=cnonce or "")
        return Auth("Digest", params)

    def authorize(self, request: Request) -> None:
        """Put credentials for every held protection space in ``request`` (replacing any
        Authorization / Proxy-Authorization lines it had), computed over its method, its
        Request-URI (RFC 3261 §22.4: the ``uri`` parameter is the Request-URI) and, for
        auth-int, its body. Call it again for each new request or retry: the nonce-count
        advances each time."""
        if not self.spaces:
            return
        request.remove_header("authorization")
        request.remove_header("proxy-authorization")
        for space in self.spaces.values():
            auth = self.credentials(space, request.method, request.uri_text, request.body)
            request.add_header(space.header, str(auth))

    def forget(self, realm: str | None = None) -> None:
        """Drop the held protection spaces (of ``realm`` only, if given)."""
        for key in [k for k in self.spaces if realm is None or k[1] == realm]:
            del self.spaces[key]


__all__ = ["PREFERENCE", "DigestClient", "ProtectionSpace", "digest_response"]
