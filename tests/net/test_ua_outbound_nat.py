"""A SIP Outbound UDP user agent behind a real NAT (Linux netfilter), built by the test.

Three network namespaces joined by veth pairs, created here and deleted on teardown
(whatever happens; the iptables rules live in the NAT namespace and go with it):

    ua  10.200.1.2 ── 10.200.1.1  nat  10.200.2.1 ── 10.200.2.2  srv

``nat`` forwards and masquerades UDP leaving towards ``srv`` (source ports mapped into
20000-20999), and its conntrack forgets an idle UDP binding after 3 s (the namespace's own
``nf_conntrack_udp_timeout``/``_stream``): after that, a datagram from ``srv`` to the mapped
port is refused, as behind a real NAT. ``srv`` runs ``sipstack serve`` (registrar and proxy of
example.com, no auth) and, when needed, a caller sending MESSAGE to an AoR through it. ``ua``
runs two sipstack UAs (``outbound_nat_peer.py``), each registering with Outbound over one UDP
flow with its STUN-learnt reflexive address as Contact:

- alice keeps her flow alive with STUN Binding requests every 0.8-1 s (RFC 5626 §4.4.2): a
  MESSAGE sent to her 7 s after registering — more than twice the NAT's timeout — arrives,
  and every STUN answer reported the NAT's address (10.200.2.1:2xxxx) as the mapped one;
- carol registered the same way but sends no keep-alives: the same MESSAGE to her does not
  arrive (the NAT dropped her binding), which shows the timeout is real;
- then the NAT changes how it maps (ports 30000-30999) and alice is frozen (SIGSTOP) past
  the timeout: her next STUN answer names a new mapped address — a flow failure — and she
  registers again from the new binding, with it as Contact, and is reachable again.

Needs root, ``ip`` (iproute2) and ``iptables``; skipped with the reason when namespaces or
NAT rules cannot be made here. Child processes are killed by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PEER = Path(__file__).parent / "outbound_nat_peer.py"
UA_IP, NAT_IN, NAT_OUT, SRV_IP = "10.200.1.2", "10.200.1.1", "10.200.2.1", "10.200.2.2"
SIP_PORT = 5060
NAT_TIMEOUT = 3
PYTHON = sys.executable


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces and NAT rules need root"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package}: `make debs` as root)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")
    return result


class Topology:
    """The three namespaces, their links and the NAT; :meth:`delete` removes everything."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ua, self.nat, self.srv = (f"ob{tag}{role}" for role in ("u", "n", "s"))
        self.links = {name: f"ob{tag}{name}" for name in ("u", "ni", "no", "s")}
        self.created: list[str] = []

    def in_ns(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *cmd, check=check)

    def create(self) -> None:
        links = self.links
        for ns in (self.ua, self.nat, self.srv):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
        sh(
            "ip",
            "link",
            "add",
            links["u"],
            "netns",
            self.ua,
            "type",
            "veth",
            "peer",
            "name",
            links["ni"],
            "netns",
            self.nat,
        )
        sh(
            "ip",
            "link",
            "add",
            links["no"],
            "netns",
            self.nat,
            "type",
            "veth",
            "peer",
            "name",
            links["s"],
            "netns",
            self.srv,
        )
        for ns, link, address in (
            (self.ua, links["u"], f"{UA_IP}/24"),
            (self.nat, links["ni"], f"{NAT_IN}/24"),
            (self.nat, links["no"], f"{NAT_OUT}/24"),
            (self.srv, links["s"], f"{SRV_IP}/24"),
        ):
            self.in_ns(ns, "ip", "addr", "add", address, "dev", link)
            self.in_ns(ns, "ip", "link", "set", link, "up")
        for ns in (self.ua, self.nat, self.srv):
            self.in_ns(ns, "ip", "link", "set", "lo", "up")
        self.in_ns(self.ua, "ip", "route", "add", "default", "via", NAT_IN)
        self.in_ns(self.nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.masquerade("20000-20999")
        for name in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            self.in_ns(self.nat, "sysctl", "-qw", f"net.netfilter.{name}={NAT_TIMEOUT}")

    def masquerade(self, ports: str) -> None:
        """UDP leaving towards srv gets the NAT's address and a port in ``ports`` (the
        rule replaces the previous one; existing bindings keep their mapping)."""
        self.in_ns(self.nat, "iptables", "-t", "nat", "-F", "POSTROUTING")
        self.in_ns(
            self.nat,
            "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", self.links["no"],
            "-p", "udp", "-j", "MASQUERADE", "--to-ports", ports,
        )  # fmt: skip

    def delete(self) -> None:
        if self.nat in self.created:
            self.in_ns(self.nat, "iptables", "-t", "nat", "-F", check=False)
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created.clear()


@pytest.fixture
def topology() -> Iterator[Topology]:
    net = Topology()
    try:
        net.create()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        net.delete()
        pytest.skip(f"cannot build the namespaces and NAT here: {exc}")
    try:
        yield net
    finally:
        net.delete()
        leftover = sh("ip", "netns", "list").stdout
        assert not any(ns in leftover for ns in (net.ua, net.nat, net.srv)), leftover


class Child:
    """A child process in a namespace whose stdout is JSON lines, collected as they come."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log
        self.lines: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))
                self.changed.set()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == kind]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.returncode is not None and self.reader.done():
                raise AssertionError(f"{self.name} exited: {self.evidence()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: not within {timeout} s: {what}{self.evidence()}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))

    def evidence(self) -> str:
        stderr = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"\n{self.name} said: {self.lines[-30:]}\nstderr: {stderr}"

    async def stop(self) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()  # the UA script ends when its stdin closes
        # Then SIGTERM (the server), then SIGKILL — to this child only, by its PID.
        for sig, grace in ((None, 1.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if self.proc.returncode is not None:
                break
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGCONT)
                    os.kill(self.proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.reader, 2.0)


@pytest.fixture
async def children(topology: Topology, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Child] = []

    async def start(name: str, ns: str, *args: str) -> Child:
        log = tmp_path / f"{name}.stderr"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns, *args,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            )  # fmt: skip
        child = Child(name, proc, log)
        started.append(child)
        return child

    yield start
    for child in started:
        await child.stop()


async def send_message(
    children: Callable[..., Any], topology: Topology, to: str, body: str
) -> dict[str, Any]:
    caller = await children(
        f"caller-{body}",
        topology.srv,
        PYTHON, str(PEER), "send", "--to", to, "--body", body,
        "--proxy", f"sip:{SRV_IP}:{SIP_PORT}", "--listen", f"udp:{SRV_IP}:0", "--timeout", "8",
    )  # fmt: skip
    await caller.wait_for(lambda: bool(caller.lines), 15.0, "an answer to the MESSAGE")
    return caller.lines[0]


async def test_stun_keepalives_keep_a_udp_flow_open_through_a_nat(
    topology: Topology, children: Callable[..., Any], tmp_path: Path
) -> None:
    sipstack = str(Path(PYTHON).with_name("sipstack"))
    server = await children(
        "server",
        topology.srv,
        sipstack, "serve", "--listen", f"udp:{SRV_IP}:{SIP_PORT}", "--domain", "example.com",
        "--no-auth", "--data-dir", str(tmp_path / "data"), "--log-level", "info",
    )  # fmt: skip
    ping = await children(
        "ping", topology.srv, PYTHON, str(PEER), "ping", "--target", f"sip:{SRV_IP}:{SIP_PORT}",
        "--listen", f"udp:{SRV_IP}:0", "--timeout", "10",
    )  # fmt: skip
    await ping.wait_for(lambda: bool(ping.lines), 15.0, "the server to answer OPTIONS")
    assert ping.lines[0] == {"status": 200, "t": ping.lines[0]["t"]}, server.evidence()

    def ua(name: str, keepalive: str) -> Any:
        return children(
            name,
            topology.ua,
            PYTHON, str(PEER), "ua", "--aor", f"sip:{name}@example.com", "--listen", f"udp:{UA_IP}:0",
            "--proxy", f"sip:{SRV_IP}:{SIP_PORT}", "--keepalive", keepalive, "--flow-timer", "1",
            "--base-time", "0.5", "--lifetime", "90",
        )  # fmt: skip

    alice, carol = await ua("alice", "always"), await ua("carol", "never")
    for peer in (alice, carol):
        await peer.wait_for(lambda p=peer: bool(p.events("registered")), 15.0, "registered")
    registered = alice.events("registered")[0]
    # The reflexive address is the NAT's outside address and a port it mapped to; it is
    # the Contact (with ;ob, reg-id and the instance).
    host, port = registered["mapped"].rsplit(":", 1)
    assert host == NAT_OUT and 20000 <= int(port) <= 20999, alice.evidence()
    assert f"@{NAT_OUT}:{port};ob>;reg-id=1;+sip.instance=" in registered["contact"]
    assert carol.events("registered")[0]["mapped"].startswith(f"{NAT_OUT}:")

    # Both reachable while their bindings are fresh.
    for name, peer in (("alice", alice), ("carol", carol)):
        answer = await send_message(children, topology, f"sip:{name}@example.com", f"early-{name}")
        assert answer.get("status") == 200, f"{answer}{peer.evidence()}{server.evidence()}"
    started = time.monotonic()

    # More than twice the NAT's timeout without any SIP traffic.
    await asyncio.sleep(2 * NAT_TIMEOUT + 1)
    answer = await send_message(children, topology, "sip:carol@example.com", "late-carol")
    assert answer.get("status") != 200, f"carol reachable without keep-alives: {answer}"
    assert [m["body"] for m in carol.events("message")] == ["early-carol"], carol.evidence()

    answer = await send_message(children, topology, "sip:alice@example.com", "late-alice")
    assert answer.get("status") == 200, f"{answer}{alice.evidence()}{server.evidence()}"
    assert [m["body"] for m in alice.events("message")] == ["early-alice", "late-alice"]
    # STUN kept the binding: answered probes all along, each with the same NAT mapping.
    probes = [k for k in alice.events("keepalive") if k["t"] > started]
    assert probes and probes[-1]["probes"] >= 2 * NAT_TIMEOUT, alice.evidence()
    assert {k["mapped"] for k in alice.events("keepalive") if k["mapped"]} == {registered["mapped"]}
    assert not alice.events("failed")

    # The NAT now maps to other ports, and alice's binding expires while she is frozen.
    topology.masquerade("30000-30999")
    os.kill(alice.proc.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(NAT_TIMEOUT + 1.5)
    finally:
        os.kill(alice.proc.pid, signal.SIGCONT)
    await alice.wait_for(lambda: len(alice.events("registered")) >= 2, 15.0, "registered again")
    (failed,) = alice.events("failed")
    new_mapped = alice.events("registered")[1]["mapped"]
    new_port = int(new_mapped.rsplit(":", 1)[1])
    assert failed["reason"] == f"NAT binding changed: {registered['mapped']} became {new_mapped}"
    assert 30000 <= new_port <= 30999
    assert f"@{new_mapped};ob>;reg-id=1;" in alice.events("registered")[1]["contact"]

    answer = await send_message(children, topology, "sip:alice@example.com", "after-rebind")
    assert answer.get("status") == 200, f"{answer}{alice.evidence()}{server.evidence()}"
    assert alice.events("message")[-1]["body"] == "after-rebind"
