"""``sipstack serve`` as registrar and transaction-stateful proxy, between SIPp user agents.

Every test starts its own ``sipstack serve`` (``serverkit.ServerKit``: UDP and TCP on one
free port of 127.0.0.1, its own data directory, ``--auth-algorithms MD5`` because SIPp
answers only the first digest challenge and only with MD5) with the users alice and bob.

The callees are SIPp processes whose main scenario (``scenarios/proxy/register_wait.xml``)
registers bob with digest authentication and then waits; the INVITE, a new Call-ID, is taken
by the out-of-call scenario (``-oocsf scenarios/proxy/uas_*.xml``), which sets a SIPp global
when its call is over so that the main scenario ends. The caller alice registers first
(``register.xml``), then calls the AoR ``sip:bob@127.0.0.1`` (``uac_*.xml``), sending ACK
and BYE along the route set learned from the 200 (``rrs="true"``, ``[routes]``,
``[next_url]``).

Every SIPp run is bounded by ``-m``, ``-timeout`` and a wall clock (see conftest.py). The
assertions read what went over the wire from SIPp's ``-trace_msg`` logs; failure messages
carry those logs and the server's.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from serverkit import ServerKit, free_udp_tcp_port

if TYPE_CHECKING:
    from conftest import Sipp, SippProcess, SippRun, TracedMessage

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("sipp") is None,
        reason="SIPp is not installed (Debian package sip-tester: `make debs` as root, "
        "or apt-get install sip-tester)",
    ),
]

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "scenarios" / "proxy"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
TIMER_C = 2  # seconds, [proxy] timer_c in the TOML file of the tests that need it

# -- reading SIP messages from SIPp's traces -------------------------------------------------

_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


def headers(message: TracedMessage | str, name: str) -> list[str]:
    """The values of header ``name`` (one entry per header line, as written)."""
    text = message if isinstance(message, str) else message.text
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    out = []
    for line in head.split("\n")[1:]:
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if colon and _COMPACT.get(key, key) == name.lower():
            out.append(value.strip())
    return out


def header(message: TracedMessage, name: str) -> str:
    values = headers(message, name)
    return values[0] if values else ""


def route_uris(message: TracedMessage, name: str) -> list[str]:
    """The name-addrs of a Route / Record-Route header field, top first, however they are
    spread over header lines (``<uri>`` each)."""
    return [m for value in headers(message, name) for m in re.findall(r"<[^>]*>", value)]


def vias(message: TracedMessage) -> list[str]:
    """The Via entries, top first (however they are spread over header lines)."""
    return [v.strip() for value in headers(message, "via") for v in value.split(",")]


def top_via(message: TracedMessage) -> str:
    return vias(message)[0]


def method_of(message: TracedMessage) -> str:
    return header(message, "cseq").split()[-1]


def status_of(message: TracedMessage) -> int:
    return int(message.start_line.split()[1])


def to_tag(message: TracedMessage) -> str:
    m = re.search(r";\s*tag=([^;>\s]+)", header(message, "to"))
    return m.group(1) if m else ""


def received(run: SippRun, start: str, method: str | None = None) -> list[TracedMessage]:
    return [m for m in run.messages("received", start) if method is None or method_of(m) == method]


def sent(run: SippRun, start: str, method: str | None = None) -> list[TracedMessage]:
    return [m for m in run.messages("sent", start) if method is None or method_of(m) == method]


def finals(run: SippRun, method: str = "INVITE") -> list[int]:
    """The status codes of the final responses ``run`` received for ``method``."""
    return [status_of(m) for m in received(run, "SIP/2.0 ", method) if status_of(m) >= 200]


# -- the server and the user agents ---------------------------------------------------------


class Pbx:
    """One ``sipstack serve`` with alice and bob, and SIPp user agents registered with it."""

    def __init__(self, kit: ServerKit, sipp: Sipp, tmp_path: Path) -> None:
        self.kit = kit
        self.sipp = sipp
        self.tmp_path = tmp_path
        self.alice_port = 0

    @property
    def port(self) -> int:
        return self.kit.port

    @property
    def remote(self) -> str:
        return f"{HOST}:{self.kit.port}"

    def rr(self, transport: str) -> str:
        """The Record-Route entry of the server on ``transport`` (RFC 3261 §16.6 step 4)."""
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{HOST}:{self.port}{suffix};lr>"

    def evidence(self, *runs: SippRun) -> str:
        return "".join(run.report() for run in runs) + f"\n--- sipstack serve log ---\n{self.kit.log()}"

    def _credentials(self, user: str) -> Path:
        """The injection file: [field1] is SIPp's whole authentication keyword (SIPp does not
        nest keywords in [authentication ...])."""
        path = self.tmp_path / f"{user}.csv"
        path.write_text(f"SEQUENTIAL\n{user};[authentication username={user} password={PASSWORDS[user]}]\n")
        return path

    async def start(self, scenario: str, **kwargs: Any) -> SippProcess:
        """SIPp with ``scenarios/proxy/<scenario>.xml`` (the fixture names its working
        directory after the scenario, so the subdirectory's parent is made first)."""
        (self.sipp.tmp_path / f"sipp{len(self.sipp.processes)}-proxy").mkdir(exist_ok=True)
        return await self.sipp.start(f"proxy/{scenario}", **kwargs)

    async def run(self, scenario: str, **kwargs: Any) -> SippRun:
        return await (await self.start(scenario, **kwargs)).wait()

    async def callee(
        self,
        uas: str,
        *,
        transport: str = "udp",
        q: str = "1.0",
        delay_ms: int = 0,
        host: str = HOST,
        timeout: float = 10.0,
    ) -> SippProcess:
        """A SIPp bob on ``host`` that registers its own address (``;transport=`` and
        ``;q=`` in the Contact) and takes one call with the out-of-call scenario ``uas``;
        returns once the registration was answered 200."""
        extra = ["-oocsf", str(SCENARIOS / f"{uas}.xml"), "-inf", str(self._credentials("bob"))]
        extra += ["-s", "bob", "-key", "q", q, "-d", str(delay_ms), "-i", host]
        process = await self.start(
            "register_wait",
            remote=self.remote,
            transport=f"{transport[0]}1",
            calls=1,
            timeout=timeout,
            extra=extra,
        )
        deadline = time.monotonic() + 10.0
        while not any(
            method_of(m) == "REGISTER" for m in process.result().messages("received", "SIP/2.0 200")
        ):
            if process.proc.returncode is not None or time.monotonic() > deadline:
                process.kill()
                await process.proc.wait()
                raise AssertionError(f"bob did not register{self.evidence(process.result())}")
            await asyncio.sleep(0.05)
        return process

    async def register(self, user: str, contact_port: int, *, transport: str = "udp") -> SippRun:
        """``user`` registers sip:user@127.0.0.1:``contact_port`` (from another port)."""
        extra = ["-inf", str(self._credentials(user)), "-s", user]
        extra += ["-key", "contact_port", str(contact_port)]
        run = await self.run(
            "register", remote=self.remote, transport=f"{transport[0]}1", calls=1, timeout=10, extra=extra
        )
        assert run.returncode == 0 and run.successful == 1, f"{user} did not register{self.evidence(run)}"
        return run

    async def alice(
        self, scenario: str, *, transport: str = "udp", timeout: float = 15.0, **keys: str
    ) -> SippRun:
        """alice (registered first, from another port) runs ``scenario`` against bob's AoR;
        ``keys``: ``-d`` (``d``) and ``-key NAME VALUE``."""
        if not self.alice_port:
            self.alice_port = free_udp_tcp_port()
            await self.register("alice", self.alice_port, transport=transport)
        extra = ["-s", keys.pop("service", "bob"), "-d", keys.pop("d", "200")]
        for key, value in keys.items():
            extra += ["-key", key, value]
        return await self.run(
            scenario,
            remote=self.remote,
            port=self.alice_port,
            transport=f"{transport[0]}1",
            calls=1,
            timeout=timeout,
            extra=extra,
        )


PbxFactory = Callable[..., Awaitable[Pbx]]


@pytest.fixture
async def pbx(sipp: Sipp, tmp_path: Path) -> AsyncIterator[PbxFactory]:
    """Starts ``sipstack serve`` (``config``: TOML settings) with the users alice and bob;
    killed by PID on teardown."""
    kits: list[ServerKit] = []

    async def start(config: dict[str, Any] | None = None) -> Pbx:
        kit = ServerKit(tmp_path / f"server{len(kits)}", algorithms="MD5", config=config)
        kits.append(kit)
        await asyncio.to_thread(kit.start)
        for user, password in PASSWORDS.items():
            await asyncio.to_thread(kit.add_user, f"{user}@{HOST}", password)
        return Pbx(kit, sipp, tmp_path)

    try:
        yield start
    finally:
        for kit in kits:
            kit.close()


def assert_ok(pbx: Pbx, *runs: SippRun) -> None:
    for run in runs:
        assert run.returncode == 0 and (run.successful, run.failed) == (1, 0), pbx.evidence(*runs)


# -- 1. a call through the proxy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "callee"),
    [
        pytest.param("udp", "udp", id="udp"),
        pytest.param("tcp", "tcp", id="tcp"),
        pytest.param("udp", "tcp", id="udp-in-tcp-out"),
    ],
)
async def test_call_by_aor_follows_the_route_set(pbx: PbxFactory, caller: str, callee: str) -> None:
    """alice calls sip:bob@127.0.0.1: INVITE, 100, 180, 200, ACK, BYE, 200. The proxy
    record-routes; across transports (UDP in, TCP out) with two entries, the outgoing
    transport's on top (RFC 5658 §3.2). ACK and BYE carry the route set and reach bob
    through the proxy, which removes its own Route entries (§16.4)."""
    server = await pbx()
    bob = await server.callee("uas_answer", transport=callee, delay_ms=100)
    uac = await server.alice("uac_call", transport=caller)
    uas = await bob.wait()
    evidence = server.evidence(uac, uas)
    assert_ok(server, uac, uas)

    expected_rr = [server.rr(callee)] if caller == callee else [server.rr(callee), server.rr(caller)]
    contact = f"sip:bob@{HOST}:{bob.port};transport={callee.upper()}"

    # bob's side: the INVITE came through the proxy with its Record-Route entries.
    (invite,) = received(uas, "INVITE")
    assert invite.start_line == f"INVITE {contact} SIP/2.0", evidence
    assert top_via(invite).startswith(f"SIP/2.0/{callee.upper()} {HOST}:{server.port};"), evidence
    assert route_uris(invite, "record-route") == expected_rr, evidence
    assert header(invite, "max-forwards") == "69", evidence
    # ACK and BYE reached bob through the proxy, its Route entries consumed.
    for method in ("ACK", "BYE"):
        (request,) = received(uas, method)
        assert request.start_line == f"{method} {contact} SIP/2.0", evidence
        assert top_via(request).startswith(f"SIP/2.0/{callee.upper()} {HOST}:{server.port};"), evidence
        assert len(vias(request)) == 2, evidence
        assert route_uris(request, "route") == [], evidence
    assert len(sent(uas, "SIP/2.0 200", "BYE")) == 1, evidence

    # alice's side: 100, 180, 200 with both entries; ACK and BYE along the reversed set.
    assert [status_of(m) for m in received(uac, "SIP/2.0 ", "INVITE")] == [100, 180, 200], evidence
    (ok,) = received(uac, "SIP/2.0 200", "INVITE")
    assert route_uris(ok, "record-route") == expected_rr, evidence
    for method in ("ACK", "BYE"):
        (request,) = sent(uac, method)
        assert request.start_line == f"{method} {contact} SIP/2.0", evidence
        assert route_uris(request, "route") == expected_rr[::-1], evidence
    assert finals(uac, "BYE") == [200], evidence


# -- 2. forking -----------------------------------------------------------------------------

# The forking tests put the callees on 127.0.0.2, a host that is not a served domain, as real
# phones are; with their Contacts on 127.0.0.1 — the served domain's host — the in-dialog
# requests are re-targeted by the location service (see IN_DIALOG_LOOKUP_BUG).
PHONE_HOST = "127.0.0.2"

IN_DIALOG_LOOKUP_BUG = (
    "BUG: an in-dialog request whose Request-URI is a registered Contact on the served domain's "
    "host (sip:bob@127.0.0.1:PORT) is treated as the AoR sip:bob@127.0.0.1 (the port is ignored): "
    "after the Route pops, the ACK for the 2xx is re-targeted to bindings[0] (another contact) and "
    "the BYE is forked to every binding (server/app.py: registrar.serves(uri.host) + uri.aor)"
)


@pytest.mark.parametrize(
    "host",
    [
        pytest.param(PHONE_HOST, id="contacts-on-127.0.0.2"),
        pytest.param(HOST, id="contacts-on-the-domain-host"),
    ],
)
async def test_parallel_forking_one_answers_the_other_is_cancelled(pbx: PbxFactory, host: str) -> None:
    """bob registers two contacts with the same q: both ring; the first answers 200 (after
    500 ms), the proxy CANCELs the other, which answers 487; alice gets exactly one 200 and
    her ACK and BYE reach the callee that answered, and only that one."""
    server = await pbx()
    answering = await server.callee("uas_answer", delay_ms=500, host=host)
    ringing = await server.callee("uas_ring", host=host)
    uac = await server.alice("uac_call")
    uas1, uas2 = await answering.wait(), await ringing.wait()
    evidence = server.evidence(uac, uas1, uas2)
    assert_ok(server, uac, uas1, uas2)

    for uas in (uas1, uas2):
        assert len(received(uas, "INVITE")) == 1, evidence
        assert len(sent(uas, "SIP/2.0 180")) == 1, evidence
    # Both rang: alice saw a 180 from each branch (two To tags); then exactly one 200.
    assert len({to_tag(m) for m in received(uac, "SIP/2.0 180")}) == 2, evidence
    assert finals(uac) == [200], evidence
    (ok,) = received(uac, "SIP/2.0 200", "INVITE")
    assert to_tag(ok) == to_tag(sent(uas1, "SIP/2.0 200", "INVITE")[0]), evidence
    # The other branch was cancelled by the proxy and ended with 487 / ACK.
    (cancel,) = received(uas2, "CANCEL")
    assert top_via(cancel) == top_via(received(uas2, "INVITE")[0]), evidence
    assert len(sent(uas2, "SIP/2.0 487")) >= 1, evidence
    assert [method_of(m) for m in received(uas2, "ACK")] == ["ACK"], evidence
    assert received(uas2, "BYE") == [], evidence
    # The dialog is with the callee that answered.
    assert received(uas1, "CANCEL") == [], evidence
    assert len(received(uas1, "ACK")) == 1 and len(received(uas1, "BYE")) == 1, evidence
    assert finals(uac, "BYE") == [200], evidence


async def test_sequential_forking_by_q_value(pbx: PbxFactory) -> None:
    """bob's contacts q=1.0 (answers 486) and q=0.5 (answers 200): the q=0.5 one is tried
    only after the first failed; alice gets the 200, never the 486."""
    server = await pbx()
    busy = await server.callee("uas_reject_486_late", q="1.0", host=PHONE_HOST)
    second = await server.callee("uas_answer", q="0.5", host=PHONE_HOST)
    uac = await server.alice("uac_call")
    uas_busy, uas_second = await busy.wait(), await second.wait()
    evidence = server.evidence(uac, uas_busy, uas_second)
    assert_ok(server, uac, uas_busy, uas_second)

    (rejected,) = sent(uas_busy, "SIP/2.0 486")
    (invite2,) = received(uas_second, "INVITE")
    # The 486 comes 300 ms after the first INVITE: a parallel fork would have reached the
    # second phone that much before it. The two SIPp processes' clocks agree, but each stamps
    # a message after its send returns, so allow a few milliseconds of preemption.
    assert invite2.time >= rejected.time - 0.05, f"q=0.5 tried before q=1.0 failed{evidence}"
    assert len(received(uas_busy, "ACK")) == 1, evidence  # the proxy's ACK for the 486
    assert finals(uac) == [200], evidence
    assert len(received(uas_second, "ACK")) == 1 and len(received(uas_second, "BYE")) == 1, evidence
    assert finals(uac, "BYE") == [200], evidence


# -- 3. CANCEL from the caller --------------------------------------------------------------


async def test_caller_cancels_while_ringing(pbx: PbxFactory) -> None:
    """alice CANCELs while bob rings: 200 for the CANCEL (from the proxy), bob gets a CANCEL
    and answers 487, alice gets the 487 and ACKs it."""
    server = await pbx()
    bob = await server.callee("uas_ring")
    uac = await server.alice("uac_cancel", d="300")
    uas = await bob.wait()
    evidence = server.evidence(uac, uas)
    assert_ok(server, uac, uas)

    assert finals(uac, "CANCEL") == [200], evidence
    assert finals(uac) == [487], evidence
    assert len(sent(uac, "ACK")) == 1, evidence
    (cancel,) = received(uas, "CANCEL")
    (invite,) = received(uas, "INVITE")
    assert top_via(cancel) == top_via(invite), f"a CANCEL matches the INVITE's branch{evidence}"
    assert len(sent(uas, "SIP/2.0 487")) >= 1 and len(received(uas, "ACK")) == 1, evidence


# -- 4. no answer ---------------------------------------------------------------------------


async def test_timer_c_cancels_a_branch_that_only_rings(pbx: PbxFactory) -> None:
    """bob rings and never answers; with ``[proxy] timer_c = 2`` the proxy CANCELs the
    branch after 2 s (§16.8), bob answers the CANCEL with 487, and alice gets the 487."""
    server = await pbx({"proxy": {"timer_c": TIMER_C}})
    bob = await server.callee("uas_ring")
    uac = await server.alice("uac_final", max_forwards="70", header="Subject: no answer")
    uas = await bob.wait()
    evidence = server.evidence(uac, uas)
    assert_ok(server, uac, uas)

    (invite,) = received(uas, "INVITE")
    (cancel,) = received(uas, "CANCEL")
    assert TIMER_C - 0.2 <= cancel.time - invite.time <= TIMER_C + 2, evidence
    assert finals(uac) == [487], evidence
    (sent_invite,) = sent(uac, "INVITE")
    (final,) = received(uac, "SIP/2.0 487")
    assert final.time - sent_invite.time <= TIMER_C + 3, evidence


async def test_branch_that_never_answers_the_cancel_still_ends(pbx: PbxFactory) -> None:
    """bob rings, then is gone: the proxy's CANCEL at Timer C (1 s here) gets no answer and
    the INVITE no final response. RFC 3261 §9.1: without a final response 64*T1 (32 s) after
    the CANCEL the branch counts as cancelled and the transaction is destroyed, so the
    response context completes (§16.7) and alice gets a final response instead of hanging."""
    server = await pbx({"proxy": {"timer_c": 1}})
    bob = await server.callee("uas_ring_then_gone")
    started = time.monotonic()
    uac = await server.alice("uac_final", max_forwards="70", header="Subject: gone", timeout=40)
    elapsed = time.monotonic() - started
    uas = await bob.wait()
    evidence = server.evidence(uac, uas)
    assert len(received(uas, "CANCEL")) >= 1 and sent(uas, "SIP/2.0 4") == [], evidence
    assert_ok(server, uac)
    assert len(finals(uac)) == 1 and finals(uac)[0] >= 400, evidence
    assert elapsed < 1 + 32 + 5, f"{elapsed:.1f} s{evidence}"


# A refused TCP connection, or an ICMP port unreachable for UDP (RFC 3261 §18.4), counts as
# a 503 (§16.9), and a 503 goes upstream as 500.
@pytest.mark.parametrize(("transport", "code"), [("udp", 500), ("tcp", 500)])
async def test_contact_that_does_not_listen(pbx: PbxFactory, transport: str, code: int) -> None:
    """bob's only binding points at a port nobody listens on: alice gets a final response
    within seconds, not a hang — UDP: the ICMP port unreachable fails the branch at once;
    TCP: the connection is refused; either is a transport error, a 503 in effect (§16.9),
    answered upstream as 500."""
    server = await pbx({"proxy": {"timer_c": TIMER_C}})
    await server.register("bob", free_udp_tcp_port(), transport=transport)
    started = time.monotonic()
    uac = await server.alice("uac_final", max_forwards="70", header="Subject: nobody home", timeout=20)
    elapsed = time.monotonic() - started
    evidence = server.evidence(uac)
    assert_ok(server, uac)
    assert finals(uac) == [code], evidence
    assert elapsed < TIMER_C + 5, f"{elapsed:.1f} s{evidence}"


# -- 5. the 503 rule ------------------------------------------------------------------------


async def test_only_branch_503_becomes_500(pbx: PbxFactory) -> None:
    """The only contact answers 503: the proxy does not pass the 503 upstream but answers
    500 (RFC 3261 §16.7 step 6, the working group's 503 rule)."""
    server = await pbx()
    bob = await server.callee("uas_reject_503")
    uac = await server.alice("uac_final", max_forwards="70", header="Subject: overloaded")
    uas = await bob.wait()
    evidence = server.evidence(uac, uas)
    assert_ok(server, uac, uas)
    assert len(sent(uas, "SIP/2.0 503")) >= 1 and len(received(uas, "ACK")) == 1, evidence
    assert finals(uac) == [500], evidence


# -- 6. request checks (§16.3) and OPTIONS to the server ------------------------------------


@pytest.mark.parametrize(
    ("service", "max_forwards", "extra_header", "code"),
    [
        pytest.param("bob", "0", "Subject: hops", 483, id="max-forwards-0-483"),
        pytest.param("bob", "70", "Proxy-Require: foo", 420, id="proxy-require-420"),
        pytest.param("carol", "70", "Subject: who", 404, id="unknown-user-404"),
        pytest.param("bob", "70", "Subject: not in", 480, id="no-binding-480"),
    ],
)
async def test_request_checks(
    pbx: PbxFactory, service: str, max_forwards: str, extra_header: str, code: int
) -> None:
    """INVITEs the proxy answers itself: Max-Forwards 0 → 483, an unsupported Proxy-Require
    → 420 with Unsupported, an unknown user → 404, a user with no binding → 480 (bob is a
    user and is not registered); each final is ACKed hop by hop."""
    server = await pbx()
    uac = await server.alice("uac_final", service=service, max_forwards=max_forwards, header=extra_header)
    evidence = server.evidence(uac)
    assert_ok(server, uac)
    assert finals(uac) == [code], evidence
    (final,) = received(uac, f"SIP/2.0 {code}")
    if code == 420:
        assert headers(final, "unsupported") == ["foo"], evidence
    assert to_tag(final), evidence


async def test_options_to_the_server(pbx: PbxFactory) -> None:
    """OPTIONS sip:127.0.0.1:PORT (no user part) is for the server itself: 200 with Allow."""
    server = await pbx()
    run = await server.run("options_self", remote=server.remote, calls=1, timeout=10)
    evidence = server.evidence(run)
    assert_ok(server, run)
    (ok,) = received(run, "SIP/2.0 200", "OPTIONS")
    allow = {m.strip() for value in headers(ok, "allow") for m in value.split(",")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER"} <= allow, evidence
