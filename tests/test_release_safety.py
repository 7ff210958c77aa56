"""Release safety on fakes: a failed revision rolls every workload back by itself, from history, once.

The in-memory cluster and registry of test_reconciler; pods are added by hand in the states kubelet reports.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apprelease.controller.reconciler import Result
from apprelease.core.api import ANNOTATION_RETRY, ANNOTATION_REVISION, Cause, Outcome, Source
from apprelease.core.conditions import READY, RECONCILING, STALLED, Reason
from apprelease.core.workloads import Kind
from tests.conftest import IMAGE, NAME, NS, POLL, RESYNC, Crash, World, pinned


def add_pod(
    world: World,
    workload: str = "web",
    *,
    reason: str | None = "CrashLoopBackOff",
    revision: int | None = None,
    exit_code: int | None = 1,
    hash_label: str = "pod-template-hash",
    ready: bool = False,
) -> str:
    """A pod of `workload` created from the template of `revision` (default: the current one)."""
    revision = world.status().revision if revision is None else revision
    name = f"{workload}-r{revision}-{len(world.cluster.pods)}"
    container: dict[str, Any] = {"name": "web", "ready": ready, "state": {"running": {}}}
    if reason:
        container["state"] = {"waiting": {"reason": reason, "message": "back-off restarting failed container"}}
    if exit_code is not None:
        container["lastState"] = {"terminated": {"exitCode": exit_code}}
    owner = f"uid-{workload}"
    if hash_label == "pod-template-hash":  # a Deployment's pod: owned by its ReplicaSet, owned by the Deployment
        owner = f"uid-rs-{workload}-{revision}"
        if all(r["metadata"]["uid"] != owner for r in world.cluster.replica_sets):
            meta = {"name": f"{workload}-h{revision}", "uid": owner, "labels": {"app": workload}}
            world.cluster.replica_sets.append({"metadata": {**meta, **controlled_by(f"uid-{workload}")}})
    world.cluster.pods.append(
        {
            "metadata": {
                "name": name,
                "labels": {"app": workload, hash_label: f"{workload}-h{revision}"},
                "annotations": {ANNOTATION_REVISION: str(revision)},
                **controlled_by(owner),
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [container],
            },
        }
    )
    return name


def controlled_by(uid: str) -> dict[str, Any]:
    """metadata.ownerReferences naming the controller by uid, as Kubernetes' controllers set it."""
    return {"ownerReferences": [{"kind": "Owner", "name": "owner", "uid": uid, "controller": True}]}


def mid_rollout(world: World, name: str = "web") -> None:
    """The workload has seen its new spec and is rolling it out (not complete)."""
    obj = world.cluster.deployments[name]
    obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": 3, "updatedReplicas": 1}


def upgrade_that_crashes(world: World, version: str = "v2", **spec: Any) -> None:
    world.registry.release(version)
    world.update(version=version, **spec)
    world.reconcile()
    mid_rollout(world)
    add_pod(world)


# --- automatic rollback --------------------------------------------------------------------------------
def test_a_crashing_upgrade_rolls_back_by_itself_from_history(world: World) -> None:
    d1 = world.deploy("v1")
    upgrade_that_crashes(world)
    world.reset_records()

    assert world.reconcile() == Result(requeue_after=POLL)

    status = world.status()
    assert world.registry.requests == []  # going back needs no registry
    assert world.cluster.images()["web"] == pinned(d1)
    assert (status.revision, status.version, status.digest) == (3, "v1", d1)
    restored, failed, first = status.history
    assert (restored.source, restored.restored_from, restored.cause) == (Source.HISTORY, 1, Cause.AUTO_ROLLBACK)
    assert restored.outcome == Outcome.IN_PROGRESS
    assert (failed.revision, failed.version, failed.outcome, failed.cause) == (2, "v2", Outcome.FAILED, Cause.SPEC)
    assert failed.failure is not None
    for fact in ("Deployment web", "pod web-r2-0", "CrashLoopBackOff", "last exit code 1"):
        assert fact in failed.failure
    assert first.outcome == Outcome.SUCCEEDED
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)
    assert world.condition(READY) == ("False", Reason.ROLLED_BACK)
    message = next(c.message for c in status.conditions if c.type == STALLED)
    assert "v2 (revision 2) failed" in message and "CrashLoopBackOff" in message and "to v1" in message
    assert [(e.type, e.reason) for e in world.events()] == [("Warning", "RolloutFailed"), ("Warning", "RolledBack")]
    assert world.cluster.calls.index("status") < world.cluster.calls.index("deployment/web")

    # The restored revision finishes; it stays Stalled (the spec asks for v2) and nothing flips back.
    world.cluster.roll_out()
    world.cluster.pods.clear()
    world.reset_records()
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.status().history[0].outcome == Outcome.SUCCEEDED
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)
    assert world.condition(RECONCILING)[0] == "False"
    for _ in range(3):
        world.wall.advance(RESYNC)
        world.reconcile()
    assert world.status().revision == 3
    assert world.cluster.images()["web"] == pinned(d1)
    assert world.registry.requests == []


def test_pods_of_the_old_revision_crashing_do_not_fail_the_new_one(world: World) -> None:
    world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2")
    world.reconcile()
    mid_rollout(world)
    add_pod(world, revision=1)
    add_pod(world, reason=None, ready=True, exit_code=None)
    assert world.reconcile() == Result(requeue_after=POLL)
    assert world.status().history[0].outcome == Outcome.IN_PROGRESS
    assert world.condition(READY) == ("False", Reason.PROGRESSING)


@pytest.mark.parametrize(
    "reason",
    ["ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError", "CreateContainerError", "InvalidImageName"],
)
def test_every_stuck_waiting_reason_fails_the_revision(world: World, reason: str) -> None:
    world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2")
    world.reconcile()
    mid_rollout(world)
    add_pod(world, reason=reason, exit_code=None)
    world.reconcile()
    failed = world.status().history[1]
    assert failed.outcome == Outcome.FAILED and failed.failure is not None and reason in failed.failure
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)


def test_progress_deadline_fails_the_revision(world: World) -> None:
    d1 = world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2")
    world.reconcile()
    obj = world.cluster.deployments["web"]
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    }
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(d1)
    assert "ProgressDeadlineExceeded" in (world.status().history[1].failure or "")


def test_not_ready_within_the_timeout_fails_the_revision(world: World) -> None:
    d1 = world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2", rollout={"timeoutSeconds": 60})
    world.reconcile()
    mid_rollout(world)
    add_pod(world, reason=None, exit_code=None)  # running, never Ready
    world.wall.advance(60)
    world.reconcile()
    assert world.status().history[0].outcome == Outcome.IN_PROGRESS
    world.wall.advance(1)
    world.reconcile()
    failed = world.status().history[1]
    assert failed.outcome == Outcome.FAILED and "timeoutSeconds (60s)" in (failed.failure or "")
    assert world.cluster.images()["web"] == pinned(d1)


def test_halt_leaves_the_failed_version_in_place(world: World) -> None:
    world.deploy("v1")
    d2 = world.registry.release("v2")
    upgrade_that_crashes(world, rollout={"onFailure": "Halt"})
    world.reset_records()
    assert world.reconcile() == Result()
    assert world.cluster.images()["web"] == pinned(d2)
    assert [e.revision for e in world.status().history] == [2, 1]
    assert world.condition(STALLED) == ("True", Reason.ROLLOUT_FAILED)
    assert "Halt" in next(c.message for c in world.status().conditions if c.type == STALLED)
    world.reset_records()
    world.reconcile()
    assert world.cluster.calls == [] and world.events() == []


def test_a_failing_first_release_stalls_and_changes_nothing_else(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    mid_rollout(world)
    add_pod(world)
    before = copy.deepcopy(world.cluster.deployments)
    world.reset_records()
    assert world.reconcile() == Result()
    assert world.condition(STALLED) == ("True", Reason.ROLLOUT_FAILED)
    assert [(e.revision, e.outcome) for e in world.status().history] == [(1, Outcome.FAILED)]
    assert world.cluster.deployments == before
    assert [e.reason for e in world.events()] == ["RolloutFailed"]


# --- retries: once per new annotation value, or a new generation --------------------------------------
def annotate_retry(world: World, value: str) -> None:
    world.cluster.appreleases[NAME]["metadata"].setdefault("annotations", {})[ANNOTATION_RETRY] = value


def test_retry_tries_the_failed_version_once_per_new_value(world: World) -> None:
    world.deploy("v1")
    annotate_retry(world, "before-the-failure")  # spent: a retry must come after the failure
    d2 = world.registry.tags.get("v2") or world.registry.release("v2")
    upgrade_that_crashes(world)
    world.reconcile()
    assert world.status().last_handled_retry == "before-the-failure"
    world.cluster.roll_out()
    world.cluster.pods.clear()
    world.reconcile()
    world.reset_records()

    annotate_retry(world, "2026-11-27T12:00:00Z")
    world.reconcile()
    status = world.status()
    assert (status.revision, status.version, status.last_handled_retry) == (4, "v2", "2026-11-27T12:00:00Z")
    assert (status.history[0].source, status.history[0].restored_from) == (Source.HISTORY, 2)
    assert world.cluster.images()["web"] == pinned(d2)
    assert world.registry.requests == []
    assert [e.reason for e in world.events()] == ["Retrying"]

    # It fails again: back to v1 again, and the same annotation value does not retry a third time.
    mid_rollout(world)
    add_pod(world)
    world.reconcile()
    assert world.status().revision == 5 and world.status().version == "v1"
    world.cluster.roll_out()
    world.cluster.pods.clear()
    for _ in range(3):
        world.reconcile()
    assert world.status().revision == 5


def test_a_new_generation_tries_a_halted_version_again(world: World) -> None:
    world.deploy("v1")
    upgrade_that_crashes(world, rollout={"onFailure": "Halt"})
    world.reconcile()
    assert world.condition(STALLED) == ("True", Reason.ROLLOUT_FAILED)
    world.cluster.pods.clear()
    world.update(rollout={"onFailure": "Halt", "timeoutSeconds": 900})
    world.reconcile()
    assert world.status().revision == 3 and world.status().history[0].restored_from == 2
    world.cluster.roll_out()
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_setting_the_version_back_after_a_rollback_is_ready_at_once(world: World) -> None:
    d1 = world.deploy("v1")
    upgrade_that_crashes(world)
    world.reconcile()
    world.cluster.roll_out()
    world.update(version="v1")
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    assert world.status().revision == 3 and world.cluster.images()["web"] == pinned(d1)


# --- crashes and second failures ------------------------------------------------------------------------
def test_a_crash_between_recording_the_rollback_and_patching_converges_without_a_new_revision(world: World) -> None:
    d1 = world.deploy("v1")
    upgrade_that_crashes(world)
    world.cluster.crash_on_deployment_patch = True
    with pytest.raises(Crash):
        world.reconcile()
    assert world.status().revision == 3 and world.condition(STALLED) == ("True", Reason.ROLLED_BACK)

    world.reconcile()  # a new process
    assert world.cluster.images()["web"] == pinned(d1)
    assert [e.revision for e in world.status().history] == [3, 2, 1]


def test_a_failing_rollback_is_not_rolled_back_again(world: World) -> None:
    world.deploy("v1")
    upgrade_that_crashes(world)
    world.reconcile()
    mid_rollout(world)
    add_pod(world)  # the restored v1 crashes now too
    assert world.reconcile() == Result()
    assert world.condition(STALLED) == ("True", Reason.ROLLOUT_FAILED)
    assert [(e.revision, e.outcome) for e in world.status().history][:2] == [(3, Outcome.FAILED), (2, Outcome.FAILED)]
    world.reconcile()
    assert world.status().revision == 3


# --- every kind moves together ---------------------------------------------------------------------------
def kind_object(kind: Kind, name: str, image: str) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    if kind == Kind.CRON_JOB:
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    if kind == Kind.STATEFUL_SET:
        spec["replicas"] = 2
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "generation": 1,
            "uid": f"uid-{name}",
            "labels": {"apprelease.dev/release": NAME},
        },
        "spec": spec,
    }


def finish(world: World) -> None:
    world.cluster.roll_out()
    for kind, objects in world.cluster.others.items():
        for obj in objects.values():
            generation = obj["metadata"]["generation"]
            if kind == Kind.STATEFUL_SET:
                obj["status"] = {
                    "observedGeneration": generation,
                    "readyReplicas": 2,
                    "updatedReplicas": 2,
                    "currentRevision": f"r{generation}",
                    "updateRevision": f"r{generation}",
                }
            elif kind == Kind.DAEMON_SET:
                obj["status"] = {
                    "observedGeneration": generation,
                    "desiredNumberScheduled": 2,
                    "updatedNumberScheduled": 2,
                    "numberAvailable": 2,
                }


def test_only_the_stateful_set_fails_and_all_four_kinds_go_back(world: World) -> None:
    kinds = {Kind.STATEFUL_SET: "db", Kind.DAEMON_SET: "agent", Kind.CRON_JOB: "report"}
    for kind, name in kinds.items():
        world.cluster.others.setdefault(kind, {})[name] = kind_object(kind, name, f"{IMAGE}:v0")
    world.registry.release("v1")
    world.create("v1", workloads=[{"name": "web"}] + [{"kind": k.value, "name": n} for k, n in kinds.items()])
    world.reconcile()
    finish(world)
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    d1 = world.status().digest
    assert d1 is not None

    world.registry.release("v2")
    world.update(version="v2")
    world.reconcile()
    finish(world)
    db = world.cluster.others[Kind.STATEFUL_SET]["db"]
    db["status"].update(readyReplicas=1, updateRevision="db-new")  # db-1 of the new revision crashes
    broken = add_pod(world, "db", hash_label="controller-revision-hash")
    world.cluster.pods[-1]["metadata"]["labels"]["controller-revision-hash"] = "db-new"
    world.reset_records()

    world.reconcile()
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)
    assert "StatefulSet db" in (world.status().history[1].failure or "")
    assert world.cluster.images()["web"] == pinned(d1)
    for kind, name in kinds.items():
        obj = world.cluster.others[kind][name]
        template = obj["spec"]["jobTemplate"]["spec"]["template"] if kind == Kind.CRON_JOB else obj["spec"]["template"]
        assert template["spec"]["containers"][0]["image"] == pinned(d1), kind

    # The StatefulSet controller now wants the old revision; the broken pod of the failed one is removed.
    db["status"].update(observedGeneration=db["metadata"]["generation"], updateRevision="db-old")
    world.reconcile()
    assert world.cluster.deleted_pods == [broken]
