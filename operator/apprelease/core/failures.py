"""Release safety, the pure part: when a revision has failed, and what a failure rolls back to.

A revision fails when a pod of that revision is stuck in a state no waiting cures (CrashLoopBackOff, an image
that cannot be pulled or created), when a Deployment gives up (ProgressDeadlineExceeded), or when the rollout
is not complete within spec.rollout.timeoutSeconds. Pods of older revisions never count: they are what runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from apprelease.core import limits, reference
from apprelease.core.api import HistoryEntry, Outcome
from apprelease.core.fields import Fields
from apprelease.core.workloads import Rollout, RolloutState, Workload

# Container waiting reasons that mean the revision cannot come up by itself.
FAILING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
    }
)


def pod_failure(workload: Workload, pods: Sequence[Mapping[str, object]]) -> str | None:
    """The first pod (by name) of the revision stuck in a failing state, described for humans; else None."""
    views = sorted((Fields(p) for p in pods), key=lambda p: p.sub("metadata").text("name"))
    for pod in views:
        status = pod.sub("status")
        for container in [*status.items("initContainerStatuses"), *status.items("containerStatuses")]:
            reason = container.sub("state").sub("waiting").text("reason")
            if reason in FAILING_REASONS:
                return _stuck(workload, pod.sub("metadata").text("name", "?"), container)
    return None


def _stuck(workload: Workload, pod_name: str, container: Fields) -> str:
    waiting = container.sub("state").sub("waiting")
    message = f"{workload.title}: pod {pod_name} container {container.text('name', '?')} is {waiting.text('reason')}"
    terminated = container.sub("lastState").sub("terminated")
    if "exitCode" in terminated:
        message += f" (last exit code {terminated.num('exitCode')})"
    if waiting.text("message"):
        message += f": {limits.quoted(waiting.text('message'), 200)}"
    return message


def rollout_failure(state: RolloutState) -> str | None:
    """A failure the workload reports itself (a Deployment's ProgressDeadlineExceeded)."""
    return state.message if state.state == Rollout.FAILED else None


def timed_out(deployed_at: str | None, now: str, timeout_seconds: int) -> bool:
    """True when more than timeout_seconds passed since the revision was deployed (RFC 3339 times)."""
    if not deployed_at:
        return False
    try:
        started = dt.datetime.fromisoformat(deployed_at.replace("Z", "+00:00"))
        current = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (current - started).total_seconds() > timeout_seconds


def timeout_message(waiting: list[RolloutState], timeout_seconds: int) -> str:
    pending = "; ".join(s.message for s in waiting) or "not Ready"
    return f"not Ready within rollout.timeoutSeconds ({timeout_seconds}s): {pending}"


def rollback_target(history: list[HistoryEntry], failed: HistoryEntry, image: str) -> HistoryEntry | None:
    """The newest Succeeded revision of the same repository running other content than the failed one."""
    for entry in history:
        if entry.revision == failed.revision or entry.outcome != Outcome.SUCCEEDED:
            continue
        if entry.digest == failed.digest:
            continue
        if entry.image is not None and not reference.same_repository(entry.image, image):
            continue
        return entry
    return None


def mark_failed(history: list[HistoryEntry], revision: int, failure: str) -> list[HistoryEntry]:
    return [
        entry.model_copy(update={"outcome": Outcome.FAILED, "failure": limits.shown(failure, limits.MAX_FAILURE)})
        if entry.revision == revision
        else entry
        for entry in history
    ]
