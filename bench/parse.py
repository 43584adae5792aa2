#!/usr/bin/env python3
"""Parser benchmark: sipstack's message parser against sippy's (PyPI ``sippy==2.5.0``).

Both parsers run side by side in the same process and the same run, their timed loops
interleaved round by round so that machine noise hits both alike. Two workloads:

(a) proxy fields -- parse a realistic INVITE with SDP and read what a proxy reads: the top
    Via's branch/host/port, the number of Vias, Max-Forwards, the Route list (and the top
    Route's URI), CSeq number and method, Call-ID, From tag, To tag, Content-Length;
(b) full parse + serialise -- parse every header's value and serialise the message again,
    for an INVITE with SDP, a REGISTER with a digest Authorization and a 200 OK to an INVITE
    (Record-Route, Contact, SDP). The SDP body is carried as an opaque body in both.

Each side uses its natural API. sippy takes ``str`` and gives ``str``, so its loops include
``bytes.decode()`` / ``str.encode()`` (what sippy's own transaction manager does with a
datagram); sipstack takes and gives ``bytes``. (a) parses as sipstack's proxy does,
``parse(data, strict=False)``; an extra row shows the strict (UA) mode for information.
(b) parses with ``strict=False`` before ``parse_all()`` so that the full parse is done once.

Usage: ``python bench/parse.py [--quick] [--rounds N] [--seconds S]`` (``make bench``).
Prints messages/s per case and library and the ratio sipstack/sippy with the issue's target
(a: >= 4x, b: >= 3x). Timings never make it exit non-zero: the PASS / BELOW-TARGET word is
for information. It exits non-zero only when a parser gets the benchmark messages wrong.
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

# Let `python bench/parse.py` work from a source checkout without an editable install.
_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

TARGET_A = 4.0
TARGET_B = 3.0

# --------------------------------------------------------------------------------------
# The messages. Header lines are joined with CRLF; Content-Length is computed.
# --------------------------------------------------------------------------------------

CALL_ID = "a84b4c76e66710-3848276298@192.0.2.101"
CSEQ = 314159
INVITE_BRANCH = "z9hG4bK2d4790.1e5a7c0f"
REGISTER_CALL_ID = "1j9FpLxk3uxtm8tn-843817637684230@192.0.2.55"
REGISTER_CSEQ = 2
REGISTER_BRANCH = "z9hG4bKnashds7a1b2"
OK_BRANCH = "z9hG4bK4b43c2ff8.1"

INVITE_SDP = (
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.101",
    "s=-",
    "c=IN IP4 192.0.2.101",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 8 9 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=rtcp:49171",
    "a=sendrecv",
)

OK_SDP = (
    "v=0",
    "o=bob 2808844564 2808844564 IN IP4 192.0.2.4",
    "s=-",
    "c=IN IP4 192.0.2.4",
    "t=0 0",
    "m=audio 3456 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=maxptime:150",
    "a=rtcp:3457",
    "a=label:1",
    "a=ssrc:4051268871 cname:bob@biloxi.example.com",
    "a=sendrecv",
)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, REFER, NOTIFY, MESSAGE, INFO"


def _message(start_line: str, headers: tuple[str, ...], body_lines: tuple[str, ...] = ()) -> bytes:
    body = "".join(line + "\r\n" for line in body_lines).encode()
    head = "\r\n".join((start_line, *headers, f"Content-Length: {len(body)}"))
    return head.encode() + b"\r\n\r\n" + body


# An INVITE as our proxy receives it: the caller's softphone sent it through an edge
# proxy, which added its Via and Record-Route; the Route set points at us and beyond.
INVITE = _message(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    (
        f"Via: SIP/2.0/UDP edge.atlanta.example.com:5060;branch={INVITE_BRANCH};received=198.51.100.7",
        "Via: SIP/2.0/UDP 192.0.2.101:5062;received=192.0.2.101;rport=5062;branch=z9hG4bK74bf9a3c",
        "Max-Forwards: 69",
        "Record-Route: <sip:edge.atlanta.example.com;lr>",
        "Route: <sip:proxy.biloxi.example.com;lr>",
        "Route: <sip:core.biloxi.example.com:5070;transport=udp;lr>",
        'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
        "To: Bob <sip:bob@biloxi.example.com>",
        f"Call-ID: {CALL_ID}",
        f"CSeq: {CSEQ} INVITE",
        "Contact: <sip:alice@192.0.2.101:5062;transport=udp;ob>;expires=3600;"
        '+sip.instance="<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>"',
        f"Allow: {ALLOW}",
        "Supported: replaces, timer, 100rel, norefersub",
        "User-Agent: ExamplePhone/4.2.1 (Linux; x86_64)",
        "Content-Type: application/sdp",
    ),
    INVITE_SDP,
)

REGISTER = _message(
    "REGISTER sip:registrar.biloxi.example.com SIP/2.0",
    (
        f"Via: SIP/2.0/UDP 192.0.2.55:5060;rport;branch={REGISTER_BRANCH}",
        "Max-Forwards: 70",
        "From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl",
        "To: Bob <sip:bob@biloxi.example.com>",
        f"Call-ID: {REGISTER_CALL_ID}",
        f"CSeq: {REGISTER_CSEQ} REGISTER",
        "Contact: <sip:bob@192.0.2.55:5060;transport=udp>;expires=3600;"
        '+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"',
        'Authorization: Digest username="bob", realm="biloxi.example.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:registrar.biloxi.example.com", '
        'response="245f23415f11432b3434341c022d24a1", algorithm=MD5, cnonce="0a4f113b", '
        "qop=auth, nc=00000001",
        "Expires: 3600",
        f"Allow: {ALLOW}",
        "Supported: path, outbound, gruu",
        "User-Agent: ExamplePhone/4.2.1 (Linux; x86_64)",
    ),
)

# The 200 OK to an INVITE that went caller -> edge proxy -> our proxy -> callee.
OK = _message(
    "SIP/2.0 200 OK",
    (
        f"Via: SIP/2.0/UDP proxy.biloxi.example.com:5060;branch={OK_BRANCH};received=203.0.113.9",
        "Via: SIP/2.0/UDP edge.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=198.51.100.7",
        "Via: SIP/2.0/UDP 192.0.2.101:5062;received=192.0.2.101;rport=5062;branch=z9hG4bK74bf9a3c",
        "Record-Route: <sip:proxy.biloxi.example.com;lr>",
        "Record-Route: <sip:edge.atlanta.example.com;lr>",
        'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
        "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356",
        f"Call-ID: {CALL_ID}",
        f"CSeq: {CSEQ} INVITE",
        "Contact: <sip:bob@192.0.2.4:5060;transport=udp>;expires=3600",
        f"Allow: {ALLOW}",
        "Supported: replaces, timer",
        "Server: ExampleGateway/7.1.0",
        "Content-Type: application/sdp",
    ),
    OK_SDP,
)

# (call-id, cseq number, top Via branch) each parser must find in each message.
EXPECTED = {
    "INVITE": (CALL_ID, CSEQ, INVITE_BRANCH),
    "REGISTER": (REGISTER_CALL_ID, REGISTER_CSEQ, REGISTER_BRANCH),
    "200 OK": (CALL_ID, CSEQ, OK_BRANCH),
}

# --------------------------------------------------------------------------------------
# sipstack
# --------------------------------------------------------------------------------------

# Headers that have a typed accessor on sipstack's messages (canonical name -> attribute).
SS_TYPED = {
    "via": "via",
    "call-id": "call_id",
    "cseq": "cseq",
    "max-forwards": "max_forwards",
    "from": "from_",
    "to": "to",
    "route": "route",
    "record-route": "record_route",
    "contact": "contact",
    "content-length": "content_length",
    "content-type": "content_type",
    "expires": "expires",
    "authorization": "authorization",
}


@dataclass
class SipstackSide:
    parse: Callable[[bytes], Any]
    has_parse_all: bool
    has_header_names: bool
    # parse(data, strict=False): check only what a proxy relies on (sipstack's proxy mode).
    lenient_parse: Callable[[bytes], Any] | None = None
    notes: list[str] = field(default_factory=list)


def load_sipstack() -> tuple[SipstackSide | None, str]:
    try:
        from sipstack.message import parse
    except Exception as exc:  # not written yet, or broken: bench the other side anyway
        return None, f"{type(exc).__name__}: {exc}"
    try:
        probe = parse(INVITE)
    except Exception as exc:
        raise SystemExit(f"sipstack cannot parse the benchmark INVITE: {exc!r}") from exc
    side = SipstackSide(
        parse=parse,
        has_parse_all=callable(getattr(probe, "parse_all", None)),
        has_header_names=callable(getattr(probe, "header_names", None)),
    )
    try:
        if "strict" in inspect.signature(parse).parameters:
            side.lenient_parse = functools.partial(parse, strict=False)
    except (TypeError, ValueError):
        pass
    if not side.has_parse_all:
        side.notes.append("msg.parse_all() missing: full parse done through the typed accessors")
    if not side.has_header_names:
        side.notes.append("msg.header_names() missing: untyped header names taken from the test messages")
    return side, ""


def ss_proxy_fields(parse: Callable[[bytes], Any]) -> Callable[[bytes], tuple]:
    def run(data: bytes) -> tuple:
        m = parse(data)
        vias = m.via
        top = vias[0]
        routes = m.route
        cseq = m.cseq
        return (
            top.branch,
            top.host,
            top.port,
            len(vias),
            m.max_forwards,
            len(routes),
            routes[0].uri if routes else None,
            cseq.seq,
            cseq.method,
            m.call_id,
            m.from_.tag,
            m.to.tag,
            m.content_length,
        )

    return run


# Untyped header names of each test message, for a sipstack without header_names().
_UNTYPED_FALLBACK = ("allow", "supported", "user-agent", "server")


def ss_full(side: SipstackSide) -> Callable[[bytes], bytes]:
    # parse() checks every known header by default (strict mode), which is what
    # parse_all() does: parse leniently first so that the full parse is done once.
    parse = side.lenient_parse if side.has_parse_all and side.lenient_parse else side.parse
    typed = SS_TYPED

    if side.has_parse_all and side.has_header_names:

        def run(data: bytes) -> bytes:
            m = parse(data)
            m.parse_all()
            for name in m.header_names():
                if name.lower() not in typed:
                    m.header_values(name)
            return bytes(m)

        return run

    attrs = tuple(typed.values())

    def run_fallback(data: bytes) -> bytes:
        m = parse(data)
        if side.has_parse_all:
            m.parse_all()
        else:
            for attr in attrs:
                getattr(m, attr)
            for v in m.via:
                v.branch, v.host, v.port, v.transport  # noqa: B018  (force the lazy parse)
            m.cseq.seq  # noqa: B018
            m.from_.tag, m.from_.uri, m.to.tag  # noqa: B018
        names = m.header_names() if side.has_header_names else _UNTYPED_FALLBACK
        for name in names:
            if name.lower() not in typed:
                m.header_values(name)
        return bytes(m)

    return run_fallback


def ss_key(parse: Callable[[bytes], Any], data: bytes) -> tuple:
    m = parse(data)
    return (m.call_id, m.cseq.seq, m.via[0].branch)


# --------------------------------------------------------------------------------------
# sippy
# --------------------------------------------------------------------------------------


@dataclass
class SippySide:
    request: type
    response: type
    version: str


def load_sippy() -> tuple[SippySide | None, str]:
    try:
        from importlib.metadata import version

        from sippy.SipRequest import SipRequest
        from sippy.SipResponse import SipResponse
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    try:
        ver = version("sippy")
    except Exception:
        ver = "?"
    return SippySide(SipRequest, SipResponse, ver), ""


def sp_parse(side: SippySide) -> Callable[[bytes], Any]:
    """bytes -> SipRequest | SipResponse, as sippy's SipTransactionManager.handleIncoming does."""
    req, resp = side.request, side.response

    def parse(data: bytes) -> Any:
        s = data.decode()
        return resp(s) if s.startswith("SIP/2.0 ") else req(s)

    return parse


def sp_proxy_fields(side: SippySide) -> Callable[[bytes], tuple]:
    req = side.request

    def run(data: bytes) -> tuple:
        m = req(data.decode())
        top = m.getHFBody("via")
        routes = m.getHFBodys("route")
        cseq, method = m.getHFBody("cseq").getCSeq()
        # sippy consumes Content-Length while parsing and keeps the (already parsed) header
        # in a private attribute; there is no public accessor for it.
        clen_hf = m._SipMsg__content_length
        return (
            top.getBranch(),
            top.hostname,
            top.port,
            m.countHFs("via"),
            m.getHFBody("max-forwards").getNum(),
            len(routes),
            routes[0].getUrl() if routes else None,
            cseq,
            method,
            str(m.getHFBody("call-id")),
            m.getHFBody("from").getTag(),
            m.getHFBody("to").getTag(),
            clen_hf.getBody().getNum() if clen_hf is not None else 0,
        )

    return run


def sp_full(side: SippySide) -> Callable[[bytes], bytes]:
    parse = sp_parse(side)

    def run(data: bytes) -> bytes:
        m = parse(data)
        # getBody() parses a header's value on first use; Content-Type and Content-Length
        # were already parsed by the constructor (they are not in m.headers).
        for hf in m.headers:
            hf.getBody()
        return m.localStr().encode()

    return run


def sp_key(side: SippySide, data: bytes) -> tuple:
    m = sp_parse(side)(data)
    return (str(m.getHFBody("call-id")), m.getHFBody("cseq").getCSeqNum(), m.getHFBody("via").getBranch())


# --------------------------------------------------------------------------------------
# Checks before timing
# --------------------------------------------------------------------------------------

MESSAGES = {"INVITE": INVITE, "REGISTER": REGISTER, "200 OK": OK}
PROXY_FIELDS = (
    "top branch",
    "top host",
    "top port",
    "Via count",
    "Max-Forwards",
    "Route count",
    "top Route URI",
    "CSeq seq",
    "CSeq method",
    "Call-ID",
    "From tag",
    "To tag",
    "Content-Length",
)


def check(ss: SipstackSide | None, sp: SippySide | None) -> list[str]:
    """Fail (raise) if a parser misses the key fields; return warnings for lesser differences."""
    warnings: list[str] = []
    for label, data in MESSAGES.items():
        want = EXPECTED[label]
        sides: list[tuple[str, Callable[[bytes], tuple], Callable[[bytes], bytes]]] = []
        if ss is not None:
            sides.append(("sipstack", lambda d, p=ss.parse: ss_key(p, d), ss_full(ss)))
        if sp is not None:
            sides.append(("sippy", lambda d, s=sp: sp_key(s, d), sp_full(sp)))
        for name, key, full in sides:
            got = key(data)
            if got != want:
                raise SystemExit(f"{name} parsed {label} wrong: (Call-ID, CSeq, branch) = {got}, want {want}")
            out = full(data)
            again = key(out)
            if again != want:
                raise SystemExit(f"{name} serialised {label} into something that parses as {again}")
    if ss is not None and sp is not None:
        b = sp_proxy_fields(sp)(INVITE)
        for parse in (ss.parse, ss.lenient_parse):
            if parse is None:
                continue
            a = ss_proxy_fields(parse)(INVITE)
            for fname, x, y in zip(PROXY_FIELDS, a, b, strict=True):
                if fname == "top Route URI":
                    x, y = str(x).strip("<>"), f"{y.scheme}:{y.host}"
                    if not x.startswith(y):
                        warnings.append(f"top Route URI differs: sipstack {x!r}, sippy {y!r}")
                elif str(x) != str(y):
                    warnings.append(f"proxy field {fname!r} differs: sipstack {x!r}, sippy {y!r}")
    return warnings


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def _loop(fn: Callable[[bytes], Any], data: bytes, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for _ in repeat(None, n):
        fn(data)
    return time.perf_counter() - t0


def calibrate(fn: Callable[[bytes], Any], data: bytes, seconds: float) -> int:
    """Iterations that take about `seconds` (after a warm-up)."""
    n = 1
    while True:
        dt = _loop(fn, data, n)
        if dt >= 0.02:
            return max(1, int(n * seconds / dt))
        n *= 4


@dataclass
class Row:
    case: str
    target: float
    ss_rate: float | None = None
    sp_rate: float | None = None
    ss_median: float | None = None
    sp_median: float | None = None


def bench_case(
    case: str,
    target: float,
    data: bytes,
    ss_fn: Callable[[bytes], Any] | None,
    sp_fn: Callable[[bytes], Any] | None,
    rounds: int,
    seconds: float,
) -> Row:
    fns = {k: f for k, f in (("sipstack", ss_fn), ("sippy", sp_fn)) if f is not None}
    iters = {k: calibrate(f, data, seconds) for k, f in fns.items()}
    per_msg: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(rounds):
        for k in order if r % 2 == 0 else reversed(order):
            per_msg[k].append(_loop(fns[k], data, iters[k]) / iters[k])
    row = Row(case, target)
    if "sipstack" in per_msg:
        row.ss_rate = 1.0 / min(per_msg["sipstack"])
        row.ss_median = 1.0 / statistics.median(per_msg["sipstack"])
    if "sippy" in per_msg:
        row.sp_rate = 1.0 / min(per_msg["sippy"])
        row.sp_median = 1.0 / statistics.median(per_msg["sippy"])
    return row


def combined(case: str, target: float, rows: list[Row]) -> Row:
    """One of each message: rate = n / sum of per-message times."""

    def rate(rs: list[float | None]) -> float | None:
        return None if any(x is None for x in rs) else len(rs) / sum(1.0 / x for x in rs)  # type: ignore[operator]

    return Row(
        case,
        target,
        rate([r.ss_rate for r in rows]),
        rate([r.sp_rate for r in rows]),
        rate([r.ss_median for r in rows]),
        rate([r.sp_median for r in rows]),
    )


def _fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def print_table(rows: list[Row]) -> None:
    head = ("case", "sipstack msg/s", "sippy msg/s", "ratio", "(median)", "target", "result")
    w = (max(len(r.case) for r in rows), 15, 12, 7, 9, 7, 12)
    print("  ".join(h.ljust(w[0]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head)))
    print("  ".join("-" * x for x in w))
    for r in rows:
        if r.ss_rate is not None and r.sp_rate is not None:
            ratio = r.ss_rate / r.sp_rate
            med = r.ss_median / r.sp_median  # type: ignore[operator]
            ratio_s, med_s = f"{ratio:.2f}x", f"{med:.2f}x"
            verdict = "info" if not r.target else "PASS" if ratio >= r.target else "BELOW-TARGET"
        else:
            ratio_s = med_s = "n/a"
            verdict = "n/a"
        cells = (
            r.case,
            _fmt_rate(r.ss_rate),
            _fmt_rate(r.sp_rate),
            ratio_s,
            med_s,
            f">={r.target:g}x" if r.target else "-",
            verdict,
        )
        print("  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (2 rounds of ~0.05 s per loop)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds per case and library (default 5)")
    ap.add_argument("--seconds", type=float, help="duration of one timed loop (default 0.3)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    seconds = args.seconds or (0.05 if args.quick else 0.3)

    ss, ss_err = load_sipstack()
    sp, sp_err = load_sippy()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.machine()}")
    print(f"sippy: {sp.version if sp else 'NOT AVAILABLE (' + sp_err + ')'}")
    print(f"sipstack: {'ok' if ss else 'NOT AVAILABLE (' + ss_err + ')'}")
    if ss is None and sp is None:
        print("neither parser can be imported; nothing to measure")
        return 1
    for note in ss.notes if ss else ():
        print(f"note: {note}")
    for w in check(ss, sp):
        print(f"warning: {w}")
    print(f"{rounds} interleaved rounds of ~{seconds:g} s per loop; best round shown, median ratio beside")
    print("message sizes: " + ", ".join(f"{k} {len(v)} B" for k, v in MESSAGES.items()))
    print()

    # (a) is what a proxy does: parse in its mode (strict=False, RFC 3261 §16.3 step 1: check
    # what the proxy uses, leave the rest alone) and read the fields it forwards by. The
    # strict (UA) mode, which checks every header sipstack knows, is shown for information.
    a_parse = None
    if ss is not None:
        a_parse = ss.lenient_parse or ss.parse
    rows = [
        bench_case(
            "(a) INVITE+SDP, proxy fields",
            TARGET_A,
            INVITE,
            ss_proxy_fields(a_parse) if a_parse else None,
            sp_proxy_fields(sp) if sp else None,
            rounds,
            seconds,
        )
    ]
    if ss is not None and ss.lenient_parse is not None:
        rows.append(
            bench_case(
                "(info) same with parse() strict (UA mode)",
                0.0,
                INVITE,
                ss_proxy_fields(ss.parse),
                sp_proxy_fields(sp) if sp else None,
                rounds,
                seconds,
            )
        )
    b_rows = [
        bench_case(
            f"(b) {label}, full parse+serialise",
            TARGET_B,
            data,
            ss_full(ss) if ss else None,
            sp_full(sp) if sp else None,
            rounds,
            seconds,
        )
        for label, data in (("INVITE+SDP", INVITE), ("REGISTER+digest", REGISTER), ("200 OK+SDP", OK))
    ]
    rows += [*b_rows, combined("(b) one of each of the three", TARGET_B, b_rows)]
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
