"""Loop detection (RFC 3261 §16.3 step 4, §16.6 step 8) over real sockets: a ``sipstack
serve`` whose default route is itself sends a request for a foreign domain round to itself;
the second time it sees its own Via with the same loop hash and answers 482, which goes back
to the caller."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sipkit import HOST, ServeProcess, UdpClient, sip_request

from netkit import free_port


def start_looping_server(tmp_path: Path, serve: Callable[..., ServeProcess]) -> int:
    port = free_port()
    config = tmp_path / "loop.toml"
    config.write_text(f'[proxy]\ndefault_route = "sip:{HOST}:{port}"\n')
    process = serve(
        "--listen", f"udp:{HOST}:{port}", "--no-auth", "--data-dir", str(tmp_path / "data"),
        "--config", str(config),
    )  # fmt: skip
    assert process.wait_options(port, timeout=20), process.log()
    return port


def test_a_request_routed_back_to_the_proxy_is_answered_482(
    tmp_path: Path, serve: Callable[..., ServeProcess]
) -> None:
    port = start_looping_server(tmp_path, serve)
    with UdpClient() as client:
        for method in ("MESSAGE", "INVITE"):
            request = sip_request(
                method,
                "sip:bob@elsewhere.example",
                local_port=client.port,
                body=b"hi" * (method == "MESSAGE"),
            )
            response = client.request(request, port, timeout=10)
            assert response is not None, f"no final response to the looping {method}"
            assert response.status_code == 482, (method, bytes(response))
            # The 482 came from the second pass and was relayed by the first: one Via left,
            # ours as the client that sent it.
            assert len(response.via) == 1 and response.via[0].port == client.port
