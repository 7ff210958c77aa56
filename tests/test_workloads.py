"""The typed view of workloads: template places per kind, pods of a revision, and rollout completion as
`kubectl rollout status` judges it (Deployment, StatefulSet with partition and OnDelete, DaemonSet, CronJob)."""

from __future__ import annotations

from typing import Any

import pytest

from apprelease.core.api import ANNOTATION_REVISION, HistoryEntry, Outcome
from apprelease.core.decisions import plan_patch
from apprelease.core.failures import pod_failure, rollback_target, timed_out
from apprelease.core.workloads import Kind, Rollout, Workload


def view(kind: Kind, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **meta: Any) -> Workload:
    obj = {
        "metadata": {"name": "app", "namespace": "shop", "generation": meta.get("generation", 4)},
        "spec": spec or {},
        "status": {"observedGeneration": 4, **(status or {})},
    }
    return Workload(kind, obj, ["app"])


# --- rollout completion --------------------------------------------------------------------------------
DEADLINE = {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}
DONE = {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}


@pytest.mark.parametrize(
    ("status", "state", "mentions"),
    [
        (DONE, Rollout.COMPLETE, "3/3 available"),
        ({**DONE, "updatedReplicas": 1}, Rollout.PROGRESSING, "1 of 3 new replicas updated"),
        ({**DONE, "replicas": 4}, Rollout.PROGRESSING, "1 old replicas"),
        ({**DONE, "availableReplicas": 2}, Rollout.PROGRESSING, "2 of 3 updated replicas available"),
        ({"updatedReplicas": 1, **DEADLINE}, Rollout.FAILED, "ProgressDeadlineExceeded"),
    ],
)
def test_deployment_rollout(status: dict[str, Any], state: Rollout, mentions: str) -> None:
    result = view(Kind.DEPLOYMENT, {"replicas": 3}, status).rollout()
    assert (result.state, mentions in result.message) == (state, True), result


def test_any_kind_waits_until_the_new_spec_is_observed() -> None:
    for kind in (Kind.DEPLOYMENT, Kind.STATEFUL_SET, Kind.DAEMON_SET):
        assert view(kind, {"replicas": 3}, {**DONE, **DEADLINE}, generation=5).rollout().state == Rollout.PROGRESSING


STS_DONE = {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "a"}


@pytest.mark.parametrize(
    ("spec", "status", "state"),
    [
        ({"replicas": 3}, STS_DONE, Rollout.COMPLETE),
        ({"replicas": 3}, {**STS_DONE, "readyReplicas": 2}, Rollout.PROGRESSING),
        ({"replicas": 3}, {**STS_DONE, "updateRevision": "b", "updatedReplicas": 1}, Rollout.PROGRESSING),
        # Partition 2: only ordinals >= 2 update; one updated pod completes the rollout.
        (
            {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
            {**STS_DONE, "updateRevision": "b", "updatedReplicas": 1},
            Rollout.COMPLETE,
        ),
        (
            {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
            {**STS_DONE, "updateRevision": "b", "updatedReplicas": 1},
            Rollout.PROGRESSING,
        ),
        # OnDelete: pods change only when deleted; the pinned template is all there is to wait for.
        ({"replicas": 3, "updateStrategy": {"type": "OnDelete"}}, {"updateRevision": "b"}, Rollout.COMPLETE),
    ],
)
def test_stateful_set_rollout(spec: dict[str, Any], status: dict[str, Any], state: Rollout) -> None:
    assert view(Kind.STATEFUL_SET, spec, status).rollout().state == state


@pytest.mark.parametrize(
    ("status", "state", "mentions"),
    [
        ({"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}, Rollout.COMPLETE, ""),
        (
            {"desiredNumberScheduled": 2, "updatedNumberScheduled": 1, "numberAvailable": 2},
            Rollout.PROGRESSING,
            "1 of 2 new pods updated",
        ),
        (
            {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1},
            Rollout.PROGRESSING,
            "1 of 2 updated pods available",
        ),
    ],
)
def test_daemon_set_rollout(status: dict[str, Any], state: Rollout, mentions: str) -> None:
    result = view(Kind.DAEMON_SET, {}, status).rollout()
    assert result.state == state and mentions in result.message


def test_cron_job_is_complete_once_pinned() -> None:
    assert view(Kind.CRON_JOB, {}, {}, generation=9).rollout().state == Rollout.COMPLETE


# --- where each kind keeps its pod template ------------------------------------------------------------
def test_cron_job_template_is_its_job_template() -> None:
    template = {"metadata": {}, "spec": {"containers": [{"name": "app", "image": "r.example/app:v0"}]}}
    cron = view(Kind.CRON_JOB, {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}})
    assert cron.images() == {"app": "r.example/app:v0"}
    patch = plan_patch(cron, pinned="r.example/app@sha256:" + "1" * 64, version="v1", revision=3, release="shop")
    assert patch is not None
    body: Any = patch.body  # JSON, walked by the test
    containers = body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "app", "image": "r.example/app@sha256:" + "1" * 64}]
    assert "template" not in body["spec"]
    assert cron.pod_selector() is None


def test_pod_selector_from_match_labels_and_expressions() -> None:
    selector = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "track", "operator": "In", "values": ["stable", "canary"]},
            {"key": "debug", "operator": "DoesNotExist"},
        ],
    }
    assert view(Kind.STATEFUL_SET, {"selector": selector}).pod_selector() == (
        "app=web,tier=front,track in (stable,canary),!debug"
    )


# --- pods of a revision --------------------------------------------------------------------------------
def pod(
    name: str, hash_label: str, value: str, revision: int | None, waiting: str | None = None, **extra: Any
) -> dict[str, Any]:
    annotations = {ANNOTATION_REVISION: str(revision)} if revision is not None else {}
    status: dict[str, Any] = {}
    if waiting:
        status["containerStatuses"] = [{"name": "app", "state": {"waiting": {"reason": waiting}}, **extra}]
    return {"metadata": {"name": name, "labels": {hash_label: value}, "annotations": annotations}, "status": status}


def test_pods_of_the_new_revision_share_its_hash_and_old_ones_never_count() -> None:
    deployment = view(Kind.DEPLOYMENT, {"selector": {"matchLabels": {"app": "app"}}})
    pods = [
        pod("app-new-1", "pod-template-hash", "new", 2),
        pod("app-new-2", "pod-template-hash", "new", None, "CrashLoopBackOff"),  # same hash: same revision
        pod("app-old-1", "pod-template-hash", "old", 1, "CrashLoopBackOff"),
    ]
    revision = deployment.revision_pods(pods, 2)
    assert [p["metadata"]["name"] for p in revision] == ["app-new-1", "app-new-2"]
    assert pod_failure(deployment, revision) is not None
    assert pod_failure(deployment, deployment.revision_pods(pods, 3)) is None


def test_stateful_set_pods_of_its_update_revision_count_before_any_carries_our_annotation() -> None:
    sts = view(
        Kind.STATEFUL_SET,
        {"template": {"metadata": {"annotations": {ANNOTATION_REVISION: "2"}}}},
        {"updateRevision": "app-7f"},
    )
    pods = [
        pod("app-2", "controller-revision-hash", "app-7f", None),
        pod("app-0", "controller-revision-hash", "app-1a", 1),
    ]
    assert [p["metadata"]["name"] for p in sts.revision_pods(pods, 2)] == ["app-2"]


@pytest.mark.parametrize(
    "reason",
    [
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
    ],
)
def test_each_failing_reason_names_workload_pod_and_reason(reason: str) -> None:
    deployment = view(Kind.DEPLOYMENT)
    message = pod_failure(deployment, [pod("app-x", "pod-template-hash", "h", 2, reason)])
    assert message is not None
    assert "Deployment app" in message and "pod app-x" in message and reason in message


def test_the_last_exit_code_is_named() -> None:
    crashing = pod("app-x", "pod-template-hash", "h", 2, "CrashLoopBackOff", lastState={"terminated": {"exitCode": 3}})
    message = pod_failure(view(Kind.DEPLOYMENT), [crashing])
    assert message is not None and "last exit code 3" in message


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing", None])
def test_waiting_that_may_end_is_not_a_failure(reason: str | None) -> None:
    assert pod_failure(view(Kind.DEPLOYMENT), [pod("app-x", "pod-template-hash", "h", 2, reason)]) is None


def test_timeout_counts_from_the_recorded_deploy_time() -> None:
    assert not timed_out("2024-05-01T12:00:00Z", "2024-05-01T12:10:00Z", 600)
    assert timed_out("2024-05-01T12:00:00Z", "2024-05-01T12:10:01Z", 600)
    assert not timed_out(None, "2024-05-01T12:10:01Z", 600)


# --- what a failure rolls back to ----------------------------------------------------------------------
def entry(revision: int, version: str, digest: str, outcome: Outcome, image: str = "r.example/app") -> HistoryEntry:
    return HistoryEntry(revision=revision, image=image, version=version, digest=digest, outcome=outcome)


def test_rollback_target_is_the_newest_succeeded_revision_of_the_same_repository_and_other_content() -> None:
    d = {n: "sha256:" + str(n) * 64 for n in range(1, 6)}
    failed = entry(5, "v5", d[5], Outcome.IN_PROGRESS)
    history = [
        failed,
        entry(4, "v4", d[4], Outcome.FAILED),
        entry(3, "v3", d[3], Outcome.SUCCEEDED, image="other.example/app"),
        entry(2, "v5-old", d[5], Outcome.SUCCEEDED),  # the same content as the failed one
        entry(1, "v1", d[1], Outcome.SUCCEEDED),
    ]
    target = rollback_target(history, failed, "r.example/app")
    assert target is not None and target.revision == 1
    assert rollback_target([failed], failed, "r.example/app") is None
