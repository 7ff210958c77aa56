"""Release safety, the pure part: when a revision has failed, and what a failure rolls back to.

A revision fails when a pod of that revision is stuck in a state no waiting cures (CrashLoopBackOff, an image
that cannot be pulled or created), when a Deployment gives up (ProgressDeadlineExceeded), when the rollout
is not complete within spec.rollout.timeoutSeconds (time paused by a person not counted), or when a container of
the new revision terminates, restarts or stops being Ready during the bake (spec.rollout.bakeSeconds after the
rollout completed). Pods of older revisions never count: they are what runs.

Every clock here is computed from times persisted in the history entry (deployedAt, bakeStartedAt, pausedAt,
pausedSeconds) and the pods' own timestamps, never from the operator's memory: a restarted operator continues a
bake or a timeout where it was.
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


def timed_out(deployed_at: str | None, now: str, timeout_seconds: int, paused_seconds: float = 0) -> bool:
    """True when more than timeout_seconds passed since the revision was deployed (RFC 3339 times), not
    counting `paused_seconds` during which a person held the rollout paused."""
    elapsed = seconds_between(deployed_at, now)
    return elapsed is not None and elapsed - paused_seconds > timeout_seconds


def seconds_between(start: str | None, end: str | None) -> float | None:
    """end - start in seconds (RFC 3339 times); None when either is absent or unreadable."""
    if not start or not end:
        return None
    try:
        first = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        last = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (last - first).total_seconds()


def paused_seconds(entry: HistoryEntry, now: str) -> float:
    """How long the revision's rollout has been held paused so far: the closed pauses plus the open one."""
    open_pause = seconds_between(entry.paused_at, now) if entry.paused_at else None
    return (entry.paused_seconds or 0) + max(open_pause or 0.0, 0.0)


def bake_left(entry: HistoryEntry, now: str, bake_seconds: int) -> float:
    """Seconds of the bake still to go (0 when over); the bake starts at the entry's bakeStartedAt."""
    elapsed = seconds_between(entry.bake_started_at, now)
    if elapsed is None:
        return float(bake_seconds)
    return max(bake_seconds - elapsed, 0.0)


def bake_failure(workload: Workload, pods: Sequence[Mapping[str, object]], since: str) -> str | None:
    """The first container of the revision's pods (by pod name) that broke during the bake, described with its
    exit code and reason; else None. `since` is the bake's start (RFC 3339).

    Broken: terminated (a container of a running pod; init containers that run to completion are not checked,
    native sidecars are), restarted since the bake started (lastState.terminated.finishedAt), stuck in a failing
    waiting state, or not Ready in a pod that existed when the bake started (it was Ready then: the rollout was
    complete). Pods being deleted (scale-down, eviction) do not count.
    """
    views = sorted((Fields(p) for p in pods), key=lambda p: p.sub("metadata").text("name"))
    for pod in views:
        meta = pod.sub("metadata")
        if meta.text("deletionTimestamp"):
            continue
        old = (seconds_between(meta.text("creationTimestamp"), since) or 0) > 0
        for container in _long_running(pod):
            why = _broken(container, since, check_ready=old)
            if why:
                name = container.text("name", "?")
                return f"{workload.title}: pod {meta.text('name', '?')} container {name} {why} during the bake"
    return None


def _long_running(pod: Fields) -> list[Fields]:
    """The statuses of containers meant to keep running: containers, and init containers that are native
    sidecars (restartPolicy Always in the pod spec)."""
    sidecars = {c.text("name") for c in pod.sub("spec").items("initContainers") if c.text("restartPolicy") == "Always"}
    status = pod.sub("status")
    inits = [c for c in status.items("initContainerStatuses") if c.text("name") in sidecars]
    return [*inits, *status.items("containerStatuses")]


def _broken(container: Fields, since: str, *, check_ready: bool) -> str | None:
    state = container.sub("state")
    if "terminated" in state:
        return "terminated" + _exit(state.sub("terminated"))
    waiting = state.sub("waiting").text("reason")
    last = container.sub("lastState").sub("terminated")
    restarted_since = (seconds_between(since, last.text("finishedAt")) or -1) >= 0
    if container.num("restartCount") > 0 and restarted_since:
        return f"restarted ({container.num('restartCount')} restarts)" + _exit(last)
    if waiting in FAILING_REASONS:
        return f"is {waiting}" + _exit(last)
    if check_ready and "running" in state and container.value("ready") is False:
        return "stopped being Ready"
    return None


def _exit(terminated: Fields) -> str:
    if "exitCode" not in terminated:
        return ""
    reason = terminated.text("reason")
    return f" (exit code {terminated.num('exitCode')}" + (f", reason {limits.quoted(reason, 64)})" if reason else ")")


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
