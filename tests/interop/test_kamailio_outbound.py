"""The sipstack user agent's SIP Outbound (RFC 5626) against Kamailio as edge proxies and
registrar — an independent implementation of the proxy side.

Topology on 127.0.0.1, one Kamailio process each (configs in ``kamailio_outbound/``):

- two edge proxies (``edge.cfg``: ``outbound`` + ``path`` modules), each listening on TCP for
  UAs and on UDP (same port) for the registrar. An edge puts a Path with a flow token and
  ``;ob`` in each REGISTER, and sends requests that come back through that Path over the flow
  (the UA's connection) the token names — 430 when it cannot;
- a registrar for example.com (``registrar.cfg``: ``registrar`` with ``outbound_mode`` 1 and a
  Flow-Timer, ``usrloc``, ``tm``): one binding per ``+sip.instance`` and ``reg-id``; a request
  for the AoR goes to one flow of the instance, and to the next flow when that one fails.

The sipstack UA (alice, TCP) registers over both edges, reg-id 1 and 2; Kamailio keeps both
(its 200 lists both bindings, says ``Require: outbound``, gives a Flow-Timer, and answers the
UA's CRLF keep-alives on both flows). Another sipstack UA (bob, UDP) sends MESSAGEs to alice's
AoR through the registrar: the first reaches alice over one of her flows; that flow's edge is
then killed — alice sees the flow fail — and the next MESSAGE still reaches her, over the
other flow (Kamailio's registrar fails over from the dead flow's branch to the other flow).

Kamailio runs in the foreground in its own session and is killed by process group on
teardown; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kamailiokit import KAMAILIO, KamailioProcess
from netkit import free_port, options_status
from sipstack.message import Request, parse
from sipstack.net import Address
from sipstack.ua import OutboundConfig, UserAgent
from sipstack.ua.outbound import registered_contacts

MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
CONFIGS = Path(__file__).parent / "kamailio_outbound"
HOST = "127.0.0.1"
AOR = "sip:alice@example.com"


def _outbound_module() -> bool:
    return any(
        path.exists() for path in (MODULES / "outbound.so", Path("/usr/lib/kamailio/modules/outbound.so"))
    )


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        KAMAILIO is None,
        reason="Kamailio is not installed (Debian packages kamailio and kamailio-outbound-modules: "
        "`make debs` as root)",
    ),
    pytest.mark.skipif(
        KAMAILIO is not None and not _outbound_module(),
        reason="Kamailio's outbound module is missing (Debian package kamailio-outbound-modules: "
        "`make debs` as root)",
    ),
]


class Kamailio(KamailioProcess):
    """``kamailio -f CONFIG -DD -E`` on ``127.0.0.1:port`` (``transports``), with ``defines``
    (``-A``)."""

    def __init__(
        self,
        name: str,
        config: str,
        workdir: Path,
        port: int,
        transports: tuple[str, ...],
        defines: dict[str, str],
    ) -> None:
        super().__init__(workdir / name)
        self.name = f"Kamailio {name}"
        self.config = CONFIGS / config
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.transports = transports
        self.defines = defines

    def command(self) -> list[str]:
        assert KAMAILIO is not None
        cmd = [KAMAILIO, "-f", str(self.config), "-DD", "-E", "-Y", str(self.workdir), "-m", "32", "-M", "8"]
        for transport in self.transports:
            cmd += ["-l", f"{transport}:{HOST}:{self.port}"]
        for name, value in self.defines.items():
            cmd += ["-A", f"{name}={value}"]
        return cmd

    def ready(self) -> bool:
        return options_status(self.port) == 200

    def lines(self, marker: str) -> list[str]:
        return [line for line in self.log(10**7).splitlines() if marker in line]


@pytest.fixture
def kamailios(tmp_path: Path) -> Iterator[Callable[..., Kamailio]]:
    started: list[Kamailio] = []

    def start(name: str, config: str, transports: tuple[str, ...], defines: dict[str, str]) -> Kamailio:
        process = Kamailio(name, config, tmp_path, free_port(), transports, defines)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture
async def agents() -> AsyncIterator[Callable[..., Any]]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(aor: str, **options: Any) -> UserAgent:
            return await stack.enter_async_context(UserAgent(aor, **options))

        yield make


class Inbox:
    """The MESSAGEs alice receives, with the address (and connection) each came from."""

    def __init__(self, ua: UserAgent) -> None:
        self.items: list[tuple[Request, Address]] = []
        self.arrived = asyncio.Event()
        ua.endpoint.tracer = self._trace

    def _trace(self, direction: str, data: bytes, address: Address) -> None:
        if direction != "recv":
            return
        with contextlib.suppress(ValueError):
            message = parse(data)
            if isinstance(message, Request) and message.method == "MESSAGE":
                self.items.append((message, address))
                self.arrived.set()

    def bodies(self) -> list[bytes]:
        return [request.body for request, _ in self.items]


def via_port(request: Request) -> int:
    return int(request.via[0].sent_by.rsplit(":", 1)[1])


async def test_two_flows_registered_at_kamailio_and_a_request_survives_a_dead_flow(
    kamailios: Callable[..., Kamailio], agents: Callable[..., Any]
) -> None:
    registrar = kamailios("registrar", "registrar.cfg", ("udp",), {"FLOW_TIMER": "2"})
    target = f'"sip:{HOST}:{registrar.port}"'
    edges = [kamailios(f"edge{i}", "edge.cfg", ("tcp", "udp"), {"REGISTRAR": target}) for i in (1, 2)]
    evidence = lambda: "".join(f"\n--- {k.name} ---\n{k.log(4000)}" for k in (registrar, *edges))  # noqa: E731

    alice = await agents(AOR, listen=[f"tcp:{HOST}:0"])
    inbox = Inbox(alice)
    # Long back-off: a flow that dies stays down for the rest of the test.
    config = OutboundConfig(base_time_all_failed=20.0, base_time_some_ok=60.0, max_time=120.0)
    proxies = [f"sip:{HOST}:{edge.port};transport=tcp" for edge in edges]
    outbound = await alice.register_outbound(proxies, expires=600, config=config)
    assert [flow.state for flow in outbound.flows] == ["registered", "registered"], evidence()

    instance = f"<{alice.instance_id}>"
    listed: list[set[int | None]] = []
    for flow, edge in zip(outbound.flows, edges, strict=True):
        response = flow.registration.response
        assert response is not None
        # RFC 5626 §6: Kamailio applied Outbound (Require), and gives the keep-alive period.
        assert flow.outbound_supported, f"no Require: outbound in\n{response}"
        assert flow.flow_timer == 2.0
        # §5.2: the edge's Path (echoed: we said Supported: path) names it, with ;ob.
        (path,) = response.path
        assert path.uri.port == edge.port and "ob" in path.uri.params, str(response)
        ours = [(uri, reg_id) for uri, reg_id, inst in registered_contacts(response) if inst == instance]
        assert (str(flow.registration.bindings[0]), flow.reg_id) in [(u, r) for u, r in ours]
        listed.append({reg_id for _, reg_id in ours})
    # The later of the two 200s lists both bindings of the instance: Kamailio keeps both.
    assert {1, 2} in listed, f"bindings listed: {listed}{evidence()}"

    # §4.4.1 with Kamailio's Flow-Timer (2 s, so pings every 1.6-2 s): pongs on both flows.
    for flow in outbound.flows:
        await flow.wait_for(lambda f: f.keepalive is not None and f.keepalive.probes >= 1, 5.0)
        assert flow.successful

    bob = await agents("sip:bob@example.com", listen=[f"udp:{HOST}:0"], proxy=f"sip:{HOST}:{registrar.port}")
    response = await bob.message(AOR, "first")
    assert response.status_code == 200, evidence()
    ((first, source),) = inbox.items
    used = next(flow for flow in outbound.flows if via_port(first) == flow.address.port)
    other = next(flow for flow in outbound.flows if flow is not used)
    # It came over the flow: the connection alice opened to that edge.
    assert used.connection is not None and source.connection == used.connection.id, (source, used.connection)

    # The edge of that flow dies: alice's connection to it closes, the flow has failed.
    dead_edge = edges[outbound.flows.index(used)]
    dead_edge.kill()
    await used.wait_for(lambda f: f.state == "failed", 5.0)
    assert "closed" in next(e for e in used.events if e.kind == "failed").reason

    response = await bob.message(AOR, "second")
    assert response.status_code == 200, evidence()
    assert inbox.bodies() == [b"first", b"second"]
    second, source = inbox.items[1]
    assert via_port(second) == other.address.port
    assert other.connection is not None and source.connection == other.connection.id
    # Kamailio tried the dead flow first (the one it chose before), then the other flow.
    assert registrar.lines("REG-BRANCH-FAILURE"), evidence()
    assert registrar.lines("REG-NEXT-FLOW"), evidence()
    assert other.state == "registered" and other.failures == 0
