"""Fencing (issue 19): every status write is conditional on the resourceVersion the pass decided from, so a
replica that lost the lease, or a pass overtaken by another writer, records nothing and patches no workload;
the conflict requeues the key instead of failing."""

from __future__ import annotations

import asyncio
import copy
import logging

import httpx
import pytest

from apprelease.controller.fencing import Conflict, conditional
from apprelease.controller.reconciler import Reconciler, Result
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from apprelease.registry import RegistryClient, RegistrySettings
from tests.conftest import NAME, NS, POLL, RESYNC, World


def test_a_conditional_patch_carries_the_resource_version_and_nothing_else_changes() -> None:
    body = {"status": {"revision": 2}}
    assert conditional(body, "41") == {"status": {"revision": 2}, "metadata": {"resourceVersion": "41"}}
    assert conditional(body, "") == body
    assert body == {"status": {"revision": 2}}


def test_a_status_write_after_someone_else_wrote_is_refused_and_no_workload_is_patched(world: World) -> None:
    world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2")
    world.reset_records()
    # Between this pass's read and its first write, another writer changes the AppRelease.
    world.cluster.before_status_write.append(lambda: world.cluster.touch(NAME))
    with pytest.raises(Conflict):
        world.reconcile()
    assert world.cluster.calls == ["conflict"]  # the revision was not recorded; Deployments untouched
    assert world.status().revision == 1

    assert world.reconcile() == Result(requeue_after=POLL)  # the requeued pass reads afresh and goes on
    assert world.status().revision == 2 and "deployment/web" in world.cluster.calls


def test_two_replicas_deciding_from_one_version_record_one_revision(world: World) -> None:
    """The SIGSTOP case on one fake API server: the old leader read the AppRelease, froze, and its successor
    recorded revision 2 and patched the Deployment; the old leader's write of its own revision 2 is refused."""
    world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2")
    successor = Reconciler(
        world.cluster,
        RegistryClient(RegistrySettings(max_attempts=2), transport=httpx.MockTransport(world.registry)),
        resync_seconds=RESYNC,
        rollout_poll_seconds=POLL,
        now=world.wall,
    )
    world.reset_records()
    world.cluster.before_status_write.append(lambda: successor.reconcile(NS, NAME))
    with pytest.raises(Conflict):
        world.reconcile()  # the frozen leader
    history = world.status().history
    assert [entry.revision for entry in history] == [2, 1]
    assert world.cluster.calls.count("deployment/web") == 1  # the successor's patch only
    assert world.cluster.calls.count("conflict") == 1
    before = copy.deepcopy(world.cluster.appreleases[NAME]["status"])
    assert world.reconcile() == Result(requeue_after=POLL)  # the old leader's next pass only observes
    assert [e.revision for e in world.status().history] == [2, 1]
    assert world.cluster.appreleases[NAME]["status"]["history"] == before["history"]


class ConflictOnce:
    def __init__(self) -> None:
        self.calls = 0
        self.registry = self

    def reconcile(self, namespace: str, name: str) -> Result:
        self.calls += 1
        if self.calls == 1:
            raise Conflict("changed since resourceVersion 7")
        return Result()

    def close(self) -> None:
        pass


async def test_a_conflict_requeues_without_an_error(caplog: pytest.LogCaptureFixture) -> None:
    reconciler = ConflictOnce()
    settings = OperatorSettings(workers=1, metrics_port=0, retry_base_seconds=0.01, retry_max_seconds=0.01)
    runtime = Runtime(settings, reconciler)  # type: ignore[arg-type]
    await runtime.start()
    try:
        with caplog.at_level(logging.INFO):
            runtime.observe(("shop", "web"), 1)
            for _ in range(100):
                if reconciler.calls >= 2:
                    break
                await asyncio.sleep(0.01)
    finally:
        await runtime.stop()
    assert reconciler.calls == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (
        runtime.metrics.registry.get_sample_value("apprelease_reconcile_duration_seconds_count", {"result": "retry"})
        == 1
    )
