"""Builders for the registrar tests: REGISTER requests as a UA would send them (built, then
re-parsed from their wire form), a fake clock, users, Digest credentials computed here from
the password, and a harness that runs :meth:`Registrar.handle` and re-parses the response."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from sipstack.auth import DigestAuthenticator, NonceManager, compute_response, ha1_all
from sipstack.message import Auth, NameAddr, Request, Response, parse
from sipstack.net import Address
from sipstack.registrar import Registrar, RegistrarConfig
from sipstack.storage import Binding, Store, User

T0 = 1_700_000_000.0
DOMAIN = "example.com"
AOR = "sip:alice@example.com"
RURI = "sip:example.com"
SECRET = b"registrar-test-secret-0123456789"
SOURCE = Address("UDP", "192.0.2.10", 5060)
CALL_ID = "843817637684230@998sdasdh09"

_branches = itertools.count(1)


class FakeClock:
    """A settable clock (epoch seconds), shared by the registrar and the authenticator."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def register(
    *contacts: str,
    aor: str = AOR,
    to: str | None = None,
    ruri: str = RURI,
    call_id: str = CALL_ID,
    cseq: int = 1,
    expires: int | str | None = None,
    branch: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Request:
    """A REGISTER for ``aor`` (To and From) with one Contact line per ``contacts`` item, an
    Expires header when ``expires`` is given, then ``headers``; a fresh branch unless given."""
    branch = branch or f"z9hG4bKreg{next(_branches)}"
    lines = [
        ("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={branch}"),
        ("Max-Forwards", "70"),
        ("To", to if to is not None else f"<{aor}>"),
        ("From", f"<{aor}>;tag=456248"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
    ]
    lines += [("Contact", contact) for contact in contacts]
    if expires is not None:
        lines.append(("Expires", str(expires)))
    lines += list(headers)
    request = parse(bytes(Request("REGISTER", ruri, lines)))
    assert isinstance(request, Request)
    return request


def make_user(name: str = "alice", password: str = "secret", domain: str = DOMAIN) -> User:
    return User(aor=f"{name}@{domain}", username=name, realm=domain, ha1=ha1_all(name, domain, password))


def challenge_of(response: Response) -> dict[str, str]:
    """The parameters of the first WWW-Authenticate challenge (the preferred algorithm)."""
    challenges = response.www_authenticate
    assert challenges, "no WWW-Authenticate in the response"
    assert challenges[0].scheme.lower() == "digest"
    return challenges[0].params


def credentials(
    nonce: str,
    *,
    username: str = "alice",
    password: str = "secret",
    realm: str = DOMAIN,
    uri: str = RURI,
    algorithm: str = "SHA-256",
    nc: int = 1,
    cnonce: str = "0a4f113b",
) -> tuple[str, str]:
    """An Authorization header (qop=auth) answering ``nonce`` for REGISTER ``uri``."""
    nc_text = f"{nc:08x}"
    ha1 = ha1_all(username, realm, password)[algorithm]
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=nonce,
        method="REGISTER",
        uri=uri,
        qop="auth",
        nc=nc_text,
        cnonce=cnonce,
    )
    auth = Auth(
        "Digest",
        {
            "username": username,
            "realm": realm,
            "nonce": nonce,
            "uri": uri,
            "response": response,
            "algorithm": algorithm,
            "qop": "auth",
            "nc": nc_text,
            "cnonce": cnonce,
        },
    )
    return ("Authorization", str(auth))


@dataclass
class Listed:
    """One Contact of a 200 OK."""

    uri: str
    expires: int
    params: dict[str, str | None]


def listed(response: Response) -> list[Listed]:
    """The Contacts of a response, in order, each with its expires and other parameters."""
    out = []
    for contact in response.contact:
        params = dict(contact.params)
        assert "expires" in params, f"Contact without expires in the 200: {contact}"
        expires = contact.expires
        assert expires is not None
        del params["expires"]
        out.append(Listed(str(contact.uri), expires, params))
    return out


def uris(response: Response) -> list[str]:
    return [item.uri for item in listed(response)]


def expiries(response: Response) -> dict[str, int]:
    return {item.uri: item.expires for item in listed(response)}


class Harness:
    """A registrar over ``store`` with a fake clock; authentication when ``auth`` is set."""

    def __init__(
        self,
        store: Store,
        *,
        config: RegistrarConfig | None = None,
        auth: bool = False,
        clock: FakeClock | None = None,
        nonce_lifetime: float = 300.0,
    ) -> None:
        self.store = store
        self.clock = clock or FakeClock()
        self.config = config or RegistrarConfig(domains={DOMAIN})
        self.nonces = NonceManager(SECRET, lifetime=nonce_lifetime, clock=self.clock)
        self.authenticators = (
            {d: DigestAuthenticator(d, self.nonces, clock=self.clock) for d in self.config.domains}
            if auth
            else None
        )
        self.registrar = Registrar(store, self.config, self.authenticators, clock=self.clock)

    async def send(self, request: Request, source: Address = SOURCE) -> Response:
        """Hand ``request`` to the registrar; the response as a peer would parse it."""
        answer = await self.registrar.handle(request, source)
        assert isinstance(answer, Response)
        reparsed = parse(bytes(answer))
        assert isinstance(reparsed, Response)
        return reparsed

    async def ok(self, request: Request) -> Response:
        response = await self.send(request)
        assert response.status_code == 200, response.start_line()
        return response

    async def bindings(self, aor: str = AOR) -> list[Binding]:
        return await self.store.bindings(aor, self.clock())

    async def add_user(self, user: User) -> None:
        await self.store.put_user(user)

    async def nonce(self, *contacts: str, **kwargs: object) -> str:
        """Send an unauthenticated REGISTER and return the nonce of the 401."""
        response = await self.send(register(*contacts, **kwargs))  # type: ignore[arg-type]
        assert response.status_code == 401, response.start_line()
        return challenge_of(response)["nonce"]


def to_tag(response: Response) -> str | None:
    to: NameAddr = response.to
    return to.tag
