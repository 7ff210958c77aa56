"""A typed view of the workloads an AppRelease pins: where each kind keeps its pod template, how to find the
pods of a revision, and how far its rollout is (the judgement of `kubectl rollout status`).

Pure: it reads the objects the API server returned and never calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apprelease.core import limits
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
    MISSING = "Missing"  # the workload does not exist (only `judge` says so; the operator reports it before)
    UNTRACKED = "Untracked"  # a kind this model does not know


@dataclass(frozen=True)
class RolloutState:
    """A rollout's state and why, in the words of `kubectl rollout status`.

    `detail` is the judgement alone (the CLI's DETAIL column); `message` prefixes the workload's title (conditions,
    Events, history failures).
    """

    state: Rollout
    detail: str
    title: str = ""

    @property
    def message(self) -> str:
        return f"{self.title}: {self.detail}" if self.title else self.detail


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
        return judge(self.kind, self.obj, self.title)


def template_images(kind: str, obj: dict[str, Any] | None) -> dict[str, str]:
    """Container name -> image of a workload's pod template; empty for a missing workload or an unknown kind."""
    if obj is None or kind not in KINDS:
        return {}
    return Workload(Kind(kind), obj, []).images()


def judge(kind: str, obj: Mapping[str, object] | None, title: str = "") -> RolloutState:
    """The rollout state of a workload as the API server returned it (None: it does not exist).

    The one judge of rollouts, for the operator (`Workload.rollout`) and `apprelease status` alike. It follows
    kubectl's `rollout status` status viewers (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go):
    Deployment: ProgressDeadlineExceeded fails it; then updated, old replicas gone, updated available.
    StatefulSet and DaemonSet: a strategy other than RollingUpdate (OnDelete) is done, as kubectl's `done=true`
    (pods take the template only when deleted, there is nothing to wait for); StatefulSet: ready, then the
    partition's updated pods, else update revision = current revision; DaemonSet: updated and available pods.
    CronJob (kubectl has no viewer): complete once pinned, its next Jobs run the template.
    Counts that are absent or not integers count as 0 (spec.replicas as 1, the API default).
    """
    if obj is None:
        return RolloutState(Rollout.MISSING, f"{kind} not found", title)
    try:
        known = Kind(kind)
    except ValueError:
        return RolloutState(Rollout.UNTRACKED, f"kind {kind} is not tracked", title)
    view = Fields(obj)
    state, detail = _JUDGES[known](view.sub("spec"), view.sub("status"), view.sub("metadata").num("generation"))
    return RolloutState(state, detail, title)


class Fields:
    """A typed, read-only view of one JSON object of the API server: no KeyError, no type surprises."""

    def __init__(self, data: object) -> None:
        self._data: Mapping[str, object] = data if isinstance(data, Mapping) else {}

    def sub(self, key: str) -> Fields:
        return Fields(self._data.get(key))

    def num(self, key: str, default: int = 0) -> int:
        value = self._data.get(key, default)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def text(self, key: str, default: str = "") -> str:
        value = self._data.get(key)
        return value if isinstance(value, str) else default

    def items(self, key: str) -> list[Fields]:
        value = self._data.get(key)
        return [Fields(item) for item in value] if isinstance(value, list) else []


def _rolling(spec: Fields) -> bool:
    return spec.sub("updateStrategy").text("type", "RollingUpdate") == "RollingUpdate"


_Judgement = tuple[Rollout, str]
_UNOBSERVED = (Rollout.PROGRESSING, "waiting for the controller to observe the new spec")
_ON_DELETE = (Rollout.COMPLETE, "updateStrategy OnDelete: pods change only when deleted")


def _deployment(spec: Fields, status: Fields, generation: int) -> _Judgement:
    if generation > status.num("observedGeneration"):
        return _UNOBSERVED
    for condition in status.items("conditions"):
        if condition.text("type") == "Progressing" and condition.text("reason") == "ProgressDeadlineExceeded":
            why = limits.truncate(condition.text("message"), limits.MAX_QUOTED * 2)
            return Rollout.FAILED, "exceeded its progress deadline (ProgressDeadlineExceeded)" + (
                f": {why}" if why else ""
            )
    wanted = spec.num("replicas", 1)
    updated, replicas = status.num("updatedReplicas"), status.num("replicas")
    available = status.num("availableReplicas")
    if updated < wanted:
        return Rollout.PROGRESSING, f"{updated} of {wanted} new replicas updated"
    if replicas > updated:
        return Rollout.PROGRESSING, f"{replicas - updated} old replicas pending termination"
    if available < updated:
        return Rollout.PROGRESSING, f"{available} of {updated} updated replicas available"
    return Rollout.COMPLETE, f"{available}/{wanted} available"


def _stateful_set(spec: Fields, status: Fields, generation: int) -> _Judgement:
    if not _rolling(spec):
        return _ON_DELETE
    if generation > status.num("observedGeneration"):
        return _UNOBSERVED
    wanted = spec.num("replicas", 1)
    ready, updated = status.num("readyReplicas"), status.num("updatedReplicas")
    if ready < wanted:
        return Rollout.PROGRESSING, f"{ready} of {wanted} pods ready"
    partition = spec.sub("updateStrategy").sub("rollingUpdate").num("partition")
    if partition > 0:
        if updated < wanted - partition:
            return Rollout.PROGRESSING, f"{updated} of {wanted - partition} pods updated (partition {partition})"
        return Rollout.COMPLETE, f"partitioned roll out complete: {updated} new pods"
    if status.text("updateRevision") != status.text("currentRevision"):
        return Rollout.PROGRESSING, f"{updated} of {wanted} pods updated"
    return Rollout.COMPLETE, f"{ready}/{wanted} ready"


def _daemon_set(spec: Fields, status: Fields, generation: int) -> _Judgement:
    if not _rolling(spec):
        return _ON_DELETE
    if generation > status.num("observedGeneration"):
        return _UNOBSERVED
    wanted = status.num("desiredNumberScheduled")
    updated, available = status.num("updatedNumberScheduled"), status.num("numberAvailable")
    if updated < wanted:
        return Rollout.PROGRESSING, f"{updated} of {wanted} new pods updated"
    if available < wanted:
        return Rollout.PROGRESSING, f"{available} of {wanted} updated pods available"
    return Rollout.COMPLETE, f"{available}/{wanted} available"


def _cron_job(spec: Fields, status: Fields, generation: int) -> _Judgement:
    # A CronJob has no rollout: its next Jobs are made from the pinned template, whatever its generation says.
    last = status.text("lastScheduleTime")
    return Rollout.COMPLETE, "template pinned; the next Job runs it" + (f" (last run {last})" if last else "")


_JUDGES = {
    Kind.DEPLOYMENT: _deployment,
    Kind.STATEFUL_SET: _stateful_set,
    Kind.DAEMON_SET: _daemon_set,
    Kind.CRON_JOB: _cron_job,
}


def _observed(obj: dict[str, Any]) -> bool:
    generation = (obj.get("metadata") or {}).get("generation", 0)
    return bool((obj.get("status") or {}).get("observedGeneration", 0) >= generation)


def _labels(pod: dict[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("labels") or {})


def _annotations(pod: dict[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("annotations") or {})
