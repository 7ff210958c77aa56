"""Consent that survives names: a workload bound to an AppRelease's uid is not inherited by a namesake."""

from __future__ import annotations

from typing import Any

from apprelease.core.conditions import READY, Reason
from apprelease.core.consent import ANNOTATION_RELEASE_UID, optin_command, refusal
from tests.conftest import NAME, World

UID = "6f1c2a4e-0000-4000-8000-000000000001"
OLD_UID = "6f1c2a4e-0000-4000-8000-00000000dead"


def meta(label: str | None = "web", uid: str | None = None) -> dict[str, Any]:
    return {
        "name": "web",
        "namespace": "shop",
        "labels": {"apprelease.dev/release": label} if label else {},
        "annotations": {ANNOTATION_RELEASE_UID: uid} if uid else {},
    }


def test_name_form_is_enough_unless_the_setting_requires_the_uid() -> None:
    assert refusal(meta(), "Deployment", "web", UID, require_uid=False) is None
    why = refusal(meta(), "Deployment", "web", UID, require_uid=True)
    assert why is not None
    assert "requires the uid binding" in why and f"{ANNOTATION_RELEASE_UID}={UID}" in why
    assert "apprelease optin deployment/web --release web -n shop" in why


def test_a_uid_bound_workload_is_pinned_in_both_settings() -> None:
    for require in (False, True):
        assert refusal(meta(uid=UID), "Deployment", "web", UID, require_uid=require) is None


def test_a_workload_bound_to_a_deleted_namesake_is_refused_whatever_the_setting() -> None:
    for require in (False, True):
        why = refusal(meta(uid=OLD_UID), "StatefulSet", "web", UID, require_uid=require)
        assert why is not None
        assert f"bound to the AppRelease with uid '{OLD_UID}'" in why and f"this one is {UID}" in why
        assert "apprelease optin statefulset/web --release web -n shop" in why  # how to re-bind


def test_the_name_label_still_comes_first() -> None:
    why = refusal(meta(label="api", uid=UID), "Deployment", "web", UID, require_uid=True)
    assert why is not None and "it is labelled for AppRelease 'api'" in why
    why = refusal(meta(label=None), "CronJob", "web", UID, require_uid=False)
    assert why is not None and "it has no such label" in why
    assert "apprelease optin cronjob/web --release web -n shop" in why


def test_foreign_annotation_values_are_quoted_inert() -> None:
    why = refusal(meta(uid="x\nReady: True\u202e" + "y" * 500), "Deployment", "web", UID, require_uid=False)
    assert why is not None and "\n" not in why and "\u202e" not in why and len(why) < 1024


def test_optin_command() -> None:
    assert optin_command("DaemonSet", "agent", "node-agent", "ops") == (
        "apprelease optin daemonset/agent --release node-agent -n ops"
    )


def test_the_reconciler_holds_a_workload_to_its_uid_binding(world: World) -> None:
    world.reconciler.require_uid_binding = True
    world.registry.release("v1")
    world.create("v1")
    before = world.cluster.images()
    world.reconcile()
    assert world.condition(READY) == ("False", Reason.WORKLOAD_NOT_OPTED_IN)
    assert world.cluster.images() == before and world.status().revision == 0

    world.cluster.deployments["web"]["metadata"]["annotations"] = {ANNOTATION_RELEASE_UID: "uid-shop"}
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    pinned_now = world.cluster.images()

    # Deleted and created again under the same name: another uid, not the owner's consent.
    world.cluster.appreleases.pop(NAME)
    world.create("v1")
    world.cluster.appreleases[NAME]["metadata"]["uid"] = "uid-namesake"
    world.reconcile()
    assert world.condition(READY) == ("False", Reason.WORKLOAD_NOT_OPTED_IN)
    assert world.cluster.images() == pinned_now and world.status().revision == 0
