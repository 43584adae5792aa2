"""One timer structure for a whole process (floor 1).

A binary heap of ``(when, sequence, owner, name)``; cancelling a timer does not search the
heap, it bumps the owner's generation for that name, and stale entries are skipped when
they surface (reSIProcate's TimerQueue idea). Time is a number the caller passes in;
nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Any

_NEVER = float("inf")


class Deadlines:
    """Timers keyed by (owner, name); at most one live timer per key."""

    __slots__ = ("_counter", "_heap", "_live", "new_min")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any, Hashable]] = []
        self._live: dict[tuple[int, Hashable], int] = {}
        self._counter = itertools.count()
        self.new_min = _NEVER
        """The earliest time set since :meth:`take_new_min` last ran (infinity if none)."""

    def __len__(self) -> int:
        return len(self._live)

    def set(self, when: float, owner: Any, name: Hashable) -> None:
        """Arm (or re-arm) timer ``name`` of ``owner`` to fire at ``when``."""
        seq = next(self._counter)
        self._live[(id(owner), name)] = seq
        heapq.heappush(self._heap, (when, seq, owner, name))
        if when < self.new_min:
            self.new_min = when

    def take_new_min(self) -> float:
        """The earliest time set since the last call (infinity if none), and forget it: a
        caller with a wake-up already armed re-arms only when this is earlier."""
        new = self.new_min
        self.new_min = _NEVER
        return new

    def cancel(self, owner: Any, name: Hashable) -> None:
        self._live.pop((id(owner), name), None)

    def cancel_all(self, owner: Any, names: tuple[Hashable, ...]) -> None:
        live = self._live
        oid = id(owner)
        for name in names:
            live.pop((oid, name), None)

    def is_set(self, owner: Any, name: Hashable) -> bool:
        return (id(owner), name) in self._live

    def next(self) -> float | None:
        """When the earliest live timer fires, or None."""
        heap = self._heap
        live = self._live
        while heap:
            when, seq, owner, name = heap[0]
            if live.get((id(owner), name)) == seq:
                return when
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> list[tuple[Any, Hashable]]:
        """Remove and return the timers due at ``now``, earliest first."""
        heap = self._heap
        live = self._live
        due: list[tuple[Any, Hashable]] = []
        while heap and heap[0][0] <= now:
            _, seq, owner, name = heapq.heappop(heap)
            key = (id(owner), name)
            if live.get(key) == seq:
                del live[key]
                due.append((owner, name))
        return due
