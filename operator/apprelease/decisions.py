"""Pure decisions of a reconcile: which digest to deploy, what to patch, how far a rollout is.

Nothing here does I/O, so every rule is unit-tested without a cluster or a registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apprelease import limits, reference
from apprelease.api import (
    ANNOTATION_CHANGE_CAUSE,
    ANNOTATION_RELEASE,
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    LABEL_RELEASE,
    AppReleaseSpec,
    AppReleaseStatus,
    HistoryEntry,
    Outcome,
    Provenance,
    Source,
    Workload,
)
from apprelease.conditions import Problem, Reason

LABEL_VERSION = "org.opencontainers.image.version"
LABEL_REVISION = "org.opencontainers.image.revision"


# --- which digest -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeepCurrent:
    """spec.version is what status already records: finish or keep that revision."""


@dataclass(frozen=True)
class RestoreFromHistory:
    """spec.version was deployed before: redeploy its recorded digest without asking the registry."""

    entry: HistoryEntry


@dataclass(frozen=True)
class ResolveFromRegistry:
    """A version never deployed here: ask the registry what the tag points to."""


Target = KeepCurrent | RestoreFromHistory | ResolveFromRegistry


def choose_target(spec: AppReleaseSpec, status: AppReleaseStatus) -> Target | Problem:
    current_repository = status.image.split("@", 1)[0] if status.image else None
    # A changed spec.image is another artifact altogether: what was recorded for the old one does not apply.
    same_image = current_repository is None or reference.same_repository(current_repository, spec.image)
    if same_image and status.version == spec.version and status.digest:
        return _guard(spec, status.digest, "status") or KeepCurrent()
    recorded = find_in_history(status.history, spec.version, spec.image)
    if recorded is not None:
        return _guard(spec, recorded.digest, f"revision {recorded.revision}") or RestoreFromHistory(recorded)
    return ResolveFromRegistry()


def find_in_history(history: list[HistoryEntry], version: str, image: str | None = None) -> HistoryEntry | None:
    """The newest recorded deployment of a version (history is newest first) of the same image."""
    return next(
        (
            entry
            for entry in history
            if entry.version == version
            and (image is None or entry.image is None or reference.same_repository(entry.image, image))
        ),
        None,
    )


def _guard(spec: AppReleaseSpec, recorded: str, where: str) -> Problem | None:
    if spec.digest and spec.digest != recorded:
        return Problem(
            Reason.DIGEST_MISMATCH,
            f"version {spec.version} was recorded as {recorded} ({where}), but spec.digest is {spec.digest}; "
            "a recorded version is never re-resolved: fix spec.digest or release a new version",
        )
    return None


def check_digest(spec: AppReleaseSpec, resolved_digest: str) -> Problem | None:
    if spec.digest and spec.digest != resolved_digest:
        return Problem(
            Reason.DIGEST_MISMATCH,
            f"tag {spec.version} of {spec.image} resolves to {resolved_digest}, not to spec.digest "
            f"{spec.digest}; the tag may have been moved: nothing was deployed",
        )
    return None


def check_provenance(mode: str, version: str, labels: dict[str, str]) -> Problem | None:
    if mode == Provenance.DISABLED:
        return None
    label = labels.get(LABEL_VERSION)
    if label is None:
        if mode == Provenance.REQUIRED:
            return Problem(
                Reason.PROVENANCE_MISMATCH,
                f"provenance is Required but the image has no {LABEL_VERSION} label; "
                "bake it with `apprelease build` or add the label",
            )
        return None
    if label != version:
        return Problem(
            Reason.PROVENANCE_MISMATCH,
            f"the image tagged {version} was built from version {limits.quoted(label)} ({LABEL_VERSION}); "
            "nothing was deployed",
        )
    return None


# --- history ------------------------------------------------------------------------------------------
def record_revision(
    status: AppReleaseStatus,
    *,
    image: str,
    version: str,
    digest: str,
    git_commit: str | None,
    source: Source,
    restored_from: int | None,
    now: str,
    history_limit: int,
) -> AppReleaseStatus:
    """A status with a new revision at the head of history; the one it replaces, if unfinished, is Superseded."""
    revision = max([status.revision, *(e.revision for e in status.history)]) + 1
    previous = [
        entry.model_copy(update={"outcome": Outcome.SUPERSEDED}) if entry.outcome == Outcome.IN_PROGRESS else entry
        for entry in status.history
    ]
    entry = HistoryEntry(
        revision=revision,
        image=image,
        version=version,
        digest=digest,
        gitCommit=git_commit,
        source=source,
        restoredFrom=restored_from,
        deployedAt=now,
        outcome=Outcome.IN_PROGRESS,
    )
    return status.model_copy(
        update={
            "revision": revision,
            "version": version,
            "digest": digest,
            "short_digest": short_digest(digest),
            "image": f"{image}@{digest}",
            "git_commit": git_commit,
            "history": [entry, *previous][:history_limit],
        }
    )


def set_outcome(status: AppReleaseStatus, revision: int, outcome: Outcome) -> AppReleaseStatus:
    history = [
        entry.model_copy(update={"outcome": outcome}) if entry.revision == revision else entry
        for entry in status.history
    ]
    return status.model_copy(update={"history": history})


def current_outcome(status: AppReleaseStatus) -> Outcome | None:
    entry = next((e for e in status.history if e.revision == status.revision), None)
    return entry.outcome if entry else None


def short_digest(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


# --- what to patch ------------------------------------------------------------------------------------
def select_containers(deployment: dict[str, Any], workload: Workload, image: str) -> list[str] | Problem:
    """The containers of a Deployment to pin: the named ones, or every one running spec.image."""
    name = deployment.get("metadata", {}).get("name", workload.name)
    containers = _containers(deployment)
    if workload.containers:
        present = {c.get("name") for c in containers}
        missing = [c for c in workload.containers if c not in present]
        if missing:
            return Problem(
                Reason.CONTAINER_NOT_FOUND,
                f"Deployment {name} has no container named {', '.join(missing)} "
                f"(it has: {', '.join(sorted(str(p) for p in present))})",
            )
        return list(workload.containers)
    matching = [str(c.get("name")) for c in containers if reference.same_repository(c.get("image", ""), image)]
    if not matching:
        return Problem(
            Reason.CONTAINER_NOT_FOUND,
            f"no container of Deployment {name} runs {image}; "
            "set spec.workloads[].containers to name the containers to pin",
        )
    return matching


@dataclass(frozen=True)
class DeploymentPatch:
    body: dict[str, Any]
    drifted: list[str]  # containers whose image was changed by someone else after we pinned it


def plan_patch(
    deployment: dict[str, Any],
    containers: list[str],
    *,
    pinned: str,
    version: str,
    revision: int,
    release: str,
) -> DeploymentPatch | None:
    """The strategic-merge patch that pins the containers, touching nothing else; None when already pinned."""
    template_annotations = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    by_name = {c.get("name"): c for c in _containers(deployment)}
    stale = [name for name in containers if by_name.get(name, {}).get("image") != pinned]
    wanted_annotations = {ANNOTATION_VERSION: version, ANNOTATION_REVISION: str(revision)}
    annotations_stale = any(template_annotations.get(k) != v for k, v in wanted_annotations.items())
    if not stale and not annotations_stale:
        return None
    # Drift: the template still says it is our revision, yet an image differs: someone edited it by hand.
    ours = template_annotations.get(ANNOTATION_REVISION) == str(revision)
    drifted = stale if ours else []
    body: dict[str, Any] = {
        "metadata": {
            "annotations": {
                ANNOTATION_CHANGE_CAUSE: f"apprelease {release}: {version} (revision {revision}) {pinned}",
                ANNOTATION_RELEASE: release,
            }
        },
        "spec": {
            "template": {
                "metadata": {"annotations": wanted_annotations},
                "spec": {"containers": [{"name": name, "image": pinned} for name in containers]},
            }
        },
    }
    return DeploymentPatch(body=body, drifted=drifted)


def check_opt_in(workload: dict[str, Any], kind: str, release: str) -> Problem | None:
    """A workload is pinned only when its owner labelled it for this AppRelease (never on the requester's say).

    The operator holds patch rights on every workload; without this consent anyone allowed to create an
    AppRelease could make it run any image under any workload's ServiceAccount.
    """
    meta = workload.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(LABEL_RELEASE) == release:
        return None
    name, namespace = meta.get("name", "?"), meta.get("namespace", "")
    found = labels.get(LABEL_RELEASE)
    now = f"it is labelled for AppRelease {found!r}" if found else "it has no such label"
    return Problem(
        Reason.WORKLOAD_NOT_OPTED_IN,
        f"{kind} {name} is not opted in to AppRelease {release}: {now}. Its owner opts it in with "
        f"`kubectl label {kind.lower()} {name} -n {namespace} {LABEL_RELEASE}={release} --overwrite`; "
        "nothing is changed until then",
    )


def runs_pinned(deployment: dict[str, Any], containers: list[str], pinned: str) -> bool:
    by_name = {c.get("name"): c for c in _containers(deployment)}
    return all(by_name.get(name, {}).get("image") == pinned for name in containers)


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return [c for c in containers if isinstance(c, dict)]


# --- how far a rollout is -----------------------------------------------------------------------------
class Rollout(StrEnum):
    COMPLETE = "Complete"
    PROGRESSING = "Progressing"
    FAILED = "Failed"


@dataclass(frozen=True)
class RolloutState:
    state: Rollout
    message: str


def rollout_state(deployment: dict[str, Any]) -> RolloutState:
    """The same judgement as `kubectl rollout status`."""
    name = deployment.get("metadata", {}).get("name", "?")
    generation = deployment.get("metadata", {}).get("generation", 0)
    spec = deployment.get("spec", {})
    status = deployment.get("status", {}) or {}
    if status.get("observedGeneration", 0) < generation:
        return RolloutState(Rollout.PROGRESSING, f"Deployment {name}: waiting for the new spec to be observed")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState(Rollout.FAILED, f"Deployment {name} exceeded its progress deadline")
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        return RolloutState(Rollout.PROGRESSING, f"Deployment {name}: {updated} of {desired} updated replicas")
    if total > updated:
        return RolloutState(
            Rollout.PROGRESSING, f"Deployment {name}: {total - updated} old replicas pending termination"
        )
    if available < updated:
        return RolloutState(
            Rollout.PROGRESSING, f"Deployment {name}: {available} of {updated} updated replicas available"
        )
    return RolloutState(Rollout.COMPLETE, f"Deployment {name} rolled out")
