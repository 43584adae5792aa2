"""The user agent (sipstack.ua) against SIPp, an independent SIP implementation, on 127.0.0.1.

- SIPp as the callee (``ua_uas_*`` scenarios): an answered call the UA hangs up (UDP and
  TCP); a 401 challenge on the INVITE, whose retry SIPp verifies (``verifyauth``) before
  answering and then hanging up itself; a forked answer — two 200 OKs with different To
  tags — where the UA must ACK both and end the second with a BYE; a CANCEL crossed by the
  200 (ACK, then BYE); an answer in a reliable 183, which the UA PRACKs (RFC 3262); SIPp
  as a registrar with a 401 and the removal on cached credentials.
- SIPp as the caller (``ua_uac_*``): a call with re-INVITE (hold), INFO, UPDATE and BYE; a
  call requiring 100rel, whose reliable 183 SIPp PRACKs; a call SIPp cancels.

SIPp 3.6 computes and verifies only MD5 digests: the challenges here offer MD5 (the UA's
stronger algorithms are tested against sipstack's own server in tests/net/test_ua.py). Every
SIPp run is bounded by ``-m``, ``-timeout`` and a wall clock (see conftest.py); on failure
the assertion message carries SIPp's command line, counters and message trace.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from sipstack.message import Request
from sipstack.transaction import TimerConfig
from sipstack.ua import CallState, IncomingCall, UserAgent

if TYPE_CHECKING:
    from conftest import Sipp, SippProcess, SippRun

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("sipp") is None,
        reason="SIPp is not installed (Debian package sip-tester: `make debs` as root, "
        "or apt-get install sip-tester)",
    ),
]

HOST = "127.0.0.1"
TIMERS = TimerConfig(T1=0.1, T2=0.8, T4=1.0)
SIPP_TRANSPORT = {"udp": "u1", "tcp": "t1"}


@pytest.fixture
async def agent() -> AsyncIterator[Callable[..., Any]]:
    agents: list[UserAgent] = []

    async def make(transport: str = "udp", **options: Any) -> UserAgent:
        options.setdefault("timers", TIMERS)
        ua = UserAgent(f"sip:alice@{HOST}", listen=[f"{transport}:{HOST}:0"], **options)
        await ua.start()
        agents.append(ua)
        return ua

    try:
        yield make
    finally:
        for ua in agents:
            await ua.close()


def sipp_uri(process: SippProcess, transport: str, user: str = "service") -> str:
    return f"sip:{user}@{HOST}:{process.port}" + (";transport=tcp" if transport == "tcp" else "")


def ok(run: SippRun) -> None:
    assert run.returncode == 0, run.report()
    assert (run.successful, run.failed) == (1, 0), run.report()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


# -- SIPp as the callee --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ua_calls_sipp_and_hangs_up(sipp: Sipp, agent: Callable[..., Any], transport: str) -> None:
    ua = await agent(transport)
    process = await sipp.start("ua_uas_answer", calls=1, transport=SIPP_TRANSPORT[transport], timeout=15)
    call = await ua.invite(sipp_uri(process, transport), timeout=10)
    assert call.state is CallState.ESTABLISHED
    (stream,) = call.streams
    assert stream.accepted and [c.name for c in stream.codecs] == ["PCMA"] and stream.remote_port > 0
    assert call.provisional is not None and call.provisional.status_code == 180
    response = await call.bye()
    assert response.status_code == 200
    ok(await process.wait())


async def test_ua_answers_a_401_and_sipp_hangs_up(sipp: Sipp, agent: Callable[..., Any]) -> None:
    ua = await agent(password="secret")
    process = await sipp.start("ua_uas_auth", calls=1, timeout=15)
    call = await ua.invite(sipp_uri(process, "udp"), timeout=10)
    assert call.invite is not None and call.invite.cseq.seq == 2  # the retry after the 401
    credentials = call.invite.authorization[0].params
    assert credentials["algorithm"] == "MD5" and credentials["qop"] == "auth"
    assert await call.wait_ended(10) == "remote bye"
    run = await process.wait()
    ok(run)
    # The ACK for the 2xx carried the INVITE's credentials (RFC 3261 §22.1).
    acks = run.messages("received", "ACK ")
    assert "Authorization:" in acks[-1].text


async def test_ua_pracks_a_reliable_183_from_sipp(sipp: Sipp, agent: Callable[..., Any]) -> None:
    ua = await agent()
    process = await sipp.start("ua_uas_prack", calls=1, timeout=15)
    call = await ua.invite(sipp_uri(process, "udp"), timeout=10)
    assert call.dialog is not None and call.dialog.remote_rseq == 1
    assert call.response is not None and call.response.body == b""
    # The answer came in the 183: PCMA and telephone-event agreed.
    (stream,) = call.streams
    assert [c.name for c in stream.codecs] == ["PCMA"] and stream.telephone_event is not None
    await call.bye()
    ok(await process.wait())


async def test_ua_acks_and_ends_the_second_2xx_of_a_fork(sipp: Sipp, agent: Callable[..., Any]) -> None:
    ua = await agent()
    process = await sipp.start("ua_uas_fork", calls=1, timeout=15)
    call = await ua.invite(sipp_uri(process, "udp"), timeout=10)
    assert call.dialog is not None and "-forkA-" in call.dialog.remote_tag
    assert [c.name for c in call.streams[0].codecs] == ["PCMU"]  # forkA's answer, not forkB's
    await eventually(lambda: any("-forkB-" in t and d.terminated for t, d in call.dialogs.items()))
    assert call.established
    await call.bye()
    ok(await process.wait())


async def test_ua_cancel_crossed_by_200(sipp: Sipp, agent: Callable[..., Any]) -> None:
    ua = await agent()
    process = await sipp.start("ua_uas_cancel_race", calls=1, timeout=15)
    call = ua.dial(sipp_uri(process, "udp"))
    await eventually(lambda: call.state is CallState.EARLY)
    final = await call.cancel()
    assert final is not None and final.status_code == 200
    assert call.ended and call.end_reason == "cancelled"
    ok(await process.wait())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ua_registers_with_sipp(sipp: Sipp, agent: Callable[..., Any], transport: str) -> None:
    ua = await agent(transport)
    process = await sipp.start("ua_uas_register", calls=1, transport=SIPP_TRANSPORT[transport], timeout=15)
    registrar = f"sip:{HOST}:{process.port}" + (";transport=tcp" if transport == "tcp" else "")
    registration = await ua.register(
        f"sip:alice@{HOST}", password="secret", registrar=registrar, expires=30, refresh=False
    )
    assert registration.registered and registration.granted == 30
    await registration.unregister()
    ok(await process.wait())


# -- SIPp as the caller --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_calls_the_ua_with_reinvite_info_update(
    sipp: Sipp, agent: Callable[..., Any], transport: str
) -> None:
    ua = await agent(transport)
    calls: list[IncomingCall] = []
    infos: list[Request] = []

    @ua.on_call
    async def answer(call: IncomingCall) -> None:
        calls.append(call)
        call.on_request(lambda request: infos.append(request) and None)
        await call.ring()
        await call.accept()

    port = ua.endpoint.listeners[0].local.port
    run = await sipp.run(
        "ua_uac_call", remote=f"{HOST}:{port}", calls=1, transport=SIPP_TRANSPORT[transport], timeout=15
    )
    ok(run)
    (call,) = calls
    assert call.end_reason == "remote bye"
    assert [r.method for r in infos] == ["INFO"] and b"Signal=5" in infos[0].body
    assert call.streams[0].direction == "sendrecv"  # after the UPDATE took the hold back
    assert [c.name for c in call.streams[0].codecs] == ["PCMU"]


async def test_sipp_requires_100rel_and_pracks(sipp: Sipp, agent: Callable[..., Any]) -> None:
    ua = await agent()
    calls: list[IncomingCall] = []

    @ua.on_call
    async def answer(call: IncomingCall) -> None:
        calls.append(call)
        await call.ring(183, early_media=True)  # reliable: the caller requires 100rel
        await call.accept()
        await asyncio.sleep(0.2)
        await call.bye()

    port = ua.endpoint.listeners[0].local.port
    ok(await sipp.run("ua_uac_prack", remote=f"{HOST}:{port}", calls=1, timeout=15))
    (call,) = calls
    assert call.end_reason == "bye" and call.streams[0].codecs[0].name == "PCMA"


async def test_sipp_cancels_a_ringing_call(sipp: Sipp, agent: Callable[..., Any]) -> None:
    ua = await agent()
    calls: list[IncomingCall] = []

    @ua.on_call
    async def ring(call: IncomingCall) -> None:
        calls.append(call)
        await call.ring()

    port = ua.endpoint.listeners[0].local.port
    ok(await sipp.run("ua_uac_cancel", remote=f"{HOST}:{port}", calls=1, timeout=15))
    assert calls[0].end_reason == "cancelled"
