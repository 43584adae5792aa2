"""A profiling aid for the proxy's hot path (not a benchmark: it compares with nothing).

Drives a real :class:`sipstack.server.app.Server` (default route to a UAS, record-routing,
no auth) with synthetic calls — INVITE / 100 / 180 / 200 / ACK / BYE / 200, as
``bench/proxy.py``'s SIPp scenarios send them — handed straight to its UDP listeners'
``datagram_received``, with their sends captured instead of written to a socket. No
socket, no SIPp, no other process: what it measures is the Python work per call, step by
step, repeatable enough to compare two versions of the code (run each a few times; or
under ``valgrind --tool=callgrind`` for instruction counts that do not depend on the
machine's load).

    .venv/bin/python bench/proxy_profile.py                 # 5000 calls, microseconds per step
    .venv/bin/python bench/proxy_profile.py --profile 40    # cProfile, the 40 costliest functions
    .venv/bin/python bench/proxy_profile.py --profile 30 --step ACK   # one step only
    .venv/bin/python bench/proxy_profile.py --gc            # with the server's young collections
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import time

from sipstack.endpoint import run
from sipstack.net import Address
from sipstack.server.app import Server
from sipstack.server.config import load_config
from sipstack.transport.udp import UdpListener

UAC = ("127.0.0.1", 25080)
UAS = ("127.0.0.1", 25070)
SDP = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
STEPS = ("INVITE", "180", "200", "ACK", "BYE", "200 (BYE)", "timers")
GC_CALLS = 1000
"""With ``--gc``: calls between two young collections (the server's, once a second: 1000/s)."""
_COPIED = {b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq"}


def invite(n: int) -> bytes:
    return (
        b"INVITE sip:service@example.net SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:25080;branch=z9hG4bK-%d-1-0\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: sipp <sip:sipp@127.0.0.1:25080>;tag=%dSIPpTag001\r\n"
        b"To: <sip:service@example.net>\r\n"
        b"Call-ID: %d-1@127.0.0.1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:sipp@127.0.0.1:25080>\r\n"
        b"Subject: sipstack proxy benchmark\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: %d\r\n\r\n" % (n, n, n, len(SDP))
    ) + SDP


def in_dialog(method: bytes, cseq: int, n: int, routes: list[bytes], to_tag: bytes) -> bytes:
    route = b"".join(b"Route: " + r + b"\r\n" for r in routes)
    return (
        b"%s sip:uas@127.0.0.1:25070 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:25080;branch=z9hG4bK-%d-%d-%s\r\n"
        % (method, n, cseq, method)
        + route
        + b"Max-Forwards: 70\r\n"
        b"From: sipp <sip:sipp@127.0.0.1:25080>;tag=%dSIPpTag001\r\n"
        b"To: <sip:service@example.net>;tag=%s\r\n"
        b"Call-ID: %d-1@127.0.0.1\r\n"
        b"CSeq: %d %s\r\n"
        b"Contact: <sip:sipp@127.0.0.1:25080>\r\n"
        b"Content-Length: 0\r\n\r\n" % (n, to_tag, n, cseq, method)
    )


def response(request: bytes, code: int, reason: bytes, to_tag: bytes | None, body: bytes = b"") -> bytes:
    """A UAS's response: the request's Via, From, To (+ tag), Call-ID, CSeq, Record-Route —
    as SIPp's ``[last_Via:]`` writes them, the Vias joined on one line."""
    lines = []
    vias = []
    for line in request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name in (b"via", b"v"):
            vias.append(line.split(b":", 1)[1].strip())
            if len(vias) == 1:
                lines.append(b"")  # the place of the joined line
        elif name in _COPIED or name == b"record-route":
            lines.append(line)
        elif name in (b"to", b"t"):
            lines.append(line + (b";tag=" + to_tag if to_tag and b"tag=" not in line else b""))
    lines[lines.index(b"")] = b"Via: " + b", ".join(vias)
    lines.append(b"Contact: <sip:uas@127.0.0.1:25070>")
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(b"Content-Length: %d" % len(body))
    return b"SIP/2.0 %d %s\r\n" % (code, reason) + b"\r\n".join(lines) + b"\r\n\r\n" + body


class Wire:
    """The sends of every UDP listener, captured."""

    def __init__(self) -> None:
        self.sent: list[tuple[UdpListener, bytes, int]] = []
        wire = self

        def send(listener: UdpListener, data: bytes, address: Address) -> None:
            wire.sent.append((listener, data, address.port))

        UdpListener.send = send  # type: ignore[method-assign]

    def take(self, port: int) -> tuple[UdpListener, bytes]:
        for i, (listener, data, to) in enumerate(self.sent):
            if to == port:
                del self.sent[i]
                return listener, data
        raise AssertionError(f"nothing was sent to port {port}")


class Steps:
    """Times each step; with a profile and a step index, profiles only that step."""

    def __init__(self, profile: cProfile.Profile | None, only: int | None) -> None:
        self.times = [0.0] * len(STEPS)
        self.profile = profile
        self.only = only

    def run(self, index: int, listener: UdpListener, data: bytes, source: Address) -> None:
        profile = self.profile if self.only == index else None
        if profile is not None:
            profile.enable()
        t = time.perf_counter()
        listener.datagram_received(data, source)
        self.times[index] += time.perf_counter() - t
        if profile is not None:
            profile.disable()


def one_call(wire: Wire, main: UdpListener, n: int, steps: Steps) -> None:
    wire.sent.clear()
    to_tag = b"%dSIPpTag011" % n
    steps.run(0, main, invite(n), UAC)
    listener, forwarded = wire.take(UAS[1])
    wire.take(UAC[1])  # 100 Trying
    ringing = response(forwarded, 180, b"Ringing", to_tag)
    steps.run(1, listener, ringing, UAS)
    wire.take(UAC[1])
    ok = response(forwarded, 200, b"OK", to_tag, SDP)
    steps.run(2, listener, ok, UAS)
    _, upstream = wire.take(UAC[1])
    routes = [
        line.split(b":", 1)[1].strip()
        for line in upstream.split(b"\r\n")
        if line.startswith(b"Record-Route:")
    ]
    ack = in_dialog(b"ACK", 1, n, routes, to_tag)
    steps.run(3, main, ack, UAC)
    wire.take(UAS[1])
    bye = in_dialog(b"BYE", 2, n, routes, to_tag)
    steps.run(4, main, bye, UAC)
    listener, forwarded = wire.take(UAS[1])
    done = response(forwarded, 200, b"OK", None)
    steps.run(5, listener, done, UAS)
    wire.take(UAC[1])


async def main(args: argparse.Namespace) -> None:
    wire = Wire()
    config = load_config(
        None,
        listen=["udp:127.0.0.1:0"],
        domains=["sipstack.bench.invalid"],
        auth=False,
        data_dir=tempfile.mkdtemp(prefix="sipstack-profile-"),
        log_level="warning",
        default_route=f"sip:{UAS[0]}:{UAS[1]}",
    )
    server = Server(config)
    await server.start()
    endpoint = server.endpoint
    assert endpoint is not None
    main_listener = next(listener for listener in endpoint.listeners if isinstance(listener, UdpListener))
    for n in range(200):  # warm-up: caches, first-use imports
        one_call(wire, main_listener, n, Steps(None, None))
    if not args.gc:
        gc.disable()
    profile = cProfile.Profile() if args.profile else None
    only = STEPS.index(args.step) if args.step else None
    steps = Steps(profile, only)
    times = steps.times
    started = time.process_time()
    if profile is not None and only is None:
        profile.enable()
    collector = server.collector if args.gc else None
    for n in range(10**6, 10**6 + args.calls):
        one_call(wire, main_listener, n, steps)
        if collector is not None and n % GC_CALLS == 0:
            collector.collect_young()  # the server's clock never ticks here: its collections
    # Every transaction's timers, fired at once (the server's clock never moved).
    if profile is not None and only == len(STEPS) - 1:
        profile.enable()
    t = time.perf_counter()
    endpoint.layer.handle_timer(endpoint.loop.time() + 100.0)
    endpoint._process()
    times[6] += time.perf_counter() - t
    if profile is not None:
        profile.disable()
    cpu = time.process_time() - started
    gc.enable()
    print(f"{args.calls} calls, {1e6 * cpu / args.calls:.1f} us of CPU per call (driver included)")
    print(
        "  ".join(f"{name} {1e6 * spent / args.calls:.1f}" for name, spent in zip(STEPS, times, strict=True)),
        "(us per call)",
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--profile", type=int, metavar="N", default=0, help="cProfile: print the N costliest")
    parser.add_argument("--step", choices=STEPS, help="with --profile: profile only this step")
    parser.add_argument(
        "--gc", action="store_true", help=f"the server's young collections, every {GC_CALLS} calls"
    )
    sys.exit(run(main(parser.parse_args())))
