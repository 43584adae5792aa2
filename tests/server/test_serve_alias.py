"""RFC 5923 connection reuse between two ``sipstack serve`` processes over TLS (``[tls]
alias = true``): S1 forwards a request to S2 (its default route) over a TLS connection it
opens with ``alias`` in its Via and its certificate as client certificate; S2 asks for and
verifies that certificate against ``tls.ca``, and sends the next request for S1 (its own
default route) back over that same connection instead of opening one to S1's listener.

Connections are counted with ``ss -tn`` (iproute2) by the listening ports; the children are
killed by PID. Without ``alias`` the same exchange takes two connections (control case)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from sipkit import HOST, ServeProcess, UdpClient, free_port, sip_request

pytestmark = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")


def write_pki(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    paths = {"ca": tmp_path / "ca.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    for name, domain in (("s1", "a.example.test"), ("s2", "b.example.test")):
        leaf = ca.issue_cert(HOST, domain)  # names its sent-by (the IP) and its domain
        paths[f"{name}.crt"] = tmp_path / f"{name}.crt"
        paths[f"{name}.key"] = tmp_path / f"{name}.key"
        paths[f"{name}.crt"].write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(paths[f"{name}.key"]))
    return paths


def config(
    tmp_path: Path, name: str, port: int, domain: str, peer_port: int, pki: dict[str, Path], alias: bool
) -> Path:
    text = f"""
listen = ["udp:{HOST}:{port}", "tls:{HOST}:{port}"]
domains = ["{domain}"]
data_dir = "{tmp_path / f"data-{name}"}"
log_level = "debug"
user_agent = "{name}"

[auth]
enabled = false

[proxy]
default_route = "sip:{HOST}:{peer_port};transport=tls"

[tls]
cert = "{pki[f"{name}.crt"]}"
key = "{pki[f"{name}.key"]}"
ca = "{pki["ca"]}"
alias = {"true" if alias else "false"}
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def connections_to(port: int, ports: tuple[int, ...]) -> int:
    """Established TCP connections whose far end is ``port`` (each loopback connection shows
    once from each end: counting by peer port counts it once), among ``ports``."""
    filters = " or ".join(f"sport = :{p} or dport = :{p}" for p in ports)
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( {filters} )"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    count = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-1].rsplit(":", 1)[-1] == str(port):
            count += 1
    return count


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("alias", [True, False], ids=["alias", "no-alias"])
def test_second_server_sends_back_over_the_first_servers_connection(
    tmp_path: Path, serve: Callable[..., ServeProcess], alias: bool
) -> None:
    pki = write_pki(tmp_path)
    p1, p2 = free_port(), free_port()
    while p2 == p1:
        p2 = free_port()
    s1 = serve("--config", str(config(tmp_path, "s1", p1, "a.example.test", p2, pki, alias)))
    s2 = serve("--config", str(config(tmp_path, "s2", p2, "b.example.test", p1, pki, alias)))
    try:
        assert s1.wait_options(p1, timeout=15), s1.log()
        assert s2.wait_options(p2, timeout=15), s2.log()
        assert connections_to(p1, (p1, p2)) == connections_to(p2, (p1, p2)) == 0
        with UdpClient() as client:
            # 1. Through S1 (b.example.test is not its domain: default route) to S2, which
            #    serves b.example.test and knows no bob: 404 — from S2, over a TLS connection
            #    S1 opened (with alias in its Via).
            request = sip_request(
                "OPTIONS", "sip:bob@b.example.test", local_port=client.port, from_uri="sip:t@c.example.test"
            )
            response = client.request(request, p1, timeout=10)
            assert response is not None and response.status_code == 404, (s1.log(), s2.log())
            assert response.header("server") == "s2"
            assert wait_for(lambda: connections_to(p2, (p1, p2)) == 1)
            assert connections_to(p1, (p1, p2)) == 0
            if alias:
                assert s2.wait_log(f"alias TLS:{HOST}:{p1}", timeout=5), s2.log()

            # 2. Through S2 to S1 (a.example.test, S2's default route): 404 from S1.
            request = sip_request(
                "OPTIONS", "sip:alice@a.example.test", local_port=client.port, from_uri="sip:t@c.example.test"
            )
            response = client.request(request, p2, timeout=10)
            assert response is not None and response.status_code == 404, (s1.log(), s2.log())
            assert response.header("server") == "s1"
        if alias:
            # S2 reused the connection S1 opened: still one connection, none to S1's port.
            assert connections_to(p2, (p1, p2)) == 1
            assert connections_to(p1, (p1, p2)) == 0
        else:
            assert wait_for(lambda: connections_to(p1, (p1, p2)) == 1)
            assert connections_to(p2, (p1, p2)) == 1
            assert "alias TLS" not in s2.log()
    finally:
        s1.kill_all()
        s2.kill_all()
