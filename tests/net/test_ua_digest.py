"""The user agent's digest authentication over real loopback sockets, for every algorithm the
sipstack registrar/proxy issues (RFC 7616, RFC 8760: SHA-512-256, SHA-256, MD5 and their
``-sess`` forms) with each qop (auth, auth-int), as a 401 (WWW-Authenticate, a registrar or
UAS) and as a 407 (Proxy-Authenticate, a proxy): the challenge offers only that algorithm and
qop, the UA's retry must carry them and pass sipstack's own verifier. The request is a
MESSAGE, whose body auth-int covers; a REGISTER to a registrar that issues only this
algorithm is checked too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from sipstack.auth import DigestAuthenticator, NonceManager, ha1_all
from sipstack.auth.client import PREFERENCE
from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.message import Request
from sipstack.registrar import Registrar, RegistrarConfig
from sipstack.storage import User
from sipstack.storage.memory import MemoryStore
from sipstack.transaction import TimerConfig
from sipstack.ua import UserAgent

FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)
HOST = "127.0.0.1"
SECRET = b"ua-digest-secret-0123456789abcdef"
USER = User(f"alice@{HOST}", "alice", HOST, ha1_all("alice", HOST, "secret"))


class Challenger:
    """A bare Endpoint that demands digest credentials (one algorithm, one qop) on every
    request and answers 200 once they verify; REGISTERs go to a sipstack Registrar."""

    def __init__(self, algorithm: str, qop: str, *, proxy: bool) -> None:
        self.authenticator = DigestAuthenticator(
            HOST, NonceManager(SECRET), algorithms=(algorithm,), qop=(qop,), proxy=proxy
        )
        self.store = MemoryStore()
        self.registrar = Registrar(self.store, RegistrarConfig(domains={HOST}), {HOST: self.authenticator})
        self.endpoint = Endpoint(timers=FAST)
        self.received: list[Request] = []
        self.port = 0

    async def start(self) -> Challenger:
        await self.store.put_user(USER)

        async def handle(incoming: IncomingRequest) -> None:
            self.received.append(incoming.request)
            if incoming.method == "REGISTER":
                incoming.respond(await self.registrar.handle(incoming.request, incoming.source))
                return
            result = self.authenticator.verify(incoming.request, USER, str(incoming.source))
            if result.ok:
                incoming.respond(200)
            else:
                assert result.challenge is not None
                incoming.respond(result.challenge.status, headers=result.challenge.headers)

        self.endpoint.on_request(handle)
        self.port = (await self.endpoint.listen(f"udp:{HOST}:0")).port
        return self


@pytest.fixture
async def alice() -> AsyncIterator[UserAgent]:
    async with UserAgent(f"sip:alice@{HOST}", listen=[f"udp:{HOST}:0"], timers=FAST, password="secret") as ua:
        yield ua


@pytest.mark.parametrize("status", [401, 407])
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
@pytest.mark.parametrize("algorithm", PREFERENCE)
async def test_every_algorithm_and_qop_over_the_wire(
    alice: UserAgent, algorithm: str, qop: str, status: int
) -> None:
    peer = await Challenger(algorithm, qop, proxy=status == 407).start()
    try:
        response = await alice.message(f"sip:bob@{HOST}:{peer.port}", "covered by auth-int")
        assert response.status_code == 200
        first, retry = peer.received
        header = "proxy-authorization" if status == 407 else "authorization"
        assert not first.has_header(header) and retry.has_header(header)
        credentials = (retry.proxy_authorization if status == 407 else retry.authorization)[0].params
        assert credentials["algorithm"] == algorithm and credentials["qop"] == qop
        assert retry.call_id == first.call_id and retry.cseq.seq == first.cseq.seq + 1
        # The credentials are cached: the next request goes authorized at once (nc 2).
        await alice.message(f"sip:bob@{HOST}:{peer.port}", "again")
        assert len(peer.received) == 3
        third = peer.received[2]
        assert (third.proxy_authorization if status == 407 else third.authorization)[0].params[
            "nc"
        ] == "00000002"
    finally:
        await peer.endpoint.close()


@pytest.mark.parametrize("algorithm", ["SHA-512-256", "SHA-256", "MD5"])
async def test_register_with_a_registrar_that_issues_one_algorithm(alice: UserAgent, algorithm: str) -> None:
    peer = await Challenger(algorithm, "auth", proxy=False).start()
    try:
        registration = await alice.register(registrar=f"sip:{HOST}:{peer.port}", expires=120, refresh=False)
        assert registration.registered and registration.granted == 120
        assert peer.received[-1].authorization[0].params["algorithm"] == algorithm
        assert await peer.store.bindings(f"sip:alice@{HOST}", time.time())
        await registration.unregister()
        assert await peer.store.bindings(f"sip:alice@{HOST}", time.time()) == []
    finally:
        await peer.endpoint.close()
