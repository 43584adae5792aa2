"""The routing hook (``[proxy] routing = "module:function"``): Reply, redirect, Forward,
Authenticate, coroutine functions, failures answered 500, and load errors."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sipkit import (
    HOST,
    ServeProcess,
    Uas,
    UdpClient,
    add_user,
    digest_credentials,
    free_port,
    register,
    run_cli,
    server_config,
    sip_request,
    udp_port,
    with_header,
)

from sipstack.message import Response
from sipstack.server import Server

MakeServer = Callable[..., Awaitable[Server]]
MakeUas = Callable[..., Awaitable[Uas]]

SYNC_ROUTES = """
from sipstack.server.hook import Authenticate, Forward, Reply, redirect

SEEN = []

def route(call):
    SEEN.append(call.method)
    user = call.to_user
    if user == "busy":
        return Reply(486)
    if user == "old":
        return redirect("sip:new@example.org", "sip:new@192.0.2.1:5080;transport=tcp")
    if user == "fwd":
        return Forward("sip:fwd@127.0.0.1:{port}")
    if user == "fork":
        return Forward("sip:a@127.0.0.1:{busy_port}", "sip:b@127.0.0.1:{port}")
    if user == "secure":
        return Authenticate()
    if user == "boom":
        raise RuntimeError("a bug in the routing script")
    if user == "junk":
        return "sip:somewhere.example"
    if user == "echo":
        seen = "|".join([
            call.method, call.ruri, call.from_user, call.from_domain, call.to_user, call.to_domain,
            call.header("subject") or "-", ",".join(call.header_values("x-multi")), call.source.transport,
        ])
        return Reply(480, "Seen By Hook", headers=[("X-Seen", seen)])
    return None
"""

ASYNC_ROUTES = """
import asyncio
from sipstack.server.hook import Forward, Reply

async def route(call):
    await asyncio.sleep(0.05)
    if call.to_user == "fwd":
        return Forward("sip:fwd@127.0.0.1:{port}")
    if call.to_user == "boom":
        raise ValueError("async routing bug")
    if call.to_user == "junk":
        return 42
    return Reply(403, "Async Says No")
"""


async def message(client: UdpClient, server: Server, to: str, **kwargs: object) -> Response:
    request = sip_request("MESSAGE", to, local_port=client.port, body=b"hi", **kwargs)  # type: ignore[arg-type]
    response = await client.arequest(request, udp_port(server))
    assert response is not None, f"no answer to MESSAGE {to}"
    return response


@pytest.fixture
async def hooked(
    make_server: MakeServer,
    make_uas: MakeUas,
    routing_module: Callable[[str], str],
) -> tuple[Server, Uas, Uas]:
    """A server whose routing function is SYNC_ROUTES, a UAS answering 200 and one answering 486."""
    uas = await make_uas(200)
    busy = await make_uas(486)
    name = routing_module(SYNC_ROUTES.replace("{port}", str(uas.port)).replace("{busy_port}", str(busy.port)))
    server = await make_server(routing=f"{name}:route")
    return server, uas, busy


async def test_reply_486_for_busy_user(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, uas, _ = hooked
    response = await message(udp_client(), server, "sip:busy@localhost")
    assert (response.status_code, response.reason) == (486, "Busy Here")
    assert response.to.tag  # a final response from the proxy carries its To tag
    assert uas.seen == []


async def test_redirect_answers_302_with_contacts(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, uas, _ = hooked
    response = await message(udp_client(), server, "sip:old@localhost")
    assert response.status_code == 302
    contacts = [str(c.uri) for c in response.contact]
    assert contacts == ["sip:new@example.org", "sip:new@192.0.2.1:5080;transport=tcp"]
    assert uas.seen == []


async def test_forward_proxies_to_the_target_and_returns_its_answer(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, uas, _ = hooked
    response = await message(udp_client(), server, "sip:fwd@localhost")
    assert response.status_code == 200
    assert response.header("x-answered-by") == f"uas-{uas.port}"
    assert len(response.via) == 1  # the proxy's own Via was taken off (§16.7 step 3)
    (forwarded,) = uas.seen
    assert forwarded.uri_text == f"sip:fwd@{HOST}:{uas.port}"  # the Request-URI is the target
    assert forwarded.max_forwards == 69
    assert len(forwarded.via) == 2 and forwarded.via[0].port == udp_port(server)
    assert forwarded.body == b"hi"


async def test_forward_to_two_targets_forks_and_returns_the_best_answer(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, uas, busy = hooked
    response = await message(udp_client(), server, "sip:fork@localhost")
    assert response.status_code == 200
    assert len(uas.seen) == 1 and len(busy.seen) == 1


async def test_authenticate_challenges_then_routes_by_default(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, uas, _ = hooked
    await add_user(server, "alice@localhost", "wonderland")
    await add_user(server, "secure@localhost", "s3cure")
    client = udp_client()
    port = udp_port(server)
    registered = await _register(client, port, "secure@localhost", uas.uri, "s3cure")
    assert registered.status_code == 200

    request = sip_request("MESSAGE", "sip:secure@localhost", local_port=client.port, body=b"hi")
    challenged = await client.arequest(request, port)
    assert challenged is not None and challenged.status_code == 407
    assert challenged.proxy_authenticate and uas.seen == []
    credentials = digest_credentials(
        challenged, method="MESSAGE", uri="sip:secure@localhost", username="alice", password="wonderland"
    )
    response = await client.arequest(with_header(request, "Proxy-Authorization", credentials), port)
    assert response is not None and response.status_code == 200
    assert [r.uri_text for r in uas.seen] == [uas.uri]  # the binding of secure@localhost


async def test_exception_in_routing_function_is_answered_500(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, uas, _ = hooked
    response = await message(udp_client(), server, "sip:boom@localhost")
    assert response.status_code == 500
    assert uas.seen == []


async def test_junk_decision_is_answered_500(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, _, _ = hooked
    response = await message(udp_client(), server, "sip:junk@localhost")
    assert response.status_code == 500


async def test_none_routes_by_default(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, _, _ = hooked
    response = await message(udp_client(), server, "sip:nobody@localhost")
    assert response.status_code == 404  # the location service knows no such user


async def test_call_exposes_the_request(
    hooked: tuple[Server, Uas, Uas], udp_client: Callable[[], UdpClient]
) -> None:
    server, _, _ = hooked
    response = await message(
        udp_client(),
        server,
        "sip:echo@Example.COM;transport=udp",
        from_uri="sip:carol@Other.Example",
        headers=[("Subject", "lunch"), ("X-Multi", "1"), ("X-Multi", "2")],
    )
    assert (response.status_code, response.reason) == (480, "Seen By Hook")
    assert response.header("x-seen") == (
        "MESSAGE|sip:echo@Example.COM;transport=udp|carol|other.example|echo|example.com|lunch|1,2|UDP"
    )


async def test_register_and_options_for_the_server_do_not_reach_the_hook(
    make_server: MakeServer, routing_module: Callable[[str], str], udp_client: Callable[[], UdpClient]
) -> None:
    name = routing_module("def route(call):\n    raise RuntimeError('must not be called')\n")
    server = await make_server(routing=f"{name}:route", auth=False)
    client = udp_client()
    port = udp_port(server)
    registered = await _register(client, port, "dave@localhost", "sip:dave@127.0.0.1:5999", None)
    assert registered.status_code == 200
    options = await client.arequest(
        sip_request("OPTIONS", f"sip:{HOST}:{port}", local_port=client.port), port
    )
    assert options is not None and options.status_code == 200


@pytest.mark.parametrize(
    ("user", "status", "reason"),
    [("other", 403, "Async Says No"), ("boom", 500, None), ("junk", 500, None)],
)
async def test_coroutine_routing_function(
    make_server: MakeServer,
    make_uas: MakeUas,
    routing_module: Callable[[str], str],
    udp_client: Callable[[], UdpClient],
    user: str,
    status: int,
    reason: str | None,
) -> None:
    uas = await make_uas(200)
    name = routing_module(ASYNC_ROUTES.replace("{port}", str(uas.port)))
    server = await make_server(routing=f"{name}:route")
    response = await message(udp_client(), server, f"sip:{user}@localhost")
    assert response.status_code == status
    if reason:
        assert response.reason == reason


async def test_coroutine_routing_function_forward(
    make_server: MakeServer,
    make_uas: MakeUas,
    routing_module: Callable[[str], str],
    udp_client: Callable[[], UdpClient],
) -> None:
    uas = await make_uas(200)
    name = routing_module(ASYNC_ROUTES.replace("{port}", str(uas.port)))
    server = await make_server(routing=f"{name}:route")
    response = await message(udp_client(), server, "sip:fwd@localhost")
    assert response.status_code == 200 and len(uas.seen) == 1


# -- loading -----------------------------------------------------------------------------------


def test_server_with_missing_module_or_function_raises_import_error(
    tmp_path: Path, routing_module: Callable[[str], str]
) -> None:
    with pytest.raises(ImportError, match="nosuchmodule"):
        Server(server_config(tmp_path / "d", routing="nosuchmodule:f"))
    name = routing_module("def route(call):\n    return None\n\nNOT_CALLABLE = 1\n")
    with pytest.raises(ImportError, match="no function 'missing'"):
        Server(server_config(tmp_path / "d", routing=f"{name}:missing"))
    with pytest.raises(ImportError, match="NOT_CALLABLE"):
        Server(server_config(tmp_path / "d", routing=f"{name}:NOT_CALLABLE"))


@pytest.mark.parametrize(
    ("routing", "module_source", "needle"),
    [
        ("nosuchmodule:f", None, "cannot import 'nosuchmodule'"),
        ("myroutes:nothere", "def route(call):\n    return None\n", "no function 'nothere'"),
        ("brokenroutes:route", "import nosuchdependency\n", "nosuchdependency"),
    ],
)
def test_serve_with_bad_routing_exits_2_with_a_clear_message(
    tmp_path: Path, routing: str, module_source: str | None, needle: str
) -> None:
    if module_source is not None:
        (tmp_path / f"{routing.split(':')[0]}.py").write_text(module_source)
    port = free_port()
    (tmp_path / "server.toml").write_text(
        textwrap.dedent(
            f"""\
            listen = ["udp:{HOST}:{port}"]
            [proxy]
            routing = "{routing}"
            """
        )
    )
    done = run_cli("serve", "--config", "server.toml", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "sipstack serve: cannot start: routing:" in done.stderr
    assert needle in done.stderr and "Traceback" not in done.stderr


def test_serve_finds_routing_module_next_to_the_config(
    tmp_path: Path, serve: Callable[..., ServeProcess]
) -> None:
    """The module is looked up in the working directory (like uvicorn's --app-dir .)."""
    (tmp_path / "localroutes.py").write_text(
        "from sipstack.server.hook import Reply\n\ndef route(call):\n    return Reply(488, 'From Module')\n"
    )
    port = free_port()
    (tmp_path / "server.toml").write_text(
        f'listen = ["udp:{HOST}:{port}"]\n[proxy]\nrouting = "localroutes:route"\n'
    )
    process = serve("--config", "server.toml", "--data-dir", str(tmp_path / "data"), "--no-auth")
    assert process.wait_options(port), process.log()
    with UdpClient() as client:
        request = sip_request("MESSAGE", "sip:x@localhost", local_port=client.port, body=b"x")
        response = client.request(request, port)
    assert response is not None and (response.status_code, response.reason) == (488, "From Module")


async def _register(client: UdpClient, port: int, aor: str, contact: str, password: str | None) -> Response:
    return await asyncio.to_thread(register, client, port, aor, contact, password=password)
