"""sipsak (Debian package ``sipsak``, 0.9.8.1), a C SIP test tool from the SER/Kamailio
lineage, against ``sipstack serve`` on 127.0.0.1: OPTIONS over UDP and TCP (exit code 0 on a
200), and its usrloc mode (``-U``) registering with digest authentication (a user added with
``sipstack user add``), over UDP and TCP, then removing the binding (``-x 0``); a wrong
password gets no binding.

What sipsak 0.9.8.1 needs, found here:

- Four-digit ports. sipsak writes ``host:port`` into its Request-URI, To and From through
  ``snprintf(buf, strlen(host) + 6, "%s:%i", …)``, so a five-digit port is cut to four digits
  (``sip:127.0.0.1:37728`` goes out as ``sip:127.0.0.1:3772``), though the datagram still goes
  to the right port. The server therefore listens on a free port below 10000.
- MD5 first. sipsak reads only the first WWW-Authenticate and gives up ("unsupported
  authentication algorithm") when it is not MD5, where sipstack offers SHA-512-256, SHA-256,
  MD5 in that order by default (RFC 8760): the server runs with ``--auth-algorithms MD5``,
  as the README says for such clients.
- ``-u USER``: without it sipsak 0.9.8.1 sends ``username="alice@"`` in its credentials.

The server is a ``sipstack serve`` child (tests/interop/serverkit.py) killed by PID on
teardown; each sipsak run is bounded by a wall-clock timeout.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverkit import HOST, ServerKit

SIPSAK = shutil.which("sipsak")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        SIPSAK is None,
        reason="sipsak is not installed (Debian package sipsak: `make debs` as root, "
        "or apt-get install sipsak)",
    ),
]

USER, PASSWORD = "alice", "alice-secret"


def low_port() -> int:
    """A port below 10000 free for both UDP and TCP on 127.0.0.1 (see the module docstring)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(2000, 10000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            try:
                udp.bind((HOST, port))
                tcp.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below 10000")


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[ServerKit]:
    """``sipstack serve --auth-algorithms MD5`` on UDP and TCP, with the user alice@127.0.0.1."""
    last: AssertionError | None = None
    for attempt in range(4):
        server = ServerKit(tmp_path / f"server{attempt}", algorithms="MD5", port=low_port(), ready_timeout=15)
        try:
            server.start()
        except AssertionError as exc:  # the port was taken in the meantime: another one
            last = exc
            continue
        try:
            server.add_user(f"{USER}@{HOST}", PASSWORD)
            yield server
        finally:
            server.close()
        return
    raise AssertionError(f"sipstack serve did not start on a port below 10000: {last}")


def sipsak(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    assert SIPSAK is not None
    return subprocess.run(
        [SIPSAK, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def evidence(run: subprocess.CompletedProcess[str], kit: ServerKit) -> str:
    return (
        f"\n$ {' '.join(run.args)}\nexit {run.returncode}\n--- stdout ---\n{run.stdout[-6000:]}"
        f"\n--- stderr ---\n{run.stderr[-2000:]}\n--- sipstack serve log ---\n{kit.log()}"
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_options(kit: ServerKit, transport: str) -> None:
    """``sipsak -s sip:127.0.0.1:PORT``: the server answers its OPTIONS 200 and sipsak
    exits 0. With -vvv sipsak prints what it sent and received."""
    run = sipsak("-vvv", "-E", transport, "-s", f"sip:{HOST}:{kit.port}")
    assert run.returncode == 0, evidence(run, kit)
    assert f"OPTIONS sip:{HOST}:{kit.port} SIP/2.0" in run.stdout, evidence(run, kit)
    reply = run.stdout[run.stdout.index("SIP/2.0 200 OK") :]
    assert "\nServer: sipstack" in reply and re.search(r"\nCSeq: 1 OPTIONS", reply), evidence(run, kit)
    via = re.search(r"\nVia: SIP/2.0/(\w+) 127\.0\.0\.1:\d+;branch=[^;\r\n]+;rport=(\d+)", reply)
    assert via is not None and via.group(1) == transport.upper(), evidence(run, kit)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_with_digest_then_remove(kit: ServerKit, transport: str) -> None:
    """sipsak's usrloc mode: REGISTER, a 401 with an MD5 challenge, REGISTER with
    credentials, 200 — the binding is listed by ``sipstack registrations``; ``-x 0`` removes
    it again."""
    contact = f"sip:{USER}@{HOST}:7777"
    aor = f"sip:{USER}@{HOST}:{kit.port}"
    common = ["-vv", "-E", transport, "-U", "-u", USER, "-a", PASSWORD, "-C", contact, "-s", aor]
    run = sipsak(*common, "-x", "60")
    assert run.returncode == 0, evidence(run, kit)
    assert "All usrloc tests completed successful" in run.stdout, evidence(run, kit)
    (binding,) = kit.registrations()
    assert (binding.aor, binding.contact) == (f"sip:{USER}@{HOST}", contact), evidence(run, kit)
    assert 55 <= binding.expires <= 60, binding
    assert binding.fields["from"].startswith(f"{transport}:{HOST}:"), binding
    assert re.search(r"\tsipsak [\d.]+$", kit.cli("registrations").stdout.strip()), "User-Agent not kept"
    run = sipsak(*common, "-x", "0")
    assert run.returncode == 0, evidence(run, kit)
    assert kit.registrations() == [], evidence(run, kit)


def test_register_with_a_wrong_password_gets_no_binding(kit: ServerKit) -> None:
    run = sipsak(
        "-U", "-u", USER, "-a", "not-the-password", "-x", "60", "-s", f"sip:{USER}@{HOST}:{kit.port}"
    )
    assert run.returncode != 0, evidence(run, kit)
    assert "authorization failed" in run.stdout + run.stderr, evidence(run, kit)
    assert kit.registrations() == [], evidence(run, kit)
