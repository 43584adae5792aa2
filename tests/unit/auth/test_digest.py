"""Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): published test vectors, the
challenge, verification of every algorithm × qop, stale and forged nonces, nonce-count
replay, uri / algorithm / qop / realm checks, 407 in proxy mode, no user enumeration, the
bound on guesses, and bounded memory."""

from __future__ import annotations

import pytest

from sipstack.auth import (
    ALGORITHMS,
    AuthResult,
    Challenge,
    DigestAuthenticator,
    NonceManager,
    authentication_info,
    compute_ha1,
    compute_response,
    ha1_all,
)
from sipstack.auth.digest import _Failures
from sipstack.message import Auth, Request
from sipstack.message.headers import parse_auth
from sipstack.storage import User

REALM = "example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
URI = "sip:example.com"
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_user(name: str = "alice", password: str = "secret", realm: str = REALM) -> User:
    return User(aor=f"{name}@{realm}", username=name, realm=realm, ha1=ha1_all(name, realm, password))


def make_auth(clock: FakeClock | None = None, **options: object) -> DigestAuthenticator:
    clock = clock or FakeClock()
    return DigestAuthenticator(REALM, NonceManager(SECRET, clock=clock), clock=clock, **options)  # type: ignore[arg-type]


def request(
    auth: str | None = None,
    *,
    method: str = "REGISTER",
    uri: str = URI,
    body: bytes = b"",
    header: str = "Authorization",
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=9fxced76sl"),
        ("To", "<sip:alice@example.com>"),
        ("Call-ID", "3848276298220188511@192.0.2.1"),
        ("CSeq", f"1 {method}"),
    ]
    if auth is not None:
        headers.append((header, auth))
    return Request(method, uri, headers, body)


def offer(challenge: Challenge, algorithm: str) -> Auth:
    """The challenge header offering ``algorithm``, parsed."""
    for _, value in challenge.headers:
        parsed = parse_auth(value)
        if parsed.params["algorithm"] == algorithm:
            return parsed
    raise AssertionError(f"{algorithm} not offered")


def answer(
    challenge: Challenge,
    algorithm: str = "SHA-256",
    *,
    username: str = "alice",
    password: str = "secret",
    method: str = "REGISTER",
    uri: str = URI,
    qop: str | None = "auth",
    nc: int = 1,
    cnonce: str = "0a4f113b",
    body: bytes = b"",
    nonce: str | None = None,
    override: dict[str, str | None] | None = None,
) -> str:
    """Credentials a well-behaved UAC computes for ``challenge``; ``override`` then replaces
    (or, with None, removes) parameters after the response is computed."""
    c = offer(challenge, algorithm).params
    nonce = nonce or c["nonce"]
    ha1 = compute_ha1(username, c["realm"], password, algorithm)
    params = {"username": username, "realm": c["realm"], "nonce": nonce, "uri": uri, "algorithm": algorithm}
    ncs = f"{nc:08x}"
    if qop is not None:
        params.update(qop=qop, nc=ncs, cnonce=cnonce)
    params["response"] = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=ncs if qop else None,
        cnonce=cnonce if qop else None,
        body=body,
    )
    for name, value in (override or {}).items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return str(Auth("Digest", params))


def is_challenge(result: AuthResult, *, stale: bool = False, status: int = 401) -> bool:
    if result.ok or result.status != status or result.challenge is None:
        return False
    values = [parse_auth(v) for _, v in result.challenge.headers]
    return all((a.params.get("stale") == "true") == stale for a in values)


# --- test vectors --------------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_example(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=RFC7616_NONCE,
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert response == expected


def test_rfc2617_section_3_5_example() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    assert ha1 == "939e7578ed9e3c518a452acee763bce9"
    response = compute_response(
        algorithm="MD5",
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_ha1_all_has_every_algorithm_with_its_digest_size() -> None:
    ha1 = ha1_all("alice", REALM, "secret")
    assert list(ha1) == list(ALGORITHMS)
    assert {alg: len(h) for alg, h in ha1.items()} == {"SHA-512-256": 64, "SHA-256": 64, "MD5": 32}
    assert ha1["SHA-512-256"] != ha1["SHA-256"]


def test_sess_and_auth_int_change_the_response() -> None:
    base = {"ha1": "ab" * 32, "nonce": "n", "method": "INVITE", "uri": URI, "nc": "00000001", "cnonce": "c"}
    auth = compute_response(algorithm="SHA-256", qop="auth", **base)
    assert compute_response(algorithm="SHA-256-sess", qop="auth", **base) != auth
    assert compute_response(algorithm="SHA-256", qop="auth-int", body=b"x", **base) != auth
    assert compute_response(algorithm="SHA-256", qop="auth-int", body=b"x", **base) != compute_response(
        algorithm="SHA-256", qop="auth-int", body=b"y", **base
    )
    with pytest.raises(ValueError):
        compute_ha1("a", "b", "c", "SHA-1")


# --- the challenge -------------------------------------------------------------------------


def test_challenge_offers_one_header_per_algorithm_in_preference_order() -> None:
    challenge = make_auth().challenge()
    assert challenge.status == 401
    assert [name for name, _ in challenge.headers] == ["WWW-Authenticate"] * 3
    parsed = [parse_auth(value) for _, value in challenge.headers]
    assert [a.params["algorithm"] for a in parsed] == ["SHA-512-256", "SHA-256", "MD5"]
    assert all(a.scheme == "Digest" and a.params["realm"] == REALM for a in parsed)
    assert all(a.params["qop"] == "auth,auth-int" and "stale" not in a.params for a in parsed)
    assert len({a.params["nonce"] for a in parsed}) == 1
    assert all('qop="auth,auth-int"' in value for _, value in challenge.headers)  # quoted in challenges
    assert all(parse_auth(v).params["stale"] == "true" for _, v in make_auth().challenge(stale=True).headers)


def test_no_credentials_is_a_plain_challenge_and_not_a_failure() -> None:
    auth = make_auth(max_failures=2)
    for _ in range(5):
        result = auth.verify(request(), make_user(), "udp:192.0.2.1")
        assert is_challenge(result) and result.username is None


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("qop", [None, "auth", "auth-int"])
def test_round_trip(algorithm: str, qop: str | None) -> None:
    auth = make_auth()
    body = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\n"
    creds = answer(auth.challenge(), algorithm, qop=qop, method="INVITE", body=body)
    result = auth.verify(request(creds, method="INVITE", body=body), make_user(), "udp:192.0.2.1")
    if qop is None and algorithm != "MD5":
        # RFC 8760 makes qop mandatory; only RFC 2069-style MD5 clients may leave it out.
        assert is_challenge(result)
    else:
        assert result == AuthResult(True, "alice", None, 200, "ok")


def test_auth_int_protects_the_body() -> None:
    auth = make_auth()
    creds = answer(auth.challenge(), qop="auth-int", method="MESSAGE", body=b"hello")
    result = auth.verify(request(creds, method="MESSAGE", body=b"HELLO"), make_user(), "udp:192.0.2.1")
    assert is_challenge(result)


@pytest.mark.parametrize("algorithm", ["SHA-256-sess", "MD5-sess"])
def test_sess_variants(algorithm: str) -> None:
    auth = make_auth(algorithms=(algorithm,))
    creds = answer(auth.challenge(), algorithm)
    assert auth.verify(request(creds), make_user(), "udp:192.0.2.1").ok


def test_absent_algorithm_means_md5() -> None:
    auth = make_auth()
    creds = answer(auth.challenge(), "MD5", override={"algorithm": None})
    assert "algorithm" not in parse_auth(creds).params
    assert auth.verify(request(creds), make_user(), "udp:192.0.2.1").ok
    sha_only = make_auth(algorithms=("SHA-256",))
    nonce = sha_only.nonces.new(REALM)
    creds = answer(make_auth().challenge(), "MD5", nonce=nonce, override={"algorithm": None})
    assert is_challenge(sha_only.verify(request(creds), make_user(), "udp:192.0.2.1"))


def test_the_first_credentials_with_an_offered_algorithm_are_used() -> None:
    auth = make_auth(algorithms=("SHA-256",))
    challenge = make_auth().challenge()
    md5 = answer(challenge, "MD5", nonce=offer(auth.challenge(), "SHA-256").params["nonce"])
    sha = answer(auth.challenge(), "SHA-256")
    other_realm = answer(challenge, "SHA-256", override={"realm": "other.example"})
    req = request(other_realm)
    req.add_header("Authorization", md5)
    req.add_header("Authorization", sha)
    assert auth.credentials_for(req) == parse_auth(sha)
    assert auth.verify(req, make_user(), "udp:192.0.2.1").ok


# --- no user enumeration -------------------------------------------------------------------


def test_unknown_user_and_wrong_password_get_the_same_answer() -> None:
    auth = make_auth()
    wrong = auth.verify(request(answer(auth.challenge(), password="guess")), make_user(), "udp:192.0.2.1")
    unknown = auth.verify(request(answer(auth.challenge(), username="mallory")), None, "udp:192.0.2.2")
    for result in (wrong, unknown):
        assert is_challenge(result)
    assert wrong.status == unknown.status == 401
    assert wrong.challenge is not None and unknown.challenge is not None
    assert [n for n, _ in wrong.challenge.headers] == [n for n, _ in unknown.challenge.headers]
    a = [parse_auth(v) for _, v in wrong.challenge.headers]
    b = [parse_auth(v) for _, v in unknown.challenge.headers]
    assert [(x.scheme, sorted(x.params)) for x in a] == [(x.scheme, sorted(x.params)) for x in b]
    assert a[0].params["nonce"] != b[0].params["nonce"]  # fresh nonces, not a replay of one


def test_a_user_of_another_realm_or_without_the_hash_is_refused() -> None:
    auth = make_auth()
    creds = answer(auth.challenge())
    assert is_challenge(auth.verify(request(creds), make_user(realm="other.example"), "udp:192.0.2.1"))
    user = make_user()
    del user.ha1["SHA-256"]
    assert is_challenge(auth.verify(request(answer(auth.challenge())), user, "udp:192.0.2.1"))
    assert is_challenge(auth.verify(request(answer(auth.challenge())), make_user("bob"), "udp:192.0.2.1"))


# --- nonces --------------------------------------------------------------------------------


def test_stale_nonce_with_a_right_response_gets_stale_true_and_is_not_a_failure() -> None:
    clock = FakeClock()
    auth = make_auth(clock, max_failures=1)
    creds = answer(auth.challenge())
    clock.now += 301
    assert auth.nonces.check(parse_auth(creds).params["nonce"], REALM) == "stale"
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"), stale=True)
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1").ok


def test_stale_nonce_with_a_wrong_response_is_a_plain_failure() -> None:
    clock = FakeClock()
    auth = make_auth(clock, max_failures=1)
    creds = answer(auth.challenge(), password="guess")
    clock.now += 301
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"), stale=False)
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1").status == 403


def test_tampered_nonce_is_invalid_and_counted() -> None:
    auth = make_auth(max_failures=1)
    creds = parse_auth(answer(auth.challenge()))
    nonce = creds.params["nonce"]
    forged = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    assert auth.nonces.check(nonce, REALM) == "ok"
    assert auth.nonces.check(forged, REALM) == "invalid"
    assert auth.nonces.check(nonce, "other.example") == "invalid"
    assert auth.nonces.check("not base64!", REALM) == "invalid"
    assert auth.nonces.check("", REALM) == "invalid"
    creds.params["nonce"] = forged
    assert is_challenge(auth.verify(request(str(creds)), make_user(), "udp:192.0.2.1"))
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1").status == 403


def test_nonce_of_another_secret_with_a_right_digest_is_stale() -> None:
    """After a restart with a new secret, clients that know the password are told stale=true
    (RFC 7616 §3.3: the nonce is not valid but the digest is) rather than counted."""
    auth = make_auth(max_failures=1)
    old = NonceManager(b"another secret, 32 bytes long!!!", clock=FakeClock()).new(REALM)
    creds = answer(auth.challenge(), nonce=old)
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"), stale=True)
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1").ok


def test_nonces_are_unique_and_the_secret_must_be_long() -> None:
    nonces = NonceManager(SECRET, clock=FakeClock())
    assert len({nonces.new(REALM) for _ in range(100)}) == 100
    with pytest.raises(ValueError):
        NonceManager(b"short")


# --- nonce counts --------------------------------------------------------------------------


def test_replayed_nonce_count_is_refused() -> None:
    auth = make_auth(max_failures=1)
    creds = answer(auth.challenge())
    assert auth.verify(request(creds), make_user(), "udp:192.0.2.1").ok
    replay = auth.verify(request(creds), make_user(), "udp:192.0.2.9")
    assert is_challenge(replay, stale=True)
    # A replay proves nothing about the sender, but it is not a guess either: not counted.
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.9").ok


def test_increasing_nonce_counts_are_accepted_and_going_back_is_not() -> None:
    auth = make_auth()
    challenge = auth.challenge()
    for nc in (1, 2, 5, 0x1F):
        assert auth.verify(request(answer(challenge, nc=nc)), make_user(), "udp:192.0.2.1").ok
    assert not auth.verify(request(answer(challenge, nc=4)), make_user(), "udp:192.0.2.1").ok
    assert not auth.verify(request(answer(challenge, nc=0x1F)), make_user(), "udp:192.0.2.1").ok


def test_a_bogus_response_does_not_burn_nonce_counts() -> None:
    auth = make_auth()
    challenge = auth.challenge()
    bogus = answer(challenge, nc=0xFFFFFFFF, override={"response": "0" * 64})
    assert not auth.verify(request(bogus), make_user(), "udp:192.0.2.66").ok
    assert auth.verify(request(answer(challenge, nc=1)), make_user(), "udp:192.0.2.1").ok


def test_without_qop_a_nonce_is_good_once() -> None:
    auth = make_auth()
    challenge = auth.challenge()
    assert auth.verify(request(answer(challenge, "MD5", qop=None)), make_user(), "udp:192.0.2.1").ok
    again = auth.verify(request(answer(challenge, "MD5", qop=None)), make_user(), "udp:192.0.2.1")
    assert is_challenge(again, stale=True)


@pytest.mark.parametrize("change", [{"nc": None}, {"cnonce": None}, {"nc": "xyz"}, {"nc": "123456789"}])
def test_qop_needs_nc_and_cnonce(change: dict[str, str | None]) -> None:
    auth = make_auth()
    assert is_challenge(auth.verify(request(answer(auth.challenge(), override=change)), make_user(), "udp:1"))


# --- parameter checks ----------------------------------------------------------------------


def test_uri_must_be_the_request_uri() -> None:
    auth = make_auth()
    creds = answer(auth.challenge(), uri="sip:other.example.com")  # response computed over it
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"))
    creds = answer(auth.challenge(), uri="sip:example.com;transport=udp")
    assert auth.verify(request(creds, uri="sip:example.com;transport=udp"), make_user(), "udp:1").ok


def test_algorithm_not_offered_is_refused() -> None:
    auth = make_auth(algorithms=("SHA-512-256", "SHA-256"))
    offered = [parse_auth(v).params["algorithm"] for _, v in auth.challenge().headers]
    assert offered == ["SHA-512-256", "SHA-256"]
    creds = answer(make_auth().challenge(), "MD5", nonce=auth.nonces.new(REALM))
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"))
    creds = answer(auth.challenge(), "SHA-256", override={"algorithm": "SHA-1"})
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"))


def test_qop_not_offered_is_refused() -> None:
    auth = make_auth(qop=("auth",))
    assert 'qop="auth"' in auth.challenge().headers[0][1]
    creds = answer(auth.challenge(), qop="auth-int")
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"))


@pytest.mark.parametrize("missing", ["username", "nonce", "response", "uri"])
def test_missing_parameters_are_refused(missing: str) -> None:
    auth = make_auth()
    creds = answer(auth.challenge(), override={missing: None})
    assert is_challenge(auth.verify(request(creds), make_user(), "udp:192.0.2.1"))


def test_other_realms_schemes_and_malformed_headers_count_as_no_credentials() -> None:
    auth = make_auth()
    other_realm = answer(auth.challenge(), override={"realm": "other.example"})
    for creds in (other_realm, 'Basic realm="example.com"', "Digest ,,"):
        req = request(creds)
        assert auth.credentials_for(req) is None
        assert is_challenge(auth.verify(req, make_user(), "udp:192.0.2.1"))


# --- proxy mode ----------------------------------------------------------------------------


def test_proxy_mode_uses_407_and_proxy_authorization() -> None:
    auth = make_auth(proxy=True)
    challenge = auth.challenge()
    assert challenge.status == 407
    assert {name for name, _ in challenge.headers} == {"Proxy-Authenticate"}
    creds = answer(challenge, method="INVITE", uri="sip:bob@example.com")
    user = make_user()
    as_www = auth.verify(request(creds, method="INVITE", uri="sip:bob@example.com"), user, "udp:1")
    assert is_challenge(as_www, status=407)
    proxied = request(creds, method="INVITE", uri="sip:bob@example.com", header="Proxy-Authorization")
    assert auth.verify(proxied, user, "udp:1").ok
    assert make_auth().credentials_for(proxied) is None


# --- the bound on guesses ------------------------------------------------------------------


def test_failures_per_source_are_bounded_and_decay() -> None:
    clock = FakeClock()
    auth = make_auth(clock, max_failures=3, failure_window=60.0)
    for name in ("u1", "u2", "u3"):  # different users: only the source reaches the limit
        creds = answer(auth.challenge(), username=name)
        assert is_challenge(auth.verify(request(creds), None, "udp:6.6.6.6"))
    blocked = auth.verify(request(answer(auth.challenge())), make_user(), "udp:6.6.6.6")
    assert (blocked.ok, blocked.status, blocked.challenge) == (False, 403, None)
    assert auth.verify(request(), make_user(), "udp:6.6.6.6").status == 403
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1").ok
    clock.now += 10
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:6.6.6.6").status == 403
    clock.now += 50
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:6.6.6.6").ok


def test_failures_per_user_are_bounded_and_decay() -> None:
    clock = FakeClock()
    auth = make_auth(clock, max_failures=3, failure_window=60.0)
    for i in range(3):  # different sources: only the user reaches the limit
        wrong = answer(auth.challenge(), password="guess")
        assert is_challenge(auth.verify(request(wrong), make_user(), f"udp:203.0.113.{i}"))
    blocked = auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1")
    assert (blocked.status, blocked.challenge) == (403, None)
    # Unknown usernames are blocked the same way (no enumeration through the 403 either).
    for i in range(3):
        auth.verify(request(answer(auth.challenge(), username="ghost")), None, f"udp:198.51.100.{i}")
    assert auth.verify(request(answer(auth.challenge(), username="ghost")), None, "udp:1").status == 403
    bob = make_user("bob")
    assert auth.verify(request(answer(auth.challenge(), username="bob")), bob, "udp:192.0.2.1").ok
    clock.now += 60
    assert auth.verify(request(answer(auth.challenge())), make_user(), "udp:192.0.2.1").ok


def test_failure_counts_have_bounded_memory() -> None:
    failures = _Failures(limit=3, window=60.0, cap=100)
    for i in range(1000):
        failures.add(f"udp:10.0.{i // 256}.{i % 256}", T0)
    assert len(failures) == 100
    assert failures.level("udp:10.0.3.231", T0) == 1.0  # the newest survive
    assert failures.level("udp:10.0.0.0", T0) == 0.0
    assert failures.level("udp:10.0.3.231", T0 + 60) == 0.0 and len(failures) == 99


# --- nonce-count memory --------------------------------------------------------------------


def test_nonce_counts_have_bounded_memory() -> None:
    clock = FakeClock()
    nonces = NonceManager(SECRET, clock=clock, lifetime=300, max_entries=10)
    issued = []
    for _ in range(50):
        issued.append(nonces.new(REALM))
        clock.now += 0.01
    for nonce in issued:  # each first use beyond 10 drops the oldest
        assert nonces.check_count(nonce, 1)
    assert len(nonces) == 10
    # Forgotten early: refused (as is any untracked nonce issued before the last one dropped),
    # so that a replay of it cannot slip through; the client is re-challenged.
    assert not nonces.check_count(issued[0], 2)
    assert nonces.check_count(issued[-1], 2) and not nonces.check_count(issued[-1], 2)
    assert not nonces.check_count("garbage", 1)
    clock.now += 300  # all expired: forgotten on the next call, and refused
    assert not nonces.check_count(issued[-1], 3)
    assert len(nonces) == 0
    fresh = nonces.new(REALM)
    assert nonces.check_count(fresh, 1) and len(nonces) == 1


# --- Authentication-Info -------------------------------------------------------------------


@pytest.mark.parametrize("qop", [None, "auth", "auth-int"])
def test_authentication_info(qop: str | None) -> None:
    auth = make_auth()
    creds = answer(auth.challenge(), "SHA-256" if qop else "MD5", qop=qop)
    user = make_user()
    req = request(creds)
    credentials = auth.credentials_for(req)
    assert credentials is not None and auth.verify(req, user, "udp:1").ok
    algorithm = credentials.params["algorithm"]
    value = authentication_info(credentials, user.ha1[algorithm], body=b"ok", nextnonce="abc")
    info = parse_auth("Digest " + value).params
    expected = compute_response(
        algorithm=algorithm,
        ha1=user.ha1[algorithm],
        nonce=credentials.params["nonce"],
        method="",
        uri=URI,
        qop=qop,
        nc=credentials.params.get("nc"),
        cnonce=credentials.params.get("cnonce"),
        body=b"ok",
    )
    assert info["rspauth"] == expected and info["nextnonce"] == "abc"
    if qop:
        assert (info["qop"], info["nc"], info["cnonce"]) == (qop, "00000001", "0a4f113b")
    else:
        assert "qop" not in info
