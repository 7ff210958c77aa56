"""A small Lease elector on kopf's event loop.

Why our own: kopf (1.45) has no Lease election (its peering has no per-object locks and notices a dead peer
after 60 s), and the `kubernetes` client's `leaderelection` is a blocking loop that calls sys.exit() on bad
config and never releases the Lease on shutdown. The rules are `election.rules` (client-go's); this module only
schedules them: one try every retry period, API calls in a dedicated thread (a busy reconcile pool must not
delay a renew), the Lease released on shutdown, and `on_lost` (by default: exit the process, as
controller-runtime does) when the lease is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from apprelease.election import rules
from apprelease.election.lease import LeaseStore, Observed

log = logging.getLogger(__name__)

T = TypeVar("T")


class Leadership(Protocol):
    """What the runtime asks: may I act now, and wait until I may."""

    def leads(self) -> bool: ...

    async def wait_leading(self) -> None: ...


class AlwaysLeader:
    """Leader election off (one replica): always leading."""

    def leads(self) -> bool:
        return True

    async def wait_leading(self) -> None:
        return None


def exit_process() -> None:
    """controller-runtime's answer to a lost lease: stop everything now. os._exit, not sys.exit: kopf's
    shutdown would keep workers and watches going for seconds, and there is nothing to release."""
    log.critical("leader election lost: exiting so that no two replicas act at once")
    logging.shutdown()
    sys.stderr.flush()
    os._exit(1)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Elector:
    """Campaign for one Lease as `identity`. `leads()` is safe from any thread."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: rules.Timing,
        *,
        on_lost: Callable[[], None] = exit_process,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.identity = identity
        self.timing = timing
        self._on_lost = on_lost
        self._on_change = on_change
        self._clock = clock
        self._wall = wall
        self._renewed_at: float | None = None  # monotonic start of our last successful write
        self._observed: Observed | None = None
        self._observed_at = 0.0  # monotonic time we last saw the record change
        self._lost = False
        self._leading = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self._task: asyncio.Task[None] | None = None

    # --- what the runtime asks ---------------------------------------------------------------------------
    def leads(self) -> bool:
        return not self._lost and rules.leads(self._renewed_at, self._clock(), self.timing)

    async def wait_leading(self) -> None:
        await self._leading.wait()

    # --- the loop ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="leader-election")

    async def run(self) -> None:
        log.info("leader election: %s campaigns for Lease %s", self.identity, self._where())
        while not self._lost:
            await self.step()
            await asyncio.sleep(self.timing.retry_period)

    async def step(self) -> None:
        """One try to acquire or renew; loses the lease when a renew is overdue or another holds it."""
        if self._leading.is_set() and rules.must_stop(self._renewed_at, self._clock(), self.timing):
            self._lose(f"no renew within the renew deadline ({self.timing.renew_deadline}s)")
            return
        started = self._clock()
        try:
            won = await self._in_thread(self._try, started)
        except Exception as err:  # the API server is away or refuses: retry, the deadline decides
            log.warning("leader election: Lease %s: %s", self._where(), err)
            return
        if won:
            self._renewed_at = started
            if not self._leading.is_set():
                log.info("leader election: %s now leads (Lease %s)", self.identity, self._where())
                self._leading.set()
                self._changed(True)
        elif self._leading.is_set():
            holder = self._observed.record.holder if self._observed else "?"
            self._lose(f"the Lease is held by {holder}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; release the Lease when we hold it, so a successor takes it at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        was_leading = self._leading.is_set() and not self._lost
        self._lost = True  # from here on, never act again
        self._leading.clear()
        if release and was_leading:
            try:
                await self._in_thread(self._release)
            except Exception as err:
                log.warning("leader election: could not release Lease %s: %s", self._where(), err)
            else:
                log.info("leader election: %s released Lease %s", self.identity, self._where())
            self._changed(False)
        self._executor.shutdown(wait=False)

    # --- in the lease thread -----------------------------------------------------------------------------
    def _try(self, now: float) -> bool:
        observed = self.store.read()
        if observed is None:
            created = self.store.create(rules.claim(None, self.identity, self.timing, self._wall()))
            if created is not None:
                self._see(created, now)
            return created is not None
        self._see(observed, now)
        if rules.held_by_other(observed.record, self.identity, self._observed_at, now):
            return False
        claimed = rules.claim(observed.record, self.identity, self.timing, self._wall())
        written = self.store.replace(claimed, observed.resource_version)
        if written is not None:
            self._see(written, now)
        return written is not None

    def _release(self) -> None:
        observed = self.store.read()
        if observed is not None and observed.record.holder == self.identity:
            self.store.replace(rules.release(observed.record, self._wall()), observed.resource_version)

    def _see(self, observed: Observed, now: float) -> None:
        if self._observed is None or observed.resource_version != self._observed.resource_version:
            self._observed, self._observed_at = observed, now

    # --- helpers -------------------------------------------------------------------------------------------
    def _lose(self, why: str) -> None:
        self._lost = True
        self._leading.clear()
        log.error("leader election: %s lost Lease %s: %s", self.identity, self._where(), why)
        self._changed(False)
        self._on_lost()

    def _changed(self, leading: bool) -> None:
        if self._on_change is not None:
            self._on_change(leading)

    async def _in_thread(self, call: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    def _where(self) -> str:
        namespace, name = getattr(self.store, "namespace", "?"), getattr(self.store, "name", "?")
        return f"{namespace}/{name}"
