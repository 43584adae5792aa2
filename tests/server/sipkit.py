"""What the server tests share: free ports, SIP over plain loopback sockets, digest answers,
in-process server settings and ``sipstack serve`` child processes (the fixtures that start
and stop them are in ``conftest.py``).

The SIP clients here are deliberately plain (a socket, a request written as text, the answer
parsed with :func:`sipstack.message.parse`) so that the server is judged from the outside.
Child processes are killed by PID only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netkit import free_port
from sipstack.auth import compute_ha1, compute_response, ha1_all
from sipstack.endpoint import Endpoint
from sipstack.message import Request, Response, parse
from sipstack.server import Server, ServerConfig
from sipstack.storage import User
from sipstack.transport.base import ListenSpec

HOST = "127.0.0.1"


def new_id() -> str:
    return secrets.token_hex(6)


# -- building requests -------------------------------------------------------------------------


def sip_request(
    method: str,
    ruri: str,
    *,
    local_port: int,
    transport: str = "UDP",
    from_uri: str = "sip:alice@localhost",
    to_uri: str | None = None,
    to_tag: str | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    branch: str | None = None,
    contact: str | None = None,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> bytes:
    """A request as a client at ``127.0.0.1:local_port`` writes it (Via with rport)."""
    to_value = f"<{to_uri or ruri}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {HOST}:{local_port};branch={branch or 'z9hG4bK' + new_id()};rport",
        "Max-Forwards: 70",
        f"From: <{from_uri}>;tag={new_id()}",
        f"To: {to_value}",
        f"Call-ID: {call_id or new_id() + '@test'}",
        f"CSeq: {cseq} {method}",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append("Content-Type: text/plain")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ack_for(request: bytes, response: Response) -> bytes:
    """The ACK of a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3)."""
    sent = parse(request)
    assert isinstance(sent, Request)
    lines = [
        f"ACK {sent.uri_text} SIP/2.0",
        f"Via: {sent.header('via')}",
        "Max-Forwards: 70",
        f"From: {sent.header('from')}",
        f"To: {response.header('to')}",
        f"Call-ID: {sent.call_id}",
        f"CSeq: {sent.cseq.seq} ACK",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def with_header(request: bytes, name: str, value: str, *, new_branch: bool = True) -> bytes:
    """``request`` with one more header (and a new Via branch: it is a new transaction) and
    its CSeq number raised by one."""
    parsed = parse(request)
    assert isinstance(parsed, Request)
    parsed.add_header(name, value)
    parsed.set_header("CSeq", f"{parsed.cseq.seq + 1} {parsed.method}")
    if new_branch:
        via = parsed.header("via") or ""
        head, _, _ = via.partition(";branch=")
        parsed.set_first_value("Via", f"{head};branch=z9hG4bK{new_id()};rport")
    return bytes(parsed)


# -- digest ------------------------------------------------------------------------------------


def digest_credentials(
    challenge_response: Response,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    algorithm: str | None = None,
    proxy: bool = True,
) -> str:
    """Credentials answering the response's challenge (Proxy-Authenticate or WWW-Authenticate)
    for ``algorithm`` (default: the first offered), qop=auth, computed with sipstack.auth."""
    challenges = challenge_response.proxy_authenticate if proxy else challenge_response.www_authenticate
    assert challenges, f"no challenge in {challenge_response.status_code}"
    chosen = challenges[0]
    if algorithm is not None:
        matches = [c for c in challenges if c.params.get("algorithm", "MD5").upper() == algorithm.upper()]
        assert matches, f"{algorithm} not offered"
        chosen = matches[0]
    alg = chosen.params.get("algorithm", "MD5")
    realm, nonce = chosen.params["realm"], chosen.params["nonce"]
    cnonce, nc = new_id(), "00000001"
    response = compute_response(
        algorithm=alg,
        ha1=compute_ha1(username, realm, password, alg),
        nonce=nonce,
        method=method,
        uri=uri,
        qop="auth",
        nc=nc,
        cnonce=cnonce,
    )
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={alg}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )


# -- plain clients -----------------------------------------------------------------------------


class UdpClient:
    """One UDP socket on 127.0.0.1 (its own source port), blocking, with timeouts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    def receive(self, timeout: float) -> Response | None:
        """The next response (requests and junk are skipped), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except (TimeoutError, BlockingIOError):
                return None
            try:
                message = parse(data, strict=False)
            except ValueError:
                continue
            if isinstance(message, Response):
                return message
        return None

    def request(
        self, data: bytes, port: int, *, timeout: float = 5.0, retransmit: float = 0.5
    ) -> Response | None:
        """Send ``data`` and return the final response of its transaction (matched by
        Call-ID and CSeq), retransmitting like Timer E until a provisional comes; None after
        ``timeout``."""
        sent = parse(data)
        assert isinstance(sent, Request)
        self.send(data, port)
        deadline = time.monotonic() + timeout
        next_send = time.monotonic() + retransmit
        provisional = False
        while (now := time.monotonic()) < deadline:
            response = self.receive(min(deadline, next_send) - now if not provisional else deadline - now)
            if response is None:
                if not provisional and time.monotonic() >= next_send and time.monotonic() < deadline:
                    self.send(data, port)
                    next_send = time.monotonic() + retransmit
                continue
            if response.call_id != sent.call_id or response.cseq.seq != sent.cseq.seq:
                continue
            if response.status_code < 200:
                provisional = True
                continue
            return response
        return None

    async def arequest(self, data: bytes, port: int, *, timeout: float = 5.0) -> Response | None:
        """:meth:`request` in a thread, for tests whose event loop runs the server."""
        return await asyncio.to_thread(self.request, data, port, timeout=timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tcp_request(data: bytes, port: int, *, timeout: float = 5.0) -> Response | None:
    """Send ``data`` over a new TCP connection; the first final response read, or None."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        buffer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\r\n\r\n" in buffer:
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() in (b"content-length", b"l"):
                        length = int(value.strip())
                if len(rest) < length:
                    break
                message = parse(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                if isinstance(message, Response) and message.status_code >= 200:
                    return message
            try:
                chunk = sock.recv(65535)
            except TimeoutError:
                return None
            if not chunk:
                return None
            buffer += chunk
    return None


def register(
    client: UdpClient,
    port: int,
    aor: str,
    contact: str,
    *,
    password: str | None = None,
    expires: int = 600,
) -> Response:
    """REGISTER ``contact`` for ``aor`` (``user@domain``) from ``client``, answering one 401
    with ``password`` when given; the final response."""
    user, _, domain = aor.partition("@")
    ruri = f"sip:{domain}"
    call_id = new_id() + "@reg"
    request = sip_request(
        "REGISTER",
        ruri,
        local_port=client.port,
        from_uri=f"sip:{aor}",
        to_uri=f"sip:{aor}",
        call_id=call_id,
        contact=f"<{contact}>",
        headers=[("Expires", str(expires))],
    )
    response = client.request(request, port)
    assert response is not None, "no answer to REGISTER"
    if response.status_code == 401 and password is not None:
        credentials = digest_credentials(
            response, method="REGISTER", uri=ruri, username=user, password=password, proxy=False
        )
        response = client.request(with_header(request, "Authorization", credentials), port)
        assert response is not None, "no answer to the authenticated REGISTER"
    return response


# -- in-process servers and endpoints ----------------------------------------------------------


def udp_port(server: Server) -> int:
    return ListenSpec.parse(server.config.listen[0]).port


def server_config(data_dir: Path, port: int | None = None, **overrides: Any) -> ServerConfig:
    port = port or free_port()
    base = ServerConfig(
        listen=(f"udp:{HOST}:{port}", f"tcp:{HOST}:{port}"), data_dir=str(data_dir), log_level="warning"
    )
    return replace(base, **overrides).validate()


async def add_user(server: Server, aor: str, password: str) -> None:
    """Store a user the way ``sipstack user add`` does (realm = domain)."""
    assert server.store is not None
    username, _, domain = aor.partition("@")
    await server.store.put_user(User(aor, username, domain, ha1_all(username, domain, password)))


@dataclass
class Uas:
    """An in-process sipstack endpoint that answers every request."""

    endpoint: Endpoint
    port: int
    seen: list[Request] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"sip:{HOST}:{self.port}"


# -- ``sipstack serve`` as a child process -----------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPSTACK_")}
    env.update(extra)
    return env


def sipstack_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sipstack", *args]


def run_cli(*args: str, cwd: Path, timeout: float = 20.0, **env: str) -> subprocess.CompletedProcess[str]:
    """``sipstack ARGS`` to completion (killed by subprocess.run after ``timeout``)."""
    return subprocess.run(
        sipstack_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env=child_env(**env),
    )


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class ServeProcess:
    """One ``sipstack serve ARGS`` child, its stderr in a file. :meth:`kill_all` SIGKILLs it
    and every PID recorded in :attr:`pids` (its workers) by PID."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = cwd / f"serve-{new_id()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            sipstack_command("serve", *args),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(**(env or {})),
        )
        self.pids: set[int] = set()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, *needles: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if all(n in text for n in needles):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def wait_options(self, port: int, timeout: float = 20.0) -> bool:
        """Until an OPTIONS over UDP to the server itself is answered 200."""
        deadline = time.monotonic() + timeout
        with UdpClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                request = sip_request("OPTIONS", f"sip:{HOST}:{port}", local_port=client.port)
                response = client.request(request, port, timeout=0.3, retransmit=0.3)
                if response is not None and response.status_code == 200:
                    return True
        return False

    def record_children(self) -> list[int]:
        kids = children_of(self.proc.pid)
        self.pids.update(kids)
        return kids

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def kill_all(self) -> None:
        for pid in [self.proc.pid, *self.pids]:
            if pid == self.proc.pid and self.proc.poll() is not None:
                continue
            if process_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()
