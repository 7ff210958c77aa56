"""The re-check of recorded tags: one shared check per (repository, tag) per interval, one report per move.

Whether a tag moved is a fact about a (repository, tag), not about an AppRelease: 1,000 AppReleases of one
version share one check (and, thanks to the registry client's cache, often no request at all). Concurrent
callers wait for the check in flight instead of starting their own.

Per-process memory, safe to lose on restart: it only spaces out registry requests and Warning events.
A process's first interval of checks (from its first check: a replica checks only once it leads) asks the
registry nothing: history has recorded the digest every AppRelease runs, and a new leader's first pass over
10,000 AppReleases of 10,000 tags would otherwise be 10,000 registry requests at once, while the rollouts it
took over wait for workers (issue 19). A tag moved meanwhile is reported one interval later.
Both memories are cachetools caches with an entry bound, so neither grows with the life of the process: the
checks a TTL cache (an entry lives one interval), the reports an LRU cache. Past the bound, the oldest entry
goes first; the cost is one more registry check, or one more Warning event for a move that old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from cachetools import LRUCache, TTLCache

from apprelease.registry.caches import SingleFlight

MAX_TAGS = 10_000  # (repository, tag) pairs checked within one interval; more than the AppReleases we expect
MAX_REPORTS = 10_000  # (AppRelease, digest) moves remembered as reported


class TagWatch:
    def __init__(
        self,
        interval_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        max_tags: int = MAX_TAGS,
        max_reports: int = MAX_REPORTS,
    ) -> None:
        self._interval = interval_seconds
        # tag -> digest (None: the check could not tell), fresh for one interval. Not thread-safe: under _lock.
        self._seen: TTLCache[Hashable, str | None] = TTLCache(max_tags, ttl=interval_seconds, timer=monotonic)
        self._reported: LRUCache[tuple[Hashable, str], bool] = LRUCache(max_reports)
        self._lock = threading.Lock()
        self._checks: SingleFlight[Hashable, str | None] = SingleFlight()
        self._monotonic = monotonic
        self._began: float | None = None  # the first observe: this process began to reconcile

    @property
    def interval(self) -> float:
        return self._interval

    def observe(self, tag: Hashable, check: Callable[[], str | None]) -> str | None:
        """The digest ``tag`` pointed to at its last check, running ``check`` when that is older than the
        interval (or never happened). None when the check could not tell; that too is kept for the interval,
        so a registry that is down is asked once per interval, not once per AppRelease."""
        fresh = self._fresh(tag)
        if fresh is not None:
            return fresh[0]
        if self._first_interval():
            return None  # history's word stands (see the module docstring)

        def run() -> str | None:
            again = self._fresh(tag)  # another thread may have finished the check meanwhile
            if again is not None:
                return again[0]
            digest = check()
            with self._lock:
                self._seen[tag] = digest
            return digest

        return self._checks.do(tag, run)

    def _first_interval(self) -> bool:
        with self._lock:
            now = self._monotonic()
            if self._began is None:
                self._began = now
            return now - self._began < self._interval

    def _fresh(self, tag: Hashable) -> tuple[str | None] | None:
        """(digest,) as recorded for ``tag`` within the interval; None when there is no such record."""
        with self._lock:
            try:
                return (self._seen[tag],)
            except KeyError:  # never checked, or expired (TTLCache drops it then)
                return None

    def first_report(self, key: Hashable, digest: str) -> bool:
        """True the first time a key's tag is seen pointing at this digest."""
        with self._lock:
            if (key, digest) in self._reported:
                self._reported[key, digest] = True  # a move still reported is recent: keep it longest
                return False
            self._reported[key, digest] = True
            return True
