"""WorkQueue: dedup, no concurrent processing of a key, earliest-deadline delays, per-key backoff."""

from __future__ import annotations

import asyncio

import pytest

from apprelease.controller.workqueue import WorkQueue

SHORT = 0.02  # seconds: long enough to be ordered, short enough to keep the suite fast
LONG = 60.0


async def next_key(queue: WorkQueue[str], timeout: float = 1.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def assert_empty_for(queue: WorkQueue[str], seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), seconds)


async def test_key_added_twice_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [await next_key(queue), await next_key(queue)] == ["a", "b"]
    assert len(queue) == 0


async def test_key_added_while_processing_is_requeued_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await next_key(queue) == "a"
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # never handed to a second worker while the first still has it
    queue.done("a")
    assert len(queue) == 1
    assert await next_key(queue) == "a"
    queue.done("a")
    assert len(queue) == 0  # once only


async def test_done_without_readd_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    await next_key(queue)
    queue.done("a")
    assert len(queue) == 0


async def test_key_can_be_queued_again_once_taken() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    await next_key(queue)
    queue.done("a")
    queue.add("a")
    assert len(queue) == 1


async def test_add_after_fires_later() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", SHORT)
    assert len(queue) == 0
    assert await next_key(queue) == "a"


async def test_add_after_zero_adds_now() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0)
    assert len(queue) == 1


async def test_add_after_keeps_the_earliest_deadline_when_the_later_comes_second() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", SHORT)
    queue.add_after("a", LONG)
    assert await next_key(queue, timeout=1.0) == "a"
    queue.done("a")
    await assert_empty_for(queue, SHORT * 3)  # the long timer was never set


async def test_add_after_keeps_the_earliest_deadline_when_the_earlier_comes_second() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", LONG)
    queue.add_after("a", SHORT)
    assert await next_key(queue, timeout=1.0) == "a"
    queue.done("a")
    await assert_empty_for(queue, SHORT * 3)  # the long timer was cancelled
    queue.drop("a")


async def test_add_cancels_a_pending_timer() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", SHORT)
    queue.add("a")
    assert await next_key(queue) == "a"
    queue.done("a")
    await assert_empty_for(queue, SHORT * 3)


async def test_rate_limited_delay_doubles_up_to_max_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=2.0, max_delay=20.0)
    delays = [queue.add_rate_limited("a") for _ in range(6)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert queue.add_rate_limited("b") == 2.0  # per key
    queue.forget("a")
    assert queue.add_rate_limited("a") == 2.0
    queue.drop("a")
    queue.drop("b")


async def test_rate_limited_key_is_queued_after_its_delay() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=SHORT, max_delay=1.0)
    assert queue.add_rate_limited("a") == SHORT
    assert await next_key(queue) == "a"


async def test_drop_cancels_timers_and_backoff() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=SHORT, max_delay=1.0)
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    queue.drop("a")
    await assert_empty_for(queue, SHORT * 5)
    assert queue.add_rate_limited("a") == SHORT  # backoff memory is gone too
    queue.drop("a")


async def test_rate_limited_delay_stays_at_max_after_days_of_failures() -> None:
    # 2.0 * 2**1024 does not fit a float: the hand-written formula raised OverflowError after ~3.5 days of
    # failures at a 300 s cap; tenacity's wait_exponential caps before computing.
    queue: WorkQueue[str] = WorkQueue(base_delay=2.0, max_delay=300.0)
    delays = {queue.add_rate_limited("a") for _ in range(1100)}
    assert max(delays) == 300.0
    assert queue.add_rate_limited("a") == 300.0
    queue.drop("a")
