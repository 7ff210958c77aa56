"""`apprelease status`: the workloads' rollouts and the last Events in the table; -o json stays the stored status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from apprelease.cli import app as shared
from apprelease.cli import main
from apprelease.core.workloads import Rollout, judge

COMPLETE, FAILED, MISSING = Rollout.COMPLETE, Rollout.FAILED, Rollout.MISSING
PROGRESSING, UNTRACKED = Rollout.PROGRESSING, Rollout.UNTRACKED

STATUS: dict[str, Any] = {
    "observedGeneration": 3,
    "revision": 2,
    "version": "v2",
    "digest": "sha256:" + "2" * 64,
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "Progressing", "message": "deploying v2 [revision 2]"},
        {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "deploying v2"},
    ],
    "history": [{"revision": 2, "version": "v2", "digest": "sha256:" + "2" * 64, "outcome": "InProgress"}],
}


def event(reason: str, message: str, at: str, kind: str = "Normal", count: int = 1) -> dict[str, Any]:
    return {
        "type": kind,
        "reason": reason,
        "message": message,
        "lastTimestamp": at,
        "count": count,
        "involvedObject": {"uid": "u1"},
    }


class FakeReleases:
    namespace = "shop"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_raw(self, name: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "shop", "uid": "u1"},
            "spec": {
                "image": "registry.example.com/shop/web",
                "version": "v2",
                "workloads": [{"kind": "Deployment", "name": "web"}, {"kind": "CronJob", "name": "report"}],
            },
            "status": STATUS,
        }

    def workload(self, kind: str, name: str) -> dict[str, Any] | None:
        self.asked.append(f"{kind}/{name}")
        if kind == "CronJob":
            return None
        return {
            "metadata": {"generation": 2},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "web@sha256:22"}]}}},
            "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3},
        }

    def events(self, name: str, uid: str | None) -> list[dict[str, Any]]:
        self.asked.append(f"events {name} {uid}")
        return [event("Deploying", f"revision {i}", f"2026-11-27T10:{i:02d}:00Z") for i in range(12)] + [
            event("RolloutFailed", "pod web-1 CrashLoopBackOff", "2026-11-27T10:59:00Z", "Warning", count=3)
        ]


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch) -> FakeReleases:
    fake = FakeReleases()
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    return fake


def test_json_output_is_the_stored_status_and_nothing_else(releases: FakeReleases) -> None:
    result = CliRunner().invoke(main.app, ["status", "web", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == json.dumps(STATUS, indent=2) + "\n"
    assert releases.asked == []  # scripts get the same document, and no extra API calls, as before


def test_table_shows_rollouts_and_the_last_ten_events(releases: FakeReleases) -> None:
    result = CliRunner().invoke(main.app, ["status", "web"])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "Deployment/web Progressing 1 old replicas pending termination web=web@sha256:22" in lines
    assert "CronJob/report Missing CronJob not found" in lines
    assert "Events (last 10 of 13)" in lines
    assert any(line.endswith("(x3) Warning RolloutFailed pod web-1 CrashLoopBackOff") for line in lines)
    deploying = [line.split(" Normal ")[1] for line in lines if " Normal Deploying " in line]
    assert deploying == [f"Deploying revision {i}" for i in range(3, 12)]  # the oldest three are left out
    assert "deploying v2 [revision 2]" in result.stdout  # markup-like text in a message is printed as is


@pytest.mark.parametrize(
    ("kind", "obj", "state", "detail"),
    [
        ("Deployment", None, MISSING, "Deployment not found"),
        ("ReplicaSet", {"spec": {}}, UNTRACKED, "kind ReplicaSet is not tracked"),
        (
            "Deployment",
            {"metadata": {"generation": 3}, "status": {"observedGeneration": 2}},
            PROGRESSING,
            "waiting for the controller to observe the new spec",
        ),
        (
            "Deployment",
            {"spec": {"replicas": 2}, "status": {"updatedReplicas": 1, "replicas": 2}},
            PROGRESSING,
            "1 of 2 new replicas updated",
        ),
        (
            "Deployment",
            {"spec": {"replicas": 2}, "status": {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}},
            PROGRESSING,
            "1 of 2 updated replicas available",
        ),
        (
            "Deployment",
            {
                "status": {
                    "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "slow"}]
                }
            },
            FAILED,
            "exceeded its progress deadline (ProgressDeadlineExceeded): slow",
        ),
        (
            "Deployment",
            {"spec": {"replicas": 1}, "status": {"updatedReplicas": 1, "replicas": 1, "availableReplicas": 1}},
            COMPLETE,
            "1/1 available",
        ),
        (
            "Deployment",
            {"spec": {"replicas": 2, "paused": True}, "status": {"updatedReplicas": 0, "replicas": 2}},
            Rollout.PAUSED,
            "paused (spec.paused) at 0 of 2 new replicas updated; `kubectl rollout resume` continues it",
        ),
        (
            "StatefulSet",
            {"spec": {"replicas": 3}, "status": {"readyReplicas": 2}},
            PROGRESSING,
            "2 of 3 pods ready",
        ),
        (
            "StatefulSet",
            {
                "spec": {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
                "status": {"readyReplicas": 3, "updatedReplicas": 1},
            },
            COMPLETE,
            "partitioned roll out complete: 1 new pods",
        ),
        (
            "StatefulSet",
            {
                "spec": {"replicas": 2},
                "status": {"readyReplicas": 2, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"},
            },
            PROGRESSING,
            "1 of 2 pods updated",
        ),
        (
            "StatefulSet",
            {"spec": {"updateStrategy": {"type": "OnDelete"}}},
            COMPLETE,  # as the operator judges it (it said Untracked before the CLI used the operator's judge)
            "updateStrategy OnDelete: pods change only when deleted",
        ),
        (
            "DaemonSet",
            {"status": {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}},
            PROGRESSING,
            "1 of 2 updated pods available",
        ),
        (
            "DaemonSet",
            {"status": {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}},
            COMPLETE,
            "2/2 available",
        ),
        ("CronJob", {"metadata": {"generation": 5}, "status": {}}, COMPLETE, "template pinned; the next Job runs it"),
    ],
)
def test_rollout_state_speaks_like_kubectl_rollout_status(
    kind: str, obj: dict[str, Any] | None, state: str, detail: str
) -> None:
    result = judge(kind, obj)
    assert (result.state, result.detail) == (state, detail)
