"""Events posted off the reconcile worker: a bounded queue drained by a few threads of its own.

An Event is a courtesy to the reader (`kubectl describe`), never a record the operator reads back, so a pass
must not wait for it: at 10,000 AppReleases posting inline was 16% of a pass's time (issue 19). The rule is
client-go's `record.EventBroadcaster`: a queue of at most 1,000 Events (`maxQueuedEvents`), and an Event that
finds it full is dropped and counted, not waited for. Order is kept per sender thread: with one thread Events
go out in the order the passes queued them, each after the status write it reports (the Report posts only
after its write returns); with several (4 by default), each Event carries the time it was queued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_QUEUED = 1000  # client-go's maxQueuedEvents
# One source's share of the queue: client-go's queue sits behind a per-object spam filter
# (EventSourceObjectSpamFilter, burst 25); ours is per source, which the cluster makes a namespace (a tenant) and
# an Event type: no tenant crowds out another's Events, and a namespace's Normal Events never its own Warnings
# (a namespace may thus hold two tenths; five flooding namespaces fill the queue).
SHARE = 10

Send = Callable[[], None]  # one Event's POST, bound to its arguments


class EventQueue:
    """`submit` never blocks; `close` lets the queue drain for at most `timeout` seconds."""

    def __init__(
        self, *, threads: int = 1, max_queued: int = MAX_QUEUED, on_drop: Callable[[], None] | None = None
    ) -> None:
        """`threads` POST at once; `on_drop` is called for each Event dropped (a metric)."""
        self._on_drop = on_drop
        self._queue: queue.Queue[tuple[str, Send] | None] = queue.Queue(maxsize=max_queued)
        self._threads = [
            threading.Thread(target=self._drain, name=f"events-{i}", daemon=True) for i in range(max(1, threads))
        ]
        self._lock = threading.Lock()
        self._started = False
        self._per_source: Counter[str] = Counter()  # queued Events per source (namespace/type); under _lock
        self._max_per_source = max(1, max_queued // SHARE)
        self.dropped = 0  # Events that found the queue full, or their source's share of it

    def submit(self, send: Send, source: str = "") -> bool:
        """Queue one Event's POST; False (and counted in `dropped`) when the queue, or `source`'s share of it
        (max_queued / SHARE; `source`: the involved object's namespace and the Event's type), is full."""
        self._start()
        try:
            with self._lock:
                if self._per_source[source] >= self._max_per_source:
                    raise queue.Full
                self._queue.put_nowait((source, send))
                self._per_source[source] += 1
        except queue.Full:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if self._on_drop is not None:
                self._on_drop()
            if dropped == 1 or dropped % 100 == 0:
                log.warning("event queue full (%d queued): %d Events dropped so far", self._queue.maxsize, dropped)
            return False
        return True

    def close(self, timeout: float) -> None:
        """Post what is queued (for at most `timeout` seconds in all), then stop the threads."""
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                return
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for thread in self._threads:
            thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            source, send = item
            with self._lock:
                self._per_source[source] -= 1
                if not self._per_source[source]:
                    del self._per_source[source]
            try:
                send()
            except Exception:  # an Event is a courtesy: a failed POST is logged, the next one goes on
                log.exception("posting an Event failed")
