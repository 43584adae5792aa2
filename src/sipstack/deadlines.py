"""One timer structure for a whole process (floor 1).

Timers are ``(when, sequence, owner, name)`` entries. Cancelling a timer does not search for
its entry: it forgets the owner's live sequence number for that name, and stale entries are
skipped when they surface (reSIProcate's TimerQueue idea). Time is a number the caller
passes in; nothing here reads a clock.

Where the entries live: a transaction's timers are a few fixed delays (64*T1, T4, T1 …) set
from a clock that only moves forward, so a timer set with :meth:`Deadlines.set_after` goes
to the back of a first-in-first-out *lane* for its delay, and each lane stays in deadline
order by construction — O(1) to add and to take, where a binary heap of a busy proxy's
quarter of a million timers, most of them cancelled long before they surface, costs a
log-depth sift of scattered memory for each. Any other timer (an absolute time, a delay
with no lane, a clock that stepped back) goes to the one binary heap.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable
from typing import Any

_NEVER = float("inf")
MAX_LANES = 32
"""Distinct delays given a lane of their own; later ones share the heap."""

_Entry = tuple[float, int, Any, Hashable]


class Deadlines:
    """Timers keyed by (owner, name); at most one live timer per key."""

    __slots__ = ("_counter", "_heap", "_lanes", "_live", "new_min")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._lanes: dict[tuple[float, float], deque[_Entry]] = {}
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

    def set_after(self, now: float, delay: float, owner: Any, name: Hashable, grid: float = 0.0) -> None:
        """Arm (or re-arm) timer ``name`` of ``owner`` to fire ``delay`` seconds after
        ``now`` (the same as ``set(now + delay, …)``; cheaper for a delay used over and over).
        ``grid``: fire at the next multiple of ``grid`` seconds instead (never earlier), so
        that timers whose exact moment does not matter share one wake-up."""
        when = now + delay
        if grid:
            when = math.ceil(when / grid) * grid
        # set()'s first lines, inline: this runs for nearly every timer of every transaction.
        seq = next(self._counter)
        self._live[(id(owner), name)] = seq
        lane = self._lanes.get((delay, grid))
        if lane is None and len(self._lanes) < MAX_LANES:
            lane = self._lanes[(delay, grid)] = deque()
        if lane is not None and (not lane or lane[-1][0] <= when):
            lane.append((when, seq, owner, name))
        else:
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
        live = self._live
        best = _NEVER
        heap = self._heap
        while heap:
            when, seq, owner, name = heap[0]
            if live.get((id(owner), name)) == seq:
                best = when
                break
            heapq.heappop(heap)
        for lane in self._lanes.values():
            while lane:
                when, seq, owner, name = lane[0]
                if live.get((id(owner), name)) == seq:
                    if when < best:
                        best = when
                    break
                lane.popleft()
        return None if best == _NEVER else best

    def pop_due(self, now: float) -> list[tuple[Any, Hashable]]:
        """Remove and return the timers due at ``now``, earliest first (in the order they
        were set among equal times)."""
        live = self._live
        due: list[_Entry] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            key = (id(entry[2]), entry[3])
            if live.get(key) == entry[1]:
                del live[key]
                due.append(entry)
        sources = 1 if due else 0
        for lane in self._lanes.values():
            if not lane or lane[0][0] > now:
                continue
            found = False
            while lane and lane[0][0] <= now:
                entry = lane.popleft()
                key = (id(entry[2]), entry[3])
                if live.get(key) == entry[1]:
                    del live[key]
                    due.append(entry)
                    found = True
            sources += found
        if sources > 1:
            due.sort()  # by time, then sequence (unique: owners are never compared)
        return [(entry[2], entry[3]) for entry in due]
