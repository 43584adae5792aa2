"""When a server process runs the garbage collector.

CPython starts a young collection when tracked allocations *minus deallocations* pass a
threshold. A proxy keeps each call's transactions for 32 s after the call (Timers J, L, M:
64*T1), so under a steady load the state of old calls dies about as fast as new state is
made: the count stays low while the young generation keeps everything made since the last
collection, until some fluctuation passes the threshold and a "young" collection scans
seconds of the live state in one pause (280-370 ms measured at a step from 1000 to 1900
calls/s, when one second's worth takes 15 ms), and its survivors are scanned again in the
older generations' collections. At a rate near saturation such a pause is what makes the
clients retransmit, and the retransmissions what makes the server fall behind.

So the automatic collector is off, and :class:`Collector` collects on a clock instead:

- every ``young_interval`` seconds the young generation (what was made since the last tick
  and is still alive), then :func:`gc.freeze`: what survives its first collection is never
  scanned again. It is still freed by reference counting when its call ends (a transaction
  holds no cycle once it has terminated), so the pause is bounded by one interval's worth
  of new state whatever the load did before;
- every ``full_interval`` seconds (0: never) everything, frozen or not, for the cycles that
  formed after their objects' first collection and would otherwise stay; logged with the
  pause it took, which grows with the live state (0.2 s measured at 1000 calls/s).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("sipstack.server")

YOUNG_INTERVAL = 1.0
FULL_INTERVAL = 3600.0


class Collector:
    """Runs the collector on the event loop's clock while started (see the module's text)."""

    def __init__(self, young_interval: float = YOUNG_INTERVAL, full_interval: float = FULL_INTERVAL) -> None:
        self.young_interval = young_interval
        self.full_interval = full_interval
        self.stats = {"young": 0, "full": 0, "freed": 0}
        self._timer: asyncio.TimerHandle | None = None
        self._next_full = 0.0
        self._was_enabled = True

    def start(self) -> None:
        """Collect what start-up left, keep it out of every later collection, and take over
        from the automatic collector."""
        loop = asyncio.get_running_loop()
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        self._next_full = loop.time() + self.full_interval
        self._timer = loop.call_later(self.young_interval, self._tick)

    def stop(self) -> None:
        """Hand the collector back as it was (an embedding process goes on)."""
        if self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.full_interval > 0 and now >= self._next_full:
            self._next_full = now + self.full_interval
            self.collect_all()
        else:
            self.collect_young()
        self._timer = loop.call_later(self.young_interval, self._tick)

    def collect_young(self) -> int:
        """Collect the young generation and freeze what survives; the count it freed."""
        freed = gc.collect(0)
        gc.freeze()
        self.stats["young"] += 1
        self.stats["freed"] += freed
        return freed

    def collect_all(self) -> int:
        """A full collection over everything, frozen objects included; the count it freed."""
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.stats["full"] += 1
        self.stats["freed"] += freed
        log.info(
            "full garbage collection: %d unreachable object(s) freed in %.0f ms",
            freed,
            (time.perf_counter() - started) * 1000,
        )
        return freed
