"""Thread-safe, bounded caches and single-flight for the registry client.

The reconciler runs in worker threads: 1,000 AppReleases naming one image must cost one registry request
per fact, not one per AppRelease. ``Cache`` is a lock around a ``cachetools`` cache: LRU bounded by what
its entries cost (``getsizeof``, in bytes; 1 per entry without it), optionally with a time to use per
entry (``cachetools.TLRUCache``). ``SingleFlight`` makes concurrent callers of one key share one
computation, its result or its exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import cachetools

from .errors import RegistryBusy

__all__ = ["Cache", "FlightTimeout", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_FOREVER = float("inf")


class Cache(Generic[K, V]):
    """LRU bounded by ``max_size`` in the unit of ``getsizeof`` (entries when it is None).

    ``put(..., ttl_seconds=...)`` gives one entry a time to live (tokens expire each at their own time);
    ``ttl_seconds`` in the constructor is the default. An entry bigger than the whole cache is not kept.
    """

    def __init__(
        self,
        max_size: int,
        *,
        getsizeof: Callable[[V], int] | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        sized = None if getsizeof is None else (lambda entry: max(1, getsizeof(entry[0])))
        # Values are stored as (value, expires_at): TLRUCache drops them at that time, LRU beyond the size.
        self._cache: cachetools.TLRUCache[K, tuple[V, float]] = cachetools.TLRUCache(
            maxsize=max(1, max_size), ttu=lambda _key, entry, _now: entry[1], timer=clock, getsizeof=sized
        )
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._cache.get(key)
        return None if entry is None else entry[0]

    def put(self, key: K, value: V, ttl_seconds: float | None = None) -> None:
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        if ttl is not None and ttl <= 0:
            return
        expires_at = _FOREVER if ttl is None else self._clock() + ttl
        with self._lock:
            try:
                self._cache[key] = (value, expires_at)
            except ValueError:  # bigger than the whole cache: it would evict everything and still not fit
                self._cache.pop(key, None)

    def discard(self, key: K) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    @property
    def size(self) -> float:
        """What the entries cost, in the unit of ``getsizeof``."""
        with self._lock:
            return self._cache.currsize


class FlightTimeout(RegistryBusy):
    """A caller waited for another's computation longer than it could."""


@dataclass
class _Call(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """At most one call of ``fn`` per key at a time; callers that arrive meanwhile wait (at most ``timeout``
    seconds, then ``FlightTimeout``) and share its outcome."""

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}
        self._lock = threading.Lock()

    def do(self, key: K, fn: Callable[[], V], timeout: float | None = None) -> V:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            if not call.done.wait(timeout):
                raise FlightTimeout(
                    "content fetched for another AppRelease did not arrive before the deadline; retried"
                )
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
