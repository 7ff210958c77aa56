"""Workload events that tell a pass nothing new wake no AppRelease; every kind of news still does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from apprelease.controller.workloadnews import WorkloadNews, fingerprint
from apprelease.core.workloads import Kind, Workload
from tests.kopf_intake import KopfIntake, apprelease
from tests.test_runtime import RecordingReconciler


def deployment(**status: Any) -> Any:
    """A Deployment of 0 replicas whose controller has observed generation 2, rollout complete."""
    return {
        "metadata": {
            "namespace": "shop",
            "name": "web",
            "uid": "u-1",
            "generation": 2,
            "labels": {"apprelease.dev/release": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {"replicas": 0},
        "status": {
            "observedGeneration": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated"}],
        }
        | status,
    }


async def taken(runtime: Runtime) -> int:
    """How many keys are queued; takes them all, as a worker would."""
    count = len(runtime.queue)
    for _ in range(count):
        runtime.queue.done(await runtime.queue.get())
    return count


@pytest.fixture
async def intake() -> KopfIntake:
    runtime = Runtime(OperatorSettings(metrics_port=0), RecordingReconciler())  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    await kopf_side.apprelease("ADDED", apprelease("shop", "web", 1, [("Deployment", "web")]))
    assert await taken(runtime) == 1
    return kopf_side


async def test_a_status_write_that_changes_nothing_a_pass_reads_wakes_nothing(intake: KopfIntake) -> None:
    runtime = intake.runtime
    await intake.workload("Deployment", deployment())
    assert await taken(runtime) == 1
    available = deployment()
    available["status"]["conditions"][0]["reason"] = "NewReplicaSetAvailable"  # the controller's last write
    await intake.workload("Deployment", available)
    await intake.workload("Deployment", available)
    assert await taken(runtime) == 0


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d["metadata"].update(generation=3), id="a new spec"),
        pytest.param(lambda d: d["metadata"]["labels"].update({"apprelease.dev/release": "other"}), id="opt-in label"),
        pytest.param(lambda d: d["metadata"]["annotations"].update({"apprelease.dev/uid": "x"}), id="annotation"),
        pytest.param(lambda d: d["metadata"].update(uid="u-2"), id="made again"),
        pytest.param(lambda d: d["spec"].update(replicas=2), id="counts (judgement)"),
        pytest.param(
            lambda d: d["status"]["conditions"].append(
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ),
            id="progress deadline",
        ),
        pytest.param(lambda d: d["status"].update(updateRevision="web-2"), id="update revision"),
    ],
)
async def test_every_field_a_pass_reads_is_news(intake: KopfIntake, edit: Any) -> None:
    runtime = intake.runtime
    await intake.workload("Deployment", deployment())
    assert await taken(runtime) == 1
    changed = copy.deepcopy(deployment())
    edit(changed)
    changed["status"]["observedGeneration"] = changed["metadata"]["generation"]
    await intake.workload("Deployment", changed)
    assert await taken(runtime) == 1


async def test_after_a_delete_or_an_unlisting_the_same_state_is_news_again(intake: KopfIntake) -> None:
    runtime = intake.runtime
    await intake.workload("Deployment", deployment())
    assert await taken(runtime) == 1
    await intake.workload("Deployment", deployment(), type="DELETED")
    assert await taken(runtime) == 1
    await intake.workload("Deployment", deployment())  # made again with the same content
    assert await taken(runtime) == 1

    await intake.apprelease("MODIFIED", apprelease("shop", "web", 2, []))  # no longer listed
    await taken(runtime)
    await intake.workload("Deployment", deployment())
    assert await taken(runtime) == 0 and len(runtime.workload_news) == 0  # nothing kept for a workload nobody lists
    await intake.apprelease("MODIFIED", apprelease("shop", "web", 3, [("Deployment", "web")]))
    await taken(runtime)
    await intake.workload("Deployment", deployment())
    assert await taken(runtime) == 1


def test_the_fingerprint_is_16_bytes_and_ignores_what_no_pass_reads() -> None:
    base = Workload(Kind.DEPLOYMENT, deployment(), [])
    later = deployment(conditions=[{"type": "Available", "status": "True", "lastUpdateTime": "2026-11-30T18:00Z"}])
    later["metadata"]["resourceVersion"] = "99"
    assert len(fingerprint(base)) == 16
    assert fingerprint(base) == fingerprint(Workload(Kind.DEPLOYMENT, later, []))
    news: WorkloadNews[str] = WorkloadNews()
    assert news.changed("web", base) and not news.changed("web", base)


async def test_a_workload_no_apprelease_lists_any_more_is_forgotten_at_once(intake: KopfIntake) -> None:
    runtime = intake.runtime
    await intake.workload("Deployment", deployment())
    assert len(runtime.workload_news) == 1
    await intake.apprelease("DELETED", apprelease("shop", "web", 1, [("Deployment", "web")]))
    assert len(runtime.workload_news) == 0  # no event of the workload was needed


def test_a_complete_rollout_s_detail_is_no_news() -> None:
    # A CronJob's detail names its last run; a complete rollout's detail is never reported by a pass.
    nightly: Any = {"metadata": {"uid": "c", "generation": 1}, "status": {"lastScheduleTime": "2026-11-30T01:00:00Z"}}
    later = copy.deepcopy(nightly)
    later["status"]["lastScheduleTime"] = "2026-11-30T02:00:00Z"
    assert fingerprint(Workload(Kind.CRON_JOB, nightly, [])) == fingerprint(Workload(Kind.CRON_JOB, later, []))
