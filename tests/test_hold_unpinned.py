"""A Deployment held by the chart's admission policy (paused, apprelease.dev/held: unpinned) is released by
the patch that pins it, and only then; one its owner paused stays paused."""

from __future__ import annotations

from typing import Any

from apprelease.core.api import ANNOTATION_HELD, ANNOTATION_REVISION, HELD_UNPINNED
from apprelease.core.decisions import plan_patch
from apprelease.core.workloads import Kind, Rollout, Workload

IMAGE = "r.example/app"
PINNED = f"{IMAGE}@sha256:" + "a" * 64


def deployment(
    image: str, *, paused: bool | None, held: bool, revision: str | None = None, kind: Kind = Kind.DEPLOYMENT
) -> Workload:
    annotations = {ANNOTATION_HELD: HELD_UNPINNED} if held else {}
    template_annotations = {"apprelease.dev/version": "v1", ANNOTATION_REVISION: revision} if revision else {}
    spec: dict[str, Any] = {
        "replicas": 2,
        "template": {
            "metadata": {"annotations": template_annotations},
            "spec": {"containers": [{"name": "web", "image": image}]},
        },
    }
    if paused is not None:
        spec["paused"] = paused
    obj = {"metadata": {"name": "web", "namespace": "shop", "generation": 1, "annotations": annotations}, "spec": spec}
    return Workload(kind, obj, ["web"])


def test_the_pin_of_a_held_deployment_releases_it_in_the_same_patch() -> None:
    held = deployment(f"{IMAGE}:v1", paused=True, held=True)
    assert held.held()
    patch = plan_patch(held, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None
    spec: Any = patch.body["spec"]
    metadata: Any = patch.body["metadata"]
    assert spec["paused"] is None and spec["template"]["spec"]["containers"] == [{"name": "web", "image": PINNED}]
    assert metadata["annotations"][ANNOTATION_HELD] is None


def test_a_held_deployment_already_pinned_is_still_released() -> None:
    # Created with the right digest and annotations but held (the annotation set by hand, or an older policy).
    held = deployment(PINNED, paused=True, held=True, revision="1")
    patch = plan_patch(held, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None
    spec: Any = patch.body["spec"]
    assert spec["paused"] is None


def test_a_deployment_its_owner_paused_stays_paused() -> None:
    owned = deployment(f"{IMAGE}:v1", paused=True, held=False)
    assert not owned.held()
    patch = plan_patch(owned, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None
    spec: Any = patch.body["spec"]
    metadata: Any = patch.body["metadata"]
    assert "paused" not in spec and ANNOTATION_HELD not in metadata["annotations"]
    assert (
        plan_patch(
            deployment(PINNED, paused=True, held=False, revision="1"),
            pinned=PINNED,
            version="v1",
            revision=1,
            release="shop",
        )
        is None
    )


def test_only_a_paused_deployment_with_the_annotation_is_held() -> None:
    assert not deployment(f"{IMAGE}:v1", paused=None, held=True).held()  # resumed by hand: nothing to release
    assert not deployment(f"{IMAGE}:v1", paused=False, held=True).held()
    assert not deployment(f"{IMAGE}:v1", paused=True, held=True, kind=Kind.STATEFUL_SET).held()


def test_resumed_by_hand_then_paused_by_a_person_the_pin_removes_the_mark_and_keeps_the_pause() -> None:
    # `kubectl rollout resume` left the mark; a later `kubectl rollout pause` is a person's, never undone.
    resumed = deployment(f"{IMAGE}:v1", paused=None, held=True)
    patch = plan_patch(resumed, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None
    metadata: Any = patch.body["metadata"]
    spec: Any = patch.body["spec"]
    assert metadata["annotations"][ANNOTATION_HELD] is None and "paused" not in spec
    marked_and_pinned = deployment(PINNED, paused=True, held=True, revision="1")
    obj: Any = marked_and_pinned.obj
    obj["metadata"]["annotations"][ANNOTATION_HELD] = "something else"  # not ours: no release
    patch = plan_patch(marked_and_pinned, pinned=PINNED, version="v1", revision=1, release="shop")
    assert patch is not None
    assert "paused" not in patch.body["spec"]  # type: ignore[operator]  # only the mark goes


def test_a_held_deployment_is_reported_as_held_not_as_a_person_s_pause() -> None:
    held = deployment(f"{IMAGE}:v1", paused=True, held=True)
    obj: Any = held.obj
    obj["status"] = {"observedGeneration": 1}
    state = held.rollout()
    assert state.state == Rollout.PAUSED and "held until its AppRelease pins it" in state.detail
    assert "rollout resume" not in state.detail  # resuming by hand would run the tag
