"""Events posted off the reconcile worker: a bounded queue drained by a few threads of its own.

An Event is a courtesy to the reader (`kubectl describe`), never a record the operator reads back, so a pass
must not wait for it: at 10,000 AppReleases posting inline was 16% of a pass's time (issue 19). The rule is
client-go's `record.EventBroadcaster`: a queue of at most 1,000 Events (`maxQueuedEvents`), and an Event that
finds it full is dropped and counted, not waited for. Order is kept per sender thread; with one thread (the
default) Events go out in the order the passes queued them, each after the status write it reports (the
Report posts only after its write returns).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_QUEUED = 1000  # client-go's maxQueuedEvents

Send = Callable[[], None]  # one Event's POST, bound to its arguments


class EventQueue:
    """`submit` never blocks; `close` lets the queue drain for at most `timeout` seconds."""

    def __init__(self, *, threads: int = 1, max_queued: int = MAX_QUEUED) -> None:
        self._queue: queue.Queue[Send | None] = queue.Queue(maxsize=max_queued)
        self._threads = [
            threading.Thread(target=self._drain, name=f"events-{i}", daemon=True) for i in range(max(1, threads))
        ]
        self._lock = threading.Lock()
        self._started = False
        self.dropped = 0  # Events that found the queue full

    def submit(self, send: Send) -> bool:
        """Queue one Event's POST; False (and counted in `dropped`) when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait(send)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped == 1 or dropped % 100 == 0:
                log.warning("event queue full (%d queued): %d Events dropped so far", self._queue.maxsize, dropped)
            return False
        return True

    def close(self, timeout: float) -> None:
        """Post what is queued (for at most `timeout` seconds in all), then stop the threads."""
        if not self._started:
            return
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
        for thread in self._threads:
            thread.join(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for thread in self._threads:
            thread.start()

    def _drain(self) -> None:
        while True:
            send = self._queue.get()
            if send is None:
                return
            try:
                send()
            except Exception:  # an Event is a courtesy: a failed POST is logged, the next one goes on
                log.exception("posting an Event failed")
