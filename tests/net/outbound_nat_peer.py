"""A sipstack user agent (or caller) run inside a network namespace by test_ua_outbound_nat.py.

``ua``: register an AoR with SIP Outbound over one UDP flow (reflexive Contact learnt with
STUN, keep-alives ``always`` or ``never``), answer MESSAGEs with 200, and report on stdout,
one JSON object a line: ``registered`` (Contact, mapped address), each flow event
(``failed``, ``waiting``, ``attempt-failed``), ``keepalive`` (probes answered, mapped
address) when the count changes, ``message`` (body, source). Runs until stdin closes or
``--lifetime`` seconds have passed.

``send``: send one MESSAGE to an AoR through a proxy; prints ``{"status": N}`` or
``{"error": "..."}``. ``ping``: OPTIONS a server until it answers 200 (bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from sipstack.endpoint import run
from sipstack.message import Request
from sipstack.ua import Flow, FlowEvent, OutboundConfig, UserAgent


def say(**fields: Any) -> None:
    fields.setdefault("t", round(time.monotonic(), 3))
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(1024):
        pass


async def ua_main(args: argparse.Namespace) -> None:
    config = OutboundConfig(
        keepalive=args.keepalive,
        flow_timer=args.flow_timer,
        reflexive_contact=True,
        base_time_all_failed=args.base_time,
        base_time_some_ok=args.base_time,
        max_time=4 * args.base_time,
        stun_rto=0.2,
        stun_rc=3,
        stun_rm=4,
    )
    async with UserAgent(args.aor, listen=[args.listen], pair_tcp=False) as ua:

        @ua.on_message
        def on_message(request: Request) -> int:
            say(event="message", body=request.body.decode(), source=request.via[0].sent_by)
            return 200

        def on_event(flow: Flow, event: FlowEvent) -> None:
            fields: dict[str, Any] = {"event": event.kind, "reason": event.reason}
            if event.kind == "registered":
                fields["contact"] = flow.contact
                fields["mapped"] = flow.mapped.host_port if flow.mapped else None
                fields["registrations"] = flow.registrations
            if event.delay is not None:
                fields["delay"] = round(event.delay, 3)
                fields["base_time"] = event.base_time
            say(**fields)

        await ua.register_outbound([args.proxy], expires=300, config=config, on_event=on_event)
        watcher = asyncio.ensure_future(stdin_closed())
        deadline = time.monotonic() + args.lifetime
        reported = -1
        try:
            while not watcher.done() and time.monotonic() < deadline:
                flow = ua.outbound.flows[0] if ua.outbound else None
                keepalive = flow.keepalive if flow else None
                if keepalive is not None and keepalive.probes != reported:
                    reported = keepalive.probes
                    mapped = getattr(keepalive, "mapped", None)
                    say(event="keepalive", probes=reported, mapped=mapped.host_port if mapped else None)
                await asyncio.sleep(0.05)
        finally:
            watcher.cancel()


async def send_main(args: argparse.Namespace) -> None:
    async with UserAgent(
        "sip:caller@example.com", listen=[args.listen], pair_tcp=False, proxy=args.proxy
    ) as ua:
        try:
            response = await asyncio.wait_for(
                ua.send(
                    ua.create_request("MESSAGE", args.to, body=args.body.encode(), content_type="text/plain")
                ),
                args.timeout,
            )
        except Exception as exc:  # reported to the test
            say(error=f"{type(exc).__name__}: {exc}")
            return
        say(status=response.status_code, reason=response.reason)


async def ping_main(args: argparse.Namespace) -> None:
    async with UserAgent("sip:probe@example.com", listen=[args.listen], pair_tcp=False) as ua:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            try:
                response = await asyncio.wait_for(ua.send(ua.create_request("OPTIONS", args.target)), 1.0)
                if response.status_code == 200:
                    say(status=200)
                    return
            except Exception:  # not up yet
                await asyncio.sleep(0.1)
        say(error="no 200 to OPTIONS")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    ua = sub.add_parser("ua")
    ua.add_argument("--aor", required=True)
    ua.add_argument("--listen", required=True)
    ua.add_argument("--proxy", required=True)
    ua.add_argument("--keepalive", choices=("always", "never"), required=True)
    ua.add_argument("--flow-timer", type=float, default=1.0)
    ua.add_argument("--base-time", type=float, default=0.5)
    ua.add_argument("--lifetime", type=float, default=60.0)
    send = sub.add_parser("send")
    send.add_argument("--to", required=True)
    send.add_argument("--proxy", required=True)
    send.add_argument("--listen", required=True)
    send.add_argument("--body", default="hello")
    send.add_argument("--timeout", type=float, default=10.0)
    ping = sub.add_parser("ping")
    ping.add_argument("--target", required=True)
    ping.add_argument("--listen", required=True)
    ping.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    run({"ua": ua_main, "send": send_main, "ping": ping_main}[args.mode](args))


if __name__ == "__main__":
    main()
