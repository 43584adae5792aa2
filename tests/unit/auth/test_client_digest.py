"""The client side of Digest (RFC 7616, RFC 8760, RFC 3261 §22) against the server side.

Each test runs :class:`DigestClient` against sipstack's own :class:`DigestAuthenticator` (an
independent implementation of the verification, from the stored HA1 rather than the
password): a request without credentials draws the challenge, the client answers it, the
authenticator must accept. Every algorithm × qop; the strongest offered algorithm; nonce
reuse with counting nc; stale nonces; refused passwords; 401 and 407 realms together; the
published RFC 7616 example.
"""

from __future__ import annotations

import pytest

from sipstack.auth import (
    ALGORITHMS,
    PREFERENCE,
    DigestAuthenticator,
    DigestClient,
    NonceManager,
    digest_response,
    ha1_all,
)
from sipstack.message import Request, Response, make_response, parse
from sipstack.storage import User

REALM = "example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_user(name: str = "alice", password: str = "secret", realm: str = REALM) -> User:
    return User(aor=f"{name}@{realm}", username=name, realm=realm, ha1=ha1_all(name, realm, password))


def make_auth(clock: FakeClock | None = None, realm: str = REALM, **options: object) -> DigestAuthenticator:
    clock = clock or FakeClock()
    nonces = NonceManager(SECRET, clock=clock)
    return DigestAuthenticator(realm, nonces, clock=clock, **options)  # type: ignore[arg-type]


_cseq = iter(range(1, 10_000))


def request(method: str = "REGISTER", uri: str = "sip:example.com", body: bytes = b"") -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{next(_cseq)}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=9fxced76sl"),
        ("To", "<sip:alice@example.com>"),
        ("Call-ID", "3848276298220188511@192.0.2.1"),
        ("CSeq", f"{next(_cseq)} {method}"),
    ]
    if body:
        headers.append(("Content-Type", "text/plain"))
    return Request(method, uri, headers, body)


def challenge_response(auth: DigestAuthenticator, req: Request, *, stale: bool = False) -> Response:
    """The 401/407 the authenticator answers ``req`` with (parsed from its wire form)."""
    result = auth.verify(req, make_user(), "udp:192.0.2.1")
    assert not result.ok and result.challenge is not None, result
    response = make_response(req, result.challenge.status, to_tag="t1", headers=result.challenge.headers)
    parsed = parse(bytes(response))
    assert isinstance(parsed, Response)
    return parsed


def sent(req: Request) -> Request:
    """``req`` as the peer parses it from the wire."""
    parsed = parse(bytes(req))
    assert isinstance(parsed, Request)
    return parsed


def verify(auth: DigestAuthenticator, req: Request, user: User | None = None) -> bool:
    return auth.verify(sent(req), user or make_user(), "udp:192.0.2.1").ok


# -- every algorithm and qop against the server side ------------------------------------


CASES = [(alg, qop) for alg in PREFERENCE for qop in ("auth", "auth-int")] + [
    (alg, None) for alg in PREFERENCE if not alg.endswith("-sess")
]


@pytest.mark.parametrize(("algorithm", "qop"), CASES)
def test_every_algorithm_and_qop_is_accepted_by_the_server(algorithm: str, qop: str | None) -> None:
    auth = make_auth(algorithms=(algorithm,), qop=(qop,) if qop else ())
    client = DigestClient("alice", "secret")
    body = b"hello, auth-int covers this body"
    first = request("MESSAGE", body=body)
    assert client.handle_challenge(challenge_response(auth, first))
    retry = request("MESSAGE", body=body)
    client.authorize(retry)
    creds = sent(retry).authorization[0]
    assert creds.params.get("algorithm", "MD5") == algorithm
    assert creds.params.get("qop") == qop
    assert verify(auth, retry)
    # The next requests reuse the nonce with nc 2, 3 (qop) — accepted, not replays.
    for n in (2, 3):
        later = request("MESSAGE", body=body)
        client.authorize(later)
        params = sent(later).authorization[0].params
        if qop is not None:
            assert params["nc"] == f"{n:08x}"
            assert verify(auth, later)


def test_without_qop_a_nonce_serves_one_request() -> None:
    """RFC 2069 form: the server allows one use per nonce; the client then gets stale=true."""
    auth = make_auth(algorithms=("MD5",), qop=())
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(auth, request()))
    one = request()
    client.authorize(one)
    assert "nc" not in sent(one).authorization[0].params
    assert verify(auth, one)
    two = request()
    client.authorize(two)
    result = auth.verify(sent(two), make_user(), "udp:192.0.2.1")
    assert not result.ok and result.challenge is not None
    assert "stale=true" in result.challenge.headers[0][1]


# -- choosing among challenges ------------------------------------------------------------


@pytest.mark.parametrize("order", [ALGORITHMS, tuple(reversed(ALGORITHMS))])
def test_the_strongest_offered_algorithm_is_answered(order: tuple[str, ...]) -> None:
    auth = make_auth(algorithms=order)
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(auth, request()))
    retry = request()
    client.authorize(retry)
    assert sent(retry).authorization[0].params["algorithm"] == "SHA-512-256"
    assert verify(auth, retry)


def test_client_preference_limits_the_choice() -> None:
    auth = make_auth()  # offers SHA-512-256, SHA-256, MD5
    client = DigestClient("alice", "secret", algorithms=("MD5",))
    assert client.handle_challenge(challenge_response(auth, request()))
    retry = request()
    client.authorize(retry)
    assert sent(retry).authorization[0].params["algorithm"] == "MD5"
    assert verify(auth, retry)


def test_nothing_supported_means_no_retry() -> None:
    auth = make_auth(algorithms=("SHA-256",))
    client = DigestClient("alice", "secret", algorithms=("MD5",))
    assert not client.handle_challenge(challenge_response(auth, request()))
    assert not client.ready


def test_auth_preferred_over_auth_int_when_both_offered() -> None:
    auth = make_auth(algorithms=("SHA-256",), qop=("auth-int", "auth"))
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(auth, request()))
    retry = request()
    client.authorize(retry)
    assert sent(retry).authorization[0].params["qop"] == "auth"
    client_int = DigestClient("alice", "secret", qop=("auth-int",))
    assert client_int.handle_challenge(challenge_response(auth, request()))
    retry = request(body=b"x")
    client_int.authorize(retry)
    assert sent(retry).authorization[0].params["qop"] == "auth-int"
    assert verify(auth, retry)


def test_realm_restriction() -> None:
    auth = make_auth()
    assert not DigestClient("alice", "secret", realm="other.org").handle_challenge(
        challenge_response(auth, request())
    )
    assert DigestClient("alice", "secret", realm=REALM).handle_challenge(challenge_response(auth, request()))


def test_opaque_is_returned_and_algorithm_absent_means_md5() -> None:
    req = request()
    response = Response(
        401,
        headers=[
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:alice@example.com>;tag=2"),
            ("Call-ID", "c1"),
            ("CSeq", "1 REGISTER"),
            ("WWW-Authenticate", 'Digest realm="r", nonce="n1", opaque="op-aque", qop="auth"'),
        ],
    )
    client = DigestClient("alice", "secret", cnonce=lambda: "c0ffee")
    assert client.handle_challenge(response)
    client.authorize(req)
    params = sent(req).authorization[0].params
    assert params["opaque"] == "op-aque"
    assert "algorithm" not in params  # the challenge named none: MD5 implied (RFC 7616 §3.3)
    expected = digest_response(
        algorithm="MD5",
        username="alice",
        realm="r",
        password="secret",
        nonce="n1",
        method="REGISTER",
        uri="sip:example.com",
        qop="auth",
        nc="00000001",
        cnonce="c0ffee",
    )
    assert params["response"] == expected


# -- refused, stale, proxies ---------------------------------------------------------------


def test_wrong_password_is_refused_once_and_not_retried() -> None:
    auth = make_auth()
    client = DigestClient("alice", "wrong")
    assert client.handle_challenge(challenge_response(auth, request()))
    retry = request()
    client.authorize(retry)
    result = auth.verify(sent(retry), make_user(), "udp:192.0.2.1")
    assert not result.ok and result.challenge is not None
    refused = Response(401, headers=[*_response_heads(), *result.challenge.headers])
    assert not client.handle_challenge(refused, retry=True)
    assert not client.ready


def _response_heads() -> list[tuple[str, str]]:
    return [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"),
        ("From", "<sip:alice@example.com>;tag=1"),
        ("To", "<sip:alice@example.com>;tag=2"),
        ("Call-ID", "c1"),
        ("CSeq", "1 REGISTER"),
    ]


def test_cached_credentials_challenged_on_a_new_request_are_renewed() -> None:
    """A first attempt carrying cached credentials that draws a plain challenge (a server
    that forgot the nonce) takes the new nonce: only a retry's refusal is final."""
    auth = make_auth()
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(auth, request()))
    first = request()
    client.authorize(first)
    assert verify(auth, first)
    other_server = DigestAuthenticator(REALM, NonceManager(b"another-secret-0123456789abcdef"))
    assert client.handle_challenge(challenge_response(other_server, request()), retry=False)
    again = request()
    client.authorize(again)
    assert verify(other_server, again)


def test_stale_nonce_is_answered_again() -> None:
    clock = FakeClock()
    auth = make_auth(clock)
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(auth, request()))
    ok = request()
    client.authorize(ok)
    assert verify(auth, ok)
    clock.now += auth.nonces.lifetime + 1
    late = request()
    client.authorize(late)
    result = auth.verify(sent(late), make_user(), "udp:192.0.2.1")
    assert not result.ok and result.challenge is not None
    stale = Response(401, headers=[*_response_heads(), *result.challenge.headers])
    assert "stale=true" in stale.header("www-authenticate")  # type: ignore[operator]
    assert client.handle_challenge(stale, retry=True)  # stale: not a refusal
    renewed = request()
    client.authorize(renewed)
    assert sent(renewed).authorization[0].params["nc"] == "00000001"
    assert verify(auth, renewed)


def test_proxy_and_registrar_realms_together() -> None:
    """A 407 from a proxy and a 401 from the server: both answered, in their own headers."""
    proxy = make_auth(realm="proxy.example.net", proxy=True)
    server = make_auth()
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(proxy, request("INVITE", "sip:bob@example.com")))
    second = request("INVITE", "sip:bob@example.com")
    client.authorize(second)
    assert proxy.verify(sent(second), make_user(realm="proxy.example.net"), "x").ok
    assert client.handle_challenge(challenge_response(server, request("INVITE", "sip:bob@example.com")))
    third = request("INVITE", "sip:bob@example.com")
    client.authorize(third)
    parsed = sent(third)
    assert len(parsed.proxy_authorization) == 1 and len(parsed.authorization) == 1
    assert proxy.verify(parsed, make_user(realm="proxy.example.net"), "x").ok
    assert server.verify(parsed, make_user(), "x").ok


def test_authorize_replaces_earlier_credentials_and_uses_the_request_uri() -> None:
    auth = make_auth()
    client = DigestClient("alice", "secret")
    assert client.handle_challenge(challenge_response(auth, request()))
    req = request("INVITE", "sip:bob@example.com;transport=tcp")
    client.authorize(req)
    client.authorize(req)
    parsed = sent(req)
    assert len(parsed.authorization) == 1
    assert parsed.authorization[0].params["uri"] == "sip:bob@example.com;transport=tcp"
    assert verify(auth, req)


# -- published example ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_example(algorithm: str, expected: str) -> None:
    assert (
        digest_response(
            algorithm=algorithm,
            username="Mufasa",
            realm="http-auth@example.org",
            password="Circle of Life",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == expected
    )


def test_unknown_algorithm_in_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        DigestClient("a", "b", algorithms=("SHA-1",))
