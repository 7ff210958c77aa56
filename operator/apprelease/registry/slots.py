"""At most a few large registry documents in memory at once, whatever the number of workers.

A manifest may be 4 MiB and an image config 8 MiB (`RegistrySettings`), and parsing a document of many small
JSON objects costs several times its bytes. The operator runs 32 workers by default (most passes never ask a
registry: the answer is cached), so without a bound, 32 hostile registries answering at once could put 32
such documents in memory together, past the chart's 256 Mi limit. The fetch and the parse of a manifest or a
config therefore hold one of `count` slots (APPRELEASE_REGISTRY_CONCURRENT_FETCHES, 4); a fetch that cannot
get one before its deadline fails as RegistryBusy (retried), and other workers go on with passes that need no
registry. The peer rule is containerd's `max_concurrent_downloads` (3 by default): what a pull may hold at once
is bounded by a count of its own, not by the callers. tests/test_registry_memory.py resolves 32 distinct
hostile images with 32 workers under 128 MiB.

A slot is held for the whole fetch (a slow registry holds it until the request's deadline, 10 s). The wait
for a slot has the request's deadline; the fetch that follows has a deadline of its own (a fetch left with
the end of a long wait would time out and look like an unreachable registry, and provenance Disabled would
then record a revision without its labels). Callers waiting for the same content (single-flight) may thus be
outlived: theirs is RegistryBusy too, retried. Re-entrant per thread: a fetch inside a fetch reuses its
thread's slot.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from .errors import RegistryBusy
from .network import Deadline

__all__ = ["BodySlots"]


class BodySlots:
    def __init__(self, count: int) -> None:
        """`count`: fetches of a large document at once (at least 1)."""
        self._free = threading.BoundedSemaphore(max(1, count))
        self._held = threading.local()

    @contextlib.contextmanager
    def hold(self, until: Deadline, domain: str) -> Iterator[None]:
        """One slot for the block, waited for until `until`; raises RegistryBusy when none is free by then."""
        depth: int = getattr(self._held, "depth", 0)
        if depth == 0 and not self._free.acquire(timeout=max(0.0, until.remaining())):
            raise RegistryBusy(
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
