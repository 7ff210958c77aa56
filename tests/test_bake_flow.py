"""The bake and pauses through the real Reconciler on the fakes: Baking with the time left, Succeeded (with
succeededAt) at its end, a crash inside it fails and rolls back, a crash after it does not, an operator restarted
mid-bake goes on from the persisted start, and a paused Deployment stops the timeout clock."""

from __future__ import annotations

from typing import Any

from apprelease.controller.reconciler import Reconciler, Result
from apprelease.core.api import Cause, Outcome
from apprelease.core.conditions import READY, RECONCILING, STALLED, Reason
from tests.conftest import NAME, NS, POLL, RESYNC, World
from tests.test_release_safety import add_pod


def bake_release(world: World, bake: int = 30) -> str:
    """v1 Succeeded without a bake; then v2 with a bake of `bake` seconds, rolled out: the bake has begun."""
    d1 = world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2", rollout={"bakeSeconds": bake})
    world.reconcile()
    world.cluster.roll_out()
    return d1


def crashed_container(world: World, finished: str) -> None:
    add_pod(world, reason=None, ready=True, exit_code=None)
    pod: dict[str, Any] = world.cluster.pods[-1]
    pod["metadata"]["creationTimestamp"] = "2024-05-01T11:00:00Z"
    [container] = pod["status"]["containerStatuses"]
    container.update(
        restartCount=1, lastState={"terminated": {"exitCode": 4, "reason": "Error", "finishedAt": finished}}
    )


def test_succeeded_only_after_the_bake_with_the_time_left_meanwhile(world: World) -> None:
    bake_release(world, bake=30)
    assert world.reconcile() == Result(requeue_after=POLL)
    assert world.condition(READY) == ("False", Reason.BAKING)
    assert world.condition(RECONCILING) == ("True", Reason.BAKING)
    message = next(c.message for c in world.status().conditions if c.type == RECONCILING)
    assert "30s of 30s left" in message
    entry = world.status().history[0]
    assert entry.outcome == Outcome.IN_PROGRESS and entry.bake_started_at == "2024-05-01T12:00:00Z"

    world.wall.advance(28)
    assert world.reconcile() == Result(requeue_after=2)  # the requeue lands on the bake's end
    world.wall.advance(2)
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    entry = world.status().history[0]
    assert (entry.outcome, entry.succeeded_at) == (Outcome.SUCCEEDED, "2024-05-01T12:00:30Z")


def test_the_workloads_min_ready_seconds_lengthen_the_bake(world: World) -> None:
    world.deploy("v1")
    world.cluster.deployments["web"]["spec"]["minReadySeconds"] = 60
    world.registry.release("v2")
    world.update(version="v2", rollout={"bakeSeconds": 10})
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    message = next(c.message for c in world.status().conditions if c.type == RECONCILING)
    assert "60s of 60s left" in message


def test_a_restarted_operator_goes_on_with_the_persisted_bake(world: World) -> None:
    bake_release(world, bake=30)
    world.reconcile()
    world.wall.advance(20)
    # A new operator process: nothing in memory, the same status.
    fresh = Reconciler(world.cluster, world.reconciler.registry, rollout_poll_seconds=POLL, now=world.wall)
    assert fresh.reconcile(NS, NAME) == Result(requeue_after=POLL)
    assert "10s of 30s left" in next(c.message for c in world.status().conditions if c.type == RECONCILING)
    world.wall.advance(10)
    fresh.reconcile(NS, NAME)
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_a_crash_inside_the_bake_fails_the_revision_and_rolls_back(world: World) -> None:
    d1 = bake_release(world, bake=30)
    world.reconcile()
    world.wall.advance(10)
    crashed_container(world, finished="2024-05-01T12:00:09Z")
    world.reconcile()
    status = world.status()
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)
    restored, failed = status.history[:2]
    assert failed.outcome == Outcome.FAILED and failed.failure is not None
    for fact in ("container web restarted", "exit code 4", "during the bake"):
        assert fact in failed.failure
    assert restored.cause == Cause.AUTO_ROLLBACK and restored.digest == d1


def test_a_crash_after_the_bake_is_an_incident_the_revision_stays_succeeded(world: World) -> None:
    bake_release(world, bake=30)
    world.reconcile()
    world.wall.advance(30)
    world.reconcile()
    assert world.status().history[0].outcome == Outcome.SUCCEEDED
    world.wall.advance(30)
    crashed_container(world, finished="2024-05-01T12:00:50Z")
    world.reconcile()
    assert world.status().history[0].outcome == Outcome.SUCCEEDED
    assert world.status().revision == 2 and not world.events("RolloutFailed")


def test_a_paused_deployment_stops_the_timeout_and_resumes(world: World) -> None:
    world.deploy("v1")
    world.registry.release("v2")
    world.cluster.deployments["web"]["spec"]["paused"] = True
    world.update(version="v2", rollout={"timeoutSeconds": 60})
    world.reconcile()
    web = world.cluster.deployments["web"]
    web["status"] = {"observedGeneration": web["metadata"]["generation"], "replicas": 2, "updatedReplicas": 0}
    world.reconcile()
    assert world.condition(READY) == ("False", Reason.PAUSED)
    assert "Deployment web" in next(c.message for c in world.status().conditions if c.type == READY)
    world.wall.advance(600)
    world.reconcile()
    assert world.condition(READY) == ("False", Reason.PAUSED)
    assert world.status().history[0].outcome == Outcome.IN_PROGRESS

    del web["spec"]["paused"]
    world.reconcile()  # resumed, still rolling: the pause is closed into pausedSeconds
    entry = world.status().history[0]
    assert (entry.paused_at, entry.paused_seconds) == (None, 600)
    world.wall.advance(30)
    world.reconcile()
    assert world.status().history[0].outcome == Outcome.IN_PROGRESS  # 630 s since deploy, 30 s not paused
    world.cluster.roll_out()
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_pods_that_are_not_the_deployments_own_are_ignored(world: World) -> None:
    world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2")
    world.reconcile()
    add_pod(world)  # crash-looping, with the selector's labels and the revision's annotation...
    world.cluster.pods[-1]["metadata"].pop("ownerReferences")  # ...but a bare pod nobody controls
    world.cluster.deployments["web"]["status"] = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1}
    assert world.reconcile() == Result(requeue_after=POLL)
    assert world.status().history[0].outcome == Outcome.IN_PROGRESS
