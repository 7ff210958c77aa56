"""What a pass costs the API server at scale (issue 19): each request below is paid once per AppRelease per
pass, 10,000 times in a large fleet. Counted on the fake cluster's call log, never timed."""

from __future__ import annotations

import httpx

from apprelease.controller.reconciler import Reconciler, Result
from apprelease.core.conditions import READY, Reason
from apprelease.registry import RegistryClient, RegistrySettings
from tests.conftest import NAME, NS, POLL, RESYNC, World


def test_the_pass_that_patches_a_workload_writes_status_once_and_lists_no_pods(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    calls = world.cluster.calls
    assert calls.count("status") == 1, calls  # the revision, recorded before the patch; no second write
    assert "deployment/web" in calls
    # The Deployment's controller has not observed the patch: no pod of the revision can exist yet.
    assert not [c for c in calls if c.startswith(("pods?", "replicasets?"))], calls
    assert world.condition(READY) == ("False", Reason.PROGRESSING)


def test_a_pass_woken_before_the_controller_observed_the_patch_writes_nothing(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    world.reset_records()
    world.reconcile()  # woken by the watch event of our own patch
    assert world.cluster.calls == [], world.cluster.calls


def test_once_observed_the_rollout_counts_are_reported(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    deployment = world.cluster.deployments["web"]
    deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"], "replicas": 2}
    world.reset_records()
    world.reconcile()
    assert world.cluster.calls.count("status") == 1  # "0 of 2 updated replicas are available" and the like
    assert "pods?app=web" in world.cluster.calls


def test_replica_sets_are_listed_only_when_there_are_pods_to_own(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    deployment = world.cluster.deployments["web"]
    deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"], "replicas": 2}
    world.reset_records()
    world.reconcile()  # no pods yet: nothing for a ReplicaSet to own
    assert "pods?app=web" in world.cluster.calls
    assert not [c for c in world.cluster.calls if c.startswith("replicasets?")], world.cluster.calls


def test_a_new_leaders_first_pass_asks_the_registry_nothing(world: World) -> None:
    # History has recorded every digest: a new operator process (a new leader) taking over 10,000 AppReleases
    # makes no registry request in its first pass over them, the tag re-check included.
    world.deploy("v1")
    world.deploy("v2")
    new_leader = Reconciler(
        world.cluster,
        RegistryClient(
            RegistrySettings(max_attempts=2),
            transport=httpx.MockTransport(world.registry),
            sleep=lambda _: None,
            clock=world.clock,
        ),
        resync_seconds=RESYNC,
        rollout_poll_seconds=POLL,
        now=world.wall,
        monotonic=world.clock,
    )
    world.reset_records()
    assert new_leader.reconcile(NS, NAME) == Result(requeue_after=RESYNC)
    assert world.registry.requests == []
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    world.update(version="v1")  # a rollback: from history too
    new_leader.reconcile(NS, NAME)
    assert world.registry.requests == []
    assert world.cluster.images()["web"].endswith(world.registry.tags["v1"])
