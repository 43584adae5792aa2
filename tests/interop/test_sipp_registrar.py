"""``sipstack serve``'s registrar against SIPp, an independent SIP implementation, on 127.0.0.1.

The server runs as a child process (``serverkit.ServerKit``: free port, its own data
directory, killed by PID on teardown); SIPp is the conftest's ``sipp`` runner, with the
scenarios in ``scenarios/registrar/``. Users are ``USER@127.0.0.1`` (the realm is the domain).

- Digest registration (401, credentials, 200), refresh, query and removal over UDP and TCP,
  with ``sipstack registrations`` checked between the steps; the default challenge.
- Refused credentials: a wrong password and an unknown user get the same 401; guessing ends
  in 403 (``[auth] max_failures``).
- Nonces (a plain Python UDP client, since SIPp always answers the latest challenge): a
  stale nonce gets 401 with ``stale=true``; a replayed nonce-count is refused.
- Expiry bounds: 423 with Min-Expires below ``min_expires``; clamped above ``max_expires``.
- Durability: a SIPp load of REGISTERs, the server killed with SIGKILL in the middle, then
  restarted on the same data directory: every REGISTER that got a 200 is still bound.

SIPp 3.6 answers only the first WWW-Authenticate and only with MD5, so the servers SIPp
authenticates against run with ``--auth-algorithms MD5``. SIPp's ``[authentication]`` cannot
take ``[field0]`` inside it, so the whole keyword is an injection field. On failure the
assertion messages carry SIPp's command line, counters and message trace (``-trace_msg``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from serverkit import HOST, Registration, ServerKit, free_udp_tcp_port

from sipstack.auth import compute_ha1, compute_response
from sipstack.message import Auth, Response, parse

if TYPE_CHECKING:
    from conftest import Sipp, SippRun, TracedMessage

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("sipp") is None,
        reason="SIPp is not installed (Debian package sip-tester: `make debs` as root, "
        "or apt-get install sip-tester)",
    ),
]

DOMAIN = HOST  # the server serves 127.0.0.1 as a domain; its digest realm is the domain


def sipp_auth(user: str, password: str) -> str:
    return f"[authentication username={user} password={password}]"


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerKit]]:
    """``servers(name, **ServerKit options)`` starts a ``sipstack serve``; all are killed on
    teardown."""
    started: list[ServerKit] = []

    def start(name: str = "server", **options: Any) -> ServerKit:
        kit = ServerKit(tmp_path / name, **options)
        started.append(kit)
        return kit.start()

    try:
        yield start
    finally:
        for kit in started:
            kit.close()


async def run_scenario(
    sipp: Sipp,
    name: str,
    server: ServerKit,
    rows: Sequence[Sequence[str]],
    *,
    calls: int = 1,
    transport: str = "u1",
    port: int | None = None,
    timeout: float = 15.0,
    extra: Sequence[str] = (),
    **options: Any,
) -> SippRun:
    """Run ``scenarios/registrar/<name>.xml`` against ``server`` with ``rows`` as the
    injection file (SEQUENTIAL). The runner names its work directory after the scenario
    (``sipp<N>-registrar/<name>``): the parent is made here."""
    index = len(sipp.processes)
    (sipp.tmp_path / f"sipp{index}-registrar").mkdir(exist_ok=True)
    inf = sipp.tmp_path / f"inject{index}-{name}.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(";".join(row) + "\n" for row in rows))
    return await sipp.run(
        f"registrar/{name}",
        remote=f"{HOST}:{server.port}",
        calls=calls,
        transport=transport,
        port=port,
        timeout=timeout,
        extra=["-inf", str(inf), *extra],
        **options,
    )


def as_response(msg: TracedMessage) -> Response:
    """A response from SIPp's message trace, parsed by sipstack (the trace keeps the text;
    line ends are normalised to CRLF)."""
    lines = msg.text.replace("\r\n", "\n").rstrip("\n").split("\n")
    parsed = parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(parsed, Response), msg.text
    return parsed


def responses(run: SippRun, status: int | None = None) -> list[Response]:
    """The responses SIPp received, in order (``status``: only those)."""
    out = [as_response(m) for m in run.messages("received", "SIP/2.0 ")]
    return [r for r in out if status is None or r.status_code == status]


def requests_sent(run: SippRun) -> list[str]:
    return [m.text for m in run.messages("sent", "REGISTER ")]


def contacts(response: Response) -> dict[str, int | None]:
    """The bindings a 200 lists: contact URI → expires."""
    return {str(c.uri): c.expires for c in response.contact}


def statuses(run: SippRun) -> list[int]:
    return [r.status_code for r in responses(run)]


def ok(run: SippRun, calls: int = 1) -> None:
    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (calls, 0), run.report()


# -- a plain SIP client over UDP (for what SIPp does not do: reuse an old nonce) --------------


@dataclass
class Sent:
    text: str
    response: Response

    def __str__(self) -> str:
        return f"--- sent ---\n{self.text}--- received ---\n{bytes(self.response).decode(errors='replace')}"


class UdpClient:
    """REGISTERs from one UDP socket on 127.0.0.1; answers must come within ``timeout``."""

    def __init__(self, server: ServerKit, *, port: int = 0, timeout: float = 3.0) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(timeout)
        self.port = self.sock.getsockname()[1]
        self.call_id = f"{secrets.token_hex(8)}@udpclient"
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def request_uri(self) -> str:
        return f"sip:{HOST}:{self.server.port}"

    def contact_uri(self, user: str, tag: str = "") -> str:
        return f"sip:{user}{tag}@{HOST}:{self.port}"

    def register(
        self,
        user: str,
        *,
        contact: str | None = "",
        expires: int | None = None,
        authorization: str | None = None,
    ) -> Sent:
        """One REGISTER (a new transaction: new branch, next CSeq) and its final response.
        ``contact``: "" for this socket's own Contact, None for none (a query)."""
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        lines = [
            f"REGISTER {self.request_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
        ]
        if contact is not None:
            lines.append(f"Contact: <{contact or self.contact_uri(user)}>")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        lines += ["User-Agent: sipstack interop UdpClient", "Content-Length: 0"]
        text = "\r\n".join(lines) + "\r\n\r\n"
        self.sock.sendto(text.encode(), (HOST, self.server.port))
        deadline = time.monotonic() + (self.sock.gettimeout() or 3.0)
        while True:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                raise AssertionError(f"no answer to\n{text}\nserver log:\n{self.server.log()}") from None
            message = parse(data)
            final = isinstance(message, Response) and message.status_code >= 200
            if final and message.via[0].branch == branch:
                return Sent(text, message)
            if time.monotonic() > deadline:
                raise AssertionError(f"no final answer to\n{text}")


def credentials(
    challenge: Auth,
    user: str,
    password: str,
    uri: str,
    *,
    nc: int = 1,
    cnonce: str | None = None,
    method: str = "REGISTER",
) -> str:
    """An Authorization value answering ``challenge`` (RFC 7616 §3.4, qop=auth)."""
    p = challenge.params
    algorithm = p.get("algorithm", "MD5")
    cnonce = cnonce or secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    response = compute_response(
        algorithm=algorithm,
        ha1=compute_ha1(user, p["realm"], password, algorithm),
        nonce=p["nonce"],
        method=method,
        uri=uri,
        qop="auth",
        nc=nc_text,
        cnonce=cnonce,
    )
    return (
        f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc_text}, cnonce="{cnonce}"'
    )


def registered(regs: list[Registration]) -> dict[tuple[str, str], Registration]:
    return {(r.aor, r.contact): r for r in regs}


# -- 1. register, refresh, query, remove ------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_refresh_query_remove(
    sipp: Sipp, servers: Callable[..., ServerKit], transport: str
) -> None:
    server = servers(algorithms="MD5")
    server.add_user(f"alice@{DOMAIN}", "pw1")
    port = free_udp_tcp_port()  # SIPp's port in every step: the Contact stays the same
    contact = f"sip:alice@{HOST}:{port};transport={transport.upper()}"
    aor = f"sip:alice@{DOMAIN}"
    row = ["alice", sipp_auth("alice", "pw1")]

    async def step(scenario: str, cseq: int, *fields: str) -> SippRun:
        # One Call-ID for all steps (-cid_str) and a rising CSeq (-base_cseq): RFC 3261 §10.2.4.
        run = await run_scenario(
            sipp,
            scenario,
            server,
            [row + list(fields)],
            transport=f"{transport[0]}1",
            port=port,
            extra=["-cid_str", f"alice-{transport}-%u@sipp", "-base_cseq", str(cseq)],
        )
        ok(run)
        # Every step: 401 to the REGISTER without credentials, then the final answer to the
        # one with them (MD5, SIPp's only algorithm).
        sent = requests_sent(run)
        assert len(sent) == 2 and "Authorization:" not in sent[0], run.report()
        assert "Authorization: Digest" in sent[1] and "algorithm=MD5" in sent[1], run.report()
        assert statuses(run) == [401, 200], run.report()
        assert [a.params["algorithm"] for a in responses(run)[0].www_authenticate] == ["MD5"]
        return run

    # Register for 600 s.
    run = await step("register", 1, "600")
    final = responses(run)[-1]
    assert contacts(final) == {contact: 600}, run.report()
    [reg] = server.registrations()
    assert (reg.aor, reg.contact) == (aor, contact)
    assert 590 <= reg.expires <= 600
    assert reg.fields["from"] == f"{transport}:{HOST}:{port}"

    # Refresh: same Call-ID, higher CSeq, now for 1200 s. Still one binding.
    run = await step("register", 3, "1200")
    assert contacts(responses(run)[-1]) == {contact: 1200}, run.report()
    [reg] = server.registrations(aor)
    assert reg.contact == contact and 1190 <= reg.expires <= 1200

    # Query: no Contact; the 200 lists the binding with its remaining time and changes nothing.
    run = await step("query", 5)
    listed = contacts(responses(run)[-1])
    assert list(listed) == [contact], run.report()
    assert 1190 <= (listed[contact] or 0) <= 1200, run.report()
    [after] = server.registrations()
    assert after.contact == contact and after.expires <= reg.expires

    # Remove: expires=0; the 200 lists no Contact and the binding is gone.
    run = await step("unregister", 7)
    assert responses(run)[-1].contact == [], run.report()
    assert server.registrations() == []
    assert server.stop() == 0, server.log()  # SIGTERM: a clean exit


async def test_default_challenge_offers_three_algorithms_strongest_first(
    sipp: Sipp, servers: Callable[..., ServerKit]
) -> None:
    """Without --auth-algorithms: one challenge per algorithm, SHA-512-256 first (RFC 8760
    §2.4), the same nonce in all three (which is why SIPp needs MD5 configured: it answers
    only the first)."""
    server = servers()
    server.add_user(f"alice@{DOMAIN}", "pw1")
    run = await run_scenario(sipp, "challenge", server, [["alice"]])
    ok(run)
    [challenge] = responses(run)
    assert challenge.status_code == 401, run.report()
    offered = challenge.www_authenticate
    assert [a.params.get("algorithm") for a in offered] == ["SHA-512-256", "SHA-256", "MD5"], run.report()
    assert all(a.scheme == "Digest" and a.params["realm"] == DOMAIN for a in offered)
    assert len({a.params["nonce"] for a in offered}) == 1
    assert all(a.params.get("qop") == "auth,auth-int" and "stale" not in a.params for a in offered)


# -- 2. refused credentials -------------------------------------------------------------------


async def test_wrong_password_and_unknown_user_get_the_same_401(
    sipp: Sipp, servers: Callable[..., ServerKit]
) -> None:
    server = servers(algorithms="MD5")
    server.add_user(f"alice@{DOMAIN}", "pw1")
    wrong = await run_scenario(sipp, "register_refused", server, [["alice", sipp_auth("alice", "nope")]])
    unknown = await run_scenario(sipp, "register_refused", server, [["mallory", sipp_auth("mallory", "x")]])
    ok(wrong)
    ok(unknown)
    assert statuses(wrong) == statuses(unknown) == [401, 401], wrong.report() + unknown.report()
    a, b = responses(wrong)[-1], responses(unknown)[-1]
    # Nothing tells the two apart: same status, reason, header names in the same order, the
    # same challenge parameters (with a fresh nonce each), no stale=true.
    assert (a.status_code, a.reason) == (b.status_code, b.reason)
    assert a.header_names() == b.header_names(), f"{bytes(a).decode()}\n{bytes(b).decode()}"
    ca, cb = a.www_authenticate, b.www_authenticate
    assert [sorted(x.params) for x in ca] == [sorted(x.params) for x in cb]
    assert all("stale" not in x.params for x in ca + cb)
    assert ca[0].params["nonce"] != responses(wrong)[0].www_authenticate[0].params["nonce"]
    assert server.registrations() == []


async def _guess_until_403(sipp: Sipp, server: ServerKit) -> tuple[SippRun, int]:
    run = await run_scenario(sipp, "register_until_403", server, [["bob", sipp_auth("bob", "guess")]])
    ok(run)
    codes = statuses(run)
    assert codes[-1] == 403 and set(codes[:-1]) == {401}, run.report()
    # The first 401 is the plain challenge; each later one answers a wrong guess.
    return run, len(codes) - 2


async def test_guessing_a_password_ends_in_403(sipp: Sipp, servers: Callable[..., ServerKit]) -> None:
    max_failures = 3
    server = servers(algorithms="MD5", config={"auth": {"max_failures": max_failures}})
    server.add_user(f"bob@{DOMAIN}", "right")
    run, challenged_guesses = await _guess_until_403(sipp, server)
    forbidden = responses(run)[-1]
    assert forbidden.www_authenticate == [], "a 403 is not another challenge"
    assert max_failures <= challenged_guesses <= max_failures + 1, run.report()
    # Blocked for the source address, whatever its port: even the right password is refused.
    with UdpClient(server) as client:
        refused = client.register("bob")
    assert refused.response.status_code == 403, str(refused)
    assert server.registrations() == []


async def test_403_comes_right_after_max_failures(sipp: Sipp, servers: Callable[..., ServerKit]) -> None:
    max_failures = 3
    server = servers(algorithms="MD5", config={"auth": {"max_failures": max_failures}})
    server.add_user(f"bob@{DOMAIN}", "right")
    run, challenged_guesses = await _guess_until_403(sipp, server)
    # Guesses 1..N are answered 401; guess N+1 must get 403 (it would be verified otherwise,
    # and a right password accepted).
    assert challenged_guesses == max_failures, (
        f"{challenged_guesses} wrong guesses were answered with 401 before the 403 "
        f"(max_failures={max_failures}){run.report()}"
    )


async def test_failure_bound_is_per_source_address_not_per_port(
    sipp: Sipp, servers: Callable[..., ServerKit]
) -> None:
    server = servers(algorithms="MD5", config={"auth": {"max_failures": 3}})
    port = free_udp_tcp_port()
    # One wrong guess each for three unknown users, all from SIPp's port: the source (not any
    # user) reaches the bound.
    rows = [[f"ghost{i}", sipp_auth(f"ghost{i}", "x")] for i in range(1, 4)]
    run = await run_scenario(sipp, "register_refused", server, rows, calls=3, port=port)
    ok(run, 3)
    with UdpClient(server, port=port) as same_port:
        blocked = same_port.register("ghost5")
    assert blocked.response.status_code == 403, str(blocked)  # the same IP and port: blocked
    with UdpClient(server) as other_port:
        again = other_port.register("ghost6")
    assert again.response.status_code == 403, f"same address, another port: not blocked\n{again}"


# -- 3. nonces: stale, and a replayed nonce-count ---------------------------------------------


async def test_stale_nonce_gets_401_with_stale_true(servers: Callable[..., ServerKit]) -> None:
    server = servers(config={"auth": {"nonce_lifetime": 1}})
    server.add_user(f"alice@{DOMAIN}", "pw1")
    with UdpClient(server) as client:
        first = client.register("alice", expires=600).response
        assert first.status_code == 401
        challenge = first.www_authenticate[0]  # the preferred one: SHA-512-256
        assert challenge.params["algorithm"] == "SHA-512-256"
        auth = credentials(challenge, "alice", "pw1", client.request_uri, nc=1)
        accepted = client.register("alice", expires=600, authorization=auth)
        assert accepted.response.status_code == 200, str(accepted)

        await asyncio.sleep(1.6)  # past nonce_lifetime
        # Right password, the next nonce-count, but the nonce has expired.
        auth = credentials(challenge, "alice", "pw1", client.request_uri, nc=2)
        stale = client.register("alice", expires=600, authorization=auth)
        assert stale.response.status_code == 401, str(stale)
        offered = stale.response.www_authenticate
        assert offered and all(a.params.get("stale", "").lower() == "true" for a in offered), str(stale)
        assert offered[0].params["nonce"] != challenge.params["nonce"]

        # The client answers the new nonce without asking its user again.
        auth = credentials(offered[0], "alice", "pw1", client.request_uri, nc=1)
        renewed = client.register("alice", expires=600, authorization=auth)
        assert renewed.response.status_code == 200, str(renewed)


async def test_replayed_nonce_count_is_refused(servers: Callable[..., ServerKit]) -> None:
    server = servers()
    server.add_user(f"alice@{DOMAIN}", "pw1")
    aor = f"sip:alice@{DOMAIN}"
    with UdpClient(server) as client:
        challenge = client.register("alice").response.www_authenticate[0]
        auth = credentials(challenge, "alice", "pw1", client.request_uri, nc=1)
        first = client.register("alice", authorization=auth)
        assert first.response.status_code == 200, str(first)

        # The same Authorization (same nonce, same nc) in a new REGISTER that would bind
        # another Contact: a replay. The digest covers neither CSeq nor Contact.
        intruder = client.contact_uri("alice", "-intruder")
        replay = client.register("alice", contact=intruder, authorization=auth)
        assert replay.response.status_code == 401, f"replayed nc=00000001 accepted\n{replay}"
        assert {r.contact for r in server.registrations(aor)} == {client.contact_uri("alice")}

        # The next nonce-count over the same nonce is fine.
        auth = credentials(challenge, "alice", "pw1", client.request_uri, nc=2)
        second = client.register("alice", contact=intruder, authorization=auth)
        assert second.response.status_code == 200, str(second)
    assert {r.contact for r in server.registrations(aor)} == {client.contact_uri("alice"), intruder}


# -- 4. expiry bounds -------------------------------------------------------------------------


async def test_expires_below_min_is_423_and_above_max_is_clamped(
    sipp: Sipp, servers: Callable[..., ServerKit]
) -> None:
    bounds = {"min_expires": 120, "default_expires": 300, "max_expires": 600}
    server = servers(algorithms="MD5", config={"registrar": bounds})
    server.add_user(f"carol@{DOMAIN}", "pw3")
    port = free_udp_tcp_port()
    contact = f"sip:carol@{HOST}:{port};transport=UDP"
    run = await run_scenario(
        sipp, "register_interval", server, [["carol", sipp_auth("carol", "pw3"), "30", "86400"]], port=port
    )
    ok(run)
    assert statuses(run) == [401, 423, 401, 200, 401, 200], run.report()
    got = responses(run)
    too_brief = got[1]
    assert too_brief.min_expires == 120, run.report()
    assert too_brief.contact == []
    # After the 423 SIPp asked for Min-Expires and got it.
    sent = requests_sent(run)
    assert f"<{contact}>;expires=120" in sent[2], run.report()
    assert contacts(got[3]) == {contact: 120}, run.report()
    # Asked for a day, granted max_expires.
    assert "Expires: 86400" in sent[5], run.report()
    assert contacts(got[5]) == {contact: 600}, run.report()
    [reg] = server.registrations()
    assert reg.contact == contact and 590 <= reg.expires <= 600


# -- 5. durability: kill -9 under load --------------------------------------------------------


async def test_acknowledged_registrations_survive_kill_9(
    sipp: Sipp, servers: Callable[..., ServerKit], record_property: Callable[[str, object], None]
) -> None:
    users = 2000
    server = servers(auth=False, transports=("udp",))
    rows = [[f"u{i:04d}"] for i in range(1, users + 1)]
    load = asyncio.create_task(
        run_scenario(
            sipp,
            "register_noauth",
            server,
            rows,
            calls=users,
            rate=300,
            limit=400,
            timeout=30,
            extra=["-recv_timeout", "2000"],
        )
    )
    # Wait for SIPp to have started (its process exists), then ~1 s of load.
    while not sipp.processes and not load.done():
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    assert not load.done(), (await load).report()
    server.kill9()
    # SIGUSR1: SIPp places no new calls; those in flight time out (2 s) and it exits.
    await asyncio.sleep(0.3)
    sipp_process = sipp.processes[-1]
    os.kill(sipp_process.pid, signal.SIGUSR1)
    run = await load

    acked: dict[str, set[str]] = {}
    for response in responses(run, 200):
        acked.setdefault(response.to.uri.aor, set()).update(contacts(response))  # type: ignore[union-attr]
    pairs = {(aor, c) for aor, cs in acked.items() for c in cs}
    record_property("acknowledged_before_kill", len(acked))
    print(f"\n{len(acked)} of {users} REGISTERs got a 200 before the kill -9")
    assert len(acked) >= 50, f"too few REGISTERs answered before the kill{run.report(2000)}"
    assert run.failed > 0, f"the kill did not land during the load{run.report(2000)}"
    assert all(len(cs) == 1 for cs in acked.values())

    # Restart on the same data directory (and port): every acknowledged binding is there.
    server.start()
    stored = registered(server.registrations())
    missing = sorted(pairs - set(stored))
    assert not missing, f"{len(missing)} acknowledged binding(s) lost, e.g. {missing[:5]}"
    assert len(stored) >= len(pairs)  # some may have been stored with the 200 still unsent

    # And the registrar itself lists them to a query (REGISTER without Contact).
    lost = []
    with UdpClient(server) as client:
        for aor, cs in sorted(acked.items()):
            user = aor.split(":", 1)[1].split("@", 1)[0]
            answer = client.register(user, contact=None).response
            if answer.status_code != 200 or not cs <= set(contacts(answer)):
                lost.append((aor, answer.status_code, contacts(answer)))
    assert not lost, f"{len(lost)} acknowledged binding(s) not listed by a query, e.g. {lost[:5]}"
