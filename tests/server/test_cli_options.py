"""``sipstack options URI``: the SIP ping, run as a child process (``python -m sipstack``)
against real peers on 127.0.0.1 — a ``sipstack serve`` child, Kamailio (a second,
independent SIP implementation, started per test with a minimal configuration written by
the test), a port where nothing listens and a UDP socket that never answers — checking
what it prints and its exit codes, which follow sipsak's: 0 a 2xx, 1 another final
response, 2 a local error, 3 a remote error (timeout, ICMP unreachable, connection refused,
TLS failure). Where sipsak is installed, both tools are run on the same peers and must exit
with the same code.

Every child process is killed by PID (Kamailio: by the process group created for it) on
teardown; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from sipkit import HOST, ServeProcess, free_port, run_cli

from kamailiokit import KAMAILIO, KamailioProcess
from netkit import options_status

SIPSAK = shutil.which("sipsak")


NO_KAMAILIO = "Kamailio is not installed (Debian package kamailio: `make debs` as root)"
NO_SIPSAK = "sipsak is not installed (Debian package sipsak: `make debs` as root)"


# -- running the command -----------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json(self) -> dict:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"exit {self.returncode} after {self.seconds:.2f} s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def options(cwd: Path, *args: str, wall: float = 40.0) -> Run:
    start = time.monotonic()
    done = run_cli("options", *args, cwd=cwd, timeout=wall)
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def sipsak(*args: str, wall: float = 40.0) -> subprocess.CompletedProcess[str]:
    assert SIPSAK is not None
    return subprocess.run(
        [SIPSAK, *args], capture_output=True, text=True, timeout=wall, stdin=subprocess.DEVNULL
    )


def low_port() -> int:
    """A port below 10000 free for UDP and TCP on 127.0.0.1: sipsak 0.9.8.1 writes five-digit
    ports cut to four digits into its Request-URI and To (its ``snprintf`` for ``host:port``
    is sized ``strlen(host) + 6``), so ports shared with sipsak have four digits."""
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


def closed_port(family: int = socket.AF_INET, host: str = HOST) -> int:
    """A port on ``host`` that nothing uses over UDP or TCP (the kernel's pick, released)."""
    for _ in range(50):
        with (
            socket.socket(family, socket.SOCK_DGRAM) as udp,
            socket.socket(family, socket.SOCK_STREAM) as tcp,
        ):
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {host}")


# -- peers -------------------------------------------------------------------------------------


@dataclass
class Sipstack:
    port: int
    process: ServeProcess


@pytest.fixture
def sipstack(tmp_path: Path, serve: Callable[..., ServeProcess]) -> Sipstack:
    """``sipstack serve`` on UDP and TCP at 127.0.0.1 on a four-digit port (another is tried
    if the one picked was taken in the meantime)."""
    for _ in range(4):
        port = low_port()
        process = serve(
            "--listen",
            f"udp:{HOST}:{port}",
            "--listen",
            f"tcp:{HOST}:{port}",
            "--data-dir",
            str(tmp_path / "data"),
        )
        if process.wait_options(port, timeout=15):
            return Sipstack(port, process)
        process.kill_all()
    raise AssertionError(f"sipstack serve did not come up:\n{process.log()}")


KAMAILIO_CFG = """\
#!KAMAILIO
# Written by tests/server/test_cli_options.py: answers OPTIONS for itself (200 with Allow,
# 404 for a user), drops a pre-loaded Route naming it, relays the rest statefully.
debug=2
log_stderror=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
server_header="Server: kamailio-options-test"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"

modparam("tm", "fr_timer", 3000)

request_route {
	xlog("L_NOTICE", "OPTIONS-TEST-IN $rm $ru from=$proto:$si:$sp route=$hdr(Route)\\n");
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (!is_method("OPTIONS")) {
		sl_send_reply("405", "Method Not Allowed");
		exit;
	}
	remove_hf("Route");
	if (uri == myself) {
		if ($rU == $null) {
			append_to_reply("Allow: OPTIONS\\r\\n");
			sl_send_reply("200", "OK");
		} else {
			sl_send_reply("404", "Not Found Here");
		}
		exit;
	}
	if (!t_relay()) {
		sl_reply_error();
	}
}
"""


class Kamailio(KamailioProcess):
    """``kamailio -DD -E`` on UDP and TCP at 127.0.0.1:PORT (a free port, tried again on
    another if it was taken meanwhile)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        (workdir / "run").mkdir(parents=True)
        self.config = workdir / "kamailio.cfg"
        self.config.write_text(KAMAILIO_CFG)
        self.port = 0

    def command(self) -> list[str]:
        assert KAMAILIO is not None
        listen = ["-l", f"udp:{HOST}:{self.port}", "-l", f"tcp:{HOST}:{self.port}"]
        run_dir = str(self.workdir / "run")
        return [
            KAMAILIO,
            "-f",
            str(self.config),
            "-DD",
            "-E",
            *listen,
            "-n",
            "1",
            "-Y",
            run_dir,
            "-m",
            "32",
            "-M",
            "8",
        ]

    def ready(self) -> bool:
        return options_status(self.port) == 200

    def start(self, ready_timeout: float = 10.0) -> Kamailio:
        for attempt in range(3):
            self.port = free_port()
            try:
                return super().start(ready_timeout)
            except AssertionError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    if KAMAILIO is None:
        pytest.skip(NO_KAMAILIO)
    peer = Kamailio(tmp_path / "kamailio")
    try:
        yield peer.start()
    finally:
        peer.close()


@pytest.fixture
def silent_peer() -> Iterator[tuple[int, socket.socket]]:
    """A bound UDP socket that reads nothing and answers nothing (no ICMP either)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, low_port()))
    try:
        yield sock.getsockname()[1], sock
    finally:
        sock.close()


def received_requests(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(65535))
    return out


LINE = re.compile(r"(?P<seq>\d+) (?P<status>\d{3}) (?P<rtt>\d+\.\d{3}) (?P<source>\S+) (?P<reason>.+)")


# -- against sipstack serve --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ping_sipstack_prints_one_line_and_exits_0(
    tmp_path: Path, sipstack: Sipstack, transport: str
) -> None:
    run = options(tmp_path, "--transport", transport, f"sip:{HOST}:{sipstack.port}")
    assert run.returncode == 0, run
    (line,) = run.lines
    m = LINE.fullmatch(line)
    assert m is not None, run
    assert (m["seq"], m["status"], m["source"], m["reason"]) == (
        "1",
        "200",
        f"{transport}:{HOST}:{sipstack.port}",
        "OK",
    ), run
    assert 0 < float(m["rtt"]) < 5000, run
    assert run.stderr == "", run


def test_json_reports_status_rtt_server_and_our_address(tmp_path: Path, sipstack: Sipstack) -> None:
    run = options(tmp_path, "--json", f"sip:{HOST}:{sipstack.port}")
    assert run.returncode == 0, run
    doc = run.json()
    assert (doc["status"], doc["reason"], doc["error"], doc["exit_code"]) == (200, "OK", None, 0), run
    assert doc["server"] == "sipstack" and doc["user_agent"] is None, run
    assert "OPTIONS" in doc["allow"] and "REGISTER" in doc["allow"], run
    assert doc["source"] == f"udp:{HOST}:{sipstack.port}", run
    assert isinstance(doc["rtt_ms"], float) and 0 < doc["rtt_ms"] < 5000, run
    # The server's view of us (RFC 3581): the address and port our request came from.
    assert doc["received"] == HOST and isinstance(doc["rport"], int), run
    assert (doc["sent"], doc["answered"], len(doc["pings"])) == (1, 1, 1), run
    assert doc["pings"][0]["status"] == 200 and doc["pings"][0]["seq"] == 1, run


def test_unknown_user_4xx_exits_1(tmp_path: Path, sipstack: Sipstack) -> None:
    run = options(tmp_path, f"sip:nobody@{HOST}:{sipstack.port}")
    assert run.returncode == 1, run
    (line,) = run.lines
    m = LINE.fullmatch(line)
    assert m is not None and (m["status"], m["reason"]) == ("404", "Not Found"), run
    doc = options(tmp_path, "--json", f"sip:nobody@{HOST}:{sipstack.port}").json()
    assert (doc["status"], doc["exit_code"], doc["error"]) == (404, 1, None)


def test_count_and_interval_print_progress_and_a_summary(tmp_path: Path, sipstack: Sipstack) -> None:
    run = options(tmp_path, "--count", "3", "--interval", "0.4", f"sip:{HOST}:{sipstack.port}")
    assert run.returncode == 0, run
    matches = [LINE.fullmatch(line) for line in run.lines]
    assert [m and (m["seq"], m["status"]) for m in matches] == [("1", "200"), ("2", "200"), ("3", "200")], run
    assert run.seconds >= 0.8, run  # three pings started 0.4 s apart
    assert re.search(r"3 sent, 3 answered; rtt min/avg/max [\d.]+/[\d.]+/[\d.]+ ms", run.stderr), run


def test_verbose_prints_every_message_on_stderr(tmp_path: Path, sipstack: Sipstack) -> None:
    run = options(tmp_path, "-v", f"sip:{HOST}:{sipstack.port}")
    assert run.returncode == 0, run
    assert len(run.lines) == 1, run  # stdout stays one line per ping
    sent = re.search(
        rf"--- sent to udp:{HOST}:{sipstack.port} \(\d+ bytes\) at \+[\d.]+ ms ---\n(.*?)\n\n",
        run.stderr,
        re.S,
    )
    got = re.search(
        rf"--- received from udp:{HOST}:{sipstack.port} \(\d+ bytes\) at \+[\d.]+ ms ---\n(.*?)\n\n",
        run.stderr,
        re.S,
    )
    assert sent is not None and got is not None, run
    request, response = sent.group(1), got.group(1)
    assert request.startswith(f"OPTIONS sip:{HOST}:{sipstack.port} SIP/2.0\n"), run
    via = re.search(r"^Via: SIP/2.0/UDP ([^;]+);branch=(z9hG4bK\S+?);rport$", request, re.M)
    assert via is not None and via.group(1).startswith(f"{HOST}:"), run  # never 0.0.0.0
    assert response.startswith("SIP/2.0 200 OK\n") and via.group(2) in response, run


# -- nothing there -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_nothing_listening_on_udp_exits_3_at_once(tmp_path: Path, family: str) -> None:
    """The port answers ICMP port unreachable: reported at once, not after the timeout."""
    if family == "ipv6":
        if not socket.has_ipv6:
            pytest.skip("no IPv6")
        try:
            port = closed_port(socket.AF_INET6, "::1")
        except OSError:
            pytest.skip("no ::1 on this host")
        uri, address = f"sip:[::1]:{port}", f"udp:[::1]:{port}"
    else:
        port = closed_port()
        uri, address = f"sip:{HOST}:{port}", f"udp:{HOST}:{port}"
    run = options(tmp_path, "--timeout", "20", uri)
    assert run.returncode == 3, run
    assert re.fullmatch(
        rf"1 unreachable [\d.]+ {re.escape(address)} connection refused \(ICMP\)", run.stdout.strip()
    ), run
    assert run.seconds < 8, run


def test_nothing_listening_on_tcp_exits_3(tmp_path: Path) -> None:
    port = closed_port()
    run = options(tmp_path, "--timeout", "20", "--json", "--transport", "tcp", f"sip:{HOST}:{port}")
    assert run.returncode == 3, run
    doc = run.json()
    assert (doc["status"], doc["error"], doc["exit_code"]) == (None, "unreachable", 3), run
    assert "Connection refused" in doc["detail"] and f"tcp:{HOST}:{port}" in doc["detail"], run
    assert run.seconds < 8, run


def test_silent_peer_times_out_with_exit_3(tmp_path: Path, silent_peer: tuple[int, socket.socket]) -> None:
    port, sock = silent_peer
    run = options(tmp_path, "--timeout", "1.2", f"sip:{HOST}:{port}")
    assert run.returncode == 3, run
    m = re.fullmatch(r"1 timeout (\d+\.\d{3}) - no final response within 1.2 s", run.stdout.strip())
    assert m is not None and 1150 <= float(m.group(1)) < 4000, run
    requests = received_requests(sock)
    # Timer E: sent at 0 and retransmitted at T1 = 0.5 s (and 1.5 s, after the deadline).
    assert 2 <= len(requests) <= 3, requests
    assert all(r.startswith(f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n".encode()) for r in requests)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["tel:+15551234"], "cannot send a request to a tel: URI", id="tel-uri"),
        pytest.param(["sip:bad host"], "not a SIP URI", id="bad-uri"),
        pytest.param(["--transport", "udp", f"sips:{HOST}:5061"], "cannot resolve", id="sips-over-udp"),
        pytest.param(["-H", "no colon", f"sip:{HOST}:9"], "bad --header", id="bad-header"),
        pytest.param(
            ["--ca-file", "/nonexistent/ca.pem", f"sip:{HOST}:9"], "cannot read --ca-file", id="ca-file"
        ),
        pytest.param(["--timeout", "0", f"sip:{HOST}:9"], "must be above 0", id="timeout-0"),
    ],
)
def test_local_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    run = options(tmp_path, *args)
    assert run.returncode == 2, run
    assert message in run.stderr and run.stdout == "", run


def test_local_error_in_json(tmp_path: Path) -> None:
    run = options(tmp_path, "--json", "tel:+15551234")
    assert run.returncode == 2, run
    doc = run.json()
    assert (doc["error"], doc["exit_code"], doc["sent"], doc["pings"]) == ("local", 2, 0, []), run


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_verifies_the_server_certificate(tmp_path: Path, serve: Callable[..., ServeProcess]) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(HOST)
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    leaf.private_key_pem.write_to_path(tmp_path / "server.key")
    config = tmp_path / "server.toml"
    config.write_text(f'[tls]\ncert = "{tmp_path / "server.pem"}"\nkey = "{tmp_path / "server.key"}"\n')
    udp, tls = free_port(), free_port()
    process = serve(
        "--listen", f"udp:{HOST}:{udp}", "--listen", f"tls:{HOST}:{tls}", "--config", str(config),
        "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    assert process.wait_options(udp), process.log()
    trusted = options(tmp_path, "--ca-file", str(tmp_path / "ca.pem"), f"sips:{HOST}:{tls}")
    assert trusted.returncode == 0, trusted
    m = LINE.fullmatch(trusted.stdout.strip())
    assert m is not None and (m["status"], m["source"]) == ("200", f"tls:{HOST}:{tls}"), trusted
    untrusted = options(tmp_path, "--json", f"sips:{HOST}:{tls}")
    assert untrusted.returncode == 3, untrusted
    assert "certificate verify failed" in untrusted.json()["detail"], untrusted
    insecure = options(tmp_path, "--insecure", "--transport", "tls", f"sip:{HOST}:{tls}")
    assert insecure.returncode == 0, insecure


# -- against Kamailio --------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ping_kamailio(tmp_path: Path, kamailio: Kamailio, transport: str) -> None:
    run = options(tmp_path, "--json", "--transport", transport, f"sip:{HOST}:{kamailio.port}")
    assert run.returncode == 0, f"{run}\n{kamailio.log()}"
    doc = run.json()
    assert (doc["status"], doc["server"], doc["allow"]) == (200, "kamailio-options-test", ["OPTIONS"]), run
    assert doc["source"] == f"{transport}:{HOST}:{kamailio.port}", run
    assert f"OPTIONS-TEST-IN OPTIONS sip:{HOST}:{kamailio.port} from={transport}:{HOST}:" in kamailio.log(
        None
    )


@pytest.mark.interop
def test_kamailio_4xx_exits_1(tmp_path: Path, kamailio: Kamailio) -> None:
    run = options(tmp_path, f"sip:someone@{HOST}:{kamailio.port}")
    assert run.returncode == 1, f"{run}\n{kamailio.log()}"
    m = LINE.fullmatch(run.stdout.strip())
    assert m is not None and (m["status"], m["reason"]) == ("404", "Not Found Here"), run


@pytest.mark.interop
def test_proxy_sends_through_kamailio_to_sipstack(
    tmp_path: Path, kamailio: Kamailio, sipstack: Sipstack
) -> None:
    """--proxy: the request goes to Kamailio with a Route naming it (;lr), Kamailio relays it
    by its Request-URI to sipstack, and sipstack's 200 comes back through Kamailio."""
    target = f"sip:{HOST}:{sipstack.port}"
    run = options(tmp_path, "--json", "--proxy", f"sip:{HOST}:{kamailio.port}", target)
    assert run.returncode == 0, f"{run}\n{kamailio.log()}"
    doc = run.json()
    assert (doc["status"], doc["server"], doc["source"]) == (
        200,
        "sipstack",
        f"udp:{HOST}:{kamailio.port}",
    ), run
    assert f"OPTIONS-TEST-IN OPTIONS {target} from=udp:{HOST}:" in kamailio.log(None)
    assert f"route=<sip:{HOST}:{kamailio.port};lr>" in kamailio.log(None)
    failed = options(tmp_path, "--proxy", f"sip:{HOST}:{kamailio.port}", f"sip:nobody@{HOST}:{sipstack.port}")
    assert failed.returncode == 1 and " 404 " in failed.stdout, failed


# -- the same verdicts as sipsak ---------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.skipif(SIPSAK is None, reason=NO_SIPSAK)
@pytest.mark.parametrize("case", ["200", "404", "refused", "silent"])
def test_exit_codes_agree_with_sipsak(
    tmp_path: Path, sipstack: Sipstack, silent_peer: tuple[int, socket.socket], case: str
) -> None:
    expected = {"200": 0, "404": 1, "refused": 3, "silent": 3}[case]
    uri = {
        "200": f"sip:{HOST}:{sipstack.port}",
        "404": f"sip:nobody@{HOST}:{sipstack.port}",
        "refused": f"sip:{HOST}:{closed_port()}",
        "silent": f"sip:{HOST}:{silent_peer[0]}",
    }[case]
    ours = options(tmp_path, "--timeout", "1.5", uri)
    # sipsak -Z 20: T1 = 20 ms, so it gives up after 64*T1 = 1.3 s on a silent peer.
    theirs = sipsak("-Z", "20", "-vv", "-s", uri)
    assert (ours.returncode, theirs.returncode) == (expected, expected), (
        f"{ours}\n--- sipsak ---\n{theirs.stdout}{theirs.stderr}"
    )
