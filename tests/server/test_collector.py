"""The server's garbage collector on a clock (``sipstack.server.collector``)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from sipstack.server.collector import Collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-object reference cycle nothing else holds; a weak reference to one end."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def collector_state() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


async def test_the_automatic_collector_is_off_and_a_tick_frees_young_cycles() -> None:
    collector = Collector(young_interval=0.05, full_interval=0)
    collector.start()
    try:
        assert not gc.isenabled()
        frozen = gc.get_freeze_count()
        garbage = cycle()
        assert garbage() is not None  # nothing collects it but the clock
        for _ in range(100):
            await asyncio.sleep(0.02)
            if garbage() is None:
                break
        assert garbage() is None
        assert collector.stats["young"] >= 1 and collector.stats["freed"] >= 2
        kept = Node()  # alive at a tick: frozen, never scanned again
        ticks = collector.stats["young"]
        while collector.stats["young"] == ticks:
            await asyncio.sleep(0.02)
        assert gc.get_freeze_count() > frozen
        assert kept.other is None
    finally:
        collector.stop()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


async def test_a_cycle_that_dies_after_it_was_frozen_waits_for_the_full_collection() -> None:
    collector = Collector(young_interval=0.05, full_interval=0)
    collector.start()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        garbage = weakref.ref(a)
        ticks = collector.stats["young"]
        while collector.stats["young"] < ticks + 2:
            await asyncio.sleep(0.02)
        del a, b  # garbage now, among frozen objects: the young collections never see it
        ticks = collector.stats["young"]
        while collector.stats["young"] < ticks + 2:
            await asyncio.sleep(0.02)
        assert garbage() is not None
        assert collector.collect_all() >= 2
        assert garbage() is None
        assert collector.stats["full"] == 1
    finally:
        collector.stop()


async def test_the_full_collection_runs_on_its_own_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="sipstack.server")
    collector = Collector(young_interval=0.05, full_interval=0.2)
    collector.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if collector.stats["full"]:
                break
        assert collector.stats["full"] >= 1
        assert collector.stats["young"] >= 1  # the ticks between full ones stay young
        assert "full garbage collection:" in caplog.text
    finally:
        collector.stop()


def test_stop_before_start_changes_nothing() -> None:
    enabled = gc.isenabled()
    Collector().stop()
    assert gc.isenabled() == enabled
