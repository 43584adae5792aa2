"""``sipstack serve --workers 2``: a supervisor and two SO_REUSEPORT workers sharing UDP and
TCP ports and one data directory. Registrations made through either worker are seen by both;
responses to proxied requests reach the worker holding the transaction (each sends its
requests from a private UDP port); a dead worker is replaced; SIGTERM stops everything."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sipkit import (
    HOST,
    ServeProcess,
    UdpClient,
    ack_for,
    free_port,
    new_id,
    process_alive,
    register,
    run_cli,
    sip_request,
    tcp_request,
)

from sipstack.message import Request, make_response, parse

READY = ("worker 1 of 2 ready", "worker 2 of 2 ready")


def start_cluster(workdir: Path, env: dict[str, str] | None = None) -> tuple[ServeProcess, int]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = ServeProcess(
        [
            "--workers",
            "2",
            "--listen",
            f"udp:{HOST}:{port}",
            "--listen",
            f"tcp:{HOST}:{port}",
            "--no-auth",
            "--data-dir",
            str(workdir / "data"),
        ],
        workdir,
        env,
    )
    if not process.wait_log(*READY, timeout=30):
        process.kill_all()
        raise AssertionError(f"workers did not come up:\n{process.log()[-4000:]}")
    process.record_children()
    assert len(process.pids) >= 2, process.pids
    return process, port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, int]]:
    process, port = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield process, port
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.proc.wait(12)
    process.kill_all()


class Responder(threading.Thread):
    """A UDP endpoint in a thread answering 200 to every request; records the source ports
    the requests came from."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.client = UdpClient()
        self.client.sock.settimeout(0.2)
        self.sources: list[int] = []
        self._halt = threading.Event()

    @property
    def uri(self) -> str:
        return f"sip:bob@{HOST}:{self.client.port}"

    def run(self) -> None:
        sock = self.client.sock
        while not self._halt.is_set():
            try:
                data, source = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            try:
                message = parse(data)
            except ValueError:
                continue
            if not isinstance(message, Request) or message.method == "ACK":
                continue
            self.sources.append(source[1])
            response = make_response(message, 200, to_tag="resp-" + new_id())
            sock.sendto(bytes(response), source)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.client.close()


def test_bindings_registered_through_either_worker_are_visible_to_both(
    cluster: tuple[ServeProcess, int],
) -> None:
    process, port = cluster
    users = [f"w{new_id()}" for _ in range(50)]
    clients = [UdpClient() for _ in users]
    try:
        # All 50 at once, each from its own source port: the kernel spreads them by 4-tuple.
        requests = []
        for user, client in zip(users, clients, strict=True):
            request = sip_request(
                "REGISTER",
                "sip:localhost",
                local_port=client.port,
                from_uri=f"sip:{user}@localhost",
                to_uri=f"sip:{user}@localhost",
                contact=f"<sip:{user}@{HOST}:{client.port}>",
                headers=[("Expires", "600")],
            )
            requests.append(request)
            client.send(request, port)
        for request, client in zip(requests, clients, strict=True):
            response = client.request(request, port, timeout=5)  # a retransmission is harmless
            assert response is not None and response.status_code == 200
    finally:
        for client in clients:
            client.close()
    log = process.log()
    served_by = set(re.findall(r"sipstack\.registrar\[(w\d)\]: REGISTER sip:w", log))
    assert served_by == {"w1", "w2"}, "the kernel did not spread the REGISTERs over both workers"

    for user in users:
        with UdpClient() as query:
            request = sip_request(
                "REGISTER",
                "sip:localhost",
                local_port=query.port,
                from_uri=f"sip:{user}@localhost",
                to_uri=f"sip:{user}@localhost",
            )
            response = query.request(request, port, timeout=5)
        assert response is not None and response.status_code == 200
        contacts = [str(c.uri) for c in response.contact]
        assert len(contacts) == 1 and contacts[0].startswith(f"sip:{user}@{HOST}:"), (user, contacts)


def test_options_over_tcp(cluster: tuple[ServeProcess, int]) -> None:
    _, port = cluster
    for _ in range(4):
        request = sip_request("OPTIONS", f"sip:{HOST}:{port}", local_port=port, transport="TCP")
        response = tcp_request(request, port)
        assert response is not None and response.status_code == 200
        assert "REGISTER" in (response.header("allow") or "")


def test_proxied_responses_reach_the_worker_holding_the_transaction(
    cluster: tuple[ServeProcess, int],
) -> None:
    _, port = cluster
    responder = Responder()
    responder.start()
    try:
        with UdpClient() as client:
            registered = register(client, port, "bob@localhost", responder.uri)
        assert registered.status_code == 200
        answered = 0
        for i in range(30):
            with UdpClient() as client:
                request = sip_request(
                    "MESSAGE", "sip:bob@localhost", local_port=client.port, body=f"m{i}".encode()
                )
                response = client.request(request, port, timeout=4)
            assert response is not None, f"MESSAGE {i}: no answer (the 200 went to the wrong worker?)"
            assert response.status_code == 200, f"MESSAGE {i}: {response.status_code}"
            answered += 1
        assert answered == 30
        # The requests left from the workers' private ports (not the shared one), both of them.
        private = set(responder.sources)
        assert port not in private
        assert len(private) == 2, f"requests came from {sorted(private)}: expected one port per worker"
    finally:
        responder.stop()


def test_dead_worker_is_replaced_and_sigterm_stops_everything(tmp_path: Path) -> None:
    process, port = start_cluster(tmp_path)
    try:
        workers = [pid for pid in process.pids if _is_worker(pid)]
        assert len(workers) == 2, {pid: _cmdline(pid) for pid in process.pids}
        # A worker killed outright is replaced (the supervisor restarts it).
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.log().count(" of 2 ready") < 3:
            time.sleep(0.1)
        assert process.log().count(" of 2 ready") >= 3, process.log()[-3000:]
        process.record_children()
        with UdpClient() as client:
            request = sip_request("OPTIONS", f"sip:{HOST}:{port}", local_port=client.port)
            response = client.request(request, port, timeout=3)
        assert response is not None and response.status_code == 200

        children = set(process.record_children())
        assert len(children) >= 2
        started = time.monotonic()
        process.terminate()
        status = process.proc.wait(12)
        elapsed = time.monotonic() - started
        assert status == 0, process.log()[-3000:]
        assert elapsed < 12
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(process_alive(pid) for pid in children):
            time.sleep(0.05)
        left = {pid: _cmdline(pid) for pid in children if process_alive(pid)}
        assert not left, f"processes left after SIGTERM: {left}"
    finally:
        process.kill_all()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_worker(pid: int) -> bool:
    """A multiprocessing spawn child that is not the resource tracker."""
    cmdline = _cmdline(pid)
    return "spawn_main" in cmdline and "resource_tracker" not in cmdline


def test_bad_routing_module_with_workers_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "server.toml").write_text(
        f'workers = 2\nlisten = ["udp:{HOST}:{port}"]\n[proxy]\nrouting = "nosuchmodule:f"\n'
    )
    done = run_cli("serve", "--config", "server.toml", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot import 'nosuchmodule'" in done.stderr and "Traceback" not in done.stderr


class RingingResponder(Responder):
    """Answers an INVITE with 180 and holds it; a CANCEL gets 200 and the INVITE 487."""

    def run(self) -> None:
        sock = self.client.sock
        pending: dict[str, Request] = {}
        while not self._halt.is_set():
            try:
                data, source = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            message = parse(data)
            if not isinstance(message, Request) or message.method == "ACK":
                continue
            if message.method == "INVITE":
                pending[message.call_id] = message
                sock.sendto(bytes(make_response(message, 180, to_tag="ring")), source)
            elif message.method == "CANCEL":
                sock.sendto(bytes(make_response(message, 200, to_tag="ring")), source)
                invite = pending.pop(message.call_id, None)
                if invite is not None:
                    sock.sendto(bytes(make_response(invite, 487, to_tag="ring")), source)
            else:
                sock.sendto(bytes(make_response(message, 200, to_tag="ok")), source)


@pytest.mark.parametrize("steering", ["branch", "relay"])
def test_one_sources_calls_are_spread_over_both_workers_and_cancel_meets_its_invite(
    tmp_path: Path, steering: str
) -> None:
    """Everything from ONE source socket (as from an upstream proxy): the workers share the
    calls, and each call's CANCEL and ACK reach the worker holding its INVITE — steered there
    by the kernel from the Via branch, or (the fallback, forced here) relayed to the worker
    owning the Call-ID, whichever worker the kernel handed them to."""
    process, port = start_cluster(tmp_path, {"SIPSTACK_WORKER_STEERING": steering})
    responder = RingingResponder()
    responder.start()
    try:
        with UdpClient() as client:
            assert register(client, port, "carol@localhost", responder.uri).status_code == 200
            for i in range(24):
                invite = sip_request("INVITE", "sip:carol@localhost", local_port=client.port, cseq=1)
                client.send(invite, port)
                ringing = None
                deadline = time.monotonic() + 5
                while ringing is None and time.monotonic() < deadline:
                    response = client.receive(timeout=1)
                    if response is not None and response.status_code == 180:
                        ringing = response
                assert ringing is not None, f"call {i}: no 180"
                cancel = (
                    invite.decode()
                    .replace("INVITE sip:carol", "CANCEL sip:carol", 1)
                    .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
                    .encode()
                )
                codes: dict[str, int] = {}
                client.send(cancel, port)
                deadline = time.monotonic() + 5
                while len(codes) < 2 and time.monotonic() < deadline:
                    response = client.receive(timeout=1)
                    if response is not None and response.status_code >= 200:
                        codes[response.cseq.method] = response.status_code
                assert codes == {"CANCEL": 200, "INVITE": 487}, f"call {i}: {codes}"
                client.send(ack_for(invite, response), port)
    finally:
        responder.stop()
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.proc.wait(12)
        process.kill_all()
    handled = {
        int(w): int(n) for w, n in re.findall(r"worker (\d): (\d+) request\(s\) handled here", process.log())
    }
    assert set(handled) == {1, 2}, process.log()[-3000:]
    # 1 REGISTER + 24 x (INVITE, CANCEL, ACK): each worker owns some of the calls.
    assert sum(handled.values()) >= 73 and min(handled.values()) >= 3, handled
    relayed = re.findall(r"(\d+) passed to their owner", process.log())
    if steering == "relay":
        assert relayed and sum(map(int, relayed)) > 0, process.log()[-3000:]
    else:
        assert not relayed and "steered by branch" in process.log(), process.log()[-3000:]
