"""Proxy authentication of local callers (``[proxy] auth_calls = true``, RFC 3261 §22.3):
407 with one Proxy-Authenticate per algorithm (RFC 8760 §2.4), forwarding with the caller's
own credentials, 403 for another identity, no challenge for foreign domains or in-dialog
requests. The callee is a registered contact: an in-process endpoint answering 200."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sipkit import (
    HOST,
    Uas,
    UdpClient,
    ack_for,
    add_user,
    digest_credentials,
    new_id,
    register,
    sip_request,
    udp_port,
    with_header,
)

from sipstack.errors import ConfigurationError
from sipstack.message import Response
from sipstack.server import Server, load_config

MakeServer = Callable[..., Awaitable[Server]]
MakeUas = Callable[..., Awaitable[Uas]]

BOB = "sip:bob@localhost"


@dataclass
class Setup:
    server: Server
    bob: Uas
    client: UdpClient

    @property
    def port(self) -> int:
        return udp_port(self.server)

    async def send(self, request: bytes) -> Response:
        response = await self.client.arequest(request, self.port)
        assert response is not None, "no answer"
        return response

    def message(self, **kwargs: object) -> bytes:
        kwargs.setdefault("body", b"hello bob")
        return sip_request("MESSAGE", BOB, local_port=self.client.port, **kwargs)  # type: ignore[arg-type]


async def setup(make_server: MakeServer, make_uas: MakeUas, client: UdpClient, **config: object) -> Setup:
    server = await make_server(**{"auth_calls": True, **config})
    await add_user(server, "alice@localhost", "wonderland")
    await add_user(server, "bob@localhost", "builder")
    bob = await make_uas(200)
    registered = await asyncio.to_thread(
        register, client, udp_port(server), "bob@localhost", f"sip:bob@{HOST}:{bob.port}", password="builder"
    )
    assert registered.status_code == 200
    return Setup(server, bob, client)


@pytest.fixture
async def env(make_server: MakeServer, make_uas: MakeUas, udp_client: Callable[[], UdpClient]) -> Setup:
    return await setup(make_server, make_uas, udp_client())


async def test_local_caller_without_credentials_gets_407_per_algorithm(env: Setup) -> None:
    response = await env.send(env.message())
    assert response.status_code == 407
    assert response.header("www-authenticate") is None
    challenges = response.proxy_authenticate
    assert [c.params["algorithm"] for c in challenges] == ["SHA-512-256", "SHA-256", "MD5"]
    assert all(c.scheme == "Digest" and c.params["realm"] == "localhost" for c in challenges)
    assert all("auth" in c.params["qop"].split(",") for c in challenges)
    assert env.bob.seen == []


@pytest.mark.parametrize("algorithm", ["SHA-512-256", "SHA-256", "MD5"])
async def test_correct_credentials_are_forwarded_to_the_registered_contact(
    env: Setup, algorithm: str
) -> None:
    request = env.message()
    challenged = await env.send(request)
    credentials = digest_credentials(
        challenged, method="MESSAGE", uri=BOB, username="alice", password="wonderland", algorithm=algorithm
    )
    response = await env.send(with_header(request, "Proxy-Authorization", credentials))
    assert response.status_code == 200
    assert response.header("x-answered-by") == f"uas-{env.bob.port}"
    (forwarded,) = env.bob.seen
    assert forwarded.uri_text == f"sip:bob@{HOST}:{env.bob.port}"
    assert forwarded.body == b"hello bob"


async def test_configured_algorithms_are_the_ones_offered(
    make_server: MakeServer, make_uas: MakeUas, udp_client: Callable[[], UdpClient]
) -> None:
    env = await setup(make_server, make_uas, udp_client(), algorithms=("MD5",))
    response = await env.send(env.message())
    assert response.status_code == 407
    assert [c.params["algorithm"] for c in response.proxy_authenticate] == ["MD5"]


async def test_invite_without_credentials_gets_407_and_is_acked(env: Setup) -> None:
    invite = sip_request(
        "INVITE", BOB, local_port=env.client.port, contact=f"<sip:alice@{HOST}:{env.client.port}>"
    )
    response = await env.send(invite)
    assert response.status_code == 407 and len(response.proxy_authenticate) == 3
    env.client.send(ack_for(invite, response), env.port)  # ends the server transaction (§17.2.1)
    assert env.bob.seen == []


async def test_valid_credentials_for_another_identity_get_403(env: Setup) -> None:
    # bob's own credentials, but From claims alice.
    request = env.message(from_uri="sip:alice@localhost")
    challenged = await env.send(request)
    credentials = digest_credentials(
        challenged, method="MESSAGE", uri=BOB, username="bob", password="builder"
    )
    response = await env.send(with_header(request, "Proxy-Authorization", credentials))
    assert response.status_code == 403
    assert response.header("proxy-authenticate") is None
    assert env.bob.seen == []


async def test_wrong_password_is_challenged_again_and_not_forwarded(env: Setup) -> None:
    request = env.message()
    challenged = await env.send(request)
    credentials = digest_credentials(challenged, method="MESSAGE", uri=BOB, username="alice", password="nope")
    response = await env.send(with_header(request, "Proxy-Authorization", credentials))
    assert response.status_code == 407
    assert env.bob.seen == []


async def test_unknown_user_is_answered_like_a_wrong_password(env: Setup) -> None:
    request = env.message(from_uri="sip:mallory@localhost")
    challenged = await env.send(request)
    credentials = digest_credentials(challenged, method="MESSAGE", uri=BOB, username="mallory", password="x")
    response = await env.send(with_header(request, "Proxy-Authorization", credentials))
    assert response.status_code == 407
    assert env.bob.seen == []


@pytest.mark.parametrize("from_uri", ["sip:carol@example.com", "sip:carol@192.0.2.7"])
async def test_callers_from_foreign_domains_are_not_challenged(env: Setup, from_uri: str) -> None:
    response = await env.send(env.message(from_uri=from_uri))
    assert response.status_code == 200
    assert len(env.bob.seen) == 1


async def test_in_dialog_request_is_not_challenged(env: Setup) -> None:
    """Within a dialog the request is loose-routed through us: our Record-Route came back as
    its Route (RFC 3261 §12.2.1.1); it is not challenged again."""
    route = [("Route", f"<sip:{HOST}:{env.port};lr>")]
    bob = f"sip:bob@{HOST}:{env.bob.port}"
    request = sip_request(
        "MESSAGE", bob, local_port=env.client.port, to_tag="dialog-" + new_id(), cseq=7, headers=route
    )
    response = await env.send(request)
    assert response.status_code == 200
    assert len(env.bob.seen) == 1


async def test_to_tag_alone_does_not_skip_authentication(env: Setup) -> None:
    """A To tag without our Route is no dialog of ours: it must not reach the location
    service unauthenticated."""
    response = await env.send(env.message(to_tag="forged-" + new_id(), cseq=7))
    assert response.status_code == 407
    assert env.bob.seen == []


async def test_auth_calls_off_forwards_local_callers_without_challenge(
    make_server: MakeServer, make_uas: MakeUas, udp_client: Callable[[], UdpClient]
) -> None:
    env = await setup(make_server, make_uas, udp_client(), auth_calls=False)
    response = await env.send(env.message())
    assert response.status_code == 200 and len(env.bob.seen) == 1


async def test_register_is_still_challenged_with_401_not_407(env: Setup) -> None:
    request = sip_request(
        "REGISTER",
        "sip:localhost",
        local_port=env.client.port,
        from_uri="sip:alice@localhost",
        to_uri="sip:alice@localhost",
        contact=f"<sip:alice@{HOST}:{env.client.port}>",
    )
    response = await env.send(request)
    assert response.status_code == 401
    assert response.www_authenticate and not response.proxy_authenticate


async def test_auth_calls_is_not_silently_disabled_by_no_auth(
    tmp_path: Path, make_server: MakeServer, make_uas: MakeUas, udp_client: Callable[[], UdpClient]
) -> None:
    try:
        load_config(None, auth=False, auth_calls=True, data_dir=str(tmp_path / "d"))
    except ConfigurationError as exc:
        assert "auth_calls" in str(exc)
        return
    env = await setup(make_server, make_uas, udp_client(), auth=False)
    response = await env.send(env.message())
    assert response.status_code == 407, "an open relay: the call went through unauthenticated"
