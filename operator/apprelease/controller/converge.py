"""Bringing the workloads to the recorded revision, watching the rollout, and acting when it fails.

Every workload of an AppRelease moves together: they are all pinned to the recorded digest, a failure in any
of them fails the revision, and an automatic rollback restores all of them to the last good one.
Level-based like the rest of the reconcile: the recorded status is the plan, so a crash at any point resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from apprelease.controller.cluster import Cluster, JsonObject
from apprelease.controller.report import NORMAL, WARNING, Report
from apprelease.controller.verification import Gate
from apprelease.core import conditions as cond
from apprelease.core import decisions, failures, limits
from apprelease.core.api import (
    ANNOTATION_REVISION,
    AppRelease,
    Cause,
    HistoryEntry,
    OnFailure,
    Outcome,
)
from apprelease.core.conditions import EventReason, Problem, Reason
from apprelease.core.fields import Fields
from apprelease.core.spec import ReleaseSpec
from apprelease.core.workloads import Kind, Rollout, RolloutState, Workload


@dataclass(frozen=True)
class Result:
    """What the work queue does next with this AppRelease."""

    requeue_after: float | None = None  # check again after this many seconds
    retry: bool = False  # a transient problem: retry with this key's backoff instead
    # The spec cannot be satisfied. For metrics only: the queue does the same as for Result(), hence no compare.
    stalled: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Timing:
    resync_seconds: float
    poll_seconds: float


class Converger:
    def __init__(
        self,
        cluster: Cluster,
        ar: AppRelease,
        spec: ReleaseSpec,
        report: Report,
        timing: Timing,
        now: str,
        gate: Gate | None = None,
    ) -> None:
        self._gate = gate  # re-checks the evidence an automatic rollback restores (None: nothing is verified)
        self._cluster = cluster
        self._ar = ar
        self._spec = spec
        self._report = report
        self._timing = timing
        self._now = now

    # --- pinning ---------------------------------------------------------------------------------------
    def pin(self, workloads: list[Workload]) -> None:
        """Patch every workload to the recorded revision; a hand edit of our revision is put back and told."""
        status = self._report.status
        assert status.digest is not None
        pinned = self._spec.pinned(status.digest)
        for workload in workloads:
            patch = decisions.plan_patch(
                workload,
                pinned=pinned,
                version=status.version or self._spec.version,
                revision=status.revision,
                release=self._ar.name,
            )
            if patch is None:
                continue
            workload.obj = self._cluster.patch_workload(workload.kind, workload.namespace, workload.name, patch.body)
            if patch.drifted:
                who = f" by {', '.join(limits.quoted(m, 64) for m in patch.changed_by)}" if patch.changed_by else ""
                message = (
                    f"{workload.title}: container(s) {', '.join(patch.drifted)} changed{who} away from the pinned "
                    f"digest; put back {pinned} (revision {status.revision}). Release a version through the "
                    f"AppRelease instead (spec.version, or `apprelease rollback {self._ar.name}`)"
                )
                self._report.event(WARNING, EventReason.DRIFT_CORRECTED, message, about=workload.reference())

    # --- a rollout to the recorded revision ------------------------------------------------------------
    def converge(self, workloads: list[Workload]) -> Result:
        self.pin(workloads)
        entry = self._current()
        states = [w.rollout() for w in workloads]
        if entry is not None and entry.outcome == Outcome.IN_PROGRESS:
            entry = self._account_pause(entry, states)
            failure = self._failure(workloads, states, entry)
            if failure:
                return self._fail(workloads, entry, failure)
        paused = [s for s in states if s.state == Rollout.PAUSED]
        if paused:
            message = "; ".join(s.message for s in paused) + "; the rollout timeout does not run meanwhile"
            self._report.waiting(Reason.PAUSED, message)
            self._report.write()
            return Result(requeue_after=self._timing.poll_seconds)
        waiting = [s for s in states if s.state != Rollout.COMPLETE]
        if waiting:
            unobserved = all(not w.observed() for w, s in zip(workloads, states, strict=True) if s in waiting)
            # A spec its controller has not seen yet (we have just patched it) is no news when status already
            # says Progressing for this generation: one status write per pass fewer (10,000 AppReleases: 10,000
            # writes). The next pass, woken by the controller's status update, reports the counts.
            if not (unobserved and self._report.says_progressing()):
                self._report.progressing("; ".join(s.message for s in waiting))
            self._report.write()
            return Result(requeue_after=self._timing.poll_seconds)
        status = self._report.status
        message = f"{status.version} ({status.digest}) runs in {len(workloads)} workload(s)"
        if entry is not None and entry.outcome == Outcome.IN_PROGRESS:
            left, total = self._bake(entry, workloads)
            if left > 0:
                self._report.waiting(Reason.BAKING, f"{message}; baking: {left:.0f}s of {total}s left")
                self._report.write()
                return Result(requeue_after=min(self._timing.poll_seconds, left))
        self._report.ready(cond.TRUE, Reason.SUCCEEDED, message)
        if entry is not None and entry.outcome == Outcome.IN_PROGRESS:
            self._succeeded(entry)
            self._report.event(NORMAL, EventReason.DEPLOYED, f"revision {status.revision}: {message}")
        self._report.write()
        return Result(requeue_after=self._timing.resync_seconds)

    # --- the bake and pauses: clocks from persisted times only ------------------------------------------
    def _bake(self, entry: HistoryEntry, workloads: list[Workload]) -> tuple[float, int]:
        """(seconds left, total) of the bake of a revision whose rollout is complete; starts it (persisted in
        bakeStartedAt) the first time. The total is rollout.bakeSeconds, at least each workload's
        minReadySeconds."""
        total = max([self._spec.bake_seconds, *(w.min_ready_seconds() for w in workloads)])
        if entry.bake_started_at is None:
            entry = self._update_entry(entry, bake_started_at=self._now)
        return failures.bake_left(entry, self._now, total), total

    def _account_pause(self, entry: HistoryEntry, states: list[RolloutState]) -> HistoryEntry:
        """Open a pause (pausedAt) when a workload is paused; close it into pausedSeconds when none is."""
        paused = any(s.state == Rollout.PAUSED for s in states)
        if paused and entry.paused_at is None:
            return self._update_entry(entry, paused_at=self._now)
        if not paused and entry.paused_at is not None:
            total = round(failures.paused_seconds(entry, self._now))
            return self._update_entry(entry, paused_at=None, paused_seconds=total)
        return entry

    def _update_entry(self, entry: HistoryEntry, **fields: object) -> HistoryEntry:
        updated = entry.model_copy(update=fields)
        self._report.update(
            lambda s: s.model_copy(
                update={"history": [updated if e.revision == entry.revision else e for e in s.history]}
            )
        )
        return updated

    # --- after an automatic rollback: keep the restored revision running, Stalled until spec or retry ----
    def hold(self, workloads: list[Workload]) -> Result:
        stalled = cond.get_condition(self._report.status.conditions, cond.STALLED)
        message = stalled.message if stalled else ""
        self.pin(workloads)
        entry = self._current()
        states = [w.rollout() for w in workloads]
        self._unblock_stateful_sets(workloads, states)
        if entry is not None and entry.outcome == Outcome.IN_PROGRESS:
            failure = self._failure(workloads, states, entry)
            if failure:
                # No second rollback: a version never flips back and forth on its own.
                self._failed(entry, failure)
                text = f"{message}; the rollback to {entry.version} (revision {entry.revision}) failed too: {failure}"
                self._report.stalled(Reason.ROLLOUT_FAILED, text)
                self._report.event(WARNING, EventReason.ROLLOUT_FAILED, text)
                self._report.write()
                return Result()
        waiting = [s for s in states if s.state != Rollout.COMPLETE]
        left = 0.0
        if not waiting and entry is not None and entry.outcome == Outcome.IN_PROGRESS:
            left = self._bake(entry, workloads)[0]
            if left <= 0:
                self._succeeded(entry)
                self._report.event(
                    NORMAL,
                    EventReason.DEPLOYED,
                    f"revision {entry.revision}: {entry.version} runs again ({entry.digest})",
                )
        self._report.stalled(Reason.ROLLED_BACK, message, reconciling=bool(waiting) or left > 0)
        self._report.write()
        if waiting or left > 0:
            return Result(requeue_after=min(self._timing.poll_seconds, left or self._timing.poll_seconds))
        return Result(requeue_after=self._timing.resync_seconds)

    # --- failure ---------------------------------------------------------------------------------------
    def _failure(self, workloads: list[Workload], states: list[RolloutState], entry: HistoryEntry) -> str | None:
        for state in states:
            reported = failures.rollout_failure(state)
            if reported:
                return reported
        baking = entry.bake_started_at
        for workload, state in zip(workloads, states, strict=True):
            if state.state == Rollout.COMPLETE and baking is None:
                continue
            if not workload.observed():
                # Its controller has not acted on the spec yet: what pods say is about an older one. The pass
                # its status update wakes looks at them (two list calls fewer per pass that just patched it).
                continue
            pods = workload.revision_pods(self._own_pods(workload), entry.revision)
            stuck = failures.pod_failure(workload, pods)
            if baking is not None:
                stuck = stuck or failures.bake_failure(workload, pods, baking)
            if stuck:
                return stuck
        waiting = [s for s in states if s.state != Rollout.COMPLETE]
        timeout = self._spec.timeout_seconds
        if any(s.state == Rollout.PAUSED for s in states):
            return None  # a person holds it: the timeout clock stands still (pausedAt, pausedSeconds)
        paused = failures.paused_seconds(entry, self._now)
        if waiting and failures.timed_out(entry.deployed_at, self._now, timeout, paused):
            return failures.timeout_message(waiting, timeout)
        return None

    def _own_pods(self, workload: Workload) -> list[JsonObject]:
        """The workload's own pods: those under its selector whose ownerReferences lead to it by uid."""
        selector = workload.pod_selector()
        if selector is None:
            return []
        pods = self._cluster.list_pods(workload.namespace, selector)
        if not pods:
            return []  # nothing to own: the ReplicaSets, which say whose pods they are, need not be listed
        replica_sets = []
        if workload.kind == Kind.DEPLOYMENT:
            replica_sets = self._cluster.list_replica_sets(workload.namespace, selector)
        return workload.owned_pods(pods, replica_sets)

    def _fail(self, workloads: list[Workload], entry: HistoryEntry, failure: str) -> Result:
        self._failed(entry, failure)
        # A retry is a new annotation value: the one present while this version failed is spent.
        token = limits.retry_token(self._ar.retry)
        self._report.update(lambda s: s.model_copy(update={"last_handled_retry": token}))
        failed = f"{entry.version} (revision {entry.revision}) failed: {failure}"
        target = None
        if self._spec.on_failure != OnFailure.HALT:
            target = failures.rollback_target(self._report.status.history, entry, self._spec.image)
        if target is None:
            why = (
                "rollout.onFailure is Halt"
                if self._spec.on_failure == OnFailure.HALT
                else "there is no earlier succeeded revision to go back to"
            )
            message = (
                f"{failed}; {why}, so it stays as it is. Release a fixed version, or retry with "
                f"`apprelease retry {self._ar.name}`"
            )
            self._report.stalled(Reason.ROLLOUT_FAILED, message)
            self._report.event(WARNING, EventReason.ROLLOUT_FAILED, message)
            self._report.write()
            return Result()
        untrusted = self._gate.recheck(self._ar.namespace, self._spec, target) if self._gate else None
        if untrusted is not None:
            return self._rollback_refused(failed, untrusted)
        spec, now = self._spec, self._now
        self._report.update(
            lambda s: decisions.restore_revision(
                s, target, image=spec.image, now=now, history_limit=spec.history_limit, cause=Cause.AUTO_ROLLBACK
            )
        )
        revision = self._report.status.revision
        message = (
            f"{failed}; rolled back automatically to {target.version} (revision {revision}, restored from "
            f"revision {target.revision}), which runs now. {entry.version} is not tried again until the spec "
            f"changes or `apprelease retry {self._ar.name}`"
        )
        self._report.stalled(Reason.ROLLED_BACK, message, reconciling=True)
        self._report.event(WARNING, EventReason.ROLLOUT_FAILED, failed)
        self._report.event(WARNING, EventReason.ROLLED_BACK, message)
        # The failure and the restore are recorded, then told, before any workload moves back: a crash after
        # this write finds the rollback in status and its Events posted.
        self._report.write()
        return self.hold(workloads)

    def _rollback_refused(self, failed: str, untrusted: Problem) -> Result:
        """The revision to go back to no longer passes spec.verify (re-checked from history, no registry request):
        the failed revision stays as it is, Stalled SignatureUntrusted; no workload is patched. Also when the keys
        cannot be read now (a retried reason for a new version): nothing restores what cannot be shown trusted."""
        message = f"{failed}; the automatic rollback is refused: {untrusted.message}"
        self._report.stalled(Reason.SIGNATURE_UNTRUSTED, message)
        self._report.event(WARNING, EventReason.ROLLOUT_FAILED, failed)
        self._report.event(WARNING, Reason.SIGNATURE_UNTRUSTED, message)
        self._report.write()
        return Result(stalled=True)

    def _unblock_stateful_sets(self, workloads: list[Workload], states: list[RolloutState]) -> None:
        """Kubernetes' "forced rollback": a StatefulSet with OrderedReady pods waits forever for a broken pod of
        the reverted template to become Ready; such pods are deleted so the controller recreates them."""
        current = self._report.status.revision
        for workload, state in zip(workloads, states, strict=True):
            if workload.kind != Kind.STATEFUL_SET or state.state == Rollout.COMPLETE:
                continue
            update_revision = Fields(workload.obj).sub("status").text("updateRevision")
            if not update_revision or workload.template_annotations().get(ANNOTATION_REVISION) != str(current):
                continue
            for pod in map(_Pod.of, self._own_pods(workload)):  # never another owner's pod (overlapping selector)
                stale = pod.labels.get("controller-revision-hash") != update_revision
                if stale and not pod.ready and not pod.deleting:
                    self._cluster.delete_pod(workload.namespace, pod.name)

    # --- history ---------------------------------------------------------------------------------------
    def _current(self) -> HistoryEntry | None:
        status = self._report.status
        return next((e for e in status.history if e.revision == status.revision), None)

    def _succeeded(self, entry: HistoryEntry) -> None:
        self._report.update(lambda s: decisions.set_outcome(s, entry.revision, Outcome.SUCCEEDED, self._now))

    def _failed(self, entry: HistoryEntry, failure: str) -> None:
        self._report.update(
            lambda s: s.model_copy(update={"history": failures.mark_failed(s.history, entry.revision, failure)})
        )


@dataclass(frozen=True)
class _Pod:
    """What the forced rollback reads of a pod, narrowed from the API server's JSON."""

    name: str
    labels: Mapping[str, object]
    deleting: bool
    ready: bool

    @classmethod
    def of(cls, pod: Mapping[str, object]) -> _Pod:
        meta, status = _mapping(pod.get("metadata")), _mapping(pod.get("status"))
        conditions = status.get("conditions")
        ready = isinstance(conditions, list) and any(
            isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
        )
        return cls(str(meta.get("name")), _mapping(meta.get("labels")), bool(meta.get("deletionTimestamp")), ready)


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}
