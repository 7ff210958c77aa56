"""Throttling for the re-check of recorded tags, and one report per move.

Per-process memory, safe to lose on restart: it only spaces out registry requests and Warning events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class TagWatch:
    def __init__(self, interval_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_seconds
        self._monotonic = monotonic
        self._checked_at: dict[Hashable, float] = {}
        self._reported: set[tuple[Hashable, str]] = set()
        self._lock = threading.Lock()

    def due(self, key: Hashable) -> bool:
        """True at most once per interval for a key (and the first time); marks the check as done."""
        now = self._monotonic()
        with self._lock:
            last = self._checked_at.get(key)
            if last is not None and now - last < self._interval:
                return False
            self._checked_at[key] = now
            return True

    def first_report(self, key: Hashable, digest: str) -> bool:
        """True the first time a key's tag is seen pointing at this digest."""
        with self._lock:
            if (key, digest) in self._reported:
                return False
            self._reported.add((key, digest))
            return True
