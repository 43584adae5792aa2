"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-I/O.

A UAS or registrar answers 401 with WWW-Authenticate, a proxy 407 with Proxy-Authenticate
(RFC 3261 §22.1, §22.3). One challenge is sent per algorithm, most preferred first
(RFC 8760 §2.4), all carrying the same stateless nonce (RFC 7616 §5.4): the nonce is
``base64(timestamp ‖ salt ‖ HMAC-SHA256(secret, timestamp ‖ salt ‖ realm))``, so any process
that holds the secret can check it without a database. Only the nonce-counts seen are kept
in memory, bounded in time (a nonce is forgotten when it expires) and in size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import ParseError
from ..message import Auth, Request

if TYPE_CHECKING:
    from ..storage.base import User

ALGORITHMS = ("SHA-512-256", "SHA-256", "MD5")
"""The algorithms of RFC 8760 §2.2, in our order of preference (RFC 8760 §2.4)."""

_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_QOPS = ("auth", "auth-int")
_NC_RE = re.compile(r"[0-9a-fA-F]{1,8}")
_MAX_ENTRIES = 100_000
_SKEW = 5.0  # seconds a nonce's timestamp may lie in the future (clocks of a cluster)

Clock = Callable[[], float]


def _base(algorithm: str) -> str:
    """``SHA-256-sess`` → ``SHA-256`` (RFC 7616 §3.4.2); ValueError if unknown."""
    base = algorithm[:-5] if algorithm.endswith("-sess") else algorithm
    if base not in _HASHES:
        raise ValueError(f"unknown digest algorithm {algorithm!r}")
    return base


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(algorithm: str, data: bytes) -> str:
    """H(data) as lower-case hex (RFC 7616 §3.4)."""
    return hashlib.new(_HASHES[_base(algorithm)], data, usedforsecurity=False).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """H(A1) = H(username ":" realm ":" password) (RFC 7616 §3.4.2), UTF-8 encoded."""
    return _h(algorithm, f"{username}:{realm}:{password}".encode())


def ha1_all(username: str, realm: str, password: str) -> dict[str, str]:
    """HA1 for every algorithm of :data:`ALGORITHMS`, the form a :class:`User` stores."""
    return {alg: compute_ha1(username, realm, password, alg) for alg in ALGORITHMS}


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` of RFC 7616 §3.4.1 (or ``rspauth`` of §3.5 with ``method=""``).

    ``ha1`` is H(username:realm:password); for a ``-sess`` algorithm it is turned into
    H(ha1:nonce:cnonce) here (§3.4.2). A2 is ``method:uri``, plus ``:H(body)`` for
    ``qop=auth-int`` (§3.4.3). Without qop this is the RFC 2069 form KD(HA1, nonce:H(A2)).
    ``nc`` is the 8-hex-digit text as sent.
    """
    if algorithm.endswith("-sess"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce or ''}".encode())
    a2 = f"{method}:{uri}"
    if qop is not None and qop.lower() == "auth-int":
        a2 += ":" + _h(algorithm, body)
    ha2 = _h(algorithm, a2.encode())
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}".encode())
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


class NonceManager:
    """Stateless, authenticated, expiring nonces (RFC 7616 §5.4, §5.5) and nonce-count
    tracking against replay (RFC 7616 §3.4, ``nc``)."""

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime: float = 300.0,
        clock: Clock = time.time,
        max_entries: int = _MAX_ENTRIES,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret needs at least 16 bytes")
        self._secret = secret
        self.lifetime = lifetime
        self._clock = clock
        self._max = max_entries
        # nonce → (highest nc seen, expiry); in order of first use.
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._floor = float("-inf")  # nonces issued up to here were forgotten early

    def _mac(self, head: bytes, realm: str) -> bytes:
        return hmac.new(self._secret, head + realm.encode(), hashlib.sha256).digest()

    def new(self, realm: str) -> str:
        """A fresh nonce for ``realm``: a millisecond timestamp, 8 random bytes (so that no two
        clients share a nonce and its counts) and their HMAC, base64 (64 characters)."""
        head = struct.pack(">Q", int(self._clock() * 1000)) + secrets.token_bytes(8)
        return base64.b64encode(head + self._mac(head, realm)).decode("ascii")

    @staticmethod
    def _decode(nonce: str) -> bytes | None:
        if len(nonce) != 64:
            return None
        try:
            raw = base64.b64decode(nonce.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return None
        return raw if len(raw) == 48 else None

    def _issued(self, nonce: str) -> float | None:
        raw = self._decode(nonce)
        return None if raw is None else struct.unpack(">Q", raw[:8])[0] / 1000

    def check(self, nonce: str, realm: str) -> Literal["ok", "stale", "invalid"]:
        """Whether we minted ``nonce`` for ``realm`` ("invalid" if not), and whether it is
        older than the lifetime ("stale", RFC 7616 §3.3), else "ok"."""
        raw = self._decode(nonce)
        if raw is None or not hmac.compare_digest(raw[16:], self._mac(raw[:16], realm)):
            return "invalid"
        age = self._clock() - struct.unpack(">Q", raw[:8])[0] / 1000
        return "ok" if -_SKEW <= age <= self.lifetime else "stale"

    def check_count(self, nonce: str, nc: int) -> bool:
        """Record ``nc`` for ``nonce``; False if it does not exceed every nc seen before for it
        (a replay), if the nonce has expired, or if it was forgotten early (memory cap)."""
        issued = self._issued(nonce)
        if issued is None:
            return False
        now = self._clock()
        counts = self._counts
        while counts:  # forget expired nonces (first-used first: close to expiry order)
            first = next(iter(counts))
            if counts[first][1] > now:
                break
            del counts[first]
        expires = issued + self.lifetime
        if expires <= now:
            return False
        seen = counts.get(nonce)
        if seen is not None:
            if nc <= seen[0]:
                return False
            counts[nonce] = (nc, seen[1])
            return True
        if issued <= self._floor:
            return False  # its counts may have been dropped: a replay could not be told
        while len(counts) >= self._max:
            _, (_, dropped_expiry) = counts.popitem(last=False)
            self._floor = max(self._floor, dropped_expiry - self.lifetime)
        counts[nonce] = (nc, expires)
        return True

    def __len__(self) -> int:
        return len(self._counts)


@dataclass(slots=True)
class Challenge:
    """What to answer: 401 + WWW-Authenticate or 407 + Proxy-Authenticate (RFC 3261 §22.1,
    §22.3), one header per algorithm in preference order (RFC 8760 §2.4)."""

    status: int
    headers: list[tuple[str, str]]


@dataclass(slots=True)
class AuthResult:
    """The outcome of :meth:`DigestAuthenticator.verify`. ``reason`` is for logs only."""

    ok: bool
    username: str | None
    challenge: Challenge | None
    status: int
    reason: str


class _Failures:
    """Failures per key within a sliding ``window``: the ``limit``-th failure inside it blocks
    the key for a whole ``window``. At most ``cap`` keys are kept (the least recently failed
    are dropped first)."""

    def __init__(self, limit: int, window: float, cap: int = _MAX_ENTRIES) -> None:
        self.limit, self.window, self.cap = limit, window, cap
        self._entries: OrderedDict[str, tuple[deque[float], float]] = OrderedDict()  # times, until

    def _get(self, key: str, now: float) -> tuple[deque[float], float] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        times, until = entry
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times and until <= now:
            del self._entries[key]
            return None
        return entry

    def level(self, key: str, now: float) -> float:
        entry = self._get(key, now)
        return 0.0 if entry is None else float(len(entry[0]))

    def blocked(self, key: str, now: float) -> bool:
        entry = self._get(key, now)
        return entry is not None and entry[1] > now

    def add(self, key: str, now: float) -> None:
        entry = self._get(key, now)
        times, until = entry if entry is not None else (deque(maxlen=self.limit), 0.0)
        times.append(now)
        if len(times) >= self.limit:
            until = now + self.window
        self._entries[key] = (times, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self.cap:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class DigestAuthenticator:
    """Challenges and verifies Digest credentials for one realm (RFC 3261 §22, RFC 7616,
    RFC 8760). The caller looks the user up by ``credentials_for(request).params["username"]``
    (``UserStore.find_user``) and passes it, or None, to :meth:`verify`."""

    def __init__(
        self,
        realm: str,
        nonces: NonceManager,
        *,
        algorithms: Iterable[str] = ALGORITHMS,
        qop: Iterable[str] = _QOPS,
        proxy: bool = False,
        max_failures: int = 10,
        failure_window: float = 60.0,
        clock: Clock = time.time,
    ) -> None:
        self.realm = realm
        self.nonces = nonces
        self.algorithms = tuple(algorithms)
        for alg in self.algorithms:
            _base(alg)
        self.qop = tuple(qop)
        if not self.algorithms or any(q not in _QOPS for q in self.qop):
            raise ValueError("need at least one algorithm, and qop among auth, auth-int")
        self.proxy = proxy
        self.status = 407 if proxy else 401
        self._header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        self._clock = clock
        self._by_source = _Failures(max_failures, failure_window)
        self._by_user = _Failures(max_failures, failure_window)

    def challenge(self, *, stale: bool = False) -> Challenge:
        """A fresh nonce offered with each algorithm (RFC 7616 §3.3; qop quoted, as the
        challenge grammar requires; ``stale=true`` when only the nonce was at fault)."""
        nonce = self.nonces.new(self.realm)
        extra = (f', qop="{",".join(self.qop)}"' if self.qop else "") + (", stale=true" if stale else "")
        return Challenge(
            self.status,
            [
                (
                    self._header,
                    f"Digest realm={_quote(self.realm)}, nonce={_quote(nonce)}, algorithm={alg}{extra}",
                )
                for alg in self.algorithms
            ],
        )

    def credentials_for(self, request: Request) -> Auth | None:
        """Our Digest credentials in Authorization (Proxy-Authorization for a proxy, RFC 3261
        §22.3): of those for our realm, the first with an algorithm we offer, else the first.
        Malformed headers count as absent."""
        try:
            found = request.proxy_authorization if self.proxy else request.authorization
        except ParseError:
            return None
        ours = [a for a in found if a.scheme.lower() == "digest" and a.params.get("realm") == self.realm]
        for auth in ours:
            if self._algorithm(auth) is not None:
                return auth
        return ours[0] if ours else None

    def _algorithm(self, auth: Auth) -> str | None:
        """The offered algorithm the credentials name (absent means MD5, RFC 7616 §3.3)."""
        name = auth.params.get("algorithm", "MD5").upper().replace("-SESS", "-sess")
        return name if name in self.algorithms else None

    def verify(self, request: Request, user: User | None, source: str) -> AuthResult:
        """Check the request's credentials for ``user`` (None: no such user, answered exactly
        like a wrong password). ``source`` identifies the peer (e.g. ``"udp:1.2.3.4"``) for
        the bound on guesses: after ``max_failures`` within ``failure_window``, per source or
        per username, the answer is 403 without a challenge until the count decays."""
        now = self._clock()
        if self._by_source.blocked(source, now):
            return AuthResult(False, None, None, 403, f"too many failures from {source}")
        auth = self.credentials_for(request)
        if auth is None:
            return self._reject(None, "no credentials")
        p = auth.params
        username = p.get("username")
        if username is None:
            return self._fail(source, None, now, "no username")
        if self._by_user.blocked(username, now):
            return AuthResult(False, username, None, 403, f"too many failures for {username!r}")
        algorithm = self._algorithm(auth)
        nonce, response, uri = p.get("nonce"), p.get("response"), p.get("uri")
        qop, nc, cnonce = p.get("qop"), p.get("nc"), p.get("cnonce")
        if algorithm is None:
            return self._fail(source, username, now, f"algorithm {p.get('algorithm')!r} not offered")
        if nonce is None or response is None or uri is None:
            return self._fail(source, username, now, "nonce, response or uri missing")
        if uri != request.uri_text:  # RFC 3261 §22.4, RFC 7616 §3.4.6
            return self._fail(source, username, now, f"uri {uri!r} is not the Request-URI")
        if qop is not None:
            if qop.lower() not in self.qop:
                return self._fail(source, username, now, f"qop {qop!r} not offered")
            if nc is None or cnonce is None or not _NC_RE.fullmatch(nc):
                return self._fail(source, username, now, "qop without a valid nc and cnonce")
        elif self.qop and _base(algorithm) != "MD5":
            # RFC 8760 makes qop mandatory; only RFC 2069-style MD5 clients may omit it.
            return self._fail(source, username, now, "qop missing")
        stored = user.ha1.get(_base(algorithm)) if user is not None else None
        known = user is not None and (user.username, user.realm) == (username, self.realm)
        # Unknown: compute anyway over a dummy HA1, the same work as for a known user.
        ha1 = stored if known and stored else "0" * len(_h(algorithm, b""))
        expected = compute_response(
            algorithm=algorithm,
            ha1=ha1,
            nonce=nonce,
            method=request.method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=request.body,
        )
        state = self.nonces.check(nonce, self.realm)
        given = response.lower().encode("utf-8", "replace")
        if not (hmac.compare_digest(expected.encode("ascii"), given) and known and stored):
            return self._fail(source, username, now, f"wrong response or unknown user (nonce {state})")
        if state != "ok":
            # A correct digest over a nonce we no longer accept (expired, or minted under
            # another secret): RFC 7616 §3.3 says answer stale=true, not a failure.
            return self._reject(username, f"nonce {state}", stale=True)
        # qop absent: a nonce is good for one request only (there is no nc to order them).
        if not self.nonces.check_count(nonce, int(nc, 16) if nc is not None else 1):
            return self._reject(username, f"nonce-count {nc} replayed", stale=True)
        return AuthResult(True, username, None, 200, "ok")

    def _reject(self, username: str | None, reason: str, *, stale: bool = False) -> AuthResult:
        return AuthResult(False, username, self.challenge(stale=stale), self.status, reason)

    def _fail(self, source: str, username: str | None, now: float, reason: str) -> AuthResult:
        self._by_source.add(source, now)
        if username is not None:
            self._by_user.add(username, now)
        return self._reject(username, reason)


def authentication_info(
    credentials: Auth, ha1: str, *, body: bytes = b"", nextnonce: str | None = None
) -> str:
    """The Authentication-Info (or Proxy-Authentication-Info) value for a 2xx after
    successful ``credentials`` (RFC 7616 §3.5): ``rspauth`` is the response computed with an
    empty method (and the response's ``body`` for auth-int). ``ha1`` is the user's HA1 for
    the credentials' algorithm (the base one for ``-sess``)."""
    p = credentials.params
    algorithm = p.get("algorithm", "MD5").upper().replace("-SESS", "-sess")
    qop, nc, cnonce = p.get("qop"), p.get("nc"), p.get("cnonce")
    rspauth = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=p.get("nonce", ""),
        method="",
        uri=p.get("uri", ""),
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    parts = [f"nextnonce={_quote(nextnonce)}"] if nextnonce else []
    if qop is not None:
        parts.append(f"qop={qop}")
    parts.append(f'rspauth="{rspauth}"')
    if qop is not None:
        parts += [f"cnonce={_quote(cnonce or '')}", f"nc={nc}"]
    return ", ".join(parts)
