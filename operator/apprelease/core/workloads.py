"""A typed view of the workloads an AppRelease pins: where each kind keeps its pod template, how to find the
pods of a revision, and how far its rollout is (the judgement of `kubectl rollout status`).

Pure: it reads the objects the API server returned and never calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from apprelease.core import limits
from apprelease.core.api import ANNOTATION_HELD, ANNOTATION_REVISION, HELD_UNPINNED
from apprelease.core.fields import Fields

Pod = TypeVar("Pod", bound=Mapping[str, object])  # a pod as the API server returned it


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
    PAUSED = "Paused"  # a person paused it (Deployment spec.paused): neither failing nor progressing
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
    obj: Mapping[str, object]
    containers: list[str]

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def meta(self) -> Fields:
        return Fields(self.obj).sub("metadata")

    @property
    def name(self) -> str:
        return self.meta.text("name")

    @property
    def namespace(self) -> str:
        return self.meta.text("namespace")

    @property
    def title(self) -> str:
        return f"{self.kind} {self.name}"

    def template(self) -> Mapping[str, object]:
        node: object = self.obj
        for key in self.info.template_path:
            node = node.get(key) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    def pod_spec(self) -> dict[str, object]:
        spec = self.template().get("spec")
        return dict(spec) if isinstance(spec, Mapping) else {}

    def template_annotations(self) -> dict[str, str]:
        return Fields(self.template()).sub("metadata").strings("annotations")

    def pod_containers(self) -> list[Mapping[str, object]]:
        """initContainers (native sidecars included) then containers; ephemeralContainers never (not pinned)."""
        spec = self.pod_spec()
        return [c for key in _CONTAINER_LISTS for c in _objects(spec.get(key))]

    def init_container_names(self) -> set[str]:
        return {str(c.get("name")) for c in _objects(self.pod_spec().get("initContainers"))}

    def images(self) -> dict[str, str]:
        """Container name -> image, init containers included (names are unique across both lists in a pod)."""
        return {str(c.get("name")): str(c.get("image", "")) for c in self.pod_containers()}

    def held_mark(self) -> bool:
        """It carries the annotation apprelease.dev/held (see `apprelease.core.api.ANNOTATION_HELD`), paused or
        not: a Deployment resumed by hand keeps it until its next pin removes it."""
        return ANNOTATION_HELD in self.meta.strings("annotations")

    def held(self) -> bool:
        """A Deployment held by the chart's admission policy until it is pinned: paused, with the annotation
        apprelease.dev/held: unpinned."""
        marked = self.meta.strings("annotations").get(ANNOTATION_HELD) == HELD_UNPINNED
        return self.kind == Kind.DEPLOYMENT and marked and Fields(self.obj).sub("spec").value("paused") is True

    def min_ready_seconds(self) -> int:
        return Fields(self.obj).sub("spec").num("minReadySeconds")

    def template_patch(self, template: Mapping[str, object]) -> dict[str, object]:
        """A patch body that puts `template` (a partial pod template) where this kind keeps its template."""
        body: dict[str, object] = dict(template)
        for key in reversed(self.info.template_path):
            body = {key: body}
        return body

    def reference(self) -> dict[str, str]:
        return {
            "apiVersion": self.info.api_version,
            "kind": str(self.kind),
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.meta.text("uid"),
            "resourceVersion": self.meta.text("resourceVersion"),
        }

    # --- pods ------------------------------------------------------------------------------------------
    def pod_selector(self) -> str | None:
        """The label selector of this workload's pods, as the API's `labelSelector` text; None: not watched."""
        if self.info.hash_label is None:
            return None
        selector = Fields(self.obj).sub("spec").sub("selector")
        parts = [f"{k}={v}" for k, v in sorted(selector.strings("matchLabels").items())]
        for expression in selector.items("matchExpressions"):
            parts.extend(_requirement(expression))
        return ",".join(parts) or None

    def revision_pods(self, pods: Sequence[Pod], revision: int) -> list[Pod]:
        """The pods of one revision: those sharing the pod-template-hash / controller-revision-hash of the pods
        that carry the revision's annotation (our patch writes it into the template, so it made that hash)."""
        label = self.info.hash_label
        if label is None:
            return []
        hashes = {
            _meta(p, "labels").get(label)
            for p in pods
            if _meta(p, "annotations").get(ANNOTATION_REVISION) == str(revision)
        }
        hashes.discard(None)
        view = Fields(self.obj)
        update_revision = view.sub("status").text("updateRevision")
        if self.kind == Kind.STATEFUL_SET and self.template_annotations().get(ANNOTATION_REVISION) == str(revision):
            if update_revision and view.sub("status").num("observedGeneration") >= view.sub("metadata").num(
                "generation"
            ):
                hashes.add(update_revision)
        return [p for p in pods if _meta(p, "labels").get(label) in hashes]

    def owned_pods(self, pods: Sequence[Pod], replica_sets: Sequence[Mapping[str, object]] = ()) -> list[Pod]:
        """The pods whose ownerReferences chain leads to this workload by uid: Pod -> ReplicaSet -> Deployment,
        Pod -> StatefulSet, Pod -> DaemonSet. A pod that merely matches the selector (a bare pod, another
        workload's pod under an overlapping selector) is not this workload's; Kubernetes' own controllers
        decide ownership the same way (the controllerRef, by uid). `replica_sets` are those of the namespace
        (any; only those the Deployment controls count)."""
        uid = self.meta.text("uid")
        if not uid:
            return []
        owners = {uid}
        if self.kind == Kind.DEPLOYMENT:
            owners = {Fields(rs).sub("metadata").text("uid") for rs in replica_sets if controller_uid(rs) == uid}
            owners.discard("")
        return [p for p in pods if controller_uid(p) in owners]

    # --- rollout ---------------------------------------------------------------------------------------
    def observed(self) -> bool:
        """Its controller has seen the current spec (status.observedGeneration >= metadata.generation), so the
        pods and counts it reports are about this spec. A CronJob has no such status: always observed."""
        if self.kind == Kind.CRON_JOB:
            return True
        return Fields(self.obj).sub("status").num("observedGeneration") >= self.meta.num("generation")

    def rollout(self) -> RolloutState:
        """How far the rollout of the current template is, as `kubectl rollout status` judges it."""
        return judge(self.kind, self.obj, self.title)


def controller_uid(obj: Mapping[str, object]) -> str | None:
    """The uid of an object's controller (the ownerReference with controller: true), as Kubernetes' controllers
    and garbage collector read it; None when it has none."""
    for ref in Fields(obj).sub("metadata").items("ownerReferences"):
        if ref.value("controller") is True and ref.text("uid"):
            return ref.text("uid")
    return None


def template_images(kind: str, obj: Mapping[str, object] | None) -> dict[str, str]:
    """Container name -> image of a workload's pod template; empty for a missing workload or an unknown kind."""
    if obj is None or kind not in KINDS:
        return {}
    return Workload(Kind(kind), dict(obj), []).images()


def judge(kind: str, obj: Mapping[str, object] | None, title: str = "") -> RolloutState:
    """The rollout state of a workload as the API server returned it (None: it does not exist).

    The one judge of rollouts, for the operator (`Workload.rollout`) and `apprelease status` alike. It follows
    kubectl's `rollout status` status viewers (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go):
    Deployment: ProgressDeadlineExceeded fails it; then updated, old replicas gone, updated available.
    StatefulSet and DaemonSet: a strategy other than RollingUpdate (OnDelete) is done, as kubectl's `done=true`
    (pods take the template only when deleted, there is nothing to wait for); StatefulSet: ready, then the
    partition's updated pods, else update revision = current revision; DaemonSet: updated and available pods.
    CronJob (kubectl has no viewer): complete once pinned, its next Jobs run the template.
    Paused: a Deployment with spec.paused whose rollout is not complete (kubectl would wait for ever; a paused
    Deployment is not a failing one). Only Deployments can be paused (`kubectl rollout pause` refuses other
    kinds); a StatefulSet partition is a partitioned rollout and OnDelete a manual one, both judged as kubectl.
    Counts that are absent or not integers count as 0 (spec.replicas as 1, the API default).
    """
    if obj is None:
        return RolloutState(Rollout.MISSING, f"{kind} not found", title)
    try:
        known = Kind(kind)
    except ValueError:
        return RolloutState(Rollout.UNTRACKED, f"kind {kind} is not tracked", title)
    view = Fields(obj)
    spec, status = view.sub("spec"), view.sub("status")
    state, detail = _gate(known, spec, status, view.sub("metadata").num("generation")) or _JUDGES[known](spec, status)
    if state == Rollout.PROGRESSING and known == Kind.DEPLOYMENT and spec.value("paused") is True:
        if view.sub("metadata").strings("annotations").get(ANNOTATION_HELD) == HELD_UNPINNED:
            # Resuming it by hand would run the tag the hold keeps from running: the pin releases it.
            state, detail = Rollout.PAUSED, f"held until its AppRelease pins it ({ANNOTATION_HELD}) at {detail}"
        else:
            state, detail = Rollout.PAUSED, f"paused (spec.paused) at {detail}; `kubectl rollout resume` continues it"
    return RolloutState(state, detail, title)


def _gate(kind: Kind, spec: Fields, status: Fields, generation: int) -> _Judgement | None:
    """What kubectl decides before counting pods: an OnDelete strategy is done (StatefulSet, DaemonSet, checked
    first as kubectl does), a spec the controller has not observed yet is waited for (all but CronJob)."""
    if kind in (Kind.STATEFUL_SET, Kind.DAEMON_SET) and not _rolling(spec):
        return _ON_DELETE
    if kind != Kind.CRON_JOB and generation > status.num("observedGeneration"):
        return _UNOBSERVED
    return None


def _rolling(spec: Fields) -> bool:
    return spec.sub("updateStrategy").text("type", "RollingUpdate") == "RollingUpdate"


_CONTAINER_LISTS = ("initContainers", "containers")
_Judgement = tuple[Rollout, str]
_UNOBSERVED = (Rollout.PROGRESSING, "waiting for the controller to observe the new spec")
_ON_DELETE = (Rollout.COMPLETE, "updateStrategy OnDelete: pods change only when deleted")


def _deployment(spec: Fields, status: Fields) -> _Judgement:
    for condition in status.items("conditions"):
        if condition.text("type") == "Progressing" and condition.text("reason") == "ProgressDeadlineExceeded":
            why = limits.shown(condition.text("message"), limits.MAX_QUOTED * 2)
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


def _stateful_set(spec: Fields, status: Fields) -> _Judgement:
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


def _daemon_set(spec: Fields, status: Fields) -> _Judgement:
    wanted = status.num("desiredNumberScheduled")
    updated, available = status.num("updatedNumberScheduled"), status.num("numberAvailable")
    if updated < wanted:
        return Rollout.PROGRESSING, f"{updated} of {wanted} new pods updated"
    if available < wanted:
        return Rollout.PROGRESSING, f"{available} of {wanted} updated pods available"
    return Rollout.COMPLETE, f"{available}/{wanted} available"


def _cron_job(spec: Fields, status: Fields) -> _Judgement:
    # A CronJob has no rollout: its next Jobs are made from the pinned template, whatever its generation says.
    last = status.text("lastScheduleTime")
    return Rollout.COMPLETE, "template pinned; the next Job runs it" + (f" (last run {last})" if last else "")


_JUDGES = {
    Kind.DEPLOYMENT: _deployment,
    Kind.STATEFUL_SET: _stateful_set,
    Kind.DAEMON_SET: _daemon_set,
    Kind.CRON_JOB: _cron_job,
}


def _requirement(expression: Fields) -> list[str]:
    """One matchExpressions entry in the API's labelSelector text (empty for an operator it does not know)."""
    key, operator, values = expression.text("key"), expression.text("operator"), ",".join(expression.texts("values"))
    texts = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key, "DoesNotExist": f"!{key}"}
    return [texts[operator]] if operator in texts else []


def _objects(value: object) -> list[Mapping[str, object]]:
    """The objects of a JSON list (a pod spec's containers); other items, or a value that is no list, are left out."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _meta(pod: Mapping[str, object], key: str) -> dict[str, str]:
    return Fields(pod).sub("metadata").strings(key)
