"""A keyed work queue in the controller-runtime style, on asyncio.

A key is never processed by two workers at once; a key added while it is being processed runs again after;
delayed re-adds keep only the earliest deadline; failures back off exponentially per key.

Two priorities: `add(key, urgent=True)` is for a change a person asked for (a new or edited spec, a retry
annotation), which goes ahead of re-checks (timers, backoff, a workload's progress, a replica's first list).
The idea is controller-runtime's priority queue (0.20), where a replica's first list and unchanged updates
(`handler.WithLowPriorityWhenUnchanged`) wait behind real changes: with 10,000 AppReleases re-checking their
rollouts, a new version must not wait behind them (issue 19). Here every re-check is low priority, and a key
queued as a re-check and then asked for urgently moves ahead; nothing is ever queued twice.

Re-checks are never starved (a rule of ours; controller-runtime has none): while one waits, at most
`urgent_workers` urgent keys are in process (the runtime passes workers - 1, so a re-check always has a worker
however long urgent passes take), and every `URGENT_RUN + 1`-th key taken is a re-check. A tenant who edits
AppReleases in a loop, or whose passes are slow, thus cannot stop the rollout checks and automatic rollbacks
of others.

The backoff delay is tenacity's `wait_exponential` (base * 2**(failures - 1), capped), fed each key's failure
count; tenacity's retry loop itself does not fit, because a retry here is a re-queued key, not a call repeated
in place. The queue, its deduplication and its timers are ours: asyncio has no keyed delaying queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from tenacity import RetryCallState, Retrying, wait_exponential

K = TypeVar("K", bound=Hashable)

URGENT_RUN = 8  # urgent keys taken in a row while re-checks wait, before one re-check


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 2.0, max_delay: float = 300.0, urgent_workers: int | None = None) -> None:
        """Delays in seconds; `urgent_workers`: at most this many urgent keys in process while a re-check
        waits (None: no limit)."""
        # One token per queued key, and each queued key in exactly one deque, once.
        self._tokens = asyncio.Semaphore(0)
        self._urgent: deque[K] = deque()
        self._normal: deque[K] = deque()
        self._queued: dict[K, bool] = {}  # queued key -> urgent
        self._processing: dict[K, bool] = {}  # key in process -> taken as urgent
        self._urgent_busy = 0  # urgent keys in process
        self._urgent_workers = urgent_workers
        self._dirty: dict[K, bool] = {}  # added while being processed -> urgent
        self._run = 0  # urgent keys taken in a row while re-checks waited
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._backoff = wait_exponential(multiplier=base_delay, max=max_delay)

    def add(self, key: K, urgent: bool = False) -> None:
        """Queue `key` now (a pending timer for it is dropped); `urgent` puts it ahead of re-checks."""
        timer = self._timers.pop(key, None)
        if timer:
            timer[1].cancel()
        if key in self._processing:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is None:
            self._queued[key] = urgent
            (self._urgent if urgent else self._normal).append(key)
            self._tokens.release()
        elif urgent and not queued:
            # O(queued re-checks), and only when a queued re-check is edited: no stale entry is left behind.
            self._normal.remove(key)
            self._queued[key] = True
            self._urgent.append(key)

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
        """The next key: urgent ones first, each kind in the order queued. Mark it `done` after."""
        await self._tokens.acquire()
        full = self._urgent_workers is not None and self._urgent_busy >= self._urgent_workers
        urgent = bool(self._urgent) and (not self._normal or (self._run < URGENT_RUN and not full))
        key = self._urgent.popleft() if urgent else self._normal.popleft()
        del self._queued[key]
        self._processing[key] = urgent
        self._urgent_busy += urgent
        self._run = self._run + 1 if urgent and self._normal else 0
        return key

    def done(self, key: K) -> None:
        if self._processing.pop(key, False):
            self._urgent_busy -= 1
        urgent = self._dirty.pop(key, None)
        if urgent is not None:
            self.add(key, urgent)

    def give_back(self, key: K) -> None:
        """`key` was taken but not processed (leadership lapsed while a worker waited): queued again with the
        priority it was taken with."""
        urgent = self._processing.get(key, False)
        self.done(key)
        self.add(key, urgent)

    def __len__(self) -> int:
        return len(self._queued)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)


def _attempt(number: int) -> RetryCallState:
    """The state tenacity's wait strategies read: only the attempt number (1 for the first failure) matters."""
    state = RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
    state.attempt_number = number
    return state


_RETRYING = Retrying()
