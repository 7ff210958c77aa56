"""Thread-safe, bounded caches and single-flight for the registry client.

The reconciler runs in worker threads: 1,000 AppReleases naming one image must cost one registry request
per fact, not one per AppRelease. ``Lru`` bounds memory by entry count and by bytes (content behind a
digest never changes, so it needs no expiry); ``SingleFlight`` makes concurrent callers of one key share
one computation, its result or its exception.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Lru", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """Least-recently-used cache bounded by count and total size, with an optional time to live."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        *,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[2] <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V, size: int = 0, ttl_seconds: float | None = None) -> None:
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        if ttl is not None and ttl <= 0:
            return
        if self._max_bytes is not None and size > self._max_bytes:
            return  # would evict everything else and still not fit
        expires_at = self._clock() + ttl if ttl is not None else float("inf")
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (value, size, expires_at)
            self._bytes += size
            while len(self._entries) > self._max_entries or (
                self._max_bytes is not None and self._bytes > self._max_bytes
            ):
                self._drop(next(iter(self._entries)))

    def discard(self, key: K) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._bytes

    def _drop(self, key: K) -> None:
        _, size, _ = self._entries.pop(key)
        self._bytes -= size


@dataclass
class _Call(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """At most one call of ``fn`` per key at a time; callers that arrive meanwhile wait and share its outcome."""

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}
        self._lock = threading.Lock()

    def do(self, key: K, fn: Callable[[], V]) -> V:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.value  # type: ignore[return-value]
        try:
            call.value = fn()
            return call.value
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
