"""At most a few large registry documents in memory at once, whatever the number of workers.

A manifest may be 4 MiB and an image config 8 MiB (`RegistrySettings`), and parsing a document of many small
JSON objects costs several times its bytes; tests/test_registry_memory.py holds 20 hostile images, 4 at a
time, under 150 MiB. The operator runs 32 workers by default (most passes never ask a registry: the answer
is cached), so 32 hostile images fetched at once would need about 8 times that, past the chart's 256 Mi
limit. The fetch and the parse of a manifest or a config therefore hold one of `count` slots; a fetch that
cannot get one before its deadline fails as a retried RegistryUnavailable, and other workers go on with
passes that need no registry. The same rule as client-go's `MaxInFlight` and Flux's `--concurrent` for
image scans: the memory that untrusted answers may take is bounded by a count, not by the workers.

Re-entrant per thread: a fetch inside a fetch (never today; an index's children are fetched one after the
other) reuses its thread's slot instead of waiting for itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from .errors import RegistryUnavailable

__all__ = ["BodySlots"]


class BodySlots:
    def __init__(self, count: int) -> None:
        """`count`: fetches of a large document at once (at least 1)."""
        self._free = threading.BoundedSemaphore(max(1, count))
        self._held = threading.local()

    @contextlib.contextmanager
    def hold(self, seconds: float, domain: str) -> Iterator[None]:
        """One slot for the block, waited for at most `seconds` (the request's deadline); raises
        RegistryUnavailable when none is free by then."""
        depth: int = getattr(self._held, "depth", 0)
        if depth == 0 and not self._free.acquire(timeout=max(0.0, seconds)):
            raise RegistryUnavailable(
                f"registry {domain}: not asked before the deadline, other AppReleases' registry reads held every "
                "slot (APPRELEASE_REGISTRY_CONCURRENT_FETCHES); retried"
            )
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                self._free.release()
