"""Fixtures of the server tests (helpers in ``sipkit.py``). Everything a fixture starts —
in-process servers and endpoints, sockets, ``sipstack serve`` children — is stopped on
teardown; child processes by PID only."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sipkit import HOST, ServeProcess, Uas, UdpClient, new_id, server_config

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.server import Server


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Start in-process :class:`Server` objects on fresh ports (config overrides as keywords);
    all are stopped on teardown."""
    servers: list[Server] = []

    async def make(**overrides: Any) -> Server:
        data_dir = overrides.pop("data_dir", tmp_path / f"data{len(servers)}")
        server = Server(server_config(data_dir, **overrides))
        servers.append(server)
        await server.start()
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def make_uas() -> AsyncIterator[Callable[..., Awaitable[Uas]]]:
    """In-process endpoints answering ``status`` (after ``delay`` seconds) to any request."""
    made: list[Uas] = []

    async def make(status: int = 200, delay: float = 0.0) -> Uas:
        endpoint = Endpoint(user_agent="test-uas")
        address = await endpoint.listen(f"udp:{HOST}:0")
        uas = Uas(endpoint, address.port)

        async def answer(incoming: IncomingRequest) -> None:
            uas.seen.append(incoming.request)
            if incoming.transaction is None:
                return
            if delay:
                await asyncio.sleep(delay)
            incoming.respond(status, headers=[("X-Answered-By", f"uas-{address.port}")])

        endpoint.on_request(answer)
        made.append(uas)
        return uas

    yield make
    for uas in made:
        await uas.endpoint.close()


@pytest.fixture
def udp_client() -> Iterator[Callable[[], UdpClient]]:
    clients: list[UdpClient] = []

    def make() -> UdpClient:
        client = UdpClient()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def routing_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a routing module into ``tmp_path`` (importable: it is put on sys.path) under a
    fresh name; returns that name. The modules are unloaded on teardown."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(source: str) -> str:
        name = f"route_{new_id()}"
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``sipstack serve ARGS`` children (cwd: ``tmp_path`` unless given); all are
    killed by PID on teardown."""
    started: list[ServeProcess] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> ServeProcess:
        process = ServeProcess(list(args), cwd or tmp_path, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill_all()
