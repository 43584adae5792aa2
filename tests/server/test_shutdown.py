"""Graceful shutdown of the single-process server on SIGTERM: a request whose (async) routing
function is still running gets its final answer, a new request during the drain gets 503
(RFC 3261 §21.5.4), the TCP listener closes, and the process exits 0."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sipkit import HOST, ServeProcess, UdpClient, free_port, new_id, sip_request

from sipstack.message import Request, Response, make_response, parse

HOOK = """
import asyncio
from pathlib import Path
from sipstack.server.hook import Forward, Reply

async def route(call):
    Path("entered-" + call.to_user).write_text("1")
    if call.to_user == "slowreply":
        await asyncio.sleep(1.0)
        return Reply(486, "Busy After Sleep")
    if call.to_user == "slowforward":
        await asyncio.sleep(1.0)
        return Forward("sip:bob@127.0.0.1:{uas_port}")
    return Reply(480, "Quick")
"""


class SlowUas(threading.Thread):
    """A UDP endpoint in a thread answering 200 to every request after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(daemon=True)
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.received = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            message = parse(data)
            if not isinstance(message, Request) or message.method == "ACK":
                continue
            self.received += 1
            if self._halt.wait(self.delay):
                return
            self.sock.sendto(bytes(make_response(message, 200, to_tag=new_id())), source)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.sock.close()


@pytest.fixture
def uas() -> Iterator[SlowUas]:
    responder = SlowUas(delay=0.3)
    responder.start()
    yield responder
    responder.stop()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def start_server(
    tmp_path: Path, serve: Callable[..., ServeProcess], uas_port: int
) -> tuple[ServeProcess, int]:
    (tmp_path / "slowhook.py").write_text(HOOK.replace("{uas_port}", str(uas_port)))
    port = free_port()
    (tmp_path / "server.toml").write_text(
        f'listen = ["udp:{HOST}:{port}", "tcp:{HOST}:{port}"]\n[proxy]\nrouting = "slowhook:route"\n'
    )
    process = serve("--config", "server.toml", "--no-auth", "--data-dir", str(tmp_path / "data"))
    assert process.wait_options(port), process.log()
    return process, port


def send_in_thread(pool: ThreadPoolExecutor, user: str, port: int, timeout: float) -> Future[Response | None]:
    def run() -> Response | None:
        with UdpClient() as client:
            request = sip_request("MESSAGE", f"sip:{user}@localhost", local_port=client.port, body=b"x")
            return client.request(request, port, timeout=timeout)

    return pool.submit(run)


def wait_for(path: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def assert_new_request_refused(port: int) -> None:
    with UdpClient() as client:
        request = sip_request("MESSAGE", "sip:quick@localhost", local_port=client.port, body=b"y")
        response = client.request(request, port, timeout=2)
    assert response is not None and response.status_code == 503, response and response.status_code
    with pytest.raises(ConnectionRefusedError), socket.create_connection((HOST, port), timeout=1):
        pass  # the TCP listener no longer accepts


def test_sigterm_lets_a_running_routing_function_answer_and_refuses_new_requests(
    tmp_path: Path, serve: Callable[..., ServeProcess], pool: ThreadPoolExecutor, uas: SlowUas
) -> None:
    process, port = start_server(tmp_path, serve, uas.port)
    in_progress = send_in_thread(pool, "slowreply", port, timeout=6)
    wait_for(tmp_path / "entered-slowreply")
    stopped_at = time.monotonic()
    process.terminate()
    time.sleep(0.2)
    assert_new_request_refused(port)
    response = in_progress.result(timeout=8)
    assert response is not None, "the request in progress got no final answer"
    assert (response.status_code, response.reason) == (486, "Busy After Sleep")
    assert process.proc.wait(8) == 0, process.log()
    assert time.monotonic() - stopped_at < 8


def test_sigterm_lets_a_request_forwarded_by_a_running_routing_function_answer(
    tmp_path: Path, serve: Callable[..., ServeProcess], pool: ThreadPoolExecutor, uas: SlowUas
) -> None:
    process, port = start_server(tmp_path, serve, uas.port)
    in_progress = send_in_thread(pool, "slowforward", port, timeout=3)
    wait_for(tmp_path / "entered-slowforward")
    process.terminate()
    time.sleep(0.2)
    assert_new_request_refused(port)
    response = in_progress.result(timeout=5)
    assert process.proc.wait(8) == 0, process.log()
    assert uas.received == 1
    assert response is not None, "the forwarded request got no final answer"
    assert response.status_code == 200
