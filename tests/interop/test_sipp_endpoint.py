"""The endpoint against SIPp, an independent SIP implementation, on 127.0.0.1.

- sipstack as the server: an OPTIONS responder under SIPp's bounded load over UDP, TCP and
  TLS; an INVITE rejected with 486 whose first final response SIPp leaves unacknowledged, so
  that only Timer G's retransmission gets the ACK.
- sipstack as the client: requests answered by a SIPp UAS; an OPTIONS and an INVITE that
  SIPp leaves unanswered the first time, answered only once Timer E / Timer A retransmitted
  them.

Every SIPp run is bounded by ``-m``, ``-timeout`` and a wall clock (see conftest.py); the
scenarios are in ``scenarios/``. On failure the assertion message carries SIPp's command
line, counters and its ``-trace_err`` / ``-trace_msg`` logs (the messages on the wire).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sipstack.endpoint import Endpoint, IncomingRequest
from sipstack.message import Request, SipURI
from sipstack.net import Address
from sipstack.transaction import State, new_branch, new_tag

if TYPE_CHECKING:
    from conftest import Sipp

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("sipp") is None,
        reason="SIPp is not installed (Debian package sip-tester: `make debs` as root, "
        "or apt-get install sip-tester)",
    ),
]

HOST = "127.0.0.1"

T1 = 0.5  # the endpoint's default Timer T1 (RFC 3261): Timers A, E and G start at T1


def _request(method: str, local: Address, remote_port: int, *, cseq: int = 1) -> Request:
    """A request from the endpoint at ``local`` to SIPp at 127.0.0.1:``remote_port``."""
    headers = [
        ("Max-Forwards", "70"),
        ("From", f"<sip:sipstack@{local.host_port}>;tag={new_tag()}"),
        ("To", f"<sip:sipp@{HOST}:{remote_port}>"),
        ("Call-ID", f"{new_tag()}@{HOST}"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:sipstack@{local.host_port}>"),
    ]
    return Request(method, f"sip:sipp@{HOST}:{remote_port}", headers)


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, list[str]]:
    """A server context for the endpoint (certificate for 127.0.0.1; a client certificate,
    if presented, must chain to the CA) and SIPp's options for a client certificate from the
    same CA. CERT_OPTIONAL rather than REQUIRED: whether SIPp presents its -tls_cert as a
    client is not checked here (Debian's SIPp has no TLS)."""
    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert(HOST)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    client_cert = ca.issue_cert("sipp.interop.test")
    cert, key = tmp_path / "sipp-cert.pem", tmp_path / "sipp-key.pem"
    client_cert.cert_chain_pems[0].write_to_path(str(cert))
    client_cert.private_key_pem.write_to_path(str(key))
    return ctx, ["-tls_cert", str(cert), "-tls_key", str(key)]


# -- sipstack as the server ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "sipp_transport", "calls", "rate"),
    [
        pytest.param("udp", "u1", 2000, 200, id="udp"),
        pytest.param("tcp", "t1", 500, 100, id="tcp"),
        pytest.param("tls", "l1", 300, 100, id="tls"),
    ],
)
async def test_options_responder_under_sipp_load(
    sipp: Sipp, tmp_path: Path, transport: str, sipp_transport: str, calls: int, rate: int
) -> None:
    if transport == "tls":
        sipp.require_tls()
    tls_context, tls_args = _tls_contexts(tmp_path) if transport == "tls" else (None, [])
    seen: list[str] = []

    def answer(incoming: IncomingRequest) -> None:
        seen.append(incoming.method)
        incoming.respond(200, headers=[("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")])

    async with Endpoint(tls_server_context=tls_context) as server:
        server.on_request(answer)
        local = await server.listen(f"{transport}:{HOST}:0")
        run = await sipp.run(
            "options_uac",
            remote=f"{HOST}:{local.port}",
            transport=sipp_transport,
            calls=calls,
            rate=rate,
            limit=200,
            timeout=calls / rate + 15,
            extra=tls_args,
        )
        malformed = server.stats["malformed"]

    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (calls, 0), run.report()
    # Retransmissions (UDP) are absorbed by the server transactions: one delivery per call.
    assert seen == ["OPTIONS"] * calls
    assert malformed == 0


async def test_final_response_retransmitted_until_acked(sipp: Sipp) -> None:
    """SIPp leaves the first 486 unacknowledged; the INVITE server transaction retransmits
    it on Timer G (T1 later) and the ACK for the retransmission confirms it."""
    incoming: list[IncomingRequest] = []
    stray_acks: list[Request] = []

    def reject(request: IncomingRequest) -> None:
        if request.method == "ACK":  # an ACK the transaction layer did not match
            stray_acks.append(request.request)
            return
        incoming.append(request)
        request.respond(486)

    async with Endpoint() as server:
        server.on_request(reject)
        local = await server.listen(f"udp:{HOST}:0")
        run = await sipp.run(
            "invite_uac_486_ack_late", remote=f"{HOST}:{local.port}", calls=1, timeout=15, extra=["-nr"]
        )
        assert [r.method for r in incoming] == ["INVITE"], run.report()
        tx = incoming[0].transaction
        assert tx is not None
        state, sent = tx.state, server.stats["sent"]

    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (1, 0), run.report()
    finals = run.messages("received", "SIP/2.0 486")
    assert len(finals) == 2, run.report()
    assert finals[0].text == finals[1].text, "a retransmission is the same response"
    assert 0.8 * T1 <= finals[1].time - finals[0].time <= 2 * T1, run.report()
    assert len(run.messages("sent", "ACK")) == 1
    # The ACK matched the transaction (Confirmed, Timer I running): no more 486s, no stray ACK.
    assert state is State.CONFIRMED, run.report()
    assert stray_acks == []
    assert sent == 2


# -- sipstack as the client ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_uas_answers_requests(sipp: Sipp, transport: str) -> None:
    count = 20
    async with Endpoint() as client:
        local = await client.listen(f"{transport}:{HOST}:0")
        uas = await sipp.start("options_uas", calls=count, transport=f"{transport[0]}1", timeout=20)
        target = Address(transport.upper(), HOST, uas.port)
        statuses = []
        for _ in range(count):
            request = _request("OPTIONS", local, uas.port)
            response = await asyncio.wait_for(client.request(request, target), 10)
            statuses.append(response.status_code)
            assert response.call_id == request.call_id
            assert response.to.tag, "SIPp's 200 carries a To tag"
        run = await uas.wait()

    assert statuses == [200] * count
    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (count, 0), run.report()


async def test_options_retransmitted_until_answered(sipp: Sipp) -> None:
    """SIPp ignores the first OPTIONS; Timer E retransmits it T1 later and the 200 to the
    retransmission completes the transaction."""
    async with Endpoint() as client:
        local = await client.listen(f"udp:{HOST}:0")
        uas = await sipp.start("options_uas_ignore_first", calls=1, timeout=15, extra=["-nr"])
        loop = asyncio.get_running_loop()
        sent_before, started = client.stats["sent"], loop.time()
        response = await asyncio.wait_for(
            client.request(_request("OPTIONS", local, uas.port), Address("UDP", HOST, uas.port)), 10
        )
        elapsed, sent = loop.time() - started, client.stats["sent"] - sent_before
        run = await uas.wait()

    assert response.status_code == 200, run.report()
    assert sent == 2, f"the OPTIONS was sent {sent} times{run.report()}"
    # Answered after Timer E's first firing (T1) and before its second (T1 + 2·T1).
    assert 0.9 * T1 <= elapsed < 3 * T1, f"{elapsed:.3f} s{run.report()}"
    received = run.messages("received", "OPTIONS")
    assert len(received) == 2, run.report()
    assert received[0].text == received[1].text, "a retransmission is the same request"
    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (1, 0), run.report()


async def test_invite_retransmitted_until_answered(sipp: Sipp) -> None:
    """SIPp ignores the first INVITE; Timer A retransmits it, SIPp answers 180 and 200; the
    test ACKs the 2xx end to end (not part of the transaction) and hangs up with a BYE."""
    async with Endpoint() as client:
        local = await client.listen(f"udp:{HOST}:0")
        uas = await sipp.start("invite_uas_ignore_first", calls=1, timeout=15, extra=["-nr"])
        loop = asyncio.get_running_loop()
        invite = _request("INVITE", local, uas.port)
        provisional: list[int] = []
        sent_before, started = client.stats["sent"], loop.time()
        response = await asyncio.wait_for(
            client.request(
                invite,
                Address("UDP", HOST, uas.port),
                on_provisional=lambda r: provisional.append(r.status_code),
            ),
            10,
        )
        elapsed, sent = loop.time() - started, client.stats["sent"] - sent_before
        assert response.status_code == 200, uas.result().report()
        assert provisional == [180]

        # The ACK for a 2xx goes to the remote target (the 200's Contact) in a new
        # transaction-less request with its own branch (RFC 3261 §13.2.2.4).
        remote = response.contact[0].uri
        assert isinstance(remote, SipURI)
        remote_address = Address("UDP", remote.host, remote.port or 5060)
        dialog = [
            ("From", invite.header("from") or ""),
            ("To", response.header("to") or ""),
            ("Call-ID", invite.call_id),
            ("Max-Forwards", "70"),
        ]
        via = f"SIP/2.0/UDP {local.host_port};branch={new_branch()};rport"
        ack = Request("ACK", str(remote), [("Via", via), *dialog, ("CSeq", "1 ACK")])
        client.send_stateless(ack, remote_address)

        bye = Request("BYE", str(remote), [*dialog, ("CSeq", "2 BYE")])
        bye_response = await asyncio.wait_for(client.request(bye, remote_address), 10)
        run = await uas.wait()

    assert sent == 2, f"the INVITE was sent {sent} times{run.report()}"
    # Answered after Timer A's first firing (T1) and before its second (T1 + 2·T1).
    assert 0.9 * T1 <= elapsed < 3 * T1, f"{elapsed:.3f} s{run.report()}"
    invites = run.messages("received", "INVITE")
    assert len(invites) == 2, run.report()
    assert invites[0].text == invites[1].text, "a retransmission is the same request"
    assert len(run.messages("received", "ACK")) == 1, run.report()
    assert bye_response.status_code == 200, run.report()
    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (1, 0), run.report()
