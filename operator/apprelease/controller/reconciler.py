"""One reconcile of one AppRelease: read, check the spec once (validation.py), decide (decisions.py,
failures.py), act (converge.py), report (report.py).

Blocking by design (registry and API calls); the operator runs it in a worker thread. Level-based: it looks
at the world as it is now, so running it twice, or after a crash at any point, converges to the same state.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from apprelease.controller import extensions, pullsecrets
from apprelease.controller.cluster import Cluster
from apprelease.controller.converge import Converger, Result, Timing
from apprelease.controller.registryfaults import registry_problem
from apprelease.controller.report import NORMAL, WARNING, Report
from apprelease.controller.tagwatch import TagWatch
from apprelease.controller.verification import Gate, recorded_provenance
from apprelease.core import conditions as cond
from apprelease.core import decisions, limits, registrypolicy
from apprelease.core.api import LABEL_REVISION, AppRelease, Cause, HistoryEntry, Outcome, Provenance, Source
from apprelease.core.conditions import EventReason, Problem, Reason
from apprelease.core.reference import Reference
from apprelease.core.spec import ReleaseSpec
from apprelease.core.validation import check_spec
from apprelease.core.workloads import Rollout, Workload
from apprelease.notify.notifier import Notifier
from apprelease.registry import (
    Credential,
    PlatformLabels,
    RegistryBusy,
    RegistryClient,
    RegistryError,
    Resolved,
    UnsupportedManifest,
)
from apprelease.trust import Mode

log = logging.getLogger(__name__)

__all__ = ["Reconciler", "Result", "utcnow"]


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
        require_uid_binding: bool = False,
        notifier: Notifier | None = None,
        promotion_sources: list[str] | None = None,
        verify_floor: Mode = Mode.NONE,
    ) -> None:
        self.cluster = cluster
        # Verify before pinning (spec.verify, raised to the operator's floor); rollbacks re-check evidence.
        self.gate = Gate(cluster, registry, verify_floor)
        self.allowed_registries = list(allowed_registries or [])
        self.require_uid_binding = require_uid_binding
        self.registry = registry
        self.timing = Timing(resync_seconds=resync_seconds, poll_seconds=rollout_poll_seconds)
        self.now = now
        # Slightly under the resync period, so that every resync of a Ready release re-checks its tag.
        self.tag_watch = TagWatch(resync_seconds * 0.9, monotonic)
        self.notifier = notifier
        self.promotion_sources = list(promotion_sources or [])

    # --- entry point -----------------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> Result:
        obj = self.cluster.get_apprelease(namespace, name)
        if obj is None or _deleting(obj):
            return Result()
        ar = AppRelease.from_k8s(obj)
        report = Report(self.cluster, ar, self.now())
        result = _Pass(self, ar, report).run()
        if self.notifier is not None:
            result = extensions.notify(self.notifier, ar, report, result, self.timing.poll_seconds)
        report.finish()  # Events no status write followed (e.g. TagMoved) go out last
        return result


def _deleting(obj: dict[str, object]) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))


class _Pass:
    """The state of one reconcile pass; keeps `reconcile` readable as a sequence of steps."""

    def __init__(self, owner: Reconciler, ar: AppRelease, report: Report) -> None:
        self.o = owner
        self.ar = ar
        self.now = report.now
        self.report = report
        # The spec, parsed and validated once for the whole pass: every step below takes this value.
        self.checked = check_spec(ar.spec)

    def run(self) -> Result:
        stalled = self.report.is_stalled()
        reason = cond.reason_of(stalled) if stalled is not None else None
        retrying = False
        if reason is not None and reason.failed_rollout:
            # A failed version waits for a new generation or a new apprelease.dev/retry value.
            retrying = self._retry_requested()
            if not retrying:
                return self._hold() if reason == Reason.ROLLED_BACK else Result(stalled=True)
        elif stalled is not None and not self._policy_may_have_changed(reason):
            # Stalled is final until the spec changes (a new generation).
            return Result(stalled=True)
        spec = self.checked
        if isinstance(spec, Problem):
            return _refuse(self.report, spec)
        refused = self._registry_refused(spec)
        if refused:
            return _refuse(self.report, refused)
        return _Deploy(self, spec, retrying).run()

    def _policy_may_have_changed(self, reason: Reason | None) -> bool:
        """A refusal by the operator's own policy is looked at again: the platform team may since have allowed
        the registry. Every other Stalled reason waits for a new generation."""
        if reason not in (Reason.REGISTRY_NOT_ALLOWED, Reason.PROMOTION_SOURCE_NOT_ALLOWED):
            return False
        if isinstance(self.checked, Problem):
            return True
        source_refused = extensions.source_refused(self.ar, self.checked, self.o.promotion_sources)
        return self._registry_refused(self.checked) is None and source_refused is None

    def _registry_refused(self, spec: ReleaseSpec) -> Problem | None:
        return registrypolicy.check_registry(spec.repository, self.o.allowed_registries)

    def _retry_requested(self) -> bool:
        token = limits.retry_token(self.ar.retry)
        if token is None or token == self.report.status.last_handled_retry:
            return False
        self.report.update(lambda s: s.model_copy(update={"last_handled_retry": token}))
        return True

    def _hold(self) -> Result:
        """Rolled back automatically: keep the restored revision pinned and converging; report nothing new
        while a workload is briefly missing (Stalled must stay until the spec changes or a retry)."""
        if isinstance(self.checked, Problem):
            # Only when a rule added to the operator since the rollback refuses this generation: touch nothing.
            return Result(stalled=True)
        deploy = _Deploy(self, self.checked, retrying=False)
        workloads = deploy.load_workloads()
        if isinstance(workloads, Problem):
            log.info("%s/%s rolled back; waiting: %s", self.ar.namespace, self.ar.name, workloads.message)
            return Result(retry=True)
        return deploy.converger.hold(workloads)


class _Deploy:
    """The steps of a pass with a valid spec: find the workloads, choose and record the revision, converge."""

    def __init__(self, owner: _Pass, spec: ReleaseSpec, retrying: bool) -> None:
        self.o = owner.o
        self.ar = owner.ar
        self.spec = spec
        self.now = owner.now
        self.report = owner.report
        self.retrying = retrying
        self.wait_seconds: float | None = None  # when a refusal is known to end (a promotion's soak)
        self.converger = Converger(self.o.cluster, self.ar, spec, self.report, self.o.timing, self.now, self.o.gate)

    def run(self) -> Result:
        target = extensions.choose_target(self.o.cluster, self.report, self.ar, self.spec, self.o.promotion_sources)
        if isinstance(target, Problem):
            return _refuse(self.report, target)
        workloads = self.load_workloads()
        if isinstance(workloads, Problem):
            return _refuse(self.report, workloads)
        if self.spec.suspend:
            return self._observe_suspended(workloads)
        if isinstance(target, decisions.ResolveFromRegistry):
            problem = self._promote(workloads) if self.spec.promotion else self._resolve_new_version(workloads)
            if problem is not None:
                return self._unresolved(problem, workloads)
        elif isinstance(target, decisions.RestoreFromHistory):
            untrusted = self.o.gate.recheck(self.ar.namespace, self.spec, target.entry)  # no registry request
            if untrusted is not None:
                return _refuse(self.report, untrusted)
            self._restore(target.entry)
        if not isinstance(target, decisions.KeepCurrent):
            status = self.report.status
            self.report.progressing(f"deploying {status.version} (revision {status.revision})")
            self.report.write()  # record the revision before touching workloads: a crash cannot lose it
        result = self.converger.converge(workloads)
        ready = cond.get_condition(self.report.status.conditions, cond.READY)
        if ready is not None and ready.status == cond.TRUE:
            self._check_tag_moved(workloads)
        return result

    def _unresolved(self, problem: Problem, workloads: list[Workload]) -> Result:
        if not problem.stalled and self._runs_recorded_repository():
            # The new version is not reachable yet; what was recorded last still runs and stays pinned.
            self.converger.pin(workloads)
        return _refuse(self.report, problem, self.wait_seconds)

    def load_workloads(self) -> list[Workload] | Problem:
        loaded: list[Workload] = []
        for wanted in self.spec.workloads:
            kind = wanted.kind
            obj = self.o.cluster.get_workload(kind, self.ar.namespace, wanted.name)
            if obj is None:
                return Problem(
                    Reason.WORKLOAD_NOT_FOUND,
                    f"{kind} {self.ar.namespace}/{wanted.name} does not exist (yet); "
                    "it is picked up as soon as it is created",
                )
            refused = decisions.check_opt_in(obj, kind, self.ar.name, self.ar.uid or None, self.o.require_uid_binding)
            if refused:
                return refused
            workload = Workload(kind, obj, [])
            containers = decisions.select_containers(workload, wanted.containers, self.spec.image)
            if isinstance(containers, Problem):
                return containers
            workload.containers = containers
            loaded.append(workload)
        return loaded

    def _credentials(self, workloads: list[Workload]) -> list[Credential]:
        namespace = self.ar.namespace
        names = pullsecrets.secret_names(self.spec, [w.pod_spec() for w in workloads], self.o.cluster, namespace)
        return pullsecrets.find_credentials(self.o.cluster, namespace, self.spec.repository, names)

    def _platforms(
        self, pinned: Reference, resolved: Resolved, credential: Credential | None
    ) -> list[PlatformLabels] | Problem:
        """The labels of every platform the pinned image runs as; none when provenance is Disabled and they
        cannot be read (an unasked-for media type, or RegistryBusy, our own wait, is a Problem whatever it says)."""
        try:
            return self.o.registry.platform_labels(pinned, credential)
        except RegistryError as err:
            if self.spec.provenance != Provenance.DISABLED or isinstance(err, (UnsupportedManifest, RegistryBusy)):
                return registry_problem(err)
            log.info("labels of %s unreadable (provenance Disabled): %s", resolved.pinned, err)
            return []

    def _resolve_new_version(self, workloads: list[Workload]) -> None | Problem:
        repo = self.spec.repository
        # One deadline for every registry request of this resolution (tag, token, manifests, configs).
        with self.o.registry.resolution():
            try:
                resolved, credential = pullsecrets.resolve_as_the_kubelet(
                    self.o.registry, self.spec.tagged, self._credentials(workloads)
                )
                if decisions.check_digest(self.spec, resolved.digest):
                    # Stalled DigestMismatch is final until the next edit: decide it on the registry's answer
                    # now, not on one cached up to APPRELEASE_REGISTRY_CACHE_SECONDS (300 s) ago.
                    resolved, credential = pullsecrets.resolve_as_the_kubelet(
                        self.o.registry, self.spec.tagged, self._credentials(workloads), max_age=0
                    )
            except RegistryError as err:
                return registry_problem(err)
            mismatch = decisions.check_digest(self.spec, resolved.digest)
            if mismatch:
                return mismatch
            platforms = self._platforms(repo.with_digest(resolved.digest), resolved, credential)
        if isinstance(platforms, Problem):
            return platforms
        provenance = decisions.check_platforms_provenance(
            self.spec.provenance, self.spec.version, [(p.platform, p.labels) for p in platforms]
        )
        if provenance:
            return provenance
        try:
            verified = self.o.gate.verify_new(self.ar.namespace, self.spec, resolved.digest, credential)
        except RegistryError as err:
            return registry_problem(err)
        if isinstance(verified, Problem):
            return verified
        # The revision (gitCommit) is read where labels were read before: linux/amd64, else the first platform.
        preferred = next((p for p in platforms if p.platform == "linux/amd64"), platforms[0] if platforms else None)
        labels = preferred.labels if preferred is not None else {}
        revision_label = labels.get(LABEL_REVISION)
        git_commit = limits.git_commit(revision_label)
        if revision_label is not None and git_commit is None:
            self.report.event(
                WARNING,
                EventReason.LABEL_REJECTED,
                f"{LABEL_REVISION} of {resolved.digest} is {limits.quoted(revision_label)}, "
                "not a git commit (7-64 hex characters); gitCommit stays empty",
            )
        self.report.update(
            lambda s: decisions.record_revision(
                s,
                image=self.spec.image,
                version=self.spec.version,
                digest=resolved.digest,
                git_commit=verified.commit or git_commit,  # a signed provenance beats a label
                source=Source.REGISTRY,
                restored_from=None,
                now=self.now,
                history_limit=self.spec.history_limit,
                verified_by=verified.evidence,
                provenance=recorded_provenance(verified),
            )
        )
        self.report.event(
            NORMAL,
            EventReason.DEPLOYING,
            f"revision {self.report.status.revision}: {self.spec.version} resolved to {resolved.digest}",
        )
        return None

    def _promote(self, workloads: list[Workload]) -> Problem | None:
        verify = extensions.Verifier(self.o.gate, self.ar.namespace, self.spec, lambda: self._credentials(workloads))
        problem, self.wait_seconds = extensions.promote(
            self.o.cluster, self.report, self.ar, self.spec, self.o.promotion_sources, verify
        )
        return problem

    def _restore(self, entry: HistoryEntry) -> None:
        spec = self.spec
        self.report.update(
            lambda s: decisions.restore_revision(
                s, entry, image=spec.image, now=self.now, history_limit=spec.history_limit, cause=Cause.SPEC
            )
        )
        revision = self.report.status.revision
        recorded = f"{entry.version} ({entry.digest}, recorded in revision {entry.revision})"
        if self.retrying or entry.outcome == Outcome.FAILED:
            self.report.event(NORMAL, EventReason.RETRYING, f"revision {revision}: trying {recorded} again")
        else:
            self.report.event(NORMAL, EventReason.ROLLING_BACK, f"revision {revision}: back to {recorded}")

    def _runs_recorded_repository(self) -> bool:
        status = self.report.status
        return bool(status.digest and status.image and decisions.in_repository(status.image, self.spec))

    def _observe_suspended(self, workloads: list[Workload]) -> Result:
        status = self.report.status
        pinned = self.spec.pinned(status.digest) if status.digest else None
        running = pinned is not None and all(
            decisions.runs_pinned(w, pinned) and w.rollout().state == Rollout.COMPLETE for w in workloads
        )
        if running:
            self.report.ready(cond.TRUE, Reason.SUSPENDED, f"suspended; {status.version} runs")
        else:
            self.report.ready(cond.FALSE, Reason.SUSPENDED, "suspended: observing only, no change is made")
        self.report.write()
        return Result(requeue_after=self.o.timing.resync_seconds)

    def _check_tag_moved(self, workloads: list[Workload]) -> None:
        """Notice (never act on) a tag that now points elsewhere than the digest we recorded for it."""
        key = (self.ar.namespace, self.ar.name)
        status = self.report.status
        assert status.digest is not None and status.version is not None
        try:
            ref = self.spec.repository.with_tag(status.version)
        except ValueError as err:
            log.debug("tag check of %s/%s skipped: %s", *key, err)
            return

        def check() -> str | None:
            try:
                # A resolution made within the period (e.g. the one this release was deployed from) is a check.
                max_age = self.o.tag_watch.interval
                credentials = self._credentials(workloads)
                return pullsecrets.resolve_as_the_kubelet(self.o.registry, ref, credentials, max_age=max_age)[0].digest
            except (RegistryError, ValueError) as err:
                log.debug("tag check of %s skipped: %s", ref, err)
                return None

        # One shared check per (repository, tag) per period, whatever the number of AppReleases naming it.
        current = self.o.tag_watch.observe((ref.repository, ref.tag), check)
        if current is None or current == status.digest:
            return
        if not self.o.tag_watch.first_report(key, current):
            return
        self.report.event(
            WARNING,
            EventReason.TAG_MOVED,
            f"tag {status.version} of {self.spec.image} now points to {current}; "
            f"keeping the recorded {status.digest}. Release a new version to deploy other content",
        )


def _refuse(report: Report, problem: Problem, requeue_after: float | None = None) -> Result:
    """A pass that cannot go on: Stalled (not retried until the spec changes) or waiting (retried with backoff,
    or at `requeue_after` seconds when the wait's end is known), as the reason's class says; a Warning Event
    when a reader sees a change."""
    if report.problem(problem):
        report.event(WARNING, problem.reason, problem.message)
    report.write()
    if problem.stalled:
        return Result(stalled=True)
    return Result(requeue_after=requeue_after) if requeue_after is not None else Result(retry=True)
