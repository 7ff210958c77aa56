"""The re-check of recorded tags: one shared check per (repository, tag) per interval, one report per move.

Whether a tag moved is a fact about a (repository, tag), not about an AppRelease: 1,000 AppReleases of one
version share one check (and, thanks to the registry client's cache, often no request at all). Concurrent
callers wait for the check in flight instead of starting their own.

Per-process memory, safe to lose on restart: it only spaces out registry requests and Warning events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from apprelease.registry.caches import SingleFlight


class TagWatch:
    def __init__(self, interval_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_seconds
        self._monotonic = monotonic
        self._seen: dict[Hashable, tuple[float, str | None]] = {}
        self._reported: set[tuple[Hashable, str]] = set()
        self._lock = threading.Lock()
        self._checks: SingleFlight[Hashable, str | None] = SingleFlight()

    @property
    def interval(self) -> float:
        return self._interval

    def observe(self, tag: Hashable, check: Callable[[], str | None]) -> str | None:
        """The digest ``tag`` pointed to at its last check, running ``check`` when that is older than the
        interval (or never happened). None when the check could not tell; that too is kept for the interval,
        so a registry that is down is asked once per interval, not once per AppRelease."""
        fresh = self._fresh(tag)
        if fresh is not None:
            return fresh[1]

        def run() -> str | None:
            again = self._fresh(tag)  # another thread may have finished the check meanwhile
            if again is not None:
                return again[1]
            digest = check()
            with self._lock:
                self._seen[tag] = (self._monotonic(), digest)
            return digest

        return self._checks.do(tag, run)

    def _fresh(self, tag: Hashable) -> tuple[float, str | None] | None:
        with self._lock:
            seen = self._seen.get(tag)
        if seen is not None and self._monotonic() - seen[0] < self._interval:
            return seen
        return None

    def first_report(self, key: Hashable, digest: str) -> bool:
        """True the first time a key's tag is seen pointing at this digest."""
        with self._lock:
            if (key, digest) in self._reported:
                return False
            self._reported.add((key, digest))
            return True
