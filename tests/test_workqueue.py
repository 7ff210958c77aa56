"""WorkQueue: dedup, no concurrent processing of a key, earliest-deadline delays, per-key backoff, two
priorities that never starve re-checks."""

from __future__ import annotations

import asyncio
import heapq

import pytest

from apprelease.controller.workqueue import URGENT_RUN, WorkQueue

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


async def test_urgent_keys_go_ahead_of_rechecks_and_are_never_queued_twice() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("r1", "r2", "r3"):
        queue.add(key)
    queue.add("new", urgent=True)
    queue.add("r3", urgent=True)  # a queued re-check asked for urgently moves ahead
    queue.add("r3", urgent=True)
    assert len(queue) == 4
    order = [await queue.get() for _ in range(4)]
    assert order == ["new", "r3", "r1", "r2"]
    assert len(queue) == 0
    for key in order:
        queue.done(key)
    queue.add("r3")
    assert len(queue) == 1 and await queue.get() == "r3"
    queue.add("r3", urgent=True)  # added while processed: runs again after, still urgent
    queue.add("r9")
    queue.done("r3")
    assert [await queue.get(), await queue.get()] == ["r3", "r9"]


async def test_rechecks_are_never_starved_by_a_stream_of_urgent_keys() -> None:
    # A tenant editing AppReleases in a loop must not stop the rollout checks (and rollbacks) of others.
    queue: WorkQueue[str] = WorkQueue()
    for i in range(3):
        queue.add(f"check{i}")
    for i in range(20):
        queue.add(f"edit{i}", urgent=True)
    order = [await queue.get() for _ in range(23)]
    checks = [i for i, key in enumerate(order) if key.startswith("check")]
    assert checks == [URGENT_RUN, 2 * URGENT_RUN + 1, 22]
    assert [key for key in order if key.startswith("edit")] == [f"edit{i}" for i in range(20)]


async def test_a_stale_entry_never_lets_a_recheck_ahead_and_the_deques_hold_each_key_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(1000):  # a workload event, then an edit, then a worker: one key, every time
        queue.add("x")
        queue.add("x", urgent=True)
        queue.done(await queue.get())
    assert len(queue._normal) + len(queue._urgent) == 0
    queue.add("x")
    queue.add("x", urgent=True)
    queue.add("u", urgent=True)
    queue.add("r1")
    assert [await queue.get() for _ in range(3)] == ["x", "u", "r1"]


async def test_a_key_given_back_keeps_its_priority() -> None:
    # A worker that took a key as leadership lapsed puts it back: a person's edit stays ahead of re-checks.
    queue: WorkQueue[str] = WorkQueue()
    queue.add("edit", urgent=True)
    taken = await queue.get()
    queue.add("check")
    queue.give_back(taken)
    assert [await queue.get(), await queue.get()] == ["edit", "check"]


async def _rechecks_done_at(priorities: bool, urgent_workers: int | None) -> float:
    """Virtual seconds until 100 re-checks are done, while 8 keys whose passes take 30 s each (a tenant's
    registry answering just inside the resolution deadline) are edited again during every pass: 4 workers
    take keys from the real queue, in a discrete-event simulation (no wall clock)."""
    queue: WorkQueue[str] = WorkQueue(urgent_workers=urgent_workers)
    victims = {f"victim{i}" for i in range(100)}
    for i in range(8):
        queue.add(f"tenant{i}", urgent=priorities)
    for key in sorted(victims):
        queue.add(key)
    now, running, free = 0.0, list[tuple[float, str]](), 4
    while victims:
        while free and len(queue):
            key = await queue.get()
            slow = key.startswith("tenant")
            if slow:
                queue.add(key, urgent=priorities)  # edited again while in process
            heapq.heappush(running, (now + (30.0 if slow else 0.05), key))
            free -= 1
        now, key = heapq.heappop(running)
        queue.done(key)
        victims.discard(key)
        free += 1
    return now


async def test_slow_urgent_passes_leave_a_worker_to_rechecks() -> None:
    fifo = await _rechecks_done_at(priorities=False, urgent_workers=None)  # one queue, as before priorities
    unlimited = await _rechecks_done_at(priorities=True, urgent_workers=None)
    limited = await _rechecks_done_at(priorities=True, urgent_workers=3)  # what the runtime passes (workers - 1)
    assert unlimited > 10 * fifo  # the hole: key shares alone let slow urgent passes hold every worker
    assert limited <= fifo
