"""``sipstack register``, ``sipstack call`` and ``sipstack message``: the user agent on the
command line, run as child processes (``python -m sipstack``) against a real ``sipstack
serve`` child on 127.0.0.1 (users added with ``sipstack user add``, digest authentication
on), with a real :class:`~sipstack.ua.UserAgent` in the test's event loop registered to the
same server as the peer that is called or messaged. Exit codes are those of ``sipstack
options``: 0 a 2xx, 1 another final response, 2 a local error, 3 no final response.

Every child is killed by PID on teardown (the CLI children: on a bounded wait's expiry)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sipkit import HOST, ServeProcess, child_env, free_port, run_cli

from sipstack.message import Request
from sipstack.ua import IncomingCall, UserAgent

DOMAIN = "localhost"


@dataclass
class Server:
    port: int
    data_dir: Path
    process: ServeProcess
    cwd: Path

    @property
    def proxy(self) -> str:
        return f"sip:{HOST}:{self.port}"

    def registrations(self) -> str:
        done = run_cli("registrations", "--data-dir", str(self.data_dir), cwd=self.cwd)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def server(tmp_path: Path, serve: Callable[..., ServeProcess]) -> Server:
    data = tmp_path / "data"
    config = tmp_path / "server.toml"
    config.write_text("[registrar]\nmin_expires = 1\n")  # --stay refreshes within seconds
    for user, password in (("alice", "alice-pw"), ("bob", "bob-pw")):
        done = run_cli(
            "user", "add", f"{user}@{DOMAIN}", "--password", password, "--data-dir", str(data), cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    for _ in range(3):
        port = free_port()
        process = serve(
            "--listen", f"udp:{HOST}:{port}", "--listen", f"tcp:{HOST}:{port}", "--data-dir", str(data),
            "--config", str(config),
        )  # fmt: skip
        if process.wait_options(port, timeout=15):
            return Server(port, data, process, tmp_path)
        process.kill_all()
    raise AssertionError(f"sipstack serve did not come up:\n{process.log()}")


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> dict:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"exit {self.returncode} after {self.seconds:.2f} s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


async def start_cli(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sipstack",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )


async def finish(proc: asyncio.subprocess.Process, started: float, wall: float = 40.0) -> Done:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), wall)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        raise AssertionError(
            f"sipstack did not finish in {wall} s:\n{out.decode()}\n{err.decode()}"
        ) from None
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode(), time.monotonic() - started)


async def cli(*args: str, cwd: Path, wall: float = 40.0) -> Done:
    started = time.monotonic()
    return await finish(await start_cli(*args, cwd=cwd), started, wall)


@pytest.fixture
async def bob(server: Server) -> AsyncIterator[UserAgent]:
    """bob@localhost: a sipstack UserAgent registered to the server (over UDP)."""
    ua = UserAgent(f"sip:bob@{DOMAIN}", listen=[f"udp:{HOST}:0"], proxy=f"{server.proxy};lr")
    await ua.start()
    try:
        await asyncio.wait_for(ua.register(password="bob-pw", registrar=f"sip:{DOMAIN}", expires=300), 10)
        yield ua
    finally:
        await ua.close()


# -- register -------------------------------------------------------------------------------


async def test_register_prints_expiry_and_the_binding_is_listed(server: Server) -> None:
    done = await cli(
        "register",
        f"sip:alice@{DOMAIN}",
        "--password",
        "alice-pw",
        "--proxy",
        server.proxy,
        "--expires",
        "120",
        cwd=server.cwd,
    )
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert lines[0].startswith("200 OK "), done
    assert lines[1].startswith(f"registered sip:alice@{DOMAIN} as <sip:alice@{HOST}:") and lines[1].endswith(
        " for 120 s"
    ), done
    contact = lines[1].split(" as <", 1)[1].split(">", 1)[0]
    assert lines[2] == f"contact {contact} expires 120", done
    listing = server.registrations()
    assert f"sip:alice@{DOMAIN}\t{contact}\texpires=" in listing, listing
    assert "sipstack/" in listing, listing


async def test_register_wrong_password_exits_1_and_binds_nothing(server: Server) -> None:
    done = await cli(
        "register", f"sip:alice@{DOMAIN}", "--password", "nope", "--proxy", server.proxy, cwd=server.cwd
    )
    assert done.returncode == 1, done
    assert done.stdout.startswith("401 "), done
    assert f"sip:alice@{DOMAIN}" not in server.registrations()


async def test_register_json_then_unregister_removes_every_binding(server: Server) -> None:
    args = ("--password", "alice-pw", "--proxy", server.proxy)
    for _ in range(2):  # two processes, two contacts
        done = await cli("register", f"sip:alice@{DOMAIN}", *args, "--json", cwd=server.cwd)
        assert done.returncode == 0, done
        doc = done.json()
        assert doc["status"] == 200 and doc["exit_code"] == 0 and doc["expires"] == 3600, doc
        assert doc["contact"].startswith(f"<sip:alice@{HOST}:"), doc
    assert len(doc["contacts"]) == 2, doc
    assert server.registrations().count(f"sip:alice@{DOMAIN}\t") == 2
    done = await cli("register", f"sip:alice@{DOMAIN}", *args, "--unregister", "--json", cwd=server.cwd)
    assert done.returncode == 0, done
    assert done.json()["status"] == 200 and done.json()["contacts"] == [], done
    assert f"sip:alice@{DOMAIN}" not in server.registrations()


async def test_register_stay_refreshes_and_unregisters_on_ctrl_c(server: Server) -> None:
    started = time.monotonic()
    proc = await start_cli(
        "register", f"sip:alice@{DOMAIN}", "--password", "alice-pw", "--proxy", server.proxy,
        "--expires", "2", "--stay", cwd=server.cwd,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 15
        while sum(line.startswith("refreshed ") for line in lines) < 2 and time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if not line:
                break
            lines.append(line.decode().rstrip("\n"))
        assert sum(line.startswith("refreshed ") for line in lines) == 2, lines
        assert f"sip:alice@{DOMAIN}\t" in server.registrations()
        os.kill(proc.pid, signal.SIGINT)
        done = await finish(proc, started, 15)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert done.returncode == 130, done
    assert "unregistered <sip:alice@" in done.stdout, done
    assert f"sip:alice@{DOMAIN}" not in server.registrations()


# -- message --------------------------------------------------------------------------------


async def test_message_to_a_registered_ua(server: Server, bob: UserAgent) -> None:
    got: list[Request] = []
    bob.on_message(lambda request: got.append(request) or None)
    done = await cli(
        "message", f"sip:bob@{DOMAIN}", "héllo bob", "--from", f"sip:alice@{DOMAIN}",
        "--password", "alice-pw", "--proxy", server.proxy, "-v", cwd=server.cwd,
    )  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.startswith("200 OK "), done
    (request,) = got
    assert request.body.decode() == "héllo bob"
    assert request.from_.uri.user == "alice" and request.header("content-type").startswith("text/plain")
    # -v: the wire, both ways (the challenge, the authorized MESSAGE, the 200).
    assert "--- sent to udp:127.0.0.1:" in done.stderr and "--- received from udp:127.0.0.1:" in done.stderr
    assert "MESSAGE sip:bob@localhost SIP/2.0" in done.stderr and "SIP/2.0 200 OK" in done.stderr, done


async def test_message_to_unknown_user_exits_1_with_json(server: Server) -> None:
    done = await cli(
        "message", f"sip:nobody@{DOMAIN}", "hi", "--proxy", server.proxy, "--json", cwd=server.cwd
    )
    assert done.returncode == 1, done
    doc = done.json()
    assert doc["status"] == 404 and doc["exit_code"] == 1 and doc["error"] is None, doc


async def test_message_to_a_silent_port_exits_3(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: ICMP port unreachable ends it at once
    done = await cli("message", f"sip:bob@{HOST}:{port}", "hi", "--timeout", "5", cwd=tmp_path)
    assert done.returncode == 3, done
    assert done.stdout.startswith("unreachable "), done
    assert done.seconds < 4.5, done


async def test_local_error_exits_2(tmp_path: Path) -> None:
    done = await cli("register", "sip:localhost", "--password", "x", cwd=tmp_path)
    assert done.returncode == 2 and "needs a user part" in done.stderr, done


# -- call -----------------------------------------------------------------------------------


async def test_call_answered_held_and_hung_up(server: Server, bob: UserAgent) -> None:
    calls: list[IncomingCall] = []

    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        calls.append(call)
        await call.ring()
        await call.accept()

    done = await cli(
        "call", f"sip:bob@{DOMAIN}", "--duration", "0.5", "--proxy", server.proxy, "-v", cwd=server.cwd
    )
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"INVITE sip:bob@{DOMAIN} to udp:{HOST}:{server.port}"), done
    statuses = [int(line.split()[0]) for line in lines[1:] if line[:3].isdigit()]
    assert statuses[:1] == [100] and 180 in statuses and statuses[-1] == 200, done
    assert "answered; holding 0.5 s" in lines and lines[-1].startswith("BYE 200 OK "), done
    (call,) = calls
    assert await call.wait_ended(5) == "remote bye"
    offer = call.invite.body.decode() if call.invite else ""
    assert offer.startswith("v=0") and "m=audio " in offer, offer
    assert "INVITE sip:bob@localhost SIP/2.0" in done.stderr and "ACK sip:bob@" in done.stderr, done
    assert "BYE sip:bob@" in done.stderr, done


async def test_long_call_shows_progress_while_held(server: Server, bob: UserAgent) -> None:
    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        await call.accept()

    done = await cli("call", f"sip:bob@{DOMAIN}", "--duration", "3", "--proxy", server.proxy, cwd=server.cwd)
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    held = lines.index("answered; holding 3 s")
    # A line per second of a 3 s hold (a fifth of it, at least one second), then the BYE.
    assert lines[held + 1 : held + 3] == ["in call: 1 s of 3 s", "in call: 2 s of 3 s"], done
    assert lines[held + 3].startswith("BYE 200 OK "), done


async def test_call_json_and_remote_hangup(server: Server, bob: UserAgent) -> None:
    @bob.on_call
    async def answer(call: IncomingCall) -> None:
        await call.accept()
        await asyncio.sleep(0.3)
        await call.bye()

    done = await cli(
        "call", f"sip:bob@{DOMAIN}", "--duration", "10", "--proxy", server.proxy, "--json", cwd=server.cwd
    )
    assert done.returncode == 0, done
    doc = done.json()
    assert doc["status"] == 200 and doc["answered"] and doc["ended_by"] == "remote", doc
    assert doc["progress"][-1]["status"] == 200 and doc["answer_sdp"].startswith("v=0"), doc
    assert done.seconds < 8, done


async def test_call_rejected_busy_exits_1(server: Server, bob: UserAgent) -> None:
    @bob.on_call
    async def busy(call: IncomingCall) -> None:
        await call.reject(486)

    done = await cli("call", f"sip:bob@{DOMAIN}", "--proxy", server.proxy, cwd=server.cwd)
    assert done.returncode == 1, done
    assert done.stdout.splitlines()[-1].startswith("486 Busy Here "), done


async def test_ctrl_c_while_ringing_sends_cancel(server: Server, bob: UserAgent) -> None:
    calls: list[IncomingCall] = []

    @bob.on_call
    async def ring(call: IncomingCall) -> None:
        calls.append(call)
        await call.ring()

    started = time.monotonic()
    proc = await start_cli("call", f"sip:bob@{DOMAIN}", "--proxy", server.proxy, cwd=server.cwd)
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 10
        while not any(line.startswith("180 ") for line in seen) and time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if not line:
                break
            seen.append(line.decode())
        assert any(line.startswith("180 ") for line in seen), seen
        os.kill(proc.pid, signal.SIGINT)
        done = await finish(proc, started, 15)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert done.returncode == 130, done
    assert "interrupted: CANCEL" in done.stdout and "487 " in done.stdout, done
    (call,) = calls
    assert await call.wait_ended(5) == "cancelled"
