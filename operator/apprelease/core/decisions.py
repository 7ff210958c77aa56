"""Pure decisions of a reconcile: which digest to deploy, what history records, what to patch.

Nothing here does I/O, so every rule is unit-tested without a cluster or a registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from apprelease.core import consent, fieldowners, limits, reference
from apprelease.core.api import (
    ANNOTATION_CHANGE_CAUSE,
    ANNOTATION_HELD,
    ANNOTATION_RELEASE,
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    LABEL_VERSION,
    AppReleaseStatus,
    Cause,
    HistoryEntry,
    Outcome,
    Provenance,
    RecordedProvenance,
    Source,
)
from apprelease.core.conditions import Problem, Reason
from apprelease.core.reference import Reference
from apprelease.core.spec import ReleaseSpec
from apprelease.core.workloads import Workload


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


def choose_target(spec: ReleaseSpec, status: AppReleaseStatus) -> Target | Problem:
    # A changed spec.image is another artifact altogether: what was recorded for the old one does not apply.
    same_image = status.image is None or in_repository(status.image, spec)
    if same_image and status.version == spec.version and status.digest:
        current = next((e for e in status.history if e.revision == status.revision), None)
        if current is not None and current.outcome == Outcome.FAILED:
            # Only reached when a failed version may be tried again (new generation or retry): a new revision.
            return _guard(spec, current.digest, f"revision {current.revision}") or RestoreFromHistory(current)
        return _guard(spec, status.digest, "status") or KeepCurrent()
    recorded = find_in_history(status.history, spec.version, spec)
    if recorded is not None:
        return _guard(spec, recorded.digest, f"revision {recorded.revision}") or RestoreFromHistory(recorded)
    return ResolveFromRegistry()


def in_repository(image: str, spec: ReleaseSpec) -> bool:
    """`image` (a recorded repository or pinned reference) names spec.image's repository."""
    try:
        return reference.parse(image).repository == spec.repository.repository
    except ValueError:
        return False


def find_in_history(history: list[HistoryEntry], version: str, spec: ReleaseSpec | None = None) -> HistoryEntry | None:
    """The newest recorded deployment of a version (history is newest first) of spec.image, when given."""
    return next(
        (
            entry
            for entry in history
            if entry.version == version and (spec is None or entry.image is None or in_repository(entry.image, spec))
        ),
        None,
    )


def _guard(spec: ReleaseSpec, recorded: str, where: str) -> Problem | None:
    if spec.digest and spec.digest != recorded:
        return Problem(
            Reason.DIGEST_MISMATCH,
            f"version {spec.version} was recorded as {recorded} ({where}), but spec.digest is {spec.digest}; "
            "a recorded version is never re-resolved: fix spec.digest or release a new version",
        )
    return None


def check_digest(spec: ReleaseSpec, resolved_digest: str) -> Problem | None:
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


def check_platforms_provenance(
    mode: str, version: str, platforms: Sequence[tuple[str, Mapping[str, str]]]
) -> Problem | None:
    """``check_provenance`` for every platform an image runs as (``(platform, labels)``, e.g. each platform child
    of a multi-arch index): the pinned index digest runs them all, so each must pass (DESIGN: Provenance)."""
    for platform, labels in platforms:
        problem = check_provenance(mode, version, dict(labels))
        if problem is not None:
            if len(platforms) > 1 or platform:
                return Problem(problem.reason, f"platform {limits.quoted(platform or 'unnamed')}: {problem.message}")
            return problem
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
    cause: Cause = Cause.SPEC,
    verified_by: str | None = None,
    provenance: RecordedProvenance | None = None,
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
        cause=cause,
        deployedAt=now,
        outcome=Outcome.IN_PROGRESS,
        verifiedBy=verified_by,
        provenance=provenance,
    )
    return status.model_copy(
        update={
            "revision": revision,
            "version": version,
            "digest": digest,
            "short_digest": short_digest(digest),
            "image": f"{image}@{digest}",
            "git_commit": git_commit,
            "history": keep_way_back([entry, *previous], history_limit),
        }
    )


def restore_revision(
    status: AppReleaseStatus, entry: HistoryEntry, *, image: str, now: str, history_limit: int, cause: Cause
) -> AppReleaseStatus:
    """A new revision restoring ``entry`` from history (no registry request), with the evidence it recorded."""
    return record_revision(
        status,
        image=image,
        version=entry.version,
        digest=entry.digest,
        git_commit=entry.git_commit,
        source=Source.HISTORY,
        restored_from=entry.revision,
        now=now,
        history_limit=history_limit,
        cause=cause,
        verified_by=entry.verified_by,
        provenance=entry.provenance,
    )


def keep_way_back(history: list[HistoryEntry], history_limit: int) -> list[HistoryEntry]:
    """History cut to history_limit entries (newest first), except that the newest Succeeded entry stays while a
    newer one is not yet Succeeded: it is what a failure of the newer ones rolls back to (history then holds
    history_limit + 1 entries)."""
    kept = history[:history_limit]
    succeeded = next((e for e in history if e.outcome == Outcome.SUCCEEDED), None)
    if succeeded is not None and succeeded not in kept:
        kept.append(succeeded)
    return kept


def set_outcome(status: AppReleaseStatus, revision: int, outcome: Outcome, now: str | None = None) -> AppReleaseStatus:
    """A status with one revision's outcome set; Succeeded records `now` as succeededAt (the bake's end)."""
    update: dict[str, object] = {"outcome": outcome}
    if outcome == Outcome.SUCCEEDED and now is not None:
        update["succeeded_at"] = now
    history = [entry.model_copy(update=update) if entry.revision == revision else entry for entry in status.history]
    return status.model_copy(update={"history": history})


def current_outcome(status: AppReleaseStatus) -> Outcome | None:
    entry = next((e for e in status.history if e.revision == status.revision), None)
    return entry.outcome if entry else None


def short_digest(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


# --- what to patch ------------------------------------------------------------------------------------
def select_containers(workload: Workload, wanted: Sequence[str] | None, image: Reference | str) -> list[str] | Problem:
    """The containers of a workload to pin: the named ones, or every one running spec.image (parsed, or text)."""
    images = workload.images()
    if wanted:
        missing = [c for c in wanted if c not in images]
        if missing:
            return Problem(
                Reason.CONTAINER_NOT_FOUND,
                f"{workload.title} has no container named {', '.join(missing)} (it has: {', '.join(sorted(images))})",
            )
        return list(wanted)
    repository = image.repository if isinstance(image, Reference) else _repository(image)
    matching = [name for name, running in images.items() if repository and _repository(running) == repository]
    if not matching:
        return Problem(
            Reason.CONTAINER_NOT_FOUND,
            f"no container of {workload.title} runs {image}; "
            "set spec.workloads[].containers to name the containers to pin",
        )
    return matching


@dataclass(frozen=True)
class WorkloadPatch:
    body: dict[str, object]  # a strategic-merge patch body, sent as JSON
    drifted: list[str]  # containers whose image was changed by someone else after we pinned it
    changed_by: list[str]  # who changed them, from managedFields (empty when the API does not say)


def plan_patch(workload: Workload, *, pinned: str, version: str, revision: int, release: str) -> WorkloadPatch | None:
    """The strategic-merge patch that pins the containers, touching nothing else; None when already pinned.

    A Deployment held by the chart's admission policy (`Workload.held`) is released in the same patch:
    spec.paused and the annotation apprelease.dev/held are removed, so its first ReplicaSet runs the pinned
    digest (no pod ever ran the tag it was created with). The annotation alone (resumed by hand) is removed too,
    and the pause is left alone: a person's later `kubectl rollout pause` is never undone."""
    template_annotations = workload.template_annotations()
    images = workload.images()
    stale = [name for name in workload.containers if images.get(name) != pinned]
    wanted_annotations = {ANNOTATION_VERSION: version, ANNOTATION_REVISION: str(revision)}
    annotations_stale = any(template_annotations.get(k) != v for k, v in wanted_annotations.items())
    held, marked = workload.held(), workload.held_mark()
    if not stale and not annotations_stale and not marked:
        return None
    drifted, changed_by = _drift(workload, stale, revision)
    inits = workload.init_container_names()
    lists: dict[str, list[dict[str, str]]] = {"initContainers": [], "containers": []}
    for name in workload.containers:
        lists["initContainers" if name in inits else "containers"].append({"name": name, "image": pinned})
    # Strategic merge by name in each list: only the named containers' images change, in the list they are in.
    template = {"metadata": {"annotations": wanted_annotations}, "spec": {k: v for k, v in lists.items() if v}}
    annotations: dict[str, str | None] = {
        ANNOTATION_CHANGE_CAUSE: f"apprelease {release}: {version} (revision {revision}) {pinned}",
        ANNOTATION_RELEASE: release,
    }
    spec = workload.template_patch(template)
    if marked:  # null removes a field in a merge patch (RFC 7386, kept by strategic merge)
        annotations[ANNOTATION_HELD] = None
    if held:
        spec = {"spec": {**_mapping(spec.get("spec")), "paused": None}}
    body: dict[str, object] = {"metadata": {"annotations": annotations}, **spec}
    return WorkloadPatch(body=body, drifted=drifted, changed_by=changed_by)


def _drift(workload: Workload, stale: list[str], revision: int) -> tuple[list[str], list[str]]:
    """Which stale containers drifted (someone else moved them off the pinned digest), and who did it.

    Drift, whatever the template's annotations say: the template was pinned by us before (it carries our revision
    annotation) and the image field now belongs to another field manager (a hand edit, `kubectl rollout undo`,
    which also restores the older revision annotation, a GitOps sync). A template still carrying the current
    revision with another image is drift too. A new revision of ours is not: the image is still our field.
    """
    annotation = workload.template_annotations().get(ANNOTATION_REVISION)
    if annotation is None or not stale:
        return [], []
    inits = workload.init_container_names()
    managed = workload.meta.value("managedFields")
    drifted: list[str] = []
    changed_by: list[str] = []
    for name in stale:
        owners = fieldowners.image_managers(managed, workload.info.template_path, name, name in inits)
        others = [o for o in owners if o != fieldowners.OPERATOR_MANAGER]
        if annotation == str(revision) or (others and fieldowners.OPERATOR_MANAGER not in owners):
            drifted.append(name)
            changed_by.extend(o for o in others if o not in changed_by)
    return drifted, changed_by


def check_opt_in(
    obj: Mapping[str, object], kind: str, release: str, uid: str | None = None, require_uid: bool = False
) -> Problem | None:
    """A workload is pinned only when its owner opted it in to this AppRelease (never on the requester's say):
    by name (the label), and by uid where the workload carries a binding or the operator requires one.

    The operator holds patch rights on every workload; without this consent anyone allowed to create an
    AppRelease could make it run any image under any workload's ServiceAccount (`apprelease.core.consent`).
    """
    why = consent.refusal(_mapping(obj.get("metadata")), kind, release, uid, require_uid=require_uid)
    return Problem(Reason.WORKLOAD_NOT_OPTED_IN, why) if why else None


def runs_pinned(workload: Workload, pinned: str) -> bool:
    images = workload.images()
    return all(images.get(name) == pinned for name in workload.containers)


def _repository(image: str) -> str | None:
    try:
        return reference.parse(image).repository
    except ValueError:
        return None


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}
