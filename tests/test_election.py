"""Leader election: the rules (pure), the elector on a fake Lease store with resourceVersions and 409s, and the
runtime's workers that act only while leading."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import pytest

from apprelease.controller.reconciler import Result
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from apprelease.election import Elector, LeaseRecord, Observed, Timing, candidate_identity, rules

T = Timing()  # 8 s lease, 6 s renew deadline, 2 s retry
WALL = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)


# --- rules ---------------------------------------------------------------------------------------------
def test_another_holder_is_judged_by_when_we_saw_the_record_change_not_by_its_renew_time() -> None:
    stale = LeaseRecord("a", 8, WALL - dt.timedelta(hours=1), WALL - dt.timedelta(hours=1), 0)
    # Seen at t=100: however old renewTime looks (clock skew), the lease is a's until t=108 by our clock.
    assert rules.held_by_other(stale, "b", observed_at=100.0, now=107.9)
    assert not rules.held_by_other(stale, "b", observed_at=100.0, now=108.0)
    assert not rules.held_by_other(stale, "a", observed_at=100.0, now=100.0)  # our own lease
    assert not rules.held_by_other(LeaseRecord("", 1), "b", observed_at=100.0, now=100.0)  # released
    assert not rules.held_by_other(None, "b", observed_at=0.0, now=0.0)


def test_claim_keeps_acquire_time_on_renew_and_counts_transitions_on_takeover() -> None:
    later = WALL + dt.timedelta(seconds=2)
    mine = rules.claim(None, "a", T, WALL)
    assert mine == LeaseRecord("a", 8, WALL, WALL, 0)
    assert rules.claim(mine, "a", T, later) == LeaseRecord("a", 8, WALL, later, 0)
    assert rules.claim(mine, "b", T, later) == LeaseRecord("b", 8, later, later, 1)
    released = rules.release(mine, later)
    assert released.holder == "" and released.duration_seconds == 1
    assert rules.claim(released, "b", T, later).transitions == 1


def test_a_leader_stops_at_the_renew_deadline_before_anyone_may_take_the_lease() -> None:
    assert rules.leads(renewed_at=100.0, now=105.9, timing=T)
    assert rules.must_stop(renewed_at=100.0, now=106.0, timing=T)
    assert rules.must_stop(renewed_at=None, now=0.0, timing=T)
    # Another candidate saw that renew at >= 100 and may take over at >= 108: 2 s after the leader stopped.
    assert T.lease_duration - T.renew_deadline == 2.0


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "wrong"),
    [(6, 6, 2, "greater than the renew deadline"), (8, 2, 2, "retry period"), (8, 6, 0, "positive|greater than 0")],
)
def test_unsound_timings_are_refused(lease: float, renew: float, retry: float, wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        Timing(lease, renew, retry)
    with pytest.raises(ValueError, match=wrong):
        OperatorSettings(lease_duration_seconds=lease, renew_deadline_seconds=renew, retry_period_seconds=retry)


def test_wire_time_always_has_a_fraction_the_api_server_parses() -> None:
    assert rules.wire_time(WALL).isoformat() == "2026-11-30T06:00:00.000001+00:00"
    assert rules.wire_time(WALL.replace(microsecond=5)).microsecond == 5


def test_identity_is_the_pod_name_else_host_and_pid() -> None:
    assert candidate_identity({"POD_NAME": "apprelease-operator-7d9-x2"}) == "apprelease-operator-7d9-x2"
    one, two = candidate_identity({}), candidate_identity({"POD_NAME": " "})
    assert one == two and one.endswith(f"_{__import__('os').getpid()}")


# --- the elector on a fake store ------------------------------------------------------------------------
@dataclass
class FakeLeaseStore:
    """One Lease with the API server's concurrency: a write at a stale resourceVersion is a 409 (None)."""

    namespace: str = "ops"
    name: str = "apprelease-operator"
    lease: Observed | None = None
    writes: list[str] = field(default_factory=list)  # holder of each successful write
    conflicts: int = 0
    version: int = 0

    def read(self) -> Observed | None:
        return self.lease

    def create(self, record: LeaseRecord) -> Observed | None:
        if self.lease is not None:
            self.conflicts += 1
            return None
        return self._write(record)

    def replace(self, record: LeaseRecord, resource_version: str) -> Observed | None:
        if self.lease is None or self.lease.resource_version != resource_version:
            self.conflicts += 1
            return None
        return self._write(record)

    def _write(self, record: LeaseRecord) -> Observed:
        self.version += 1
        self.lease = Observed(record, str(self.version))
        self.writes.append(record.holder)
        return self.lease


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(store: FakeLeaseStore, me: str, clock: Clock, lost: list[str]) -> Elector:
    return Elector(store, me, T, on_lost=lambda: lost.append(me), clock=clock, wall=lambda: WALL)


async def test_one_leader_a_dead_leader_is_replaced_only_after_the_lease_and_stopped_first() -> None:
    store, clock, lost = FakeLeaseStore(), Clock(), list[str]()
    a, b = elector(store, "a", clock, lost), elector(store, "b", clock, lost)
    await a.step()
    await b.step()
    assert (a.leads(), b.leads()) == (True, False)
    for _ in range(3):  # a renews every retry period; b keeps seeing the record change
        clock.now += T.retry_period
        await a.step()
        await b.step()
        assert (a.leads(), b.leads()) == (True, False)

    # a freezes (SIGSTOP, node gone) right after its last renew at t0.
    t0 = clock.now
    clock.now = t0 + T.renew_deadline
    assert not a.leads()  # stops acting at the renew deadline, without any help from its loop
    clock.now = t0 + T.lease_duration - 0.1
    await b.step()
    assert not b.leads()  # b saw a's last renew at t0: not yet
    clock.now = t0 + T.lease_duration
    await b.step()
    assert b.leads() and store.lease is not None and store.lease.record.holder == "b"
    assert store.lease.record.transitions == 1

    writes = len(store.writes)
    await a.step()  # a wakes up: overdue, it loses without writing
    assert lost == ["a"] and len(store.writes) == writes and not a.leads()


async def test_a_leader_that_finds_another_holder_loses_at_once() -> None:
    store, clock, lost = FakeLeaseStore(), Clock(), list[str]()
    a = elector(store, "a", clock, lost)
    await a.step()
    assert store.lease is not None
    store.lease = Observed(rules.claim(store.lease.record, "intruder", T, WALL), "99")
    clock.now += T.retry_period
    await a.step()
    assert lost == ["a"] and not a.leads()


async def test_two_candidates_racing_on_one_version_one_gets_a_conflict() -> None:
    store, clock, lost = FakeLeaseStore(), Clock(), list[str]()
    a, b = elector(store, "a", clock, lost), elector(store, "b", clock, lost)
    store.lease = Observed(LeaseRecord("", 1), "7")  # released: both may try
    first = store.read()
    assert first is not None
    store.replace(rules.claim(first.record, "a", T, WALL), first.resource_version)
    assert store.replace(rules.claim(first.record, "b", T, WALL), first.resource_version) is None
    assert store.conflicts == 1 and store.lease is not None and store.lease.record.holder == "a"
    await b.step()
    assert not b.leads() and not a.leads()  # a never stepped: it does not know it holds it


async def test_shutdown_releases_the_lease_and_the_next_candidate_takes_it_at_once() -> None:
    store, clock, lost = FakeLeaseStore(), Clock(), list[str]()
    a, b = elector(store, "a", clock, lost), elector(store, "b", clock, lost)
    await a.step()
    await b.step()
    await a.stop(release=True)
    assert store.lease is not None and store.lease.record.holder == "" and not a.leads()
    await b.step()  # no waiting out the lease
    assert b.leads() and lost == []


async def test_api_errors_are_retried_and_the_deadline_decides() -> None:
    clock, lost = Clock(), list[str]()

    class Broken(FakeLeaseStore):
        broken = False

        def read(self) -> Observed | None:
            if self.broken:
                raise OSError("connection refused")
            return super().read()

    store = Broken()
    a = elector(store, "a", clock, lost)
    await a.step()
    store.broken = True
    clock.now += T.retry_period
    await a.step()
    assert a.leads() and lost == []  # one failed renew: still within the deadline
    clock.now += T.renew_deadline
    await a.step()
    assert lost == ["a"]


# --- the runtime acts only while leading ----------------------------------------------------------------
class CountingReconciler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.registry = self

    def reconcile(self, namespace: str, name: str) -> Result:
        self.calls.append((namespace, name))
        return Result()

    def close(self) -> None:
        pass


async def test_a_follower_queues_but_does_not_reconcile_until_it_leads() -> None:
    store, clock, lost = FakeLeaseStore(), Clock(), list[str]()
    holder = elector(store, "other", clock, lost)
    await holder.step()
    me = elector(store, "me", clock, lost)
    reconciler = CountingReconciler()
    runtime = Runtime(OperatorSettings(workers=2, metrics_port=0), reconciler, leadership=me)  # type: ignore[arg-type]
    await runtime.start()
    try:
        await me.step()
        runtime.observe(("shop", "web"), 1)
        await asyncio.sleep(0.05)
        assert reconciler.calls == [] and len(runtime.queue) == 1

        await holder.stop(release=True)
        await me.step()
        for _ in range(50):
            if reconciler.calls:
                break
            await asyncio.sleep(0.01)
        assert reconciler.calls == [("shop", "web")]
    finally:
        await runtime.stop()
    assert store.lease is not None and store.lease.record.holder == ""  # stop released it


def test_per_apprelease_series_are_served_by_the_leader_only() -> None:
    import urllib.request

    from apprelease.controller.metrics import Metrics

    metrics = Metrics()
    status = {
        "version": "v1",
        "digest": "sha256:" + "a" * 64,
        "revision": 1,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    metrics.observe_status("shop", "web", status)
    port = metrics.serve(0, "127.0.0.1")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    try:
        metrics.set_leader(False)
        follower = scrape()
        metrics.set_leader(True)
        leader = scrape()
    finally:
        metrics.stop()
    assert "apprelease_leader 0.0" in follower and "apprelease_leader 1.0" in leader
    assert "apprelease_info{" not in follower and "apprelease_condition{" not in follower
    assert 'apprelease_info{digest="sha256:' in leader and "apprelease_condition{" in leader
    assert "apprelease_workqueue_depth" in follower  # the replica's own series stay
