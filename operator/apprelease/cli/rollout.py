"""A workload's rollout state in the words of `kubectl rollout status`, for `apprelease status` (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPLETE = "Complete"
PROGRESSING = "Progressing"
FAILED = "Failed"
MISSING = "Missing"
UNTRACKED = "Untracked"


@dataclass(frozen=True)
class RolloutState:
    state: str
    detail: str


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def rollout_state(kind: str, obj: dict[str, Any] | None) -> RolloutState:
    if obj is None:
        return RolloutState(MISSING, f"{kind} not found")
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if kind != "CronJob" and _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return RolloutState(PROGRESSING, "waiting for the controller to observe the new spec")
    if kind == "Deployment":
        return _deployment(spec, status)
    if kind == "StatefulSet":
        return _statefulset(spec, status)
    if kind == "DaemonSet":
        return _daemonset(status)
    if kind == "CronJob":
        last = status.get("lastScheduleTime")
        return RolloutState(COMPLETE, "template pinned; the next Job runs it" + (f" (last run {last})" if last else ""))
    return RolloutState(UNTRACKED, f"kind {kind} is not tracked")


def _deployment(spec: dict[str, Any], status: dict[str, Any]) -> RolloutState:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState(FAILED, f"progress deadline exceeded: {condition.get('message', '')}".rstrip(": "))
    wanted = _int(spec.get("replicas", 1))
    updated, replicas = _int(status.get("updatedReplicas")), _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    if updated < wanted:
        return RolloutState(PROGRESSING, f"{updated} of {wanted} new replicas updated")
    if replicas > updated:
        return RolloutState(PROGRESSING, f"{replicas - updated} old replicas pending termination")
    if available < updated:
        return RolloutState(PROGRESSING, f"{available} of {updated} updated replicas available")
    return RolloutState(COMPLETE, f"{available}/{wanted} available")


def _statefulset(spec: dict[str, Any], status: dict[str, Any]) -> RolloutState:
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return RolloutState(UNTRACKED, "updateStrategy OnDelete: pods change only when deleted")
    wanted = _int(spec.get("replicas", 1))
    ready = _int(status.get("readyReplicas"))
    if ready < wanted:
        return RolloutState(PROGRESSING, f"{ready} of {wanted} pods ready")
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    if partition > 0:
        updated = _int(status.get("updatedReplicas"))
        if updated < wanted - partition:
            return RolloutState(PROGRESSING, f"{updated} of {wanted - partition} pods updated (partition {partition})")
        return RolloutState(COMPLETE, f"partitioned roll out complete: {updated} new pods")
    if status.get("updateRevision") != status.get("currentRevision"):
        return RolloutState(PROGRESSING, f"{_int(status.get('updatedReplicas'))} of {wanted} pods updated")
    return RolloutState(COMPLETE, f"{ready}/{wanted} ready")


def _daemonset(status: dict[str, Any]) -> RolloutState:
    wanted = _int(status.get("desiredNumberScheduled"))
    updated, available = _int(status.get("updatedNumberScheduled")), _int(status.get("numberAvailable"))
    if updated < wanted:
        return RolloutState(PROGRESSING, f"{updated} of {wanted} new pods updated")
    if available < wanted:
        return RolloutState(PROGRESSING, f"{available} of {wanted} updated pods available")
    return RolloutState(COMPLETE, f"{available}/{wanted} available")


def pod_images(kind: str, obj: dict[str, Any] | None) -> list[str]:
    """The images of the pod template (a CronJob's is under its jobTemplate)."""
    if obj is None:
        return []
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [f"{c.get('name')}={c.get('image')}" for c in containers if isinstance(c, dict)]
