"""A typed view of the workloads an AppRelease pins: where each kind keeps its pod template, how to find the
pods of a revision, and how far its rollout is (the judgement of `kubectl rollout status`).

Pure: it reads the objects the API server returned and never calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apprelease.core.api import ANNOTATION_REVISION


class Kind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    CRON_JOB = "CronJob"


@dataclass(frozen=True)
class KindInfo:
    api_version: str
    plural: str
    template_path: tuple[str, ...]  # from the object's root to the pod template
    hash_label: str | None  # the label a revision's pods share; None: pods are not watched (CronJob)


KINDS: dict[Kind, KindInfo] = {
    Kind.DEPLOYMENT: KindInfo("apps/v1", "deployments", ("spec", "template"), "pod-template-hash"),
    Kind.STATEFUL_SET: KindInfo("apps/v1", "statefulsets", ("spec", "template"), "controller-revision-hash"),
    Kind.DAEMON_SET: KindInfo("apps/v1", "daemonsets", ("spec", "template"), "controller-revision-hash"),
    Kind.CRON_JOB: KindInfo("batch/v1", "cronjobs", ("spec", "jobTemplate", "spec", "template"), None),
}


class Rollout(StrEnum):
    COMPLETE = "Complete"
    PROGRESSING = "Progressing"
    FAILED = "Failed"


@dataclass(frozen=True)
class RolloutState:
    state: Rollout
    message: str


@dataclass
class Workload:
    """One workload as read from the API server, with the containers of it the AppRelease pins."""

    kind: Kind
    obj: dict[str, Any]
    containers: list[str]

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.obj.get("metadata") or {})

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace", ""))

    @property
    def title(self) -> str:
        return f"{self.kind} {self.name}"

    def template(self) -> dict[str, Any]:
        node: Any = self.obj
        for key in self.info.template_path:
            node = (node or {}).get(key) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def pod_spec(self) -> dict[str, Any]:
        return dict(self.template().get("spec") or {})

    def template_annotations(self) -> dict[str, str]:
        return dict((self.template().get("metadata") or {}).get("annotations") or {})

    def pod_containers(self) -> list[dict[str, Any]]:
        return [c for c in self.pod_spec().get("containers") or [] if isinstance(c, dict)]

    def images(self) -> dict[str, str]:
        return {str(c.get("name")): str(c.get("image", "")) for c in self.pod_containers()}

    def template_patch(self, template: dict[str, Any]) -> dict[str, Any]:
        """A patch body that puts `template` (a partial pod template) where this kind keeps its template."""
        body: dict[str, Any] = template
        for key in reversed(self.info.template_path):
            body = {key: body}
        return body

    def reference(self) -> dict[str, str]:
        return {
            "apiVersion": self.info.api_version,
            "kind": str(self.kind),
            "name": self.name,
            "namespace": self.namespace,
            "uid": str(self.meta.get("uid", "")),
            "resourceVersion": str(self.meta.get("resourceVersion", "")),
        }

    # --- pods ------------------------------------------------------------------------------------------
    def pod_selector(self) -> str | None:
        """The label selector of this workload's pods, as the API's `labelSelector` text; None: not watched."""
        if self.info.hash_label is None:
            return None
        selector = (self.obj.get("spec") or {}).get("selector") or {}
        parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
        for expression in selector.get("matchExpressions") or []:
            key, operator = expression.get("key"), expression.get("operator")
            values = ",".join(expression.get("values") or [])
            if operator == "In":
                parts.append(f"{key} in ({values})")
            elif operator == "NotIn":
                parts.append(f"{key} notin ({values})")
            elif operator == "Exists":
                parts.append(str(key))
            elif operator == "DoesNotExist":
                parts.append(f"!{key}")
        return ",".join(parts) or None

    def revision_pods(self, pods: list[dict[str, Any]], revision: int) -> list[dict[str, Any]]:
        """The pods of one revision: those sharing the pod-template-hash / controller-revision-hash of the pods
        that carry the revision's annotation (our patch writes it into the template, so it made that hash)."""
        label = self.info.hash_label
        if label is None:
            return []
        hashes = {_labels(p).get(label) for p in pods if _annotations(p).get(ANNOTATION_REVISION) == str(revision)} - {
            None
        }
        status = self.obj.get("status") or {}
        if self.kind == Kind.STATEFUL_SET and self.template_annotations().get(ANNOTATION_REVISION) == str(revision):
            if status.get("updateRevision") and _observed(self.obj):
                hashes.add(status["updateRevision"])
        return [p for p in pods if _labels(p).get(label) in hashes]

    # --- rollout ---------------------------------------------------------------------------------------
    def rollout(self) -> RolloutState:
        """How far the rollout of the current template is, as `kubectl rollout status` judges it."""
        if self.kind == Kind.CRON_JOB:
            return RolloutState(Rollout.COMPLETE, f"{self.title}: its next Jobs run the pinned template")
        if not _observed(self.obj):
            return RolloutState(Rollout.PROGRESSING, f"{self.title}: waiting for the new spec to be observed")
        spec, status = self.obj.get("spec") or {}, self.obj.get("status") or {}
        if self.kind == Kind.DEPLOYMENT:
            return _deployment(self.title, spec, status)
        if self.kind == Kind.STATEFUL_SET:
            return _stateful_set(self.title, spec, status)
        return _daemon_set(self.title, spec, status)


def _observed(obj: dict[str, Any]) -> bool:
    generation = (obj.get("metadata") or {}).get("generation", 0)
    return bool((obj.get("status") or {}).get("observedGeneration", 0) >= generation)


def _labels(pod: dict[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("labels") or {})


def _annotations(pod: dict[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("annotations") or {})


def _progressing(message: str) -> RolloutState:
    return RolloutState(Rollout.PROGRESSING, message)


def _deployment(title: str, spec: dict[str, Any], status: dict[str, Any]) -> RolloutState:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState(Rollout.FAILED, f"{title} exceeded its progress deadline (ProgressDeadlineExceeded)")
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        return _progressing(f"{title}: {updated} of {desired} updated replicas")
    if total > updated:
        return _progressing(f"{title}: {total - updated} old replicas pending termination")
    if available < updated:
        return _progressing(f"{title}: {available} of {updated} updated replicas available")
    return RolloutState(Rollout.COMPLETE, f"{title} rolled out")


def _stateful_set(title: str, spec: dict[str, Any], status: dict[str, Any]) -> RolloutState:
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        # OnDelete: pods take the new template only when someone deletes them; kubectl cannot judge either.
        return RolloutState(Rollout.COMPLETE, f"{title} (OnDelete): pods take the pinned template when deleted")
    desired = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < desired:
        return _progressing(f"{title}: {ready} of {desired} pods ready")
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    if partition > 0:
        updated, wanted = status.get("updatedReplicas", 0), desired - partition
        if updated < wanted:
            return _progressing(f"{title}: {updated} of {wanted} pods updated (partition {partition})")
        return RolloutState(Rollout.COMPLETE, f"{title}: partitioned rollout complete ({updated} updated)")
    if status.get("updateRevision") != status.get("currentRevision"):
        return _progressing(f"{title}: {status.get('updatedReplicas', 0)} of {desired} pods at the new revision")
    return RolloutState(Rollout.COMPLETE, f"{title} rolled out")


def _daemon_set(title: str, spec: dict[str, Any], status: dict[str, Any]) -> RolloutState:
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return RolloutState(Rollout.COMPLETE, f"{title} (OnDelete): pods take the pinned template when deleted")
    desired = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    available = status.get("numberAvailable", 0)
    if updated < desired:
        return _progressing(f"{title}: {updated} of {desired} updated pods scheduled")
    if available < desired:
        return _progressing(f"{title}: {available} of {desired} updated pods available")
    return RolloutState(Rollout.COMPLETE, f"{title} rolled out")
