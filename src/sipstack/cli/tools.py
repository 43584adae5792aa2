"""``sipstack options``, and ``register``, ``call``, ``message`` (the user agent of
:mod:`sipstack.ua` with the same flags, tracing, JSON and exit codes: see the end).

``sipstack options``: ping a SIP server or user agent with OPTIONS (RFC 3261 §11).

The request goes out through :class:`~sipstack.endpoint.Endpoint`: RFC 3263 server location
(NAPTR, SRV, A/AAAA) and failover to the next target after a timeout, a transport failure or
a 503 are the library's. This module adds what a command-line ping needs around it: the
local address to write in From and Via (never 0.0.0.0), a bound on the wait, the wire trace
of ``-v`` (the endpoint's ``tracer`` hook), repeated pings, JSON, and exit codes.

Exit codes are sipsak's (sipsak(1), RETURN VALUES; checked against sipsak 0.9.8.1):

==  ==========================================================================================
0   a 2xx final response (sipsak: 0 for 200 and 202 alike)
1   a final response other than 2xx (3xx, 4xx, 5xx, 6xx; redirects are not followed)
2   a local error: bad arguments, a name that does not resolve, a CA file that cannot be read
3   a remote error: no final response in time, ICMP port/host unreachable, a TCP or TLS
    connection refused or failed
==  ==========================================================================================

With ``--count N`` the exit code is that of the first ping that did not get a 2xx (0 when
all did).

ICMP errors: Linux reports them for an unconnected UDP socket only with ``IP_RECVERR``; the
endpoint's socket gets that option here and its error queue is read so that a refused port
ends the ping at once (as with sipsak) instead of after the timeout. Elsewhere, or if that
fails, the timeout covers it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..endpoint import Endpoint, run
from ..errors import ParseError, SipTimeoutError, TransportError
from ..message import Request, Response, SipURI, parse_uri
from ..net import Address, strip_brackets
from ..transaction import new_tag
from ..transport.resolver import ResolveError, Resolver
from ..transport.udp import UdpListener
from ..ua import OutgoingCall, Registration, RequestFailed, UserAgent
from ..ua.registration import refresh_delay

EXIT_OK, EXIT_SIP_FAILURE, EXIT_LOCAL_ERROR, EXIT_REMOTE_ERROR = 0, 1, 2, 3
DEFAULT_URI = "sip:127.0.0.1:5060"
DEFAULT_TIMEOUT = 32.0  # RFC 3261 Timer F (64*T1): a non-INVITE transaction's own bound

_TOP_BRANCH = re.compile(rb"^(?:via|v)[ \t]*:[^\r\n]*?;[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)", re.I | re.M)
_BARE_TARGET = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:@;\[\]\s]+)(:\d{1,5})?")
_PROTO_TARGET = re.compile(r"(udp|tcp|tls):(\[[0-9A-Fa-f:.]+\]|[^:\[\];]+)(?::(\d{1,5}))?", re.I)

log = logging.getLogger("sipstack.cli.options")


class LocalError(Exception):
    """Something wrong on this side (exit code 2)."""


def exit_code_for(status: int | None, error: str | None) -> int:
    """The exit code of an outcome (shared by options, register, call, message): a local
    error 2, no final response (timeout, unreachable) 3, a 2xx 0, another final 1."""
    if error == "local":
        return EXIT_LOCAL_ERROR
    if error is not None or status is None:
        return EXIT_REMOTE_ERROR
    return EXIT_OK if 200 <= status < 300 else EXIT_SIP_FAILURE


def configure_logging(verbose: int) -> None:
    """Logs on stderr: errors only, INFO with -v, DEBUG with -vv."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(name)s: %(message)s", stream=sys.stderr)


def tls_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """The client TLS context of ``--ca-file`` / ``--insecure``."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise LocalError(f"cannot read --ca-file {ca_file}: {exc}") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# -- arguments ----------------------------------------------------------------------------------


def target_uri(text: str) -> SipURI:
    """The target as a SIP URI: ``sip:``/``sips:`` URIs as they are, ``udp:HOST[:PORT]``
    (tcp, tls) as ``sip:HOST[:PORT];transport=…``, a bare ``HOST[:PORT]`` as ``sip:…``."""
    text = text.strip()
    m = _PROTO_TARGET.fullmatch(text)
    if m:
        port = f":{m.group(3)}" if m.group(3) else ""
        text = f"sip:{m.group(2)}{port};transport={m.group(1).lower()}"
    elif _BARE_TARGET.fullmatch(text):
        text = f"sip:{text}"
    try:
        uri = parse_uri(text, request_uri=True)
    except ParseError as exc:
        raise LocalError(f"not a SIP URI: {text!r} ({exc.reason})") from None
    if not isinstance(uri, SipURI):
        raise LocalError(f"cannot send a request to a {uri.scheme}: URI ({text}); give a sip: or sips: URI")
    return uri


def _positive(kind: type[float] | type[int]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def register_commands(sub: argparse._SubParsersAction) -> None:
    epilog = """\
output (stdout), one line per ping:
  SEQ STATUS RTT_MS SOURCE REASON        e.g. 1 200 0.812 udp:127.0.0.1:5060 OK
  SEQ timeout ELAPSED_MS - DETAIL        no final response within --timeout
  SEQ unreachable ELAPSED_MS ADDR DETAIL ICMP unreachable, connection refused, TLS failure
with --count N a summary follows on stderr; with --json, one JSON object instead.

exit codes (sipsak's convention):
  0  a 2xx final response
  1  a final response other than 2xx (3xx, 4xx, 5xx, 6xx; redirects are not followed)
  2  a local error: bad arguments, a name that does not resolve, an unreadable --ca-file
  3  a remote error: no final response within --timeout, ICMP unreachable,
     a TCP/TLS connection refused or failed
  with --count N: the code of the first ping that got no 2xx
"""
    p = sub.add_parser(
        "options",
        help="send OPTIONS to a SIP URI and report the answer (a SIP ping)",
        description="Send OPTIONS (RFC 3261 §11) to URI, locating the server by RFC 3263 "
        "(failover to the next target on timeout, transport error or 503), and report the "
        "final response.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "uri",
        nargs="?",
        default=DEFAULT_URI,
        metavar="URI",
        help=f"sip:/sips: URI, PROTO:HOST[:PORT] (udp, tcp, tls) or HOST[:PORT] (default {DEFAULT_URI})",
    )
    p.add_argument(
        "--proxy",
        metavar="URI",
        help="send through this outbound proxy (a Route header with ;lr, RFC 3261 §8.1.2)",
    )
    p.add_argument(
        "--transport",
        choices=("udp", "tcp", "tls"),
        help="use only this transport to the first hop (default: as RFC 3263 finds)",
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for a final response to each ping (default {DEFAULT_TIMEOUT:g}: Timer F)",
    )
    p.add_argument(
        "--count", "-c", type=_positive(int), default=1, metavar="N", help="pings to send (default 1)"
    )
    p.add_argument(
        "--interval",
        type=_positive(float),
        default=1.0,
        metavar="S",
        help="seconds between the starts of two pings (default 1)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (status, reason, rtt_ms, server, user_agent, …, pings) instead of lines",
    )
    p.add_argument("--from", dest="from_uri", metavar="URI", help="From URI (default sip:sipstack@LOCAL-IP)")
    p.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a header (repeatable)",
    )
    p.add_argument("--ca-file", metavar="FILE", help="PEM CA certificates to verify a TLS server with")
    p.add_argument("--insecure", action="store_true", help="TLS: do not verify the server's certificate")
    p.add_argument(
        "--verbose",
        "-v",
        action="count",
        default=0,
        help="print every message sent and received on stderr (-vv: also debug logs)",
    )
    p.set_defaults(func=_cmd_options)
    _register_ua_commands(sub)


# -- the wire: trace, first transmissions, ICMP -------------------------------------------------


def _top_branch(data: bytes) -> str | None:
    m = _TOP_BRANCH.search(data, 0, data.find(b"\r\n\r\n") if b"\r\n\r\n" in data else len(data))
    return m.group(1).decode("ascii", "replace") if m else None


class Wire:
    """The endpoint's tracer: prints messages with ``-v``, and notes when each transaction's
    request was first sent, where final responses came from, and the UDP destinations of the
    current ping (to match ICMP errors with)."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.start = time.perf_counter()
        self.first_sent: dict[str, float] = {}
        self.final: dict[str, tuple[Address, float]] = {}
        self.udp_destinations: set[tuple[str, int]] = set()
        self.last_branch: str | None = None
        self.observer: Callable[[str, bytes, Address, float], None] | None = None
        """Also called with every message and when it went (``sipstack call``'s progress)."""

    def __call__(self, direction: str, data: bytes, address: Address) -> None:
        now = time.perf_counter()  # the loop's clock may tick in whole ms (uvloop)
        if self.observer is not None:
            self.observer(direction, data, address, now)
        if self.verbose:
            where = "sent to" if direction == "send" else "received from"
            text = data.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
            sys.stderr.write(
                f"--- {where} {address} ({len(data)} bytes) at +{(now - self.start) * 1000:.3f} ms ---\n"
                f"{text}\n\n"
            )
            sys.stderr.flush()
        branch = _top_branch(data)
        if branch is None:
            return
        if direction == "send":
            if address.transport == "UDP":
                self.udp_destinations.add((address.host, address.port))
            if not data.startswith(b"SIP/2.0 ") and branch not in self.first_sent:
                self.first_sent[branch] = now
                self.last_branch = branch
        elif data.startswith(b"SIP/2.0 ") and data[8:9] != b"1" and branch not in self.final:
            self.final[branch] = (address, now)


class IcmpWatch:
    """ICMP errors for the datagrams one UDP listener sent (Linux ``IP_RECVERR``, read by the
    listener): calls ``report(host, port, errno)`` with the destination each error was for."""

    def __init__(self, listener: UdpListener, report: Callable[[str, int, int], None]) -> None:
        self.report = report
        self._listener: UdpListener | None = listener
        listener.icmp_observers.append(report)

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(ValueError):
                self._listener.icmp_observers.remove(self.report)
            self._listener = None


# -- one ping -----------------------------------------------------------------------------------


@dataclass
class Ping:
    """What became of one OPTIONS."""

    seq: int
    status: int | None = None
    reason: str | None = None
    rtt_ms: float | None = None
    source: str | None = None
    error: str | None = None  # "timeout", "unreachable" or "local"
    detail: str | None = None
    elapsed_ms: float = 0.0
    response: Response | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.status, self.error)

    def line(self) -> str:
        source = self.source or "-"
        if self.status is not None:
            return f"{self.seq} {self.status} {self.rtt_ms:.3f} {source} {self.reason or ''}".rstrip()
        return f"{self.seq} {self.error} {self.elapsed_ms:.3f} {source} {self.detail or ''}".rstrip()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "status": self.status,
            "reason": self.reason,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
            "source": self.source,
            "error": self.error,
            "detail": self.detail,
        }
        response = self.response
        if response is not None:
            via = response.via[0] if response.via else None
            out |= {
                "server": response.header("server"),
                "user_agent": response.header("user-agent"),
                "allow": response.header_values("allow"),
                "supported": response.header_values("supported"),
                "accept": response.header_values("accept"),
                "warning": response.header("warning"),
                "received": via.received if via is not None else None,
                "rport": via.rport if via is not None else None,
            }
        return out


def _describe_transport_error(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):
        return f"{exc} (TLS)"
    return str(exc)


class Pinger:
    """The endpoint, the request template and the per-ping bookkeeping."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.uri = target_uri(args.uri)
        self.proxy = target_uri(args.proxy) if args.proxy else None
        self.from_uri = target_uri(args.from_uri) if args.from_uri else None
        self.headers = [self._header(h) for h in args.header]
        self.endpoint: Endpoint | None = None
        self.wire: Wire | None = None
        self.watches: list[IcmpWatch] = []
        self.unreachable: asyncio.Future[tuple[str, int, int]] | None = None
        self.call_id = ""
        self.from_value = ""

    @staticmethod
    def _header(text: str) -> tuple[str, str]:
        name, colon, value = text.partition(":")
        if not colon or not name.strip() or re.search(r"[\s:]", name.strip()):
            raise LocalError(f"bad --header {text!r}: expected 'Name: value'")
        return name.strip(), value.strip()

    def _tls_context(self) -> ssl.SSLContext:
        return tls_context(self.args.ca_file, self.args.insecure)

    def _route_uri(self) -> SipURI:
        """The URI the first hop is found from: the proxy (with ;lr) or the target."""
        if self.proxy is None:
            return self.uri
        proxy = self.proxy.copy(params=dict(self.proxy.params))
        proxy.params.setdefault("lr", None)
        return proxy

    def request(self, seq: int) -> Request:
        headers = [
            ("Max-Forwards", "70"),
            ("From", self.from_value),
            ("To", f"<{self.uri}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} OPTIONS"),
            ("User-Agent", f"sipstack/{__version__}"),
            ("Accept", "application/sdp"),
        ]
        if self.proxy is not None:
            headers.insert(0, ("Route", f"<{self._route_uri()}>"))
        return Request("OPTIONS", str(self.uri), headers + self.headers)

    async def open(self) -> None:
        args = self.args
        supported = (args.transport.upper(),) if args.transport else ("UDP", "TCP", "TLS")
        resolver = Resolver(supported=supported)
        self.endpoint = endpoint = Endpoint(
            resolver=resolver, user_agent=None, tls_client_context=self._tls_context()
        )
        self.wire = Wire(verbose=args.verbose > 0)
        endpoint.tracer = self.wire
        route = [("Route", f"<{self._route_uri()}>")] if self.proxy is not None else []
        probe = Request("OPTIONS", str(self.uri), route)
        try:
            targets = await endpoint.targets(probe)
        except TransportError as exc:
            hop = self._route_uri()
            if isinstance(exc.__cause__, ResolveError):
                raise LocalError(f"cannot resolve {hop}: {exc}") from None
            raise LocalError(f"cannot send to {hop}: {exc}") from None
        # The address this host sends from towards each IP family among the targets: written
        # in From and in the Via of UDP requests (never 0.0.0.0).
        local: dict[bool, str] = {}
        for target in targets:
            v6 = ":" in target.host
            if v6 not in local:
                with contextlib.suppress(OSError):
                    local[v6] = source_address(target.host)
        if not local:
            raise LocalError(f"no route to {', '.join(str(t) for t in targets)} from this host")
        for target in targets:
            v6 = ":" in target.host
            if target.transport == "UDP" and v6 in local and endpoint.local_address("UDP", v6) is None:
                host = local[v6]
                await endpoint.listen(f"udp:[{host}]:0" if v6 else f"udp:{host}:0")
        for listener in endpoint.listeners:
            if isinstance(listener, UdpListener):
                self.watches.append(IcmpWatch(listener, self._icmp))
        first = local.get(":" in targets[0].host) or next(iter(local.values()))
        host = f"[{first}]" if ":" in first else first
        self.from_value = f"<{self.from_uri or f'sip:sipstack@{host}'}>;tag={new_tag()}"
        self.call_id = f"{new_tag()}{new_tag()}@{host}"

    def _icmp(self, host: str, port: int, errno: int) -> None:
        wire = self.wire
        matches = wire is not None and (strip_brackets(host), port) in wire.udp_destinations
        log.info("ICMP error for udp:%s:%d: %s", host, port, os.strerror(errno))
        if matches and self.unreachable is not None and not self.unreachable.done():
            self.unreachable.set_result((host, port, errno))

    async def ping(self, seq: int) -> Ping:
        endpoint, wire = self.endpoint, self.wire
        assert endpoint is not None and wire is not None
        loop = asyncio.get_running_loop()
        wire.udp_destinations.clear()
        wire.last_branch = None
        self.unreachable = loop.create_future()
        result = Ping(seq)
        started = time.perf_counter()
        task = asyncio.ensure_future(endpoint.request(self.request(seq)))
        try:
            done, _ = await asyncio.wait(
                {task, self.unreachable}, timeout=self.args.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            result.elapsed_ms = (time.perf_counter() - started) * 1000
        if task in done:
            try:
                response = task.result()
            except SipTimeoutError as exc:
                result.error, result.detail = "timeout", str(exc)
                return result
            except TransportError as exc:
                if not self.unreachable.done():  # else the ICMP error, below, says more
                    result.error, result.detail = "unreachable", _describe_transport_error(exc)
                    return result
            else:
                self._answered(result, response)
                return result
        # Unreachable, or no answer in time: stop the transaction (no more retransmissions).
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if wire.last_branch is not None:
            tx = endpoint.layer.find_client((wire.last_branch, "OPTIONS"))
            if tx is not None and not tx.terminated:
                endpoint.abandon(tx)
        if self.unreachable.done():
            host, port, errno = self.unreachable.result()
            result.error = "unreachable"
            result.source = str(Address("UDP", host, port))
            result.detail = f"{os.strerror(errno).lower()} (ICMP)"
        else:
            result.error = "timeout"
            result.detail = f"no final response within {self.args.timeout:g} s"
        return result

    def _answered(self, result: Ping, response: Response) -> None:
        wire = self.wire
        assert wire is not None
        result.response = response
        result.status = response.status_code
        result.reason = response.reason
        branch = response.via[0].branch if response.via else None
        final = wire.final.get(branch or "")
        sent = wire.first_sent.get(branch or "")
        if final is not None and sent is not None:
            result.source = str(final[0])
            result.rtt_ms = (final[1] - sent) * 1000
        else:
            result.rtt_ms = result.elapsed_ms

    async def close(self) -> None:
        for watch in self.watches:
            watch.close()
        if self.endpoint is not None:
            await self.endpoint.close()


def source_address(host: str) -> str:
    """The local IP address the kernel would send from to ``host`` (no packet is sent)."""
    host = strip_brackets(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 9))
        return str(sock.getsockname()[0]).split("%", 1)[0]


# -- the command --------------------------------------------------------------------------------


def _summary(pings: list[Ping]) -> dict[str, Any]:
    rtts = [p.rtt_ms for p in pings if p.rtt_ms is not None]
    return {
        "sent": len(pings),
        "answered": sum(p.status is not None for p in pings),
        "rtt_min_ms": round(min(rtts), 3) if rtts else None,
        "rtt_avg_ms": round(sum(rtts) / len(rtts), 3) if rtts else None,
        "rtt_max_ms": round(max(rtts), 3) if rtts else None,
    }


def _exit_code(pings: list[Ping]) -> int:
    for ping in pings:
        if ping.exit_code != EXIT_OK:
            return ping.exit_code
    return EXIT_OK


async def _options(args: argparse.Namespace, pings: list[Ping]) -> None:
    pinger = Pinger(args)
    try:
        await pinger.open()
        loop = asyncio.get_running_loop()
        first = loop.time()
        for seq in range(1, args.count + 1):
            ping = await pinger.ping(seq)
            pings.append(ping)
            if not args.json:
                print(ping.line(), flush=True)
            if seq < args.count:
                await asyncio.sleep(max(0.0, first + seq * args.interval - loop.time()))
    finally:
        await pinger.close()


def _cmd_options(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    pings: list[Ping] = []
    error: str | None = None
    interrupted = False
    try:
        run(_options(args, pings))
    except LocalError as exc:
        error = str(exc)
    except KeyboardInterrupt:
        interrupted = True
    code = EXIT_LOCAL_ERROR if error is not None else _exit_code(pings)
    if error is not None and not args.json:
        print(f"sipstack options: {error}", file=sys.stderr)
    if args.json:
        last = pings[-1].as_json() if pings else {}
        last.pop("seq", None)
        if error is not None:
            last |= {"error": "local", "detail": error}
        document = {"uri": args.uri, "proxy": args.proxy, "transport": args.transport}
        document |= {"status": None, "reason": None, "rtt_ms": None, "error": None, "detail": None}
        document |= last
        document |= {"exit_code": code, **_summary(pings), "pings": [p.as_json() for p in pings]}
        print(json.dumps(document))
    elif args.count > 1 and pings:
        s = _summary(pings)
        rtt = (
            f"; rtt min/avg/max {s['rtt_min_ms']:.3f}/{s['rtt_avg_ms']:.3f}/{s['rtt_max_ms']:.3f} ms"
            if s["rtt_min_ms"] is not None
            else ""
        )
        print(f"--- {args.uri}: {s['sent']} sent, {s['answered']} answered{rtt}", file=sys.stderr)
    if interrupted:
        print("sipstack options: interrupted", file=sys.stderr)
        return 130
    return code


# -- register, call, message: the user agent (sipstack.ua) on the command line ------------------

_UA_EXIT_CODES = """\
exit codes (as for `sipstack options`):
  0  a 2xx final response{extra}
  1  a final response other than 2xx (a wrong password: the 401/407 left over)
  2  a local error: bad arguments, a name that does not resolve, an unreadable --ca-file
  3  no final response within --timeout, ICMP unreachable, a TCP/TLS connection refused
  130 interrupted (Ctrl-C){interrupt}
"""
_CSEQ = re.compile(rb"^(?:cseq)[ \t]*:[ \t]*(\d+)[ \t]+([A-Za-z]+)", re.I | re.M)


def _ua_arguments(p: argparse.ArgumentParser, *, identity: bool, timeout_help: str) -> None:
    """The flags register, call and message share with options (and each other)."""
    p.add_argument(
        "--proxy",
        metavar="URI",
        help="outbound proxy: a Route with ;lr on requests outside dialogs (RFC 3261 §8.1.2)",
    )
    p.add_argument(
        "--transport",
        choices=("udp", "tcp", "tls"),
        help="use only this transport to the first hop (default: as RFC 3263 finds)",
    )
    p.add_argument(
        "--timeout", type=_positive(float), default=DEFAULT_TIMEOUT, metavar="S", help=timeout_help
    )
    if identity:
        p.add_argument(
            "--from",
            dest="from_uri",
            metavar="AOR",
            help="our identity, From (default sip:sipstack@LOCAL-ADDRESS)",
        )
        p.add_argument(
            "--password", metavar="P", help="answer digest challenges (401/407) with this password"
        )
        p.add_argument("--user", metavar="U", help="digest user name (default: the user part of --from)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.add_argument("--ca-file", metavar="FILE", help="PEM CA certificates to verify a TLS server with")
    p.add_argument("--insecure", action="store_true", help="TLS: do not verify the server's certificate")
    p.add_argument(
        "--verbose",
        "-v",
        action="count",
        default=0,
        help="print every message sent and received on stderr (-vv: also debug logs)",
    )


def _register_ua_commands(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "register",
        help="register a contact for an address-of-record (digest authentication)",
        description="REGISTER (RFC 3261 §10) this host as a contact of AOR with AOR's registrar "
        "(the domain of AOR, or --registrar / --proxy), answering digest challenges; print the "
        "expiry granted and the contacts the registrar lists.",
        epilog=_UA_EXIT_CODES.format(extra="", interrupt=" (--stay: the binding is removed first)"),
        formatter_class=raw,
    )
    p.add_argument("aor", metavar="AOR", help="the address-of-record, e.g. sip:alice@example.com")
    p.add_argument("--password", required=True, metavar="P", help="the digest password")
    p.add_argument("--user", metavar="U", help="digest user name (default: the user part of AOR)")
    p.add_argument(
        "--expires", type=_positive(int), default=3600, metavar="S", help="interval asked for (default 3600)"
    )
    p.add_argument(
        "--unregister",
        action="store_true",
        help="remove every binding of AOR instead (Contact: *, Expires: 0; RFC 3261 §10.2.2)",
    )
    p.add_argument("--stay", action="store_true", help="keep refreshing until Ctrl-C, a line per refresh")
    p.add_argument(
        "--registrar", metavar="URI", help="Request-URI of the REGISTER (default sip:DOMAIN-OF-AOR)"
    )
    _ua_arguments(p, identity=False, timeout_help="seconds to wait for each final response (default 32)")
    p.set_defaults(func=lambda args: _run_ua(args, "register", _register))

    p = sub.add_parser(
        "call",
        help="place a call (INVITE with an SDP offer), hold it, hang up",
        description="INVITE URI with an SDP offer (no media is sent), print each response with "
        "its time since the INVITE, hold the answered call for --duration seconds, then BYE. "
        "Ctrl-C while it rings sends CANCEL; once answered, BYE.",
        epilog=_UA_EXIT_CODES.format(
            extra=": the call was answered and ended (our BYE got a 2xx, or the peer's BYE came)",
            interrupt="",
        ),
        formatter_class=raw,
    )
    p.add_argument(
        "uri", metavar="URI", help="whom to call: sip:/sips: URI, PROTO:HOST[:PORT] or HOST[:PORT]"
    )
    p.add_argument(
        "--duration",
        type=_positive(float),
        default=5.0,
        metavar="S",
        help="hold the call S seconds (default 5)",
    )
    _ua_arguments(
        p,
        identity=True,
        timeout_help="seconds to wait for the answer, then CANCEL (default 32: Timer B); also bounds the BYE",
    )
    p.set_defaults(func=lambda args: _run_ua(args, "call", _call))

    p = sub.add_parser(
        "message",
        help="send an instant message (MESSAGE, RFC 3428)",
        description="Send TEXT to URI in a MESSAGE (RFC 3428, text/plain) and report the final response.",
        epilog=_UA_EXIT_CODES.format(extra=" (200 or 202)", interrupt=""),
        formatter_class=raw,
    )
    p.add_argument("uri", metavar="URI", help="recipient: sip:/sips: URI, PROTO:HOST[:PORT] or HOST[:PORT]")
    p.add_argument("text", metavar="TEXT", help="the message body (UTF-8 text)")
    _ua_arguments(p, identity=True, timeout_help="seconds to wait for the final response (default 32)")
    p.set_defaults(func=lambda args: _run_ua(args, "message", _message))


class UaSession:
    """A :class:`~sipstack.ua.UserAgent` for one command: its endpoint (only the transports
    asked for, ``-v`` tracing, ICMP errors watched), bounded waits, and the outcome that
    becomes the output and the exit code."""

    def __init__(self, args: argparse.Namespace, command: str) -> None:
        self.args = args
        self.command = command
        self.proxy = target_uri(args.proxy) if args.proxy else None
        self.wire = Wire(verbose=args.verbose > 0)
        self.started = time.perf_counter()
        self.endpoint: Endpoint | None = None
        self.ua: UserAgent | None = None
        self.watches: list[IcmpWatch] = []
        self.unreachable: asyncio.Future[tuple[str, int, int]] | None = None
        self.interrupted = False
        self.result: dict[str, Any] = {
            "status": None,
            "reason": None,
            "rtt_ms": None,
            "error": None,
            "detail": None,
        }

    # -- output -------------------------------------------------------------------------

    def say(self, line: str) -> None:
        if not self.args.json:
            print(line, flush=True)

    def final(self, response: Response, started: float, *, echo: bool = True) -> None:
        """Record the final response of the command's request (and print it)."""
        rtt = (time.perf_counter() - started) * 1000
        self.result |= {"status": response.status_code, "reason": response.reason, "rtt_ms": round(rtt, 3)}
        if echo:
            self.say(f"{response.status_code} {response.reason} {rtt:.3f} ms")

    def fail(self, error: str, detail: str) -> None:
        self.result |= {"error": error, "detail": detail}

    # -- the user agent -----------------------------------------------------------------

    def route_uri(self, target: SipURI) -> SipURI:
        if self.proxy is None:
            return target
        proxy = self.proxy.copy(params=dict(self.proxy.params))
        proxy.params.setdefault("lr", None)
        return proxy

    async def open(
        self, first_hop: SipURI, aor: str | None, *, username: str | None, password: str | None
    ) -> UserAgent:
        """Make the endpoint and the UA; listen on UDP and TCP at the address this host sends
        from towards the first hop."""
        args = self.args
        supported = (args.transport.upper(),) if args.transport else ("UDP", "TCP", "TLS")
        self.endpoint = endpoint = Endpoint(
            resolver=Resolver(supported=supported),
            user_agent=None,
            tls_client_context=tls_context(args.ca_file, args.insecure),
        )
        endpoint.tracer = self.wire
        hop = self.route_uri(first_hop)
        try:
            targets = await endpoint.targets(Request("OPTIONS", str(hop), []))
        except TransportError as exc:
            if isinstance(exc.__cause__, ResolveError):
                raise LocalError(f"cannot resolve {hop}: {exc}") from None
            raise LocalError(f"cannot send to {hop}: {exc}") from None
        try:
            local = source_address(targets[0].host)
        except OSError as exc:
            raise LocalError(f"no route to {targets[0]} from this host: {exc}") from None
        host = f"[{local}]" if ":" in local else local
        for transport in ("udp", "tcp"):
            try:
                await endpoint.listen(f"{transport}:{host}:0")
            except OSError as exc:
                raise LocalError(f"cannot listen on {transport}:{host}: {exc}") from None
        for listener in endpoint.listeners:
            if isinstance(listener, UdpListener):
                self.watches.append(IcmpWatch(listener, self._icmp))
        self.ua = ua = UserAgent(
            aor,
            endpoint=endpoint,
            username=username,
            password=password,
            proxy=str(hop) if self.proxy is not None else None,
            media_address=local,
            user_agent=f"sipstack/{__version__}",
        )
        await ua.start()
        return ua

    def _icmp(self, host: str, port: int, errno: int) -> None:
        log.info("ICMP error for udp:%s:%d: %s", host, port, os.strerror(errno))
        ours = (strip_brackets(host), port) in self.wire.udp_destinations
        if ours and self.unreachable is not None and not self.unreachable.done():
            self.unreachable.set_result((host, port, errno))

    async def bounded(self, awaitable: Any, timeout: float) -> Any:
        """``awaitable``'s result, or SipTimeoutError after ``timeout`` seconds, or
        TransportError as soon as an ICMP error comes back for a datagram we sent."""
        loop = asyncio.get_running_loop()
        self.unreachable = loop.create_future()
        task = asyncio.ensure_future(awaitable)
        try:
            done, _ = await asyncio.wait(
                {task, self.unreachable}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task in done and not (self.unreachable.done() and isinstance(task.exception(), TransportError)):
            return task.result()
        if self.unreachable.done():  # the ICMP error says more than the failed transaction
            host, port, errno = self.unreachable.result()
            raise TransportError(f"{Address('UDP', host, port)}: {os.strerror(errno).lower()} (ICMP)")
        raise SipTimeoutError(f"no final response within {timeout:g} s")

    async def run(self, body: Callable[[UaSession], Any]) -> None:
        started = time.perf_counter()
        try:
            await body(self)
        except RequestFailed as exc:
            self.final(exc.response, started, echo=self.command != "call")  # call: printed already
        except SipTimeoutError as exc:
            self.fail("timeout", str(exc))
        except TransportError as exc:
            self.fail("unreachable", _describe_transport_error(exc))
        except asyncio.CancelledError:
            self.interrupted = True
        finally:
            await self.close()

    async def close(self) -> None:
        if self.ua is not None:
            with contextlib.suppress(Exception):
                await self.ua.close(timeout=2.0)
        for watch in self.watches:
            watch.close()
        if self.endpoint is not None:
            await self.endpoint.close()


def _run_ua(args: argparse.Namespace, command: str, body: Callable[[UaSession], Any]) -> int:
    configure_logging(args.verbose)
    session: UaSession | None = None
    error: str | None = None
    try:
        session = UaSession(args, command)
        run(session.run(body))
    except LocalError as exc:
        error = str(exc)
    except KeyboardInterrupt:
        if session is not None:
            session.interrupted = True
    result: dict[str, Any] = dict(session.result) if session is not None else {}
    if error is not None:
        result |= {"error": "local", "detail": error}
    code = exit_code_for(result.get("status"), result.get("error"))
    if code == EXIT_OK:
        code = result.pop("_after", EXIT_OK)
    result.pop("_after", None)
    interrupted = session is not None and session.interrupted
    if args.json:
        document = {"command": command, "proxy": args.proxy, "transport": args.transport, **result}
        document |= {"interrupted": interrupted, "exit_code": 130 if interrupted else code}
        print(json.dumps(document), flush=True)
    elif result.get("error") == "local":
        print(f"sipstack {command}: {result['detail']}", file=sys.stderr)
    elif result.get("error") is not None:
        print(f"{result['error']} {result['detail']}", flush=True)
    if interrupted:
        print(f"sipstack {command}: interrupted", file=sys.stderr)
        return 130
    return code


def _aor(text: str) -> str:
    uri = target_uri(text)
    if not uri.user:
        raise LocalError(f"an address-of-record needs a user part: {text!r}")
    return str(uri)


def _contacts(response: Response) -> list[dict[str, Any]]:
    return [
        {"uri": str(c.uri), "expires": c.expires if c.expires is not None else response.expires}
        for c in response.contact
        if not c.is_star
    ]


async def _register(s: UaSession) -> None:
    args = s.args
    aor = _aor(args.aor)
    uri = parse_uri(aor)
    assert isinstance(uri, SipURI)
    registrar = target_uri(args.registrar) if args.registrar else target_uri(f"{uri.scheme}:{uri.host_port}")
    s.result |= {"aor": aor, "registrar": str(registrar)}
    ua = await s.open(registrar, aor, username=args.user, password=args.password)
    started = time.perf_counter()
    if args.unregister:
        request = ua.create_request(
            "REGISTER", str(registrar), to=f"<{aor}>", from_aor=aor, headers=[("Expires", "0")]
        )
        response = await s.bounded(ua.send(request, contact="*"), args.timeout)
        s.final(response, started)
        ua.check("REGISTER", response)
        s.result["contacts"] = contacts = _contacts(response)
        s.say(f"unregistered {aor}: {len(contacts)} contact(s) left")
        for contact in contacts:
            s.say(f"contact {contact['uri']} expires {contact['expires']}")
        return
    registration = Registration(
        ua, aor, registrar=str(registrar), credentials=ua.credentials, expires=args.expires
    )
    response = await s.bounded(registration.register(), args.timeout)
    _registered(s, registration, response, started, "registered")
    if not args.stay:
        return
    try:
        while True:
            await asyncio.sleep(refresh_delay(registration.granted))
            started = time.perf_counter()
            response = await s.bounded(registration.register(), args.timeout)
            _registered(s, registration, response, started, "refreshed")
    except asyncio.CancelledError:
        s.interrupted = True
        with contextlib.suppress(Exception):
            response = await s.bounded(registration.unregister(), 5.0)
            s.say(f"unregistered {registration.contact} ({response.status_code} {response.reason})")


def _registered(
    s: UaSession, registration: Registration, response: Response, started: float, what: str
) -> None:
    s.final(response, started)
    s.result |= {
        "contact": registration.contact,
        "expires": registration.granted,
        "contacts": _contacts(response),
    }
    s.say(f"{what} {registration.aor} as {registration.contact} for {registration.granted} s")
    for contact in s.result["contacts"]:
        s.say(f"contact {contact['uri']} expires {contact['expires']}")


async def _call(s: UaSession) -> None:
    args = s.args
    target = target_uri(args.uri)
    aor = _aor(args.from_uri) if args.from_uri else None
    s.result |= {"uri": str(target), "from": aor, "progress": [], "answered": False, "ended_by": None}
    ua = await s.open(target, aor, username=args.user, password=args.password)
    progress: list[dict[str, Any]] = s.result["progress"]
    seen: set[bytes] = set()
    sent: list[float] = []

    def observe(direction: str, data: bytes, address: Address, now: float) -> None:
        m = _CSEQ.search(data)
        if m is None or m.group(2).upper() != b"INVITE":
            return
        if direction == "send":
            if data.startswith(b"INVITE ") and not sent:
                sent.append(now)
                s.say(f"INVITE {target} to {address}")
            return
        if not data.startswith(b"SIP/2.0 ") or data in seen or not sent:
            return
        seen.add(data)  # a retransmission prints nothing
        status = int(data[8:11])
        reason = data[12 : data.find(b"\r\n")].decode("utf-8", "replace")
        ms = (now - sent[0]) * 1000
        progress.append({"status": status, "reason": reason, "ms": round(ms, 3), "source": str(address)})
        s.say(f"{status} {reason} {ms:.3f} ms")

    s.wire.observer = observe
    call = ua.dial(str(target))
    started = time.perf_counter()
    try:
        response = await s.bounded(call.wait_answered(), args.timeout)
    except asyncio.CancelledError:
        s.interrupted = True
        s.say("interrupted: CANCEL")
        with contextlib.suppress(Exception):
            final = await asyncio.wait_for(call.cancel(), 10.0)
            if final is not None:
                s.final(final, started, echo=False)
        s.result["ended_by"] = "cancel"
        return
    except TransportError:
        if not call.established:
            call.abandon()  # unreachable (ICMP, refused): no provisional came, no CANCEL can go
        raise
    except SipTimeoutError:
        if not call.ended:
            s.say("no answer: CANCEL")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.cancel(), 5.0)
        raise
    s.final(response, started, echo=False)
    s.result["answered"] = True
    remote = call.remote_sdp
    s.result["answer_sdp"] = bytes(remote).decode("utf-8", "replace") if remote is not None else None
    s.say(f"answered; holding {args.duration:g} s")
    try:
        reason = await _hold(s, call, args.duration)
    except TimeoutError:
        pass
    except asyncio.CancelledError:
        s.interrupted = True
    else:
        s.result["ended_by"] = "remote"
        s.say(f"ended by the peer ({reason})")
        return
    s.result["ended_by"] = "local"
    bye_started = time.perf_counter()
    try:
        bye = await s.bounded(call.bye(), args.timeout)
    except (SipTimeoutError, TransportError) as exc:
        s.result |= {"bye_status": None, "bye_error": str(exc), "_after": EXIT_REMOTE_ERROR}
        s.say(f"BYE failed: {exc}")
        return
    ms = (time.perf_counter() - bye_started) * 1000
    s.result |= {"bye_status": bye.status_code, "bye_reason": bye.reason, "bye_ms": round(ms, 3)}
    if not 200 <= bye.status_code < 300:
        s.result["_after"] = EXIT_SIP_FAILURE
    s.say(f"BYE {bye.status_code} {bye.reason} {ms:.3f} ms")


HOLD_PROGRESS = 10.0
"""Most seconds between the progress lines of ``call --duration``."""


async def _hold(s: UaSession, call: OutgoingCall, duration: float) -> str:
    """Wait for the call to end, at most ``duration`` seconds (TimeoutError then), saying
    how long it has been held: a line every fifth of the duration, at least every
    HOLD_PROGRESS seconds, none for holds under two seconds."""
    every = min(HOLD_PROGRESS, max(1.0, duration / 5)) if duration >= 2 else duration
    held = 0.0
    while True:
        step = min(every, duration - held)
        try:
            return await call.wait_ended(step)
        except TimeoutError:
            held += step
            if held >= duration:
                raise
            s.say(f"in call: {held:g} s of {duration:g} s")


async def _message(s: UaSession) -> None:
    args = s.args
    target = target_uri(args.uri)
    aor = _aor(args.from_uri) if args.from_uri else None
    s.result |= {"uri": str(target), "from": aor}
    ua = await s.open(target, aor, username=args.user, password=args.password)
    started = time.perf_counter()
    response = await s.bounded(ua.message(str(target), args.text), args.timeout)
    s.final(response, started)
