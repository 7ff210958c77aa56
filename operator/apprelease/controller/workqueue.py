"""A keyed work queue in the controller-runtime style, on asyncio.

A key is never processed by two workers at once; a key added while it is being processed runs again after;
delayed re-adds keep only the earliest deadline; failures back off exponentially per key.

The backoff delay is tenacity's `wait_exponential` (base * 2**(failures - 1), capped), fed each key's failure
count; tenacity's retry loop itself does not fit, because a retry here is a re-queued key, not a call repeated
in place. The queue, its deduplication and its timers are ours: asyncio has no keyed delaying queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

from tenacity import RetryCallState, Retrying, wait_exponential

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 2.0, max_delay: float = 300.0) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._backoff = wait_exponential(multiplier=base_delay, max=max_delay)

    def add(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer:
            timer[1].cancel()
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        existing = self._timers.get(key)
        if existing and existing[0] <= deadline:
            return
        if existing:
            existing[1].cancel()
        self._timers[key] = (deadline, loop.call_at(deadline, self._fire, key))

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` again after its backoff delay, in seconds (returned): base, 2 * base, 4 * base, ...
        up to max_delay, counted per key until `forget` or `drop`."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = float(self._backoff(_attempt(failures)))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def drop(self, key: K) -> None:
        """The object is gone: no timers, no backoff memory."""
        timer = self._timers.pop(key, None)
        if timer:
            timer[1].cancel()
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return self._queue.qsize()

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)


def _attempt(number: int) -> RetryCallState:
    """The state tenacity's wait strategies read: only the attempt number (1 for the first failure) matters."""
    state = RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
    state.attempt_number = number
    return state


_RETRYING = Retrying()
