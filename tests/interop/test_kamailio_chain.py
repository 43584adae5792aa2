"""``sipstack serve`` chained with Kamailio (a second, independent stateful proxy) between
SIPp user agents, both ways round.

The topology is two peering domains on 127.0.0.1, each proxy record-routing:

- sipstack serves ``a.example`` (registrar with digest auth, ``--auth-algorithms MD5`` because
  SIPp answers only MD5 challenges; ``domains = ["a.example"]``). For calls out of a.example
  its ``[proxy] default_route`` is Kamailio, so requests for other domains —
  ``sip:bob@b.example``, a host no DNS knows — go there. For calls into a.example it runs
  without a default route; a test also runs that direction with one set.
- Kamailio (``kamailio/peer.cfg``, started per test in the foreground on a free UDP port,
  ``-l udp:127.0.0.1:PORT``, next hops as ``-A`` defines) "serves" ``b.example`` by setting
  the destination (``$du``) of every ``sip:*@b.example`` request to the one SIPp callee of
  that domain, and relays ``sip:*@a.example`` requests to sipstack; the Request-URI stays as
  it is. It record-routes, relays with ``t_relay()`` and follows the Route set within
  dialogs (``loose_route()``).

Directions: a.example → b.example is SIPp UAC → sipstack → Kamailio → SIPp UAS; b.example →
a.example is SIPp UAC → Kamailio → sipstack → SIPp UAS, where the callee is a plain SIPp
server whose address bob@a.example registered at sipstack (a separate short SIPp run with
the credentials in an injection file and ``-auth_uri a.example``).

What went through each proxy is read from the SIPp traces (Record-Route, Route and Via as
received) and from Kamailio's log (``CHAIN-IN`` lines: every request it received, with its
source). SIPp runs are bounded (``-m``, ``-timeout``, a wall clock; when one side of a call
fails the other is killed at once); Kamailio is killed by the process group created for it
(``start_new_session``), sipstack by PID, on teardown.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from serverkit import ServerKit, free_udp_tcp_port
from test_sipp_proxy import finals, header, received, route_uris, sent, status_of, to_tag, top_via, vias

from kamailiokit import KAMAILIO, KamailioProcess
from netkit import options_status

if TYPE_CHECKING:
    from conftest import Sipp, SippProcess, SippRun, TracedMessage


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("sipp") is None,
        reason="SIPp is not installed (Debian package sip-tester: `make debs` as root, "
        "or apt-get install sip-tester)",
    ),
    pytest.mark.skipif(
        KAMAILIO is None,
        reason="Kamailio is not installed (Debian package kamailio: `make debs` as root, "
        "or apt-get install kamailio)",
    ),
]

HOST = "127.0.0.1"
KAMAILIO_CFG = Path(__file__).parent / "kamailio" / "peer.cfg"
DOMAIN_A = "a.example"  # served by sipstack
DOMAIN_B = "b.example"  # served by Kamailio
BOB_PASSWORD = "bob-secret"


# -- Kamailio ---------------------------------------------------------------------------------


class Kamailio(KamailioProcess):
    """``kamailio -f peer.cfg -DD -E`` listening on ``udp:127.0.0.1:PORT``; ``hops``: the defines the config
    reads (``B_EXAMPLE_HOP``, ``A_EXAMPLE_HOP``: SIP URIs)."""

    def __init__(self, workdir: Path, port: int, hops: dict[str, str]) -> None:
        super().__init__(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir = workdir / "run"
        self.runtime_dir.mkdir(exist_ok=True)
        self.port = port
        self.hops = hops

    def command(self) -> list[str]:
        assert KAMAILIO is not None
        cmd = [KAMAILIO, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-l", f"udp:{HOST}:{self.port}"]
        cmd += ["-n", "1", "-Y", str(self.runtime_dir), "-m", "32", "-M", "8"]
        for name, uri in self.hops.items():
            cmd += ["-A", f'{name}="{uri}"']
        return cmd

    def ready(self) -> bool:
        return options_status(self.port) == 200

    def requests(self, method: str, source_port: int | None = None) -> list[str]:
        """The ``CHAIN-IN`` lines (one per request received) for ``method``, optionally only
        those from 127.0.0.1:``source_port``."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        out = []
        for line in text.splitlines():
            m = re.search(r"CHAIN-IN (\S+) \S+ from=([\d.]+):(\d+)", line)
            if m and m.group(1) == method and (source_port is None or int(m.group(3)) == source_port):
                out.append(line)
        return out

    def rr_pattern(self) -> re.Pattern[str]:
        """Kamailio's Record-Route entry (rr module: ``;lr``, and by default ``;ftag=``)."""
        return re.compile(rf"<sip:{re.escape(HOST)}:{self.port};lr(;ftag=[^;>]+)?>")


# -- the chain --------------------------------------------------------------------------------

A_TO_B = "a-to-b"  # SIPp UAC → sipstack → Kamailio → SIPp UAS: alice@a.example calls bob@b.example
B_TO_A = "b-to-a"  # SIPp UAC → Kamailio → sipstack → SIPp UAS: alice@b.example calls bob@a.example
DIRECTIONS = [
    pytest.param(A_TO_B, id="uac-sipstack-kamailio-uas"),
    pytest.param(B_TO_A, id="uac-kamailio-sipstack-uas"),
]


class Chain:
    """sipstack (a.example) and Kamailio (b.example) peering for one call ``direction``, and
    the port of the SIPp callee bob (b.example's phone, or the contact bob@a.example
    registered at sipstack)."""

    def __init__(
        self, sipp: Sipp, tmp_path: Path, kit: ServerKit, kamailio: Kamailio, callee_port: int, direction: str
    ) -> None:
        self.sipp = sipp
        self.tmp_path = tmp_path
        self.kit = kit
        self.kamailio = kamailio
        self.callee_port = callee_port
        self.direction = direction

    # -- what the wire should show ------------------------------------------------------------

    @property
    def sipstack_rr(self) -> re.Pattern[str]:
        return re.compile(re.escape(f"<sip:{HOST}:{self.kit.port};lr>"))

    @property
    def path(self) -> list[tuple[str, int, re.Pattern[str]]]:
        """The proxies in the order the INVITE traverses them: (name, port, Record-Route)."""
        sipstack = ("sipstack", self.kit.port, self.sipstack_rr)
        kamailio = ("kamailio", self.kamailio.port, self.kamailio.rr_pattern())
        return [sipstack, kamailio] if self.direction == A_TO_B else [kamailio, sipstack]

    @property
    def first_port(self) -> int:
        return self.path[0][1]

    @property
    def last_port(self) -> int:
        return self.path[-1][1]

    @property
    def callee_request_uri(self) -> str:
        """The Request-URI of the INVITE as bob receives it: Kamailio only sets the
        destination; sipstack retargets to the registered contact."""
        if self.direction == A_TO_B:
            return f"sip:bob@{DOMAIN_B}"
        return f"sip:bob@{HOST}:{self.callee_port}"

    def assert_record_route(self, uris: list[str], evidence: str) -> None:
        """The route set as the callee sees it (top first): the last proxy's entry on top, the
        first proxy's below (each proxy prepends its own, RFC 3261 §16.6 step 4)."""
        expected = [rr for _, _, rr in reversed(self.path)]
        assert len(uris) == len(expected), f"Record-Route {uris}{evidence}"
        for uri, pattern in zip(uris, expected, strict=True):
            assert pattern.fullmatch(uri), f"Record-Route {uris}: {uri} is not {pattern.pattern}{evidence}"

    def assert_route(self, uris: list[str], evidence: str) -> None:
        """The Route set the caller sends (the Record-Route reversed: first proxy on top)."""
        expected = [rr for _, _, rr in self.path]
        assert len(uris) == len(expected), f"Route {uris}{evidence}"
        for uri, pattern in zip(uris, expected, strict=True):
            assert pattern.fullmatch(uri), f"Route {uris}: {uri} is not {pattern.pattern}{evidence}"

    def assert_via_path(self, message: TracedMessage, evidence: str, *, caller_port: int) -> None:
        """A request as the callee received it went through both proxies: three Via
        entries, the last proxy's on top, then the first proxy's, then the caller's."""
        expected = [f"{HOST}:{port}" for _, port, _ in reversed(self.path)] + [f"{HOST}:{caller_port}"]
        assert via_host_ports(message) == expected, f"{message.start_line}: Vias{evidence}"

    def evidence(self, *runs: SippRun) -> str:
        return (
            "".join(run.report() for run in runs)
            + f"\n--- sipstack serve log ---\n{self.kit.log()}"
            + f"\n--- kamailio log ($ {' '.join(self.kamailio.command())}) ---\n{self.kamailio.log()}"
        )

    # -- SIPp ------------------------------------------------------------------------------------

    async def start(self, scenario: str, **kwargs: Any) -> SippProcess:
        """SIPp with ``scenarios/<scenario>.xml`` (``chain/…`` or ``proxy/…``: the fixture
        names its working directory after the scenario, so its parent is made first)."""
        folder = scenario.split("/", 1)[0]
        (self.sipp.tmp_path / f"sipp{len(self.sipp.processes)}-{folder}").mkdir(exist_ok=True)
        return await self.sipp.start(scenario, **kwargs)

    async def callee(
        self, scenario: str, *, calls: int = 1, timeout: float = 15.0, d: int = 100
    ) -> SippProcess:
        """The SIPp callee bob (a server running ``scenario`` for ``calls`` calls) on the
        callee port; for calls to a.example also registered at sipstack as bob@a.example."""
        process = await self.start(
            scenario, port=self.callee_port, calls=calls, timeout=timeout, extra=["-s", "bob", "-d", str(d)]
        )
        if self.direction == B_TO_A:
            await self.register_bob()
        return process

    async def register_bob(self) -> SippRun:
        """bob@a.example registers the callee port at sipstack (digest, MD5; SIPp computes the
        digest-uri from the remote address unless -auth_uri says otherwise)."""
        credentials = self.tmp_path / "bob.csv"
        credentials.write_text(f"SEQUENTIAL\nbob;[authentication username=bob password={BOB_PASSWORD}]\n")
        extra = ["-inf", str(credentials), "-s", "bob", "-key", "domain", DOMAIN_A, "-auth_uri", DOMAIN_A]
        extra += ["-key", "contact_port", str(self.callee_port)]
        process = await self.start(
            "chain/register", remote=f"{HOST}:{self.kit.port}", calls=1, timeout=10, extra=extra
        )
        run = await process.wait()
        assert run.returncode == 0 and run.successful == 1, f"bob did not register{self.evidence(run)}"
        contacts = [r.contact for r in await asyncio.to_thread(self.kit.registrations)]
        assert contacts == [f"sip:bob@{HOST}:{self.callee_port}"], f"{contacts}{self.evidence(run)}"
        return run

    async def caller(
        self,
        scenario: str,
        *,
        calls: int = 1,
        rate: float | None = None,
        limit: int | None = None,
        timeout: float = 15.0,
        d: int = 200,
    ) -> SippProcess:
        """alice of the other domain calls sip:bob@<callee's domain> through the proxy of
        her own domain (sipstack for a.example, Kamailio for b.example)."""
        to_domain, from_domain = (DOMAIN_B, DOMAIN_A) if self.direction == A_TO_B else (DOMAIN_A, DOMAIN_B)
        extra = ["-s", "bob", "-key", "domain", to_domain, "-key", "from_domain", from_domain, "-d", str(d)]
        return await self.start(
            scenario,
            remote=f"{HOST}:{self.first_port}",
            calls=calls,
            rate=rate,
            limit=limit,
            timeout=timeout,
            extra=extra,
        )


async def finish(*processes: SippProcess) -> list[SippRun]:
    """Wait for every SIPp run; as soon as one fails, the others are killed (a call that
    broke in the middle leaves its peer waiting until its timeout otherwise)."""
    waits = {asyncio.ensure_future(p.proc.wait()): p for p in processes}
    pending = set(waits)
    wall = max(p.wall for p in processes)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=wall, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            break
        if any(waits[f].proc.returncode != 0 for f in done):
            for future in pending:
                waits[future].kill()
    for future in pending:
        future.cancel()
    return [await p.wait() for p in processes]


ChainFactory = Callable[..., Awaitable[Chain]]


@pytest.fixture
async def chain(sipp: Sipp, tmp_path: Path) -> AsyncIterator[ChainFactory]:
    """Starts sipstack (domain a.example, user bob@a.example) and Kamailio (b.example → the
    callee port, a.example → sipstack) for a call ``direction``; both killed by PID on
    teardown. sipstack's default route (Kamailio) is set when its callers call out
    (a.example → b.example) and, unless ``default_route=True``, not otherwise."""
    kits: list[ServerKit] = []
    kamailios: list[Kamailio] = []

    async def start(direction: str, *, default_route: bool | None = None) -> Chain:
        if default_route is None:
            default_route = direction == A_TO_B
        kamailio_port = free_udp_tcp_port()
        callee_port = kamailio_port
        while callee_port == kamailio_port:
            callee_port = free_udp_tcp_port()
        config: dict[str, Any] = {"domains": [DOMAIN_A]}
        if default_route:
            config["proxy"] = {"default_route": f"sip:{HOST}:{kamailio_port}"}
        kit = ServerKit(tmp_path / "sipstack", algorithms="MD5", config=config)
        kits.append(kit)
        await asyncio.to_thread(kit.start)
        await asyncio.to_thread(kit.add_user, f"bob@{DOMAIN_A}", BOB_PASSWORD)
        hops = {"B_EXAMPLE_HOP": f"sip:{HOST}:{callee_port}", "A_EXAMPLE_HOP": f"sip:{HOST}:{kit.port}"}
        kamailio = Kamailio(tmp_path / "kamailio", kamailio_port, hops)
        kamailios.append(kamailio)
        await asyncio.to_thread(kamailio.start)
        return Chain(sipp, tmp_path, kit, kamailio, callee_port, direction)

    try:
        yield start
    finally:
        for kamailio in kamailios:
            await asyncio.to_thread(kamailio.close)
        for kit in kits:
            kit.close()


def assert_calls(chain: Chain, runs: list[SippRun], calls: int = 1) -> None:
    for run in runs:
        assert run.returncode == 0 and (run.successful, run.failed) == (calls, 0), chain.evidence(*runs)


def via_host_ports(message: TracedMessage) -> list[str]:
    """``host:port`` of each Via entry, top first."""
    out = []
    for via in vias(message):
        m = re.match(r"SIP/2\.0/\w+\s+([^;\s]+)", via)
        out.append(m.group(1) if m else via)
    return out


# -- 0. the Kamailio config itself ------------------------------------------------------------


def test_kamailio_config_checks(tmp_path: Path) -> None:
    """``kamailio -c`` accepts peer.cfg with the defines the tests pass (a broken config
    fails here with Kamailio's own words rather than as a proxy that never comes up)."""
    kamailio = Kamailio(tmp_path, free_udp_tcp_port(), {"B_EXAMPLE_HOP": f"sip:{HOST}:5070"})
    cmd = [*kamailio.command(), "-c"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, f"$ {' '.join(cmd)}\n{done.stdout}\n{done.stderr}"


# -- 1. and 2. a call through both proxies, each way round ------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_call_through_both_proxies(chain: ChainFactory, direction: str) -> None:
    """INVITE, 100, 180, 200, ACK, BYE, 200 through sipstack and Kamailio. Both proxies
    record-route: bob sees two Record-Route entries, the second proxy's on top; alice's
    ACK and BYE carry the reversed route set and reach bob through both proxies (three
    Vias: the two proxies', then alice's), each proxy having consumed its Route entry."""
    c = await chain(direction)
    bob = await c.callee("proxy/uas_answer")
    alice = await c.caller("chain/uac_call")
    uac, uas = await finish(alice, bob)
    evidence = c.evidence(uac, uas)
    assert_calls(c, [uac, uas])

    # bob: the INVITE came through both proxies, each record-routing.
    (invite,) = received(uas, "INVITE")
    assert invite.start_line == f"INVITE {c.callee_request_uri} SIP/2.0", evidence
    c.assert_via_path(invite, evidence, caller_port=alice.port)
    c.assert_record_route(route_uris(invite, "record-route"), evidence)
    assert header(invite, "max-forwards") == "68", evidence
    contact = f"sip:bob@{HOST}:{c.callee_port};transport=UDP"
    for method in ("ACK", "BYE"):
        (request,) = received(uas, method)
        assert request.start_line == f"{method} {contact} SIP/2.0", evidence
        c.assert_via_path(request, evidence, caller_port=alice.port)
        assert route_uris(request, "route") == [], evidence
    assert len(sent(uas, "SIP/2.0 200", "BYE")) == 1, evidence

    # alice: 180 and 200 with both entries; ACK and BYE along the reversed route set.
    assert [status_of(m) for m in received(uac, "SIP/2.0 ", "INVITE") if status_of(m) > 100] == [180, 200], (
        evidence
    )
    (ok,) = received(uac, "SIP/2.0 200", "INVITE")
    c.assert_record_route(route_uris(ok, "record-route"), evidence)
    for method in ("ACK", "BYE"):
        (request,) = sent(uac, method)
        assert request.start_line == f"{method} {contact} SIP/2.0", evidence
        c.assert_route(route_uris(request, "route"), evidence)
    assert finals(uac, "BYE") == [200], evidence

    # Kamailio's own log: the INVITE, the ACK and the BYE each went through it once, from
    # the hop before it (sipstack, or alice when Kamailio is the first proxy).
    before = c.kit.port if direction == A_TO_B else alice.port
    for method in ("INVITE", "ACK", "BYE"):
        assert len(c.kamailio.requests(method, before)) == 1, f"{method} via Kamailio{evidence}"


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_small_load_through_both_proxies(chain: ChainFactory, direction: str) -> None:
    """50 calls at 10 calls/s (at most 20 at once) through the chain: every one succeeds on
    both sides, and every ACK and BYE reached bob through both proxies."""
    calls = 50
    c = await chain(direction)
    bob = await c.callee("proxy/uas_answer", calls=calls, timeout=30, d=50)
    alice = await c.caller("chain/uac_call", calls=calls, rate=10, limit=20, timeout=30, d=100)
    uac, uas = await finish(alice, bob)
    evidence = c.evidence(uac, uas)
    assert_calls(c, [uac, uas], calls)
    for method in ("INVITE", "ACK", "BYE"):
        requests = received(uas, method)
        assert len(requests) == calls, f"{len(requests)} {method}{evidence}"
        for request in requests:
            c.assert_via_path(request, evidence, caller_port=alice.port)
    before = c.kit.port if direction == A_TO_B else alice.port
    for method in ("INVITE", "ACK", "BYE"):
        assert len(c.kamailio.requests(method, before)) == calls, f"{method} via Kamailio{evidence}"


# -- 3. CANCEL and a busy callee through the chain -------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_cancel_through_both_proxies(chain: ChainFactory, direction: str) -> None:
    """bob rings; alice CANCELs: the first proxy answers her CANCEL 200 and each proxy
    cancels its branch hop by hop, bob answers his CANCEL 200 and the INVITE 487; the 487
    (bob's, with his To tag) comes back through both proxies to alice, who ACKs it; each
    487 is ACKed hop by hop (bob gets the last proxy's ACK)."""
    c = await chain(direction)
    bob = await c.callee("chain/uas_ring")
    alice = await c.caller("chain/uac_cancel", d=300)
    uac, uas = await finish(alice, bob)
    evidence = c.evidence(uac, uas)
    assert_calls(c, [uac, uas])

    assert finals(uac, "CANCEL") == [200], evidence
    (cancel_ok,) = received(uac, "SIP/2.0 200", "CANCEL")
    assert "-uas-" not in to_tag(cancel_ok), f"the 200 for a CANCEL is hop by hop{evidence}"
    assert finals(uac) == [487], evidence
    (final,) = received(uac, "SIP/2.0 487")
    assert to_tag(final) == to_tag(sent(uas, "SIP/2.0 487")[0]), f"not bob's 487{evidence}"
    assert len(sent(uac, "ACK")) == 1, evidence

    (invite,) = received(uas, "INVITE")
    (cancel,) = received(uas, "CANCEL")
    c.assert_via_path(invite, evidence, caller_port=alice.port)
    assert vias(cancel) == [top_via(invite)], f"the last proxy's CANCEL: its INVITE's Via only{evidence}"
    (ack,) = received(uas, "ACK")
    assert via_host_ports(ack) == [f"{HOST}:{c.last_port}"], evidence
    assert top_via(ack).split(";branch=")[1] == top_via(invite).split(";branch=")[1], evidence

    # Kamailio saw the CANCEL (from sipstack or alice) and bob's 487 went through it.
    before = c.kit.port if direction == A_TO_B else alice.port
    assert len(c.kamailio.requests("CANCEL", before)) == 1, evidence
    assert "CHAIN-REPLY 487 " in c.kamailio.log(100_000), evidence


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_busy_callee_through_both_proxies(chain: ChainFactory, direction: str) -> None:
    """bob answers 486 Busy Here: the 486 (bob's, with his To tag) passes back through
    both proxies to alice; each hop's 486 is ACKed hop by hop."""
    c = await chain(direction)
    bob = await c.callee("proxy/uas_reject_486")
    alice = await c.caller("chain/uac_busy")
    uac, uas = await finish(alice, bob)
    evidence = c.evidence(uac, uas)
    assert_calls(c, [uac, uas])

    assert finals(uac) == [486], evidence
    (final,) = received(uac, "SIP/2.0 486")
    assert to_tag(final) == to_tag(sent(uas, "SIP/2.0 486")[0]), f"not bob's 486{evidence}"
    assert len(sent(uac, "ACK")) == 1, evidence
    (invite,) = received(uas, "INVITE")
    c.assert_via_path(invite, evidence, caller_port=alice.port)
    (ack,) = received(uas, "ACK")
    assert via_host_ports(ack) == [f"{HOST}:{c.last_port}"], evidence
    assert "CHAIN-REPLY 486 " in c.kamailio.log(100_000), evidence
    # The ACK for the 486 from the hop before Kamailio (sipstack's own, or alice's).
    before = c.kit.port if direction == A_TO_B else alice.port
    assert len(c.kamailio.requests("ACK", before)) == 1, evidence


# -- the default route and requests that are not for another domain ---------------------------


@pytest.mark.parametrize(
    "direction",
    [
        pytest.param(
            A_TO_B,
            id="uac-sipstack-kamailio-uas",
        ),
        pytest.param(B_TO_A, id="uac-kamailio-sipstack-uas"),
    ],
)
async def test_callee_hangs_up(chain: ChainFactory, direction: str) -> None:
    """bob answers and, 100 ms after the ACK, hangs up: his BYE follows the route set (both
    proxies) to alice's Contact, and the 200 comes back. a.example → b.example: sipstack is
    the last hop before alice, with its default route set (it needs it to reach b.example);
    once it has popped its own Route, the BYE's next hop is its Request-URI, alice's
    Contact (RFC 3261 §16.6 step 7, §16.12) — not the default route."""
    c = await chain(direction)
    bob = await c.callee("chain/uas_answer_then_hang_up")
    alice = await c.caller("chain/uac_call_callee_hangs_up", timeout=6)
    uac, uas = await finish(alice, bob)
    evidence = c.evidence(uac, uas)
    if direction == A_TO_B:  # bob's BYE goes Kamailio → sipstack → alice: none back to Kamailio
        assert c.kamailio.requests("BYE", c.kit.port) == [], f"BYE back to Kamailio{evidence}"
    assert_calls(c, [uac, uas])
    (bye,) = received(uac, "BYE")
    assert bye.start_line == f"BYE sip:alice@{HOST}:{alice.port};transport=UDP SIP/2.0", evidence
    expected = [f"{HOST}:{port}" for _, port, _ in c.path] + [f"{HOST}:{c.callee_port}"]
    assert via_host_ports(bye) == expected, evidence
    assert route_uris(bye, "route") == [], evidence
    assert finals(uas, "BYE") == [200], evidence


async def test_call_to_own_user_with_default_route_set(chain: ChainFactory) -> None:
    """Peering both ways: sipstack keeps its default route to Kamailio (for its callers'
    calls to b.example) while a b.example caller calls its registered user bob@a.example
    through Kamailio. The location service gives bob's contact; sipstack must send the
    INVITE there, not back to Kamailio by the default route."""
    c = await chain(B_TO_A, default_route=True)
    bob = await c.callee("proxy/uas_answer", timeout=6)
    alice = await c.caller("chain/uac_call")
    uac, uas = await finish(alice, bob)
    evidence = c.evidence(uac, uas)
    assert c.kamailio.requests("INVITE", c.kit.port) == [], f"INVITE back to Kamailio{evidence}"
    assert_calls(c, [uac, uas])
    (invite,) = received(uas, "INVITE")
    c.assert_via_path(invite, evidence, caller_port=alice.port)


async def test_no_reply_without_via_goes_upstream(chain: ChainFactory) -> None:
    """uac → Kamailio → sipstack → bob, where bob (``proxy/uas_ring.xml``) rings and, on
    the CANCEL, answers the INVITE 487 with the CANCEL's Via (sipstack's only): sipstack
    must not relay that 487 to Kamailio with no Via left. (What alice then gets is up to
    Kamailio's timers; not checked.)"""
    c = await chain(B_TO_A)
    bob = await c.callee("proxy/uas_ring")
    alice = await c.caller("chain/uac_cancel", d=300, timeout=4)
    uas, uac = await finish(bob, alice)
    evidence = c.evidence(uac, uas)
    assert len(received(uas, "CANCEL")) == 1 and len(received(uas, "ACK")) == 1, evidence
    (reply,) = sent(uas, "SIP/2.0 487")
    assert len(vias(reply)) == 1, f"bob's 487 carries sipstack's Via only{evidence}"
    assert "no via found in reply" not in c.kamailio.log(100_000), evidence
