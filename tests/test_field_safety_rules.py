"""The pure rules of release safety in the field (issue 14): the judge's Paused state, the pods a workload owns
(by uid through ownerReferences), the bake's checks of the new pods, pause accounting, init containers in the
selection and the patch, drift whatever the annotations say (who changed it, from managedFields), and history
that keeps the way back."""

from __future__ import annotations

from typing import Any

import pytest

from apprelease.core.api import ANNOTATION_REVISION, AppReleaseStatus, HistoryEntry, Outcome, Source
from apprelease.core.decisions import keep_way_back, plan_patch, record_revision, select_containers
from apprelease.core.failures import bake_failure, bake_left, paused_seconds, timed_out
from apprelease.core.workloads import Kind, Rollout, Workload, judge

IMAGE = "r.example/app"
PINNED = f"{IMAGE}@sha256:" + "a" * 64
SINCE = "2024-05-01T12:00:00Z"


def deployment(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "generation": 2, "uid": "uid-web"},
        "spec": {"replicas": 2, **(spec or {})},
        "status": {"observedGeneration": 2, **(status or {})},
    }


# --- Paused ---------------------------------------------------------------------------------------------
def test_a_paused_deployment_mid_rollout_is_paused_and_names_itself() -> None:
    state = judge("Deployment", deployment({"paused": True}, {"updatedReplicas": 0, "replicas": 2}), "Deployment web")
    assert state.state == Rollout.PAUSED
    assert state.message.startswith("Deployment web: paused (spec.paused)") and "0 of 2" in state.message


def test_a_paused_deployment_whose_rollout_is_complete_is_complete() -> None:
    done = {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    assert judge("Deployment", deployment({"paused": True}, done)).state == Rollout.COMPLETE


def test_only_deployments_can_be_paused_as_kubectl_says() -> None:
    sts = deployment({"paused": True}, {"readyReplicas": 0})
    assert judge("StatefulSet", sts).state == Rollout.PROGRESSING


# --- the workload's own pods -----------------------------------------------------------------------------
def owned(name: str, uid: str | None, **labels: str) -> dict[str, Any]:
    refs = [{"kind": "ReplicaSet", "name": "x", "uid": uid, "controller": True}] if uid else []
    return {"metadata": {"name": name, "uid": f"uid-{name}", "labels": labels, "ownerReferences": refs}}


def test_a_deployment_owns_only_pods_of_its_own_replica_sets_by_uid() -> None:
    web = Workload(Kind.DEPLOYMENT, deployment(), ["web"])
    replica_sets = [owned("web-1", "uid-web"), owned("other-1", "uid-other")]
    pods = [
        owned("mine", "uid-web-1"),
        owned("bare", None),
        owned("foreign", "uid-other-1"),
        owned("direct", "uid-web"),  # pods are never owned by a Deployment directly
    ]
    assert [p["metadata"]["name"] for p in web.owned_pods(pods, replica_sets)] == ["mine"]


def test_a_stateful_set_owns_pods_that_name_it_as_controller() -> None:
    db = Workload(Kind.STATEFUL_SET, {**deployment(), "metadata": {"name": "db", "uid": "uid-db"}}, ["db"])
    not_controller = owned("x", None)
    not_controller["metadata"]["ownerReferences"] = [{"uid": "uid-db", "controller": False}]
    pods = [owned("db-0", "uid-db"), owned("other", "uid-else"), not_controller]
    assert [p["metadata"]["name"] for p in db.owned_pods(pods)] == ["db-0"]


# --- the bake ---------------------------------------------------------------------------------------------
def pod(
    *statuses: dict[str, Any], created: str = "2024-05-01T11:59:50Z", spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "creationTimestamp": created},
        "spec": spec or {},
        "status": {"containerStatuses": list(statuses)},
    }


RUNNING = {"name": "web", "ready": True, "restartCount": 0, "state": {"running": {}}}
WEB = Workload(Kind.DEPLOYMENT, deployment(), ["web"])


@pytest.mark.parametrize(
    ("status", "facts"),
    [
        (
            {**RUNNING, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}},
            ("container web terminated", "exit code 3", "Error"),
        ),
        (
            {
                **RUNNING,
                "restartCount": 1,
                "lastState": {"terminated": {"exitCode": 4, "reason": "Error", "finishedAt": "2024-05-01T12:00:10Z"}},
            },
            ("restarted", "exit code 4"),
        ),
        ({**RUNNING, "ready": False}, ("stopped being Ready",)),
        ({**RUNNING, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}, ("CrashLoopBackOff",)),
    ],
    ids=["terminated", "restarted", "not-ready", "crash-loop"],
)
def test_a_container_that_breaks_during_the_bake_fails_it(status: dict[str, Any], facts: tuple[str, ...]) -> None:
    message = bake_failure(WEB, [pod(status)], SINCE)
    assert message is not None and "Deployment web: pod web-1" in message and "during the bake" in message
    for fact in facts:
        assert fact in message, message


def test_what_happened_before_the_bake_or_to_new_or_leaving_pods_is_no_bake_failure() -> None:
    earlier = {
        **RUNNING,
        "restartCount": 1,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:55Z"}},
    }
    starting = {**RUNNING, "ready": False}
    leaving = pod({**RUNNING, "state": {"terminated": {"exitCode": 0}}})
    leaving["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:05Z"
    pods = [pod(RUNNING), pod(earlier), pod(starting, created="2024-05-01T12:00:05Z"), leaving]
    assert bake_failure(WEB, pods, SINCE) is None


def test_init_containers_that_ran_to_completion_are_fine_sidecars_are_watched() -> None:
    done = {"name": "migrate", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    sidecar = {"name": "agent", "state": {"terminated": {"exitCode": 2}}}
    spec = {"initContainers": [{"name": "migrate"}, {"name": "agent", "restartPolicy": "Always"}]}
    healthy = pod(RUNNING, spec=spec)
    healthy["status"]["initContainerStatuses"] = [done]
    assert bake_failure(WEB, [healthy], SINCE) is None
    healthy["status"]["initContainerStatuses"] = [done, sidecar]
    assert "container agent terminated" in (bake_failure(WEB, [healthy], SINCE) or "")


def entry(**fields: Any) -> HistoryEntry:
    return HistoryEntry(revision=2, version="v2", digest="sha256:" + "b" * 64, **fields)


def test_the_bake_clock_reads_only_the_persisted_start() -> None:
    assert bake_left(entry(bakeStartedAt=SINCE), "2024-05-01T12:00:10Z", 30) == 20
    assert bake_left(entry(bakeStartedAt=SINCE), "2024-05-01T12:00:40Z", 30) == 0
    assert bake_left(entry(), "2024-05-01T12:00:40Z", 30) == 30


def test_time_paused_does_not_count_towards_the_timeout() -> None:
    paused = entry(deployedAt=SINCE, pausedSeconds=100, pausedAt="2024-05-01T12:10:00Z")
    assert paused_seconds(paused, "2024-05-01T12:12:00Z") == 220
    assert not timed_out(SINCE, "2024-05-01T12:12:00Z", 600, paused_seconds(paused, "2024-05-01T12:12:00Z"))
    assert timed_out(SINCE, "2024-05-01T12:12:00Z", 600, 100)


# --- init containers --------------------------------------------------------------------------------------
def with_init(images: dict[str, str], init: dict[str, str], **meta: Any) -> Workload:
    obj = deployment()
    obj["metadata"].update(meta)
    obj["spec"]["template"] = {
        "metadata": {"annotations": meta.pop("annotations", {})},
        "spec": {
            "initContainers": [{"name": n, "image": i, "restartPolicy": "Always"} for n, i in init.items()],
            "containers": [{"name": n, "image": i} for n, i in images.items()],
        },
    }
    return Workload(Kind.DEPLOYMENT, obj, [])


def test_default_selection_covers_init_containers_and_they_may_be_named() -> None:
    web = with_init({"web": f"{IMAGE}:v1", "proxy": "envoy:1"}, {"migrate": f"{IMAGE}:v1", "vault": "vault:1"})
    assert select_containers(web, None, IMAGE) == ["migrate", "web"]
    assert select_containers(web, ["migrate"], IMAGE) == ["migrate"]


def test_the_patch_puts_each_container_in_its_own_list_and_nothing_else() -> None:
    web = with_init({"web": f"{IMAGE}:v1"}, {"migrate": f"{IMAGE}:v1"})
    web.containers = ["migrate", "web"]
    patch = plan_patch(web, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None
    assert patch.body["spec"] == {"template": {"metadata": {"annotations": ANNOTATIONS_V1}, "spec": PINNED_LISTS}}


ANNOTATIONS_V1 = {"apprelease.dev/version": "v1", ANNOTATION_REVISION: "1"}
PINNED_LISTS = {
    "initContainers": [{"name": "migrate", "image": PINNED}],
    "containers": [{"name": "web", "image": PINNED}],
}


# --- drift whatever the annotations say --------------------------------------------------------------------
def managed(manager: str, container: str = "web") -> dict[str, Any]:
    image: dict[str, Any] = {f'k:{{"name":"{container}"}}': {"f:image": {}}}
    return {
        "manager": manager,
        "operation": "Update",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": image}}}},
    }


OLD = f"{IMAGE}@sha256:" + "0" * 64


def test_rollout_undo_is_drift_and_names_who_did_it() -> None:
    # kubectl rollout undo: the old template back, with its older revision annotation; the image is kubectl's.
    undone = with_init(
        {"web": OLD},
        {},
        annotations={ANNOTATION_REVISION: "1"},
        managedFields=[managed("apprelease", "other"), managed("kubectl-rollout")],
    )
    undone.containers = ["web"]
    patch = plan_patch(undone, pinned=PINNED, version="v2", revision=2, release="shop")
    assert patch is not None and patch.drifted == ["web"] and patch.changed_by == ["kubectl-rollout"]


def test_a_new_revision_of_ours_is_not_drift() -> None:
    ours = with_init({"web": OLD}, {}, annotations={ANNOTATION_REVISION: "1"}, managedFields=[managed("apprelease")])
    ours.containers = ["web"]
    patch = plan_patch(ours, pinned=PINNED, version="v2", revision=2, release="shop")
    assert patch is not None and patch.drifted == []


def test_a_first_pin_is_not_drift() -> None:
    fresh = with_init({"web": f"{IMAGE}:v0"}, {}, managedFields=[managed("kubectl-client-side-apply")])
    fresh.containers = ["web"]
    patch = plan_patch(fresh, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None and patch.drifted == []


# --- history keeps the way back ------------------------------------------------------------------------------
def test_history_limit_one_keeps_the_newest_succeeded_until_a_newer_one_succeeds() -> None:
    status = AppReleaseStatus()
    for version, outcome in (("v1", Outcome.SUCCEEDED), ("v2", Outcome.FAILED)):
        status = record_revision(
            status,
            image=IMAGE,
            version=version,
            digest="sha256:" + version[-1] * 64,
            git_commit=None,
            source=Source.REGISTRY,
            restored_from=None,
            now=SINCE,
            history_limit=1,
        )
        status.history[0].outcome = outcome
    assert [(e.version, e.outcome) for e in status.history] == [("v2", Outcome.FAILED), ("v1", Outcome.SUCCEEDED)]
    succeeded = [HistoryEntry(revision=3, version="v3", digest="d", outcome=Outcome.SUCCEEDED), *status.history]
    assert [e.version for e in keep_way_back(succeeded, 1)] == ["v3"]
