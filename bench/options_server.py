#!/usr/bin/env python3
"""The sipstack side of ``bench/options.py``: one process, one UDP listener, OPTIONS answered.

Every OPTIONS is answered ``200 OK`` through its server transaction (the endpoint's normal
path: parse, Via stamping, transaction match, ``IncomingRequest.respond(200)``); any other
method gets a 405. It runs on uvloop (:func:`sipstack.endpoint.run`).

Usage: ``python bench/options_server.py --listen udp:127.0.0.1:PORT [--no-gc]``
(``--no-gc``: ``gc.disable()`` first, to see what the cyclic garbage collector costs; not used
by ``bench/options.py``).

Warnings and errors of the stack (including any exception a handler raised) go to stderr.
On SIGTERM or SIGINT it writes one line of counters to stderr and exits 0::

    sipstack-stats requests_in=... sent=... malformed=... send_errors=... transactions=... answered=...
      gc_runs=... gc_s=... gc_gen2_runs=... gc_gen2_max_ms=... peak_rss_mb=...

``transactions`` is how many server transactions were still kept (RFC 3261 Timer J keeps an
answered non-INVITE transaction 64*T1 = 32 s over UDP); the ``gc_`` counters are the cyclic
garbage collector's runs and the time they took (measured with ``gc.callbacks``; a run stops
the event loop for that long); ``peak_rss_mb`` is the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
import time
from pathlib import Path

# Let `python bench/options_server.py` work from a source checkout without an install.
_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from sipstack.endpoint import Endpoint, IncomingRequest, run  # noqa: E402


class GcTimes:
    """Times every run of the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.runs = 0
        self.total = 0.0
        self.gen2_runs = 0
        self.gen2_max = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        took = time.perf_counter() - self._start
        self.runs += 1
        self.total += took
        if info["generation"] == 2:
            self.gen2_runs += 1
            self.gen2_max = max(self.gen2_max, took)

    def __str__(self) -> str:
        return (
            f"gc_runs={self.runs} gc_s={self.total:.2f} gc_gen2_runs={self.gen2_runs}"
            f" gc_gen2_max_ms={1000 * self.gen2_max:.0f}"
        )


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def serve(listen: str) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    answered = 0
    gc_times = GcTimes()

    def handle(incoming: IncomingRequest) -> None:
        nonlocal answered
        if incoming.method == "OPTIONS":
            incoming.respond(200)
            answered += 1
        elif incoming.method != "ACK":
            incoming.respond(405)

    async with Endpoint() as endpoint:
        endpoint.on_request(handle)
        local = await endpoint.listen(listen)
        gc.collect()
        gc.freeze()  # as sipstack serve does after start-up
        loop_type = type(loop)
        print(
            f"sipstack OPTIONS responder listening on {local}"
            f" (loop {loop_type.__module__}.{loop_type.__name__})",
            file=sys.stderr,
            flush=True,
        )
        await stop
        counters = " ".join(f"{key}={value}" for key, value in endpoint.stats.items())
        print(
            f"sipstack-stats {counters} transactions={len(endpoint.layer)} answered={answered}"
            f" {gc_times} peak_rss_mb={peak_rss_mb():.0f}",
            file=sys.stderr,
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="udp:127.0.0.1:5060", help="udp:HOST:PORT (default %(default)s)")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic garbage collector")
    args = parser.parse_args()
    if args.no_gc:
        gc.disable()
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    run(serve(args.listen))


if __name__ == "__main__":
    main()
