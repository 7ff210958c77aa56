"""The pure decisions of a reconcile: target digest, guards, history, containers, patches."""

from __future__ import annotations

from typing import Any

import pytest

from apprelease.core.api import (
    ANNOTATION_CHANGE_CAUSE,
    ANNOTATION_RELEASE,
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    LABEL_VERSION,
    AppReleaseSpec,
    AppReleaseStatus,
    HistoryEntry,
    Outcome,
    Source,
    Workload,
)
from apprelease.core.conditions import Problem, Reason
from apprelease.core.decisions import (
    KeepCurrent,
    ResolveFromRegistry,
    RestoreFromHistory,
    check_digest,
    check_provenance,
    choose_target,
    current_outcome,
    plan_patch,
    record_revision,
    runs_pinned,
    select_containers,
    set_outcome,
    short_digest,
)
from apprelease.core.spec import ReleaseSpec
from apprelease.core.validation import check_spec
from apprelease.core.workloads import Kind
from apprelease.core.workloads import Workload as View

IMAGE = "registry.example.com/shop/web"
D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
NOW = "2024-05-01T12:00:00Z"


# --- helpers -------------------------------------------------------------------------------------------
def checked(raw: AppReleaseSpec) -> ReleaseSpec:
    """The spec as the reconciler hands it to decisions: validated once into a ReleaseSpec."""
    result = check_spec(raw)
    assert isinstance(result, ReleaseSpec), result
    return result


def spec(version: str = "v2", digest: str | None = None) -> ReleaseSpec:
    return checked(AppReleaseSpec(image=IMAGE, version=version, digest=digest, workloads=[Workload(name="web")]))


def entry(
    revision: int, version: str, digest: str, outcome: Outcome = Outcome.SUCCEEDED, image: str = IMAGE
) -> HistoryEntry:
    return HistoryEntry(revision=revision, image=image, version=version, digest=digest, outcome=outcome)


def status(*history: HistoryEntry) -> AppReleaseStatus:
    """A status whose current revision is the head of history (history is newest first)."""
    if not history:
        return AppReleaseStatus()
    head = history[0]
    return AppReleaseStatus(
        revision=head.revision,
        version=head.version,
        digest=head.digest,
        image=f"{head.image}@{head.digest}",
        history=list(history),
    )


def record(st: AppReleaseStatus, version: str, digest: str, *, limit: int = 10, **kwargs: Any) -> AppReleaseStatus:
    return record_revision(
        st,
        image=IMAGE,
        version=version,
        digest=digest,
        git_commit=kwargs.get("git_commit"),
        source=kwargs.get("source", Source.REGISTRY),
        restored_from=kwargs.get("restored_from"),
        now=NOW,
        history_limit=limit,
    )


def deployment(
    containers: dict[str, str],
    *,
    annotations: dict[str, str] | None = None,
    name: str = "web",
    pin: list[str] | None = None,
) -> View:
    """A Deployment as the typed view the reconciler uses; `pin` names the containers to pin."""
    return View(Kind.DEPLOYMENT, _deployment(containers, annotations, name), list(pin or []))


def _deployment(containers: dict[str, str], annotations: dict[str, str] | None, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1, "annotations": {"keep": "me"}},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"annotations": dict(annotations or {}), "labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": n, "image": i, "ports": [{"containerPort": 80}]} for n, i in containers.items()
                    ]
                },
            },
        },
    }


def pinned(digest: str = D2) -> str:
    return f"{IMAGE}@{digest}"


def ours(revision: int, version: str = "v2") -> dict[str, str]:
    return {ANNOTATION_VERSION: version, ANNOTATION_REVISION: str(revision)}


def with_containers(view: View, containers: list[str]) -> View:
    view.containers = containers
    return view


def assert_problem(result: object, reason: str) -> Problem:
    assert isinstance(result, Problem), result
    assert result.reason == reason
    return result


# --- choose_target -------------------------------------------------------------------------------------
def test_first_version_is_resolved_from_the_registry() -> None:
    assert choose_target(spec("v1"), status()) == ResolveFromRegistry()


def test_unknown_version_is_resolved_from_the_registry() -> None:
    assert choose_target(spec("v3"), status(entry(2, "v2", D2), entry(1, "v1", D1))) == ResolveFromRegistry()


def test_current_version_is_kept() -> None:
    assert choose_target(spec("v2"), status(entry(2, "v2", D2), entry(1, "v1", D1))) == KeepCurrent()


def test_current_version_with_matching_digest_guard_is_kept() -> None:
    assert choose_target(spec("v2", digest=D2), status(entry(2, "v2", D2))) == KeepCurrent()


def test_current_version_without_digest_is_not_kept() -> None:
    st = AppReleaseStatus(version="v2", digest=None)
    assert choose_target(spec("v2"), st) == ResolveFromRegistry()


def test_recorded_version_is_restored_from_the_newest_entry() -> None:
    history = status(entry(4, "v2", D2), entry(3, "v1", D3), entry(2, "v3", D2), entry(1, "v1", D1))
    target = choose_target(spec("v1"), history)
    assert isinstance(target, RestoreFromHistory)
    assert target.entry.revision == 3
    assert target.entry.digest == D3


def test_changed_image_is_not_kept_even_at_the_same_version() -> None:
    st = status(entry(2, "v2", D2), entry(1, "v1", D1))
    other = checked(
        AppReleaseSpec(image="registry.example.com/shop/api", version="v2", workloads=[Workload(name="web")])
    )
    assert choose_target(other, st) == ResolveFromRegistry()


def test_history_of_another_image_is_not_restored() -> None:
    st = status(entry(2, "v2", D2), entry(1, "v1", D1, image="registry.example.com/shop/api"))
    assert choose_target(spec("v1"), st) == ResolveFromRegistry()


def test_same_repository_spelled_differently_is_kept() -> None:
    st = status(entry(2, "1.27", D2, image="docker.io/library/nginx"))
    hub = checked(AppReleaseSpec(image="nginx", version="1.27", workloads=[Workload(name="web")]))
    assert choose_target(hub, st) == KeepCurrent()


def test_digest_guard_against_current_version() -> None:
    problem = assert_problem(choose_target(spec("v2", digest=D3), status(entry(2, "v2", D2))), Reason.DIGEST_MISMATCH)
    assert D2 in problem.message and D3 in problem.message and "status" in problem.message


def test_digest_guard_against_history() -> None:
    st = status(entry(2, "v2", D2), entry(1, "v1", D1))
    problem = assert_problem(choose_target(spec("v1", digest=D3), st), Reason.DIGEST_MISMATCH)
    assert D1 in problem.message and "revision 1" in problem.message


def test_digest_guard_matching_history_restores() -> None:
    st = status(entry(2, "v2", D2), entry(1, "v1", D1))
    assert isinstance(choose_target(spec("v1", digest=D1), st), RestoreFromHistory)


# --- check_digest / check_provenance -------------------------------------------------------------------
def test_check_digest() -> None:
    assert check_digest(spec(), D1) is None
    assert check_digest(spec(digest=D1), D1) is None
    problem = assert_problem(check_digest(spec(digest=D1), D2), Reason.DIGEST_MISMATCH)
    assert D1 in problem.message and D2 in problem.message


@pytest.mark.parametrize(
    ("mode", "labels", "expected"),
    [
        ("Required", {}, Reason.PROVENANCE_MISMATCH),
        ("Required", {LABEL_VERSION: "v2"}, None),
        ("Required", {LABEL_VERSION: "v1"}, Reason.PROVENANCE_MISMATCH),
        ("IfPresent", {}, None),
        ("IfPresent", {LABEL_VERSION: "v2"}, None),
        ("IfPresent", {LABEL_VERSION: "v1"}, Reason.PROVENANCE_MISMATCH),
        ("Disabled", {}, None),
        ("Disabled", {LABEL_VERSION: "v2"}, None),
        ("Disabled", {LABEL_VERSION: "v1"}, None),
    ],
)
def test_check_provenance(mode: str, labels: dict[str, str], expected: str | None) -> None:
    problem = check_provenance(mode, "v2", labels)
    assert (problem.reason if problem else None) == expected
    if problem:
        assert problem.stalled


def test_provenance_mismatch_names_the_label_value() -> None:
    problem = check_provenance("IfPresent", "v2", {LABEL_VERSION: "v1.9"})
    assert problem is not None and "'v1.9'" in problem.message


# --- record_revision / set_outcome ---------------------------------------------------------------------
def test_first_revision() -> None:
    st = record(status(), "v1", D1, git_commit="abc123")
    assert (st.revision, st.version, st.digest, st.git_commit) == (1, "v1", D1, "abc123")
    assert st.image == pinned(D1)
    assert st.short_digest == "1" * 12
    assert st.history == [
        HistoryEntry(
            revision=1,
            image=IMAGE,
            version="v1",
            digest=D1,
            gitCommit="abc123",
            source=Source.REGISTRY,
            deployedAt=NOW,
            outcome=Outcome.IN_PROGRESS,
        )
    ]


def test_new_revision_supersedes_an_unfinished_one_and_keeps_finished_ones() -> None:
    st = status(entry(2, "v2", D2, Outcome.IN_PROGRESS), entry(1, "v1", D1, Outcome.FAILED))
    new = record(st, "v3", D3)
    assert [(e.revision, e.outcome) for e in new.history] == [
        (3, Outcome.IN_PROGRESS),
        (2, Outcome.SUPERSEDED),
        (1, Outcome.FAILED),
    ]
    assert st.history[0].outcome == Outcome.IN_PROGRESS  # the input is not mutated


def test_history_is_trimmed_to_the_limit_newest_first() -> None:
    st = status()
    for revision in range(1, 6):
        st = record(st, f"v{revision}", D1, limit=3)
    assert [e.revision for e in st.history] == [5, 4, 3]
    assert st.revision == 5


def test_revision_is_monotonic_after_trimming() -> None:
    # History lost older (higher) entries only in status.revision: the next number must still grow.
    st = AppReleaseStatus(revision=7, version="v1", digest=D1, history=[entry(5, "v1", D1)])
    assert record(st, "v2", D2).revision == 8
    st = AppReleaseStatus(revision=0, history=[entry(9, "v1", D1)])
    assert record(st, "v2", D2).revision == 10


def test_restored_revision_records_its_origin() -> None:
    st = record(status(entry(2, "v2", D2), entry(1, "v1", D1)), "v1", D1, source=Source.HISTORY, restored_from=1)
    head = st.history[0]
    assert (head.revision, head.source, head.restored_from, head.digest) == (3, Source.HISTORY, 1, D1)
    assert st.to_k8s()["history"][0]["restoredFrom"] == 1


def test_set_outcome_only_touches_the_given_revision() -> None:
    st = status(entry(2, "v2", D2, Outcome.IN_PROGRESS), entry(1, "v1", D1, Outcome.IN_PROGRESS))
    done = set_outcome(st, 2, Outcome.SUCCEEDED)
    assert [e.outcome for e in done.history] == [Outcome.SUCCEEDED, Outcome.IN_PROGRESS]
    assert current_outcome(done) == Outcome.SUCCEEDED
    assert current_outcome(st) == Outcome.IN_PROGRESS


def test_current_outcome_without_history() -> None:
    assert current_outcome(status()) is None


def test_short_digest() -> None:
    assert short_digest("sha256:0123456789abcdef" + "0" * 48) == "0123456789ab"


# --- select_containers ---------------------------------------------------------------------------------
def test_named_containers_are_selected_even_if_they_run_something_else() -> None:
    d = deployment({"web": "other/image:1", "sidecar": "envoy:1"})
    assert select_containers(d, ["web"], IMAGE) == ["web"]


def test_missing_named_container() -> None:
    d = deployment({"web": IMAGE + ":v1", "sidecar": "envoy:1"})
    problem = assert_problem(select_containers(d, ["web", "app"], IMAGE), Reason.CONTAINER_NOT_FOUND)
    assert "app" in problem.message and "sidecar" in problem.message


def test_default_selects_every_container_of_the_repository() -> None:
    d = deployment({"web": IMAGE + ":v1", "sidecar": "envoy:1", "migrate": pinned(D1)})
    assert select_containers(d, None, IMAGE) == ["web", "migrate"]


@pytest.mark.parametrize("running", ["nginx:1", "nginx", "library/nginx:1.27", "docker.io/library/nginx@" + D1])
def test_default_selection_normalises_docker_hub(running: str) -> None:
    d = deployment({"nginx": running})
    assert select_containers(d, None, "docker.io/library/nginx") == ["nginx"]


def test_default_selection_does_not_match_another_registry() -> None:
    d = deployment({"web": "mirror.example.com/shop/web:v1", "bad": "Not A Ref"})
    problem = assert_problem(select_containers(d, None, IMAGE), Reason.CONTAINER_NOT_FOUND)
    assert IMAGE in problem.message


# --- plan_patch ----------------------------------------------------------------------------------------
def plan(d: View, containers: list[str], revision: int = 2, digest: str = D2) -> Any:
    d.containers = containers
    return plan_patch(d, pinned=pinned(digest), version="v2", revision=revision, release="shop")


def test_already_pinned_needs_no_patch() -> None:
    d = deployment({"web": pinned(), "sidecar": "envoy:1"}, annotations={**ours(2), "other": "x"})
    assert plan(d, ["web"]) is None
    assert runs_pinned(with_containers(d, ["web"]), pinned())


def test_patch_touches_only_the_named_containers_and_our_annotations() -> None:
    d = deployment({"web": IMAGE + ":v1", "sidecar": "envoy:1", "worker": IMAGE + ":v1"}, annotations=ours(1, "v1"))
    patch = plan(d, ["web", "worker"])
    assert patch is not None
    assert patch.body == {
        "metadata": {
            "annotations": {
                ANNOTATION_CHANGE_CAUSE: f"apprelease shop: v2 (revision 2) {pinned()}",
                ANNOTATION_RELEASE: "shop",
            }
        },
        "spec": {
            "template": {
                "metadata": {"annotations": ours(2)},
                "spec": {"containers": [{"name": "web", "image": pinned()}, {"name": "worker", "image": pinned()}]},
            }
        },
    }
    assert patch.drifted == []
    assert not runs_pinned(with_containers(d, ["web", "worker"]), pinned())


def test_annotations_alone_trigger_a_patch() -> None:
    d = deployment({"web": pinned()}, annotations=ours(1))
    patch = plan(d, ["web"])
    assert patch is not None and patch.drifted == []


def test_hand_edited_image_of_our_revision_is_drift() -> None:
    d = deployment({"web": IMAGE + ":hotfix", "worker": pinned()}, annotations=ours(2))
    patch = plan(d, ["web", "worker"])
    assert patch is not None
    assert patch.drifted == ["web"]


def test_image_of_an_older_revision_is_not_drift() -> None:
    d = deployment({"web": pinned(D1)}, annotations=ours(1, "v1"))
    patch = plan(d, ["web"])
    assert patch is not None and patch.drifted == []


def test_unannotated_deployment_is_not_drift() -> None:
    patch = plan(deployment({"web": IMAGE + ":v1"}), ["web"])
    assert patch is not None and patch.drifted == []
