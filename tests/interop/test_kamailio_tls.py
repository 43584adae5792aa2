"""sipstack's TLS transport against Kamailio's tls module (OpenSSL), an independent TLS SIP
peer — the Debian SIPp is built without TLS, so this is where sipstack's TLS meets another
implementation.

Kamailio runs per test in the foreground (``-DD -E -n 1``, its own session so that its
process group is its own, killed by that PID on teardown) with ``kamailio_tls/kamailio.cfg``
copied into ``tmp_path`` next to a ``tls.cfg`` rendered from ``kamailio_tls/tls.cfg``. The
certificates come from one ``trustme`` CA: a server certificate for 127.0.0.1 for each side
(``kamailio-server``, ``sipstack-server``) and a client certificate for each
(``kamailio-client``, ``sipstack-client``), plus a second, untrusted CA for the negative
cases.

1. sipstack (client, verification on) → Kamailio (TLS server answering OPTIONS 200
   statelessly): 20 OPTIONS over one connection; a client that does not trust the CA fails
   the handshake with TransportError.
2. Mutual TLS: Kamailio requires and verifies a client certificate; sipstack with one issued
   by the CA gets through (Kamailio echoes the verified CN), without one (or with one from
   another CA) it does not.
3. SIPp (UDP) → Kamailio → sipstack's TLS listener: Kamailio relays every request with
   ``t_relay()`` to ``sip:127.0.0.1:PORT;transport=tls``, verifying sipstack's certificate
   against the CA; optionally sipstack requires Kamailio's client certificate.

Requires the Debian package ``kamailio-tls-modules`` (``tls.so``) besides ``kamailio``; test 3
needs SIPp (``sip-tester``) too.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import string
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trustme

from kamailiokit import KAMAILIO, KamailioProcess
from netkit import free_port
from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.errors import SipTimeoutError, TransportError
from sipstack.message import Request, Response
from sipstack.net import Address
from sipstack.transaction import TimerConfig, new_tag
from sipstack.transaction.timers import DEFAULT_TIMERS

if TYPE_CHECKING:
    from conftest import Sipp

HOST = "127.0.0.1"
CONFIG_DIR = Path(__file__).parent / "kamailio_tls"
TLS_MODULE = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so")
FAST = TimerConfig(T1=0.05, T2=0.4, T4=0.5)  # Timer F (no answer at all): 64*T1 = 3.2 s


pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        KAMAILIO is None,
        reason="Kamailio is not installed (Debian package kamailio: `make debs` as root, "
        "or apt-get install kamailio)",
    ),
    pytest.mark.skipif(
        not TLS_MODULE.exists(),
        reason=f"Kamailio's TLS module ({TLS_MODULE}) is not installed "
        "(Debian package kamailio-tls-modules: apt-get install kamailio-tls-modules)",
    ),
]


# -- certificates -------------------------------------------------------------------------------


@dataclass
class Pki:
    """The test CA and its certificates, also written as PEM files into ``folder``."""

    ca: trustme.CA
    other_ca: trustme.CA  # trusted by nobody
    kamailio_server: trustme.LeafCert
    kamailio_client: trustme.LeafCert
    sipstack_server: trustme.LeafCert
    sipstack_client: trustme.LeafCert
    folder: Path

    def write(self) -> None:
        self.ca.cert_pem.write_to_path(self.folder / "ca.pem")
        for name in ("kamailio_server", "kamailio_client"):
            leaf: trustme.LeafCert = getattr(self, name)
            leaf.private_key_pem.write_to_path(self.folder / f"{name}.key")
            with (self.folder / f"{name}.pem").open("wb") as f:
                for pem in leaf.cert_chain_pems:
                    f.write(pem.bytes())

    def tls_cfg(self, *, mutual: bool, method: str = "TLSv1.2+") -> str:
        """kamailio_tls/tls.cfg with this PKI's paths; ``mutual``: the server profile requires
        and verifies a client certificate; ``method``: its TLS versions."""
        template = string.Template((CONFIG_DIR / "tls.cfg").read_text())
        flag = "yes" if mutual else "no"
        return template.substitute(
            SERVER_METHOD=method,
            SERVER_VERIFY=flag,
            SERVER_REQUIRE=flag,
            SERVER_CERT=self.folder / "kamailio_server.pem",
            SERVER_KEY=self.folder / "kamailio_server.key",
            CLIENT_CERT=self.folder / "kamailio_client.pem",
            CLIENT_KEY=self.folder / "kamailio_client.key",
            CA_LIST=self.folder / "ca.pem",
        )

    def client_context(self, *, cert: trustme.LeafCert | None = None, trust: bool = True) -> ssl.SSLContext:
        """sipstack's client side: verification as ``ssl.create_default_context`` has it (chain
        and host name), trusting the test CA (or not), presenting ``cert`` if given."""
        ctx = ssl.create_default_context()
        (self.ca if trust else self.other_ca).configure_trust(ctx)
        if cert is not None:
            cert.configure_cert(ctx)
        return ctx

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.sipstack_server.configure_cert(ctx)
        if require_client_cert:
            self.ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    other_ca = trustme.CA()
    pki = Pki(
        ca=ca,
        other_ca=other_ca,
        kamailio_server=ca.issue_cert(HOST, common_name="kamailio-server"),
        kamailio_client=ca.issue_cert("kamailio.test", common_name="kamailio-client"),
        sipstack_server=ca.issue_cert(HOST, common_name="sipstack-server"),
        sipstack_client=ca.issue_cert("sipstack.test", common_name="sipstack-client"),
        folder=tmp_path_factory.mktemp("pki"),
    )
    pki.write()
    return pki


# -- Kamailio -----------------------------------------------------------------------------------


def tcp_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class KamailioTls(KamailioProcess):
    """``kamailio -f kamailio.cfg -DD -E -n 1`` with the rendered tls.cfg beside it, listening
    on ``tls:127.0.0.1:PORT`` (and ``udp:127.0.0.1:PORT`` when it relays to ``relay_to``)."""

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        mutual: bool = False,
        method: str = "TLSv1.2+",
        relay_to: str | None = None,
    ) -> None:
        super().__init__(workdir)
        workdir.mkdir(parents=True)
        self.runtime_dir = workdir / "run"
        self.runtime_dir.mkdir()
        self.config = workdir / "kamailio.cfg"
        shutil.copyfile(CONFIG_DIR / "kamailio.cfg", self.config)
        (workdir / "tls.cfg").write_text(pki.tls_cfg(mutual=mutual, method=method))
        self.relay_to = relay_to
        self.tls_port = free_port()
        self.udp_port = free_port() if relay_to else None

    def command(self) -> list[str]:
        assert KAMAILIO is not None
        cmd = [KAMAILIO, "-f", str(self.config), "-DD", "-E", "-n", "1"]
        cmd += ["-l", f"tls:{HOST}:{self.tls_port}"]
        if self.udp_port is not None:
            cmd += ["-l", f"udp:{HOST}:{self.udp_port}"]
        cmd += ["-Y", str(self.runtime_dir), "-m", "64", "-M", "8"]
        if self.relay_to is not None:
            cmd += ["-A", f'RELAY_TO="{self.relay_to}"']
        return cmd

    def ready(self) -> bool:
        """Up when its TLS port accepts connections."""
        return tcp_accepts(self.tls_port)

    def evidence(self) -> str:
        return f"\n--- kamailio log ($ {' '.join(self.command())}) ---\n{self.log()}"

    def lines(self, tag: str, method: str | None = None) -> list[str]:
        """The log lines ``TLS-IN``/``TLS-RELAY``/``TLS-REPLY`` (optionally for ``method``)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        out = []
        for line in text.splitlines():
            m = re.search(rf"{tag} (\S+)", line)
            if m and (method is None or m.group(1) == method):
                out.append(line)
        return out


KamailioFactory = Callable[..., Awaitable[KamailioTls]]


@pytest.fixture
async def kamailio(pki: Pki, tmp_path: Path) -> AsyncIterator[KamailioFactory]:
    """Starts Kamailio (``mutual``: require client certificates; ``method``: the server's TLS
    versions; ``relay_to``: relay from UDP to that TLS URI); every one started is killed by
    PID on teardown."""
    started: list[KamailioTls] = []

    async def start(**kwargs: Any) -> KamailioTls:
        k = KamailioTls(tmp_path / f"kamailio{len(started)}", pki, **kwargs)
        started.append(k)
        return await asyncio.to_thread(k.start)

    try:
        yield start
    finally:
        for k in started:
            await asyncio.to_thread(k.close)


# -- helpers ------------------------------------------------------------------------------------


def options(port: int) -> Request:
    headers = [
        ("Max-Forwards", "70"),
        ("From", f"<sip:alice@sipstack.test>;tag={new_tag()}"),
        ("To", f"<sip:{HOST}:{port}>"),
        ("Call-ID", new_tag() + "@kamailio-tls"),
        ("CSeq", "1 OPTIONS"),
    ]
    return Request("OPTIONS", f"sip:{HOST}:{port};transport=tls", headers)


async def ping(endpoint: Endpoint, port: int, timeout: float = 10.0) -> Response:
    """One OPTIONS to Kamailio's TLS port, bounded."""
    return await asyncio.wait_for(endpoint.request(options(port), Address("TLS", HOST, port)), timeout)


def field(line: str, name: str) -> str:
    m = re.search(rf"\b{name}=(\S*)", line)
    return m.group(1) if m else ""


# -- 1. sipstack client → Kamailio TLS server ---------------------------------------------------


async def test_options_to_kamailio_over_one_verified_connection(pki: Pki, kamailio: KamailioFactory) -> None:
    """20 OPTIONS (10 one after the other, then 10 at once) over TLS with the server's
    certificate verified (chain and IP address): twenty 200s, one connection at both ends."""
    k = await kamailio()
    async with Endpoint(timers=FAST, tls_client_context=pki.client_context()) as client:
        responses = [await ping(client, k.tls_port) for _ in range(10)]
        responses += await asyncio.gather(*(ping(client, k.tls_port) for _ in range(10)))
        connections = list(client.connections.by_id.values())
        assert len(connections) == 1, f"{connections}{k.evidence()}"
        peer = connections[0].peer_certificate
    assert [r.status_code for r in responses] == [200] * 20, k.evidence()
    assert all(r.header("Server") == "kamailio-tls-test" for r in responses), k.evidence()
    assert {r.header("X-TLS-Peer-Verified") for r in responses} == {"0"}, k.evidence()  # none asked for
    assert peer is not None and ((("commonName", "kamailio-server"),) in peer["subject"]), peer

    received = k.lines("TLS-IN", "OPTIONS")
    assert len(received) == 20, k.evidence()
    assert {field(line, "proto") for line in received} == {"tls"}, k.evidence()
    # Kamailio's view: every request from the same source port and connection id.
    assert len({field(line, "from") for line in received}) == 1, k.evidence()
    assert len({field(line, "conid") for line in received}) == 1, k.evidence()
    assert " ERROR: " not in k.log(100_000), k.evidence()


@pytest.mark.parametrize("client", ["system-cas", "other-ca"])
async def test_untrusted_kamailio_certificate_is_refused(
    pki: Pki, kamailio: KamailioFactory, client: str
) -> None:
    """Verification is on by default: with only the system CAs (no context given), or a
    context trusting another CA, the handshake fails and the request with TransportError;
    Kamailio never sees a request."""
    k = await kamailio()
    ctx = None if client == "system-cas" else pki.client_context(trust=False)
    async with Endpoint(timers=FAST, tls_client_context=ctx) as endpoint:
        with pytest.raises(TransportError) as excinfo:
            await ping(endpoint, k.tls_port)
    assert isinstance(excinfo.value.__cause__, ssl.SSLCertVerificationError), repr(excinfo.value.__cause__)
    assert k.lines("TLS-IN") == [], k.evidence()


# -- 2. mutual TLS ------------------------------------------------------------------------------


async def test_mutual_tls_with_client_certificate(pki: Pki, kamailio: KamailioFactory) -> None:
    """Kamailio with require_certificate and verify_certificate: sipstack's client certificate
    from the CA is asked for, verified, and its CN seen by Kamailio's script."""
    k = await kamailio(mutual=True)
    ctx = pki.client_context(cert=pki.sipstack_client)
    async with Endpoint(timers=FAST, tls_client_context=ctx) as client:
        responses = [await ping(client, k.tls_port) for _ in range(3)]
        assert len(client.connections) == 1
    assert [r.status_code for r in responses] == [200] * 3, k.evidence()
    assert responses[0].header("X-TLS-Peer-CN") == "sipstack-client", f"{responses[0]}{k.evidence()}"
    assert responses[0].header("X-TLS-Peer-Verified") == "1", f"{responses[0]}{k.evidence()}"
    received = k.lines("TLS-IN", "OPTIONS")
    assert len(received) == 3 and all(field(line, "cn") == "sipstack-client" for line in received)


@pytest.mark.parametrize(
    ("client_cert", "kamailio_error"),
    [
        pytest.param("none", "peer did not return a certificate", id="none"),
        pytest.param("other-ca", "certificate verify failed", id="other-ca"),
    ],
)
async def test_mutual_tls_without_acceptable_client_certificate(
    pki: Pki, kamailio: KamailioFactory, client_cert: str, kamailio_error: str
) -> None:
    """Without a client certificate, or with one the CA did not issue, Kamailio refuses the
    connection (its log says why) and no request reaches its script; sipstack's request
    fails."""
    k = await kamailio(mutual=True)
    cert = None if client_cert == "none" else pki.other_ca.issue_cert("sipstack.test", common_name="stranger")
    async with Endpoint(timers=FAST, tls_client_context=pki.client_context(cert=cert)) as client:
        with pytest.raises((TransportError, SipTimeoutError)):
            await ping(client, k.tls_port)
    assert k.lines("TLS-IN") == [], k.evidence()
    assert k.wait_log(kamailio_error), k.evidence()


ATTEMPTS = 20  # concurrent clients: each loses the race with p ≈ 0.5, so the bug shows reliably


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("TLSv1.2", id="tls1.2"),
        pytest.param("TLSv1.2+", id="tls1.3"),
    ],
)
async def test_rejected_client_certificate_fails_promptly(
    pki: Pki, kamailio: KamailioFactory, method: str
) -> None:
    """With the default timers, a client certificate Kamailio refuses (none given) fails the
    request with TransportError within 1.5 s, not at Timer F (32 s) — for each of ATTEMPTS
    clients connecting at once."""
    k = await kamailio(mutual=True, method=method)

    async def attempt() -> str:
        async with Endpoint(timers=DEFAULT_TIMERS, tls_client_context=pki.client_context()) as client:
            try:
                await ping(client, k.tls_port, timeout=1.5)
            except TimeoutError:
                return "no answer after 1.5 s"
            except TransportError:
                return "TransportError"
            return "answered"

    outcomes = await asyncio.gather(*(attempt() for _ in range(ATTEMPTS)))
    assert outcomes == ["TransportError"] * ATTEMPTS, f"{Counter(outcomes)}{k.evidence()}"
    assert k.wait_log("peer did not return a certificate"), k.evidence()


# -- 3. Kamailio → sipstack TLS server ----------------------------------------------------------


@pytest.mark.parametrize("require_client_cert", [False, True], ids=["server-auth", "mutual"])
async def test_kamailio_relays_sipp_requests_to_sipstack_over_tls(
    pki: Pki, kamailio: KamailioFactory, sipp: Sipp, require_client_cert: bool
) -> None:
    """SIPp (UDP) → Kamailio → sipstack (TLS): Kamailio opens a TLS connection to sipstack's
    listener, verifying its certificate against the CA, and relays 20 OPTIONS statefully;
    sipstack answers 200 on the connection each arrived on. With ``mutual``, sipstack
    requires a client certificate and gets Kamailio's (CN kamailio-client)."""
    seen: list[IncomingRequest] = []

    def answer(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        incoming.respond(200, headers=[("Allow", "OPTIONS, MESSAGE")])

    server_ctx = pki.server_context(require_client_cert=require_client_cert)
    async with Endpoint(timers=FAST, tls_server_context=server_ctx) as server:
        server.on_request(answer)
        local = await server.listen(f"tls:{HOST}:0")
        k = await kamailio(relay_to=f"sip:{HOST}:{local.port};transport=tls")
        run = await sipp.run(
            "options_uac",
            remote=f"{HOST}:{k.udp_port}",
            calls=20,
            rate=50,
            limit=10,
            timeout=15,
            extra=["-s", "sipstack"],
        )
        connections = list(server.connections.by_id.values())
        peer = connections[0].peer_certificate if connections else None
        malformed = server.stats["malformed"]
    evidence = run.report() + k.evidence()
    assert run.returncode == 0 and (run.successful, run.failed) == (20, 0), evidence
    assert [i.method for i in seen] == ["OPTIONS"] * 20, evidence
    assert {i.source.transport for i in seen} == {"TLS"}, evidence
    assert all(i.request.via[0].transport == "TLS" for i in seen), evidence
    assert len(connections) == 1, f"{connections}{evidence}"
    assert len({i.source.connection for i in seen}) == 1, evidence
    assert malformed == 0, evidence
    replies = k.lines("TLS-REPLY", "200")
    assert len(replies) == 20 and {field(line, "proto") for line in replies} == {"tls"}, evidence
    assert " ERROR: " not in k.log(100_000), evidence
    if require_client_cert:
        assert peer is not None and (("commonName", "kamailio-client"),) in peer["subject"], peer
    else:
        assert not peer, peer  # no certificate asked for
