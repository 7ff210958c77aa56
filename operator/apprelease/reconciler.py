"""One reconcile of one AppRelease: read, decide (decisions.py), act, report.

Blocking by design (registry and API calls); the operator runs it in a worker thread. Level-based: it looks
at the world as it is now, so running it twice, or after a crash at any point, converges to the same state.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apprelease import conditions as cond
from apprelease import decisions, limits, pullsecrets, reference, registrypolicy
from apprelease.api import (
    AppRelease,
    Outcome,
    Provenance,
    Source,
)
from apprelease.cluster import Cluster
from apprelease.conditions import EventReason, Problem, Reason
from apprelease.registry import Credential, RegistryClient, RegistryError, TagNotFound, Unauthorized
from apprelease.tagwatch import TagWatch
from apprelease.validation import validate_spec

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class Result:
    """What the work queue does next with this AppRelease."""

    requeue_after: float | None = None  # check again after this many seconds
    retry: bool = False  # a transient problem: retry with this key's backoff instead


@dataclass
class _Workload:
    name: str
    deployment: dict[str, Any]
    containers: list[str]


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    def __init__(
        self,
        cluster: Cluster,
        registry: RegistryClient,
        *,
        resync_seconds: float = 300.0,
        rollout_poll_seconds: float = 5.0,
        now: Callable[[], str] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        allowed_registries: list[str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.allowed_registries = list(allowed_registries or [])
        self.registry = registry
        self.resync_seconds = resync_seconds
        self.rollout_poll_seconds = rollout_poll_seconds
        self.now = now
        # Slightly under the resync period, so that every resync of a Ready release re-checks its tag.
        self.tag_watch = TagWatch(resync_seconds * 0.9, monotonic)

    # --- entry point -----------------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> Result:
        obj = self.cluster.get_apprelease(namespace, name)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        ar = AppRelease.from_k8s(obj)
        return _Pass(self, ar).run()


class _Pass:
    """The state of one reconcile pass; keeps `reconcile` readable as a sequence of steps."""

    def __init__(self, owner: Reconciler, ar: AppRelease) -> None:
        self.o = owner
        self.ar = ar
        self.spec = ar.spec
        self.gen = ar.generation
        self.original = ar.status.to_k8s()
        self.status = ar.status.model_copy(deep=True)
        self.now = owner.now()

    def run(self) -> Result:
        stalled = cond.get_condition(self.status.conditions, cond.STALLED)
        if stalled and stalled.status == cond.TRUE and stalled.observed_generation == self.gen:
            # Stalled is final until the spec changes (a new generation), except a refusal by the operator's
            # own policy: the platform team may since have allowed the registry.
            not_allowed = stalled.reason == Reason.REGISTRY_NOT_ALLOWED
            if not not_allowed or registrypolicy.check_registry(self.spec.image, self.o.allowed_registries):
                return Result()

        problem = validate_spec(self.spec) or registrypolicy.check_registry(self.spec.image, self.o.allowed_registries)
        if problem:
            return self._stall(problem)

        target = decisions.choose_target(self.spec, self.status)
        if isinstance(target, Problem):
            return self._stall(target)

        workloads = self._load_workloads()
        if isinstance(workloads, Problem):
            return self._wait(workloads)

        if self.spec.suspend:
            return self._observe_suspended(workloads)

        new_revision = not isinstance(target, decisions.KeepCurrent)
        if isinstance(target, decisions.ResolveFromRegistry):
            outcome = self._resolve_new_version(workloads)
            if isinstance(outcome, Problem):
                if outcome.stalled:
                    return self._stall(outcome)
                # The new version is not reachable yet; what was recorded last still runs and stays pinned.
                self._correct_drift(workloads)
                return self._wait(outcome)
        elif isinstance(target, decisions.RestoreFromHistory):
            self._restore(target)

        if new_revision:
            self._set_progressing(f"deploying {self.spec.version} (revision {self.status.revision})")
            self._write_status()  # record the revision before touching workloads: a crash cannot lose it
        return self._converge(workloads, new_revision)

    # --- steps -----------------------------------------------------------------------------------------
    def _load_workloads(self) -> list[_Workload] | Problem:
        loaded: list[_Workload] = []
        for workload in self.spec.workloads:
            deployment = self.o.cluster.get_deployment(self.ar.namespace, workload.name)
            if deployment is None:
                return Problem(
                    Reason.WORKLOAD_NOT_FOUND,
                    f"Deployment {self.ar.namespace}/{workload.name} does not exist (yet); "
                    "it is picked up as soon as it is created",
                )
            owner = decisions.managed_by(deployment)
            # Two AppReleases pinning one Deployment would undo each other forever; the first one keeps it
            # until it is deleted.
            if owner and owner != self.ar.name and self.o.cluster.get_apprelease(self.ar.namespace, owner):
                return Problem(
                    Reason.WORKLOAD_CONFLICT,
                    f"Deployment {workload.name} is managed by AppRelease {owner}; a Deployment follows one "
                    "AppRelease: remove it from one of them",
                )
            containers = decisions.select_containers(deployment, workload, self.spec.image)
            if isinstance(containers, Problem):
                return containers
            loaded.append(_Workload(workload.name, deployment, containers))
        return loaded

    def _credential(self, workloads: list[_Workload]) -> Credential | None:
        namespace = self.ar.namespace
        names = pullsecrets.secret_names(self.spec, [w.deployment for w in workloads], self.o.cluster, namespace)
        return pullsecrets.find_credential(self.o.cluster, namespace, self.spec.image, names)

    def _resolve_new_version(self, workloads: list[_Workload]) -> None | Problem:
        repo = reference.parse_repository(self.spec.image)
        credential = self._credential(workloads)
        try:
            resolved = self.o.registry.resolve(repo.with_tag(self.spec.version), credential)
        except RegistryError as err:
            return _registry_problem(err)
        mismatch = decisions.check_digest(self.spec, resolved.digest)
        if mismatch:
            return mismatch
        labels: dict[str, str] = {}
        try:
            labels = self.o.registry.labels(repo.with_digest(resolved.digest), credential)
        except RegistryError as err:
            if self.spec.provenance != Provenance.DISABLED:
                return _registry_problem(err)
            log.info("labels of %s unreadable (provenance Disabled): %s", resolved.pinned, err)
        provenance = decisions.check_provenance(self.spec.provenance, self.spec.version, labels)
        if provenance:
            return provenance
        revision_label = labels.get(decisions.LABEL_REVISION)
        git_commit = limits.git_commit(revision_label)
        if revision_label is not None and git_commit is None:
            self._event(
                WARNING,
                EventReason.LABEL_REJECTED,
                f"{decisions.LABEL_REVISION} of {resolved.digest} is {limits.quoted(revision_label)}, "
                "not a git commit (7-64 hex characters); gitCommit stays empty",
            )
        self.status = decisions.record_revision(
            self.status,
            image=self.spec.image,
            version=self.spec.version,
            digest=resolved.digest,
            git_commit=git_commit,
            source=Source.REGISTRY,
            restored_from=None,
            now=self.now,
            history_limit=self.spec.history_limit,
        )
        self._event(
            NORMAL,
            EventReason.DEPLOYING,
            f"revision {self.status.revision}: {self.spec.version} resolved to {resolved.digest}",
        )
        return None

    def _restore(self, target: decisions.RestoreFromHistory) -> None:
        entry = target.entry
        self.status = decisions.record_revision(
            self.status,
            image=self.spec.image,
            version=entry.version,
            digest=entry.digest,
            git_commit=entry.git_commit,
            source=Source.HISTORY,
            restored_from=entry.revision,
            now=self.now,
            history_limit=self.spec.history_limit,
        )
        self._event(
            NORMAL,
            EventReason.ROLLING_BACK,
            f"revision {self.status.revision}: back to "
            f"{entry.version} ({entry.digest}, recorded in revision {entry.revision})",
        )

    def _correct_drift(self, workloads: list[_Workload]) -> None:
        """Put back hand-edited images of the recorded revision, and nothing else (no new deploy)."""
        if not self.status.digest or not self.status.image:
            return
        if not reference.same_repository(self.status.image, self.spec.image):
            return
        for workload in workloads:
            patch = decisions.plan_patch(
                workload.deployment,
                workload.containers,
                pinned=self.status.image,
                version=self.status.version or "",
                revision=self.status.revision,
                release=self.ar.name,
            )
            if patch is not None and patch.drifted:
                self._apply(workload, patch, self.status.image, new_revision=False)

    def _apply(self, workload: _Workload, patch: decisions.DeploymentPatch, pinned: str, new_revision: bool) -> None:
        workload.deployment = self.o.cluster.patch_deployment(self.ar.namespace, workload.name, patch.body)
        if patch.drifted and not new_revision:
            message = (
                f"Deployment {workload.name}: container(s) {', '.join(patch.drifted)} changed by hand; "
                f"put back {pinned}"
            )
            self._event(WARNING, EventReason.DRIFT_CORRECTED, message)
            self.o.cluster.post_event(
                _deployment_ref(self.ar.namespace, workload), WARNING, EventReason.DRIFT_CORRECTED, message
            )

    def _converge(self, workloads: list[_Workload], new_revision: bool) -> Result:
        assert self.status.digest is not None
        pinned = f"{self.spec.image}@{self.status.digest}"
        for workload in workloads:
            patch = decisions.plan_patch(
                workload.deployment,
                workload.containers,
                pinned=pinned,
                version=self.status.version or self.spec.version,
                revision=self.status.revision,
                release=self.ar.name,
            )
            if patch is not None:
                self._apply(workload, patch, pinned, new_revision)

        states = [decisions.rollout_state(w.deployment) for w in workloads]
        failed = [s for s in states if s.state == decisions.Rollout.FAILED]
        waiting = [s for s in states if s.state == decisions.Rollout.PROGRESSING]
        if failed:
            self._mark(Outcome.FAILED)
            message = "; ".join(s.message for s in failed)
            changed = self._set_ready(cond.FALSE, Reason.ROLLOUT_FAILED, message, reconciling=False)
            if changed:
                self._event(WARNING, Reason.ROLLOUT_FAILED, message)
            self._write_status()
            return Result(requeue_after=self.o.rollout_poll_seconds * 6)
        if waiting:
            self._set_progressing("; ".join(s.message for s in waiting))
            self._write_status()
            return Result(requeue_after=self.o.rollout_poll_seconds)
        finished = decisions.current_outcome(self.status) in (Outcome.IN_PROGRESS, Outcome.FAILED)
        self._mark(Outcome.SUCCEEDED)
        message = f"{self.status.version} ({self.status.digest}) runs in {len(workloads)} workload(s)"
        self._set_ready(cond.TRUE, Reason.SUCCEEDED, message, reconciling=False)
        if finished:
            self._event(NORMAL, EventReason.DEPLOYED, f"revision {self.status.revision}: {message}")
        self._write_status()
        self._check_tag_moved(workloads)
        return Result(requeue_after=self.o.resync_seconds)

    def _observe_suspended(self, workloads: list[_Workload]) -> Result:
        pinned = f"{self.spec.image}@{self.status.digest}" if self.status.digest else None
        running = pinned is not None and all(
            decisions.runs_pinned(w.deployment, w.containers, pinned)
            and decisions.rollout_state(w.deployment).state == decisions.Rollout.COMPLETE
            for w in workloads
        )
        if running:
            self._set_ready(cond.TRUE, Reason.SUSPENDED, f"suspended; {self.status.version} runs", False)
        else:
            self._set_ready(cond.FALSE, Reason.SUSPENDED, "suspended: observing only, no change is made", False)
        self._write_status()
        return Result(requeue_after=self.o.resync_seconds)

    def _check_tag_moved(self, workloads: list[_Workload]) -> None:
        """Notice (never act on) a tag that now points elsewhere than the digest we recorded for it."""
        key = (self.ar.namespace, self.ar.name)
        assert self.status.digest is not None and self.status.version is not None
        try:
            ref = reference.parse_repository(self.spec.image).with_tag(self.status.version)
        except ValueError as err:
            log.debug("tag check of %s/%s skipped: %s", *key, err)
            return

        def check() -> str | None:
            try:
                # A resolution made within the period (e.g. the one this release was deployed from) is a check.
                max_age = self.o.tag_watch.interval
                return self.o.registry.resolve(ref, self._credential(workloads), max_age=max_age).digest
            except (RegistryError, ValueError) as err:
                log.debug("tag check of %s skipped: %s", ref, err)
                return None

        # One shared check per (repository, tag) per period, whatever the number of AppReleases naming it.
        current = self.o.tag_watch.observe((ref.repository, ref.tag), check)
        if current is None or current == self.status.digest:
            return
        if not self.o.tag_watch.first_report(key, current):
            return
        self._event(
            WARNING,
            EventReason.TAG_MOVED,
            f"tag {self.status.version} of {self.spec.image} now points to {current}; "
            f"keeping the recorded {self.status.digest}. Release a new version to deploy other content",
        )

    # --- reporting -------------------------------------------------------------------------------------
    def _stall(self, problem: Problem) -> Result:
        previous = cond.get_condition(self.status.conditions, cond.STALLED)
        self._set(cond.STALLED, cond.TRUE, problem.reason, problem.message)
        self._set(cond.READY, cond.FALSE, problem.reason, problem.message)
        self._set(cond.RECONCILING, cond.FALSE, problem.reason, problem.message)
        if previous is None or previous.status != cond.TRUE or previous.message != problem.message:
            self._event(WARNING, problem.reason, problem.message)
        self._write_status()
        return Result()

    def _wait(self, problem: Problem) -> Result:
        previous = cond.get_condition(self.status.conditions, cond.READY)
        self._clear_stalled()
        self._set(cond.READY, cond.FALSE, problem.reason, problem.message)
        self._set(cond.RECONCILING, cond.TRUE, problem.reason, problem.message)
        if previous is None or previous.reason != problem.reason:
            self._event(WARNING, problem.reason, problem.message)
        self._write_status()
        return Result(retry=True)

    def _set_progressing(self, message: str) -> None:
        self._clear_stalled()
        self._set(cond.READY, cond.FALSE, Reason.PROGRESSING, message)
        self._set(cond.RECONCILING, cond.TRUE, Reason.PROGRESSING, message)

    def _set_ready(self, status: str, reason: str, message: str, reconciling: bool) -> bool:
        previous = cond.get_condition(self.status.conditions, cond.READY)
        self._clear_stalled()
        self._set(cond.READY, status, reason, message)
        self._set(cond.RECONCILING, cond.TRUE if reconciling else cond.FALSE, reason, message)
        return previous is None or previous.status != status or previous.reason != reason

    def _clear_stalled(self) -> None:
        self._set(cond.STALLED, cond.FALSE, "", "")

    def _set(self, type_: str, status: str, reason: str, message: str) -> None:
        self.status.conditions = cond.set_condition(
            self.status.conditions, type_, status, reason or status, message, self.gen, self.now
        )

    def _mark(self, outcome: Outcome) -> None:
        self.status = decisions.set_outcome(self.status, self.status.revision, outcome)

    def _write_status(self) -> None:
        self.status.observed_generation = self.gen
        rendered = self.status.to_k8s()
        if rendered == self.original:
            return
        self.o.cluster.patch_apprelease_status(self.ar.namespace, self.ar.name, _with_nulls(rendered, self.original))
        self.original = rendered

    def _event(self, type_: str, reason: str, message: str) -> None:
        (log.warning if type_ == WARNING else log.info)(
            "%s/%s %s: %s", self.ar.namespace, self.ar.name, reason, message
        )
        self.o.cluster.post_event(self.ar.object_reference(), type_, reason, message)


def _registry_problem(err: RegistryError) -> Problem:
    if isinstance(err, TagNotFound):
        return Problem(Reason.TAG_NOT_FOUND, f"{err}; it is deployed as soon as it is pushed")
    if isinstance(err, Unauthorized):
        return Problem(Reason.UNAUTHORIZED, str(err))
    return Problem(Reason.REGISTRY_UNAVAILABLE, str(err))


def _with_nulls(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A merge patch removes a field only when it says null; fields we dropped must say so."""
    patch = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def _deployment_ref(namespace: str, workload: _Workload) -> dict[str, str]:
    meta = workload.deployment.get("metadata", {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": workload.name,
        "namespace": namespace,
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
