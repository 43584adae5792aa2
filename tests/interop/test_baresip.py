"""baresip (Debian package ``baresip``, 1.0), a real soft-phone built on libre, registering to
``sipstack serve`` and calling through it, over UDP and over TCP.

Two headless baresip instances on 127.0.0.1 (configuration: ``baresip/config``, filled in per
instance; one account line each) register alice@localhost and bob@localhost — users added
with ``sipstack user add`` — with digest authentication, using the server as their outbound
proxy. alice dials ``sip:bob@localhost`` by address-of-record; the server finds bob's
binding and forwards the INVITE (record-routing); bob answers by himself
(``answermode=auto``); both report ``CALL_ESTABLISHED``. Then one side hangs up — the caller
in one test, the callee in the other — and both report ``CALL_CLOSED``. What went over the
wire is read from baresip's own SIP trace (``-s``): the INVITE, the ACK and the BYE each
reached the other phone with the server's Via on top, and the 200 for the BYE came back.

baresip is driven over its ``ctrl_tcp`` module: JSON commands and events in netstrings
(``52:{"command":"dial","params":"sip:bob@localhost","token":"1"},``).

libre as shipped with baresip 1.0 answers only MD5 challenges and gives up ("Function not
implemented") on the first WWW-Authenticate that is not MD5, so the server runs with
``--auth-algorithms MD5`` (RFC 8760 ordering puts SHA-512-256 first by default).

The second half puts sipstack's own user agent (``sipstack.ua``) opposite baresip: a
UserAgent calls a registered baresip (which hangs up), ``sipstack call`` calls it (and hangs
up with BYE), and baresip dials a UserAgent registered to the server that rings and answers
(BYE from either side) or that answers by itself (``auto_answer=True``, no handler).

Every process is killed by PID on teardown; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from serverkit import HOST, ServerKit

from netkit import free_port

BARESIP = shutil.which("baresip")
CONFIG_TEMPLATE = Path(__file__).parent / "baresip" / "config"
MODULE_DIRS = (
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/local/lib/baresip/modules",
)
DOMAIN = "localhost"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        BARESIP is None,
        reason="baresip is not installed (Debian package baresip: `make debs` as root, "
        "or apt-get install baresip)",
    ),
]


def module_path() -> str:
    for folder in MODULE_DIRS:
        if Path(folder, "ctrl_tcp.so").exists():
            return folder
    raise AssertionError(f"baresip is installed but its modules (ctrl_tcp.so) are in none of {MODULE_DIRS}")


# -- ctrl_tcp: JSON in netstrings ---------------------------------------------------------------


class Ctrl:
    """A client of baresip's ctrl_tcp socket: commands with tokens, responses and events."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=2.0)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.responses: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.sock.close()

    def _read(self, deadline: float) -> None:
        """Read what arrives before ``deadline`` and file the complete netstrings."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if not data:
            raise AssertionError(f"baresip closed its ctrl_tcp connection; unread: {self.buffer!r}")
        self.buffer += data
        while True:
            length, colon, rest = self.buffer.partition(b":")
            if not colon or not length.isdigit() or len(rest) < int(length) + 1:
                return
            payload, self.buffer = rest[: int(length)], rest[int(length) + 1 :]
            message = json.loads(payload)
            if message.get("event"):
                self.events.append(message)
            elif message.get("response"):
                self.responses[str(message.get("token"))] = message

    def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        token = secrets.token_hex(4)
        body: dict[str, Any] = {"command": command, "token": token}
        if params is not None:
            body["params"] = params
        payload = json.dumps(body).encode()
        self.sock.sendall(b"%d:%s," % (len(payload), payload))
        deadline = time.monotonic() + timeout
        while token not in self.responses:
            if time.monotonic() > deadline:
                raise AssertionError(f"no response to {command} {params or ''} in {timeout} s")
            self._read(deadline)
        response = self.responses.pop(token)
        assert response.get("ok"), f"{command} {params or ''}: {response}"
        return response

    def wait_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first event of type ``kind`` (received before or within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("type") == kind:
                    return event
            if time.monotonic() > deadline:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {kind} event within {timeout} s; events: {seen}")
            self._read(deadline)


# -- one baresip ------------------------------------------------------------------------------


@dataclass
class Traced:
    """One SIP message in baresip's trace (``-s``)."""

    transport: str
    source: str
    destination: str
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0]

    def headers(self, name: str) -> list[str]:
        return re.findall(rf"^{name}:[ \t]*(.*)$", self.text, re.M | re.I)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRACE = re.compile(r"^(UDP|TCP|TLS) (\S+) -> (\S+)\n(.*?)(?=\n\n)", re.M | re.S)


@dataclass
class Phone:
    """A baresip process with one account ``user@localhost``, registering through the server."""

    user: str
    workdir: Path
    proc: subprocess.Popen[bytes]
    sip_port: int
    ctrl: Ctrl
    log_path: Path
    closed: bool = field(default=False)

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{DOMAIN}"

    def log(self, max_chars: int = 20000) -> str:
        text = _ANSI.sub("", self.log_path.read_text(errors="replace")).replace("\r\n", "\n")
        return text[-max_chars:] if max_chars else text

    def trace(self) -> list[Traced]:
        return [Traced(*m.groups()) for m in _TRACE.finditer(self.log(0))]

    def received(self, start: str) -> list[Traced]:
        """Messages the phone received whose start line begins with ``start``. The trace's
        addresses do not tell (over TCP baresip prints a connection's ports), the top Via does:
        the phone's own on the requests it sends and on the responses it receives."""
        own = f"{HOST}:{self.sip_port}"
        out = []
        for m in self.trace():
            vias = m.headers("Via")
            mine = bool(vias) and own in vias[0].split(";", 1)[0]
            is_response = m.start_line.startswith("SIP/2.0 ")
            if m.start_line.startswith(start) and mine == is_response:
                out.append(m)
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.ctrl.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def start_phone(workdir: Path, user: str, password: str, kit: ServerKit, transport: str) -> Phone:
    """baresip with the project's config template and an account registering ``user`` via
    the server (its outbound proxy); returns once its ctrl_tcp socket answers. Ports picked
    free may be taken by the time baresip binds them: then it is tried again with others."""
    assert BARESIP is not None
    template = string.Template(CONFIG_TEMPLATE.read_text())
    account = (
        f"<sip:{user}@{DOMAIN};transport={transport}>;auth_pass={password};"
        f'outbound="sip:{HOST}:{kit.port};transport={transport}";regint=60;answermode=auto\n'
    )
    problems = []
    for attempt in range(3):
        folder = workdir / f"{user}-{attempt}"
        folder.mkdir(parents=True)
        sip_port, ctrl_port = free_port(width=2), free_port()  # P+1: baresip's TLS listener
        config = template.substitute(
            sip_listen=f"{HOST}:{sip_port}", ctrl_listen=f"{HOST}:{ctrl_port}", module_path=module_path()
        )
        (folder / "config").write_text(config)
        (folder / "accounts").write_text(account)
        log_path = folder / "baresip.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [BARESIP, "-f", str(folder), "-s"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ctrl = Ctrl(ctrl_port)
            except OSError:
                time.sleep(0.05)
                continue
            text = log_path.read_text(errors="replace")
            if "Address already in use" in text:
                ctrl.close()
                break
            return Phone(user, folder, proc, sip_port, ctrl, log_path)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        problems.append(log_path.read_text(errors="replace")[-3000:])
    raise AssertionError(f"baresip for {user} did not start:\n" + "\n---\n".join(problems))


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Pair:
    kit: ServerKit
    alice: Phone
    bob: Phone
    transport: str
    contacts: dict[str, str] = field(default_factory=dict)

    def evidence(self) -> str:
        return (
            f"\n--- sipstack serve log ---\n{self.kit.log()}"
            f"\n--- alice (baresip) ---\n{self.alice.log()}\n--- bob (baresip) ---\n{self.bob.log()}"
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerKit]:
    kit = ServerKit(tmp_path / "server", algorithms="MD5")
    try:
        kit.start()
        kit.add_user(f"alice@{DOMAIN}", "alice-secret")
        kit.add_user(f"bob@{DOMAIN}", "bob-secret")
        yield kit
    finally:
        kit.close()


@pytest.fixture
def registered(tmp_path: Path, server: ServerKit) -> Iterator[Callable[[str], Pair]]:
    """``registered(transport)``: alice and bob registered through the server."""
    phones: list[Phone] = []

    def make(transport: str) -> Pair:
        alice = start_phone(tmp_path, "alice", "alice-secret", server, transport)
        phones.append(alice)
        bob = start_phone(tmp_path, "bob", "bob-secret", server, transport)
        phones.append(bob)
        pair = Pair(server, alice, bob, transport)
        wait_registered(pair)
        return pair

    try:
        yield make
    finally:
        for phone in phones:
            phone.close()


def wait_registered(pair: Pair, timeout: float = 15.0) -> None:
    """Until ``sipstack registrations`` lists both phones' contacts (each registered after a
    401 challenge answered with MD5 credentials)."""
    suffix = ";transport=tcp" if pair.transport == "tcp" else ""
    wanted = {
        (pair.alice.aor, f"{HOST}:{pair.alice.sip_port}{suffix}"),
        (pair.bob.aor, f"{HOST}:{pair.bob.sip_port}{suffix}"),
    }
    deadline = time.monotonic() + timeout
    found: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        bindings = pair.kit.registrations()
        found = {(b.aor, b.contact.split("@", 1)[-1]) for b in bindings}
        if found == wanted:
            break
        time.sleep(0.1)
    assert found == wanted, f"registrations {found}, expected {wanted}{pair.evidence()}"
    pair.contacts = {b.aor: b.contact for b in bindings}
    listing = pair.kit.cli("registrations").stdout
    assert listing.count("baresip v") == 2, f"User-Agent not kept:\n{listing}"
    for phone in (pair.alice, pair.bob):
        challenged = [m for m in phone.received("SIP/2.0 401") if "REGISTER" in "".join(m.headers("CSeq"))]
        assert challenged, f"{phone.user} was not challenged{pair.evidence()}"
        (digest,) = re.findall(r'realm="([^"]+)"', challenged[0].text)
        assert digest == DOMAIN and "algorithm=MD5" in challenged[0].text, pair.evidence()
        info = phone.ctrl.command("reginfo")["data"]
        assert re.search(rf"{re.escape(phone.aor)}\s+\S*OK", info), f"{phone.user}: {info}"


# -- the calls ---------------------------------------------------------------------------------


def server_via(pair: Pair) -> re.Pattern[str]:
    """The Via the server puts on requests it forwards (its listening port)."""
    return re.compile(rf"SIP/2\.0/{pair.transport.upper()} {re.escape(HOST)}:{pair.kit.port};branch=z9hG4bK")


def establish(pair: Pair) -> None:
    """alice dials bob by address-of-record; bob answers by himself; both established. The
    INVITE bob received went through the server (its Via on top, its Record-Route)."""
    pair.alice.ctrl.command("dial", f"sip:bob@{DOMAIN}")
    outgoing = pair.alice.ctrl.wait_event("CALL_ESTABLISHED", timeout=15)
    incoming = pair.bob.ctrl.wait_event("CALL_ESTABLISHED", timeout=15)
    assert outgoing["direction"] == "outgoing" and outgoing["accountaor"] == pair.alice.aor, outgoing
    assert incoming["direction"] == "incoming" and incoming["accountaor"] == pair.bob.aor, incoming
    assert incoming["peeruri"] == pair.alice.aor, incoming
    (invite,) = pair.bob.received("INVITE ")
    assert invite.start_line == f"INVITE {pair.contacts[pair.bob.aor]} SIP/2.0", invite.text  # his binding
    vias = invite.headers("Via")
    assert len(vias) == 2 and server_via(pair).match(vias[0]), invite.text
    assert f"{HOST}:{pair.alice.sip_port}" in vias[1], invite.text
    (record_route,) = invite.headers("Record-Route")
    assert f"{HOST}:{pair.kit.port}" in record_route and ";lr" in record_route, invite.text
    # alice's ACK for the 200 follows the route set through the server as well.
    deadline = time.monotonic() + 5
    while not pair.bob.received("ACK ") and time.monotonic() < deadline:
        time.sleep(0.05)
    (ack,) = pair.bob.received("ACK ")
    assert server_via(pair).match(ack.headers("Via")[0]), ack.text


def hang_up(pair: Pair, side: str) -> None:
    """``side`` hangs up: its BYE reaches the other phone through the server, which answers
    it 200; both report CALL_CLOSED."""
    caller, callee = pair.alice, pair.bob
    hanger, other = (caller, callee) if side == "caller" else (callee, caller)
    hanger.ctrl.command("hangup")
    closed_here = hanger.ctrl.wait_event("CALL_CLOSED", timeout=10)
    closed_there = other.ctrl.wait_event("CALL_CLOSED", timeout=10)
    assert closed_here["accountaor"] == hanger.aor and closed_there["accountaor"] == other.aor
    (bye,) = other.received("BYE ")
    assert server_via(pair).match(bye.headers("Via")[0]), bye.text
    assert f"{HOST}:{hanger.sip_port}" in bye.headers("Via")[1], bye.text
    deadline = time.monotonic() + 5
    answered: list[Traced] = []
    while time.monotonic() < deadline:
        answered = [m for m in hanger.received("SIP/2.0 200") if "BYE" in "".join(m.headers("CSeq"))]
        if answered:
            break
        time.sleep(0.05)
    assert answered, f"no 200 for the BYE reached the {side}"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("side", ["caller", "callee"])
def test_call_by_aor_through_the_server(registered: Callable[[str], Pair], transport: str, side: str) -> None:
    pair = registered(transport)
    try:
        establish(pair)
        hang_up(pair, side)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{pair.evidence()}") from None


# -- sipstack's user agent and baresip ---------------------------------------------------------
#
# One baresip phone and one sipstack UserAgent (sipstack.ua, in the test's event loop) or the
# ``sipstack call`` command, both registered to / authenticated by ``sipstack serve``. The
# baresip ctrl socket is blocking: it is read in a worker thread while the UA runs.


@pytest.fixture
def phone(tmp_path: Path, server: ServerKit) -> Iterator[Callable[[str, str], Phone]]:
    """``phone(user, transport)``: one baresip registered through the server."""
    phones: list[Phone] = []

    def make(user: str, transport: str) -> Phone:
        one = start_phone(tmp_path, user, f"{user}-secret", server, transport)
        phones.append(one)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if any(b.aor == one.aor for b in server.registrations()):
                return one
            time.sleep(0.1)
        raise AssertionError(f"{user} (baresip) did not register:\n{one.log()}\n{server.log()}")

    try:
        yield make
    finally:
        for one in phones:
            one.close()


def sipstack_ua(server: ServerKit, user: str, transport: str) -> Any:
    from sipstack.ua import UserAgent

    return UserAgent(
        f"sip:{user}@{DOMAIN}",
        listen=[f"{transport}:{HOST}:0"],
        password=f"{user}-secret",
        proxy=f"sip:{HOST}:{server.port};transport={transport};lr",
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipstack_ua_calls_baresip_and_baresip_hangs_up(
    server: ServerKit, phone: Callable[[str, str], Phone], transport: str
) -> None:
    import asyncio

    bob = await asyncio.to_thread(phone, "bob", transport)
    try:
        async with sipstack_ua(server, "alice", transport) as alice:
            call = await alice.invite(f"sip:bob@{DOMAIN}", timeout=15)
            event = await asyncio.to_thread(bob.ctrl.wait_event, "CALL_ESTABLISHED", 10)
            assert event["direction"] == "incoming" and event["peeruri"] == f"sip:alice@{DOMAIN}", event
            assert call.remote_sdp is not None and call.streams, call.remote_sdp  # baresip's answer
            codecs = {c.name.upper() for s in call.streams for c in s.codecs} if call.streams else set()
            assert codecs, call.streams
            await asyncio.to_thread(bob.ctrl.command, "hangup")
            assert await call.wait_ended(10) == "remote bye"
            await asyncio.to_thread(bob.ctrl.wait_event, "CALL_CLOSED", 10)
        (invite,) = bob.received("INVITE ")
        assert server_via_for(server, transport).match(invite.headers("Via")[0]), invite.text
        assert bob.received("ACK "), bob.log()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- server ---\n{server.log()}\n--- bob ---\n{bob.log()}") from None


def server_via_for(server: ServerKit, transport: str) -> re.Pattern[str]:
    return re.compile(rf"SIP/2\.0/{transport.upper()} {re.escape(HOST)}:{server.port};branch=z9hG4bK")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipstack_call_cli_calls_baresip_and_hangs_up(
    server: ServerKit, phone: Callable[[str, str], Phone], transport: str
) -> None:
    bob = phone("bob", transport)
    cmd = [
        sys.executable, "-m", "sipstack", "call", f"sip:bob@{DOMAIN}", "--duration", "1",
        "--from", f"sip:alice@{DOMAIN}", "--password", "alice-secret",
        "--proxy", f"sip:{HOST}:{server.port}", "--transport", transport, "--json",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=40, stdin=subprocess.DEVNULL)
    evidence = f"\n{done.stdout}\n{done.stderr}\n--- server ---\n{server.log()}\n--- bob ---\n{bob.log()}"
    assert done.returncode == 0, evidence
    doc = json.loads(done.stdout)
    assert doc["status"] == 200 and doc["ended_by"] == "local" and doc["bye_status"] == 200, evidence
    assert "m=audio" in doc["answer_sdp"], evidence
    established = bob.ctrl.wait_event("CALL_ESTABLISHED", 5)
    assert established["peeruri"] == f"sip:alice@{DOMAIN}", established
    bob.ctrl.wait_event("CALL_CLOSED", 5)
    (bye,) = bob.received("BYE ")
    assert server_via_for(server, transport).match(bye.headers("Via")[0]), bye.text


@pytest.mark.parametrize("side", ["sipstack", "baresip"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_calls_a_sipstack_ua(
    server: ServerKit, phone: Callable[[str, str], Phone], transport: str, side: str
) -> None:
    import asyncio

    from sipstack.ua import IncomingCall

    alice = await asyncio.to_thread(phone, "alice", transport)
    calls: list[IncomingCall] = []
    try:
        async with sipstack_ua(server, "bob", transport) as bob:

            @bob.on_call
            async def answer(call: IncomingCall) -> None:
                calls.append(call)
                await call.ring()
                await call.accept()

            await asyncio.wait_for(bob.register(registrar=f"sip:{DOMAIN}", expires=300), 10)
            await asyncio.to_thread(alice.ctrl.command, "dial", f"sip:bob@{DOMAIN}")
            event = await asyncio.to_thread(alice.ctrl.wait_event, "CALL_ESTABLISHED", 15)
            assert event["direction"] == "outgoing", event
            assert event["peeruri"].startswith(f"sip:bob@{DOMAIN}"), event  # baresip adds ;transport=
            (call,) = calls
            assert call.established and call.remote_sdp is not None and call.streams, call
            if side == "sipstack":
                response = await asyncio.wait_for(call.bye(), 10)
                assert response.status_code == 200, response
            else:
                await asyncio.to_thread(alice.ctrl.command, "hangup")
                assert await call.wait_ended(10) == "remote bye"
            await asyncio.to_thread(alice.ctrl.wait_event, "CALL_CLOSED", 10)
        assert alice.received("SIP/2.0 180") and alice.received("SIP/2.0 200"), alice.log()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- server ---\n{server.log()}\n--- alice ---\n{alice.log()}") from None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_calls_an_auto_answer_ua(
    server: ServerKit, phone: Callable[[str, str], Phone], transport: str
) -> None:
    """``UserAgent(auto_answer=True)`` and no handler: the call is answered at once (200 with
    the SDP answer), and baresip hangs up."""
    import asyncio

    from sipstack.ua import UserAgent

    alice = await asyncio.to_thread(phone, "alice", transport)
    try:
        async with UserAgent(
            f"sip:bob@{DOMAIN}",
            listen=[f"{transport}:{HOST}:0"],
            password="bob-secret",
            proxy=f"sip:{HOST}:{server.port};transport={transport};lr",
            auto_answer=True,
        ) as bob:
            await asyncio.wait_for(bob.register(registrar=f"sip:{DOMAIN}", expires=300), 10)
            await asyncio.to_thread(alice.ctrl.command, "dial", f"sip:bob@{DOMAIN}")
            event = await asyncio.to_thread(alice.ctrl.wait_event, "CALL_ESTABLISHED", 15)
            assert event["direction"] == "outgoing", event
            (call,) = bob.calls
            assert call.established and call.streams and call.streams[0].accepted, call
            await asyncio.to_thread(alice.ctrl.command, "hangup")
            assert await call.wait_ended(10) == "remote bye"
            await asyncio.to_thread(alice.ctrl.wait_event, "CALL_CLOSED", 10)
        assert alice.received("SIP/2.0 200") and not alice.received("SIP/2.0 180"), alice.log()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- server ---\n{server.log()}\n--- alice ---\n{alice.log()}") from None
