"""A changed spec.image is another artifact: nothing recorded for the old repository may be redeployed."""

from __future__ import annotations

from apprelease.core.api import AppReleaseSpec, AppReleaseStatus, Source, Workload
from apprelease.core.decisions import (
    KeepCurrent,
    ResolveFromRegistry,
    RestoreFromHistory,
    choose_target,
    record_revision,
)
from apprelease.core.spec import ReleaseSpec
from apprelease.core.validation import check_spec

OLD = "registry.example.com/shop/web"
NEW = "registry.example.com/shop/web-v2"
DIGEST = "sha256:" + "1" * 64


def _deployed(version: str) -> AppReleaseStatus:
    return record_revision(
        AppReleaseStatus(),
        image=OLD,
        version=version,
        digest=DIGEST,
        git_commit=None,
        source=Source.REGISTRY,
        restored_from=None,
        now="2026-11-27T00:00:00Z",
        history_limit=10,
    )


def _spec(image: str, version: str) -> ReleaseSpec:
    checked = check_spec(AppReleaseSpec(image=image, version=version, workloads=[Workload(name="web")]))
    assert isinstance(checked, ReleaseSpec), checked
    return checked


def test_same_image_and_version_keeps_the_current_revision() -> None:
    assert isinstance(choose_target(_spec(OLD, "v1"), _deployed("v1")), KeepCurrent)


def test_a_new_repository_with_the_same_version_is_resolved_again() -> None:
    assert isinstance(choose_target(_spec(NEW, "v1"), _deployed("v1")), ResolveFromRegistry)


def test_history_of_another_repository_is_not_restored() -> None:
    status = _deployed("v1")
    status.version = "v2"  # pretend v2 was deployed after v1, from the old repository too
    assert isinstance(choose_target(_spec(OLD, "v1"), status), RestoreFromHistory)
    assert isinstance(choose_target(_spec(NEW, "v1"), status), ResolveFromRegistry)
