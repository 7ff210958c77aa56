"""One rollout judge: the same workloads through the operator's path (`Workload.rollout`, what convergence and
the reconciler ask) and the CLI's (`apprelease status` rendering its WORKLOADS table) give the same state and
the same words, for every kind and update strategy.

The two cases the CLI used to judge apart from the operator are here: a StatefulSet and a DaemonSet with
`updateStrategy: OnDelete` (kubectl's status viewers: done, pods take the template only when deleted).
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from apprelease.cli import render
from apprelease.core.workloads import Kind, Rollout, Workload

C, P, F = Rollout.COMPLETE, Rollout.PROGRESSING, Rollout.FAILED
ON_DELETE = {"updateStrategy": {"type": "OnDelete"}}
DEADLINE = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}


def obj(kind: Kind, spec: dict[str, Any], status: dict[str, Any], generation: int = 4) -> dict[str, Any]:
    template = {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app@sha256:" + "a" * 64}]}}
    where = {"jobTemplate": {"spec": {"template": template}}} if kind == Kind.CRON_JOB else {"template": template}
    return {
        "metadata": {"name": "app", "namespace": "shop", "generation": generation},
        "spec": {**where, **spec},
        "status": {"observedGeneration": 4, **status},
    }


CASES: list[tuple[str, Kind, dict[str, Any], dict[str, Any], int, Rollout]] = [
    # Deployment: deadline, updated, old replicas gone, available (kubectl's DeploymentStatusViewer order).
    ("deploy-unobserved", Kind.DEPLOYMENT, {"replicas": 2}, {}, 5, P),
    ("deploy-deadline", Kind.DEPLOYMENT, {"replicas": 2}, {"updatedReplicas": 1, "conditions": [DEADLINE]}, 4, F),
    ("deploy-updating", Kind.DEPLOYMENT, {"replicas": 2}, {"updatedReplicas": 1, "replicas": 2}, 4, P),
    ("deploy-old-pending", Kind.DEPLOYMENT, {"replicas": 2}, {"updatedReplicas": 2, "replicas": 3}, 4, P),
    ("deploy-unavailable", Kind.DEPLOYMENT, {"replicas": 2}, {"updatedReplicas": 2, "replicas": 2}, 4, P),
    (
        "deploy-complete",
        Kind.DEPLOYMENT,
        {"replicas": 2},
        {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2},
        4,
        C,
    ),
    # StatefulSet: RollingUpdate with and without partition, and OnDelete.
    ("sts-unobserved", Kind.STATEFUL_SET, {"replicas": 2}, {"readyReplicas": 2}, 5, P),
    ("sts-not-ready", Kind.STATEFUL_SET, {"replicas": 3}, {"readyReplicas": 2}, 4, P),
    (
        "sts-revision-pending",
        Kind.STATEFUL_SET,
        {"replicas": 2},
        {"readyReplicas": 2, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"},
        4,
        P,
    ),
    (
        "sts-complete",
        Kind.STATEFUL_SET,
        {"replicas": 2},
        {"readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "b", "updateRevision": "b"},
        4,
        C,
    ),
    (
        "sts-partition-pending",
        Kind.STATEFUL_SET,
        {"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
        {"readyReplicas": 4, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"},
        4,
        P,
    ),
    (
        "sts-partition-complete",
        Kind.STATEFUL_SET,
        {"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
        {"readyReplicas": 4, "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "b"},
        4,
        C,
    ),
    # The first disagreement: the CLI said Untracked, the operator Complete.
    (
        "sts-on-delete",
        Kind.STATEFUL_SET,
        {"replicas": 2, **ON_DELETE},
        {"readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"},
        4,
        C,
    ),
    # DaemonSet: RollingUpdate and OnDelete.
    ("ds-unobserved", Kind.DAEMON_SET, {}, {"desiredNumberScheduled": 2}, 5, P),
    ("ds-updating", Kind.DAEMON_SET, {}, {"desiredNumberScheduled": 2, "updatedNumberScheduled": 1}, 4, P),
    (
        "ds-unavailable",
        Kind.DAEMON_SET,
        {},
        {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1},
        4,
        P,
    ),
    (
        "ds-complete",
        Kind.DAEMON_SET,
        {"updateStrategy": {"type": "RollingUpdate"}},
        {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2},
        4,
        C,
    ),
    # The second disagreement: the CLI had no OnDelete case and waited for pods nobody will replace.
    (
        "ds-on-delete",
        Kind.DAEMON_SET,
        ON_DELETE,
        {"desiredNumberScheduled": 2, "updatedNumberScheduled": 0, "numberAvailable": 2},
        4,
        C,
    ),
    # CronJob: complete once pinned, whatever its generation says (its next Jobs run the template).
    ("cron-unobserved", Kind.CRON_JOB, {"schedule": "@yearly"}, {}, 9, C),
    ("cron-ran", Kind.CRON_JOB, {"schedule": "@yearly"}, {"lastScheduleTime": "2026-11-27T10:00:00Z"}, 4, C),
]


def cli_row(kind: Kind, workload: dict[str, Any]) -> tuple[str, str, str]:
    """The ROLLOUT, DETAIL and IMAGES cells `apprelease status` prints for the workload."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, color_system=None)
    release = {"metadata": {"name": "app", "namespace": "shop"}, "spec": {"image": "x", "version": "v1"}}
    render.status(console, release, [(str(kind), "app", workload)])
    [line] = [line for line in buffer.getvalue().splitlines() if line.startswith(f"{kind}/app ")]
    _, state, detail, images = re.split(r"\s{2,}", line.strip())
    return state, detail, images


@pytest.mark.parametrize(("case", "kind", "spec", "status", "generation", "expected"), CASES, ids=[c[0] for c in CASES])
def test_operator_and_cli_judge_a_rollout_alike(
    case: str, kind: Kind, spec: dict[str, Any], status: dict[str, Any], generation: int, expected: Rollout
) -> None:
    workload = obj(kind, spec, status, generation)
    operator = Workload(kind, workload, ["app"]).rollout()
    state, detail, images = cli_row(kind, workload)
    assert operator.state == expected, operator
    assert (state, detail) == (str(operator.state), operator.detail)
    assert operator.message == f"{kind} app: {detail}"
    assert images == "app=registry.example.com/app@sha256:" + "a" * 64


def test_every_kind_and_strategy_has_a_case() -> None:
    covered = {(kind, (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")) for _, kind, spec, *_ in CASES}
    strategies = {Kind.STATEFUL_SET: ("RollingUpdate", "OnDelete"), Kind.DAEMON_SET: ("RollingUpdate", "OnDelete")}
    wanted = {(kind, strategy) for kind in Kind for strategy in strategies.get(kind, ("RollingUpdate",))}
    assert covered == wanted
