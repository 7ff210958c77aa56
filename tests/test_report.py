"""Report owns every outward effect of a pass: the status is written first, then the Events that tell about it.

Before, some Events went out before the status write of their pass (a Warning about a Stalled condition that
a reader could not see yet) and some after. A failed status write posts no Event: the retried pass reports it.
"""

from __future__ import annotations

import pytest

from apprelease.controller.reconciler import Result
from apprelease.core.api import LABEL_REVISION
from apprelease.core.conditions import Reason
from tests.conftest import IMAGE, RESYNC, Crash, World
from tests.test_release_safety import upgrade_that_crashes


def test_a_new_version_is_recorded_before_deploying_is_announced(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    assert world.cluster.effects[:2] == ["status", "event Deploying"]


def test_a_rejected_label_is_announced_after_the_revision_is_recorded(world: World) -> None:
    world.registry.release("v1", **{LABEL_REVISION: "main"})
    world.create("v1")
    world.reconcile()
    assert world.cluster.effects[:3] == ["status", "event LabelRejected", "event Deploying"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [({"digest": "sha256:short"}, Reason.INVALID_SPEC), ({"image": f"{IMAGE}:v1"}, Reason.MUTABLE_REFERENCE)],
)
def test_a_stalled_condition_is_written_before_its_warning(world: World, spec: dict[str, str], reason: str) -> None:
    world.create("v1", **spec)
    assert world.reconcile() == Result()
    assert world.cluster.effects == ["status", f"event {reason}"]


def test_a_waiting_condition_is_written_before_its_warning(world: World) -> None:
    world.create("v9")
    assert world.reconcile() == Result(retry=True)
    assert world.cluster.effects == ["status", "event TagNotFound"]


def test_a_rollback_is_recorded_before_it_is_announced(world: World) -> None:
    world.deploy("v1")
    upgrade_that_crashes(world)
    world.cluster.effects.clear()
    world.reconcile()
    # Told before any workload moves back: an operator killed during the rollback's rollout has posted them.
    assert world.cluster.effects[:4] == ["status", "event RolloutFailed", "event RolledBack", "deployment/web"]


def test_a_halted_failure_is_recorded_then_announced(world: World) -> None:
    world.deploy("v1")
    upgrade_that_crashes(world, rollout={"onFailure": "Halt"})
    world.cluster.effects.clear()
    world.reconcile()
    assert world.cluster.effects == ["status", "event RolloutFailed"]


def test_a_new_revision_is_announced_before_any_workload_is_patched(world: World) -> None:
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    # One status write: the patched Deployment's controller has not seen it yet, Progressing says it all.
    assert world.cluster.effects == ["status", "event Deploying", "deployment/web"]


def test_an_event_without_a_status_change_is_still_posted_at_the_end_of_the_pass(world: World) -> None:
    world.deploy("v1")
    world.cluster.effects.clear()
    world.registry.release("v1", rebuilt="yes")  # the tag moves to other content
    world.clock.now += RESYNC
    world.reconcile()
    assert world.cluster.effects == ["event TagMoved"]


def test_no_event_goes_out_when_the_status_write_fails(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(namespace: str, name: str, status: object, resource_version: str = "") -> str:
        raise Crash("the API server refused the status write")

    monkeypatch.setattr(world.cluster, "patch_apprelease_status", refuse)
    world.create("latest")
    with pytest.raises(Crash):
        world.reconcile()
    assert world.events() == []
