"""``start_eagerly``: a handler runs inside the callback until it really waits on something."""

from __future__ import annotations

import asyncio

import pytest

from sipstack.endpoint import start_eagerly


async def test_a_coroutine_that_never_waits_runs_to_the_end_without_a_task() -> None:
    seen: list[str] = []

    async def inner() -> int:
        seen.append("inner")
        return 1

    async def handler() -> None:
        seen.append(f"got {await inner()}")

    assert start_eagerly(asyncio.get_running_loop(), handler()) is None
    assert seen == ["inner", "got 1"]


async def test_a_coroutine_that_waits_goes_on_in_a_task_with_the_results() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[str] = loop.create_future()
    second: asyncio.Future[str] = loop.create_future()
    seen: list[str] = []

    async def handler() -> str:
        seen.append("start")
        seen.append(await first)
        await asyncio.sleep(0)  # a bare yield
        try:
            await second
        except KeyError as exc:
            seen.append(f"raised {exc}")
        await asyncio.sleep(0.01)
        return "done"

    task = start_eagerly(loop, handler())
    assert task is not None
    assert seen == ["start"]  # ran up to the first real wait, synchronously
    loop.call_soon(first.set_result, "first")
    loop.call_later(0.01, second.set_exception, KeyError("second"))
    assert await asyncio.wait_for(task, 2) == "done"
    assert seen == ["start", "first", "raised 'second'"]


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def handler() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = start_eagerly(loop, handler())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert never.cancelled()


async def test_an_error_before_the_first_wait_is_raised_to_the_caller() -> None:
    async def handler() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        start_eagerly(asyncio.get_running_loop(), handler())
