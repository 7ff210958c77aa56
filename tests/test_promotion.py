"""Promotion on fakes: the upstream AppRelease's status decides which digest is pinned, and when.

The upstream lives in the same namespace here (the fake cluster has one); other namespaces go through the
operator's list of promotion sources, tested by refusal before any read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from apprelease.controller.reconciler import Reconciler, Result
from apprelease.core.conditions import READY, STALLED, Reason
from tests.conftest import NAME, NS, POLL, RESYNC, World, assert_stalled, assert_waiting, commit_of, pinned

UPSTREAM = "staging-web"
SOURCE = {"from": {"namespace": NS, "name": UPSTREAM}}
UP_DIGEST = "sha256:" + "b" * 64
V1_DIGEST = "sha256:" + "1" * 64


def entry(revision: int, version: str, outcome: str, at: str, digest: str = UP_DIGEST, **more: Any) -> dict[str, Any]:
    return {
        "revision": revision,
        "version": version,
        "digest": digest,
        "gitCommit": commit_of(version),
        "deployedAt": at,
        "outcome": outcome,
        **more,
    }


def upstream(world: World, *history: dict[str, Any]) -> None:
    """The upstream AppRelease as its operator recorded it (newest first)."""
    world.cluster.appreleases[UPSTREAM] = {
        "metadata": {"name": UPSTREAM, "namespace": NS, "generation": 1, "uid": "uid-staging"},
        "spec": {},
        "status": {"revision": history[0]["revision"] if history else 0, "history": list(history)},
    }


def promote(world: World, version: str = "v2", soak: int = 0, **spec: Any) -> Result:
    world.create(version, promotion={**SOURCE, "soakSeconds": soak}, **spec)
    return world.reconcile()


def test_before_upstream_success_nothing_is_patched(world: World) -> None:
    upstream(world, entry(2, "v2", "InProgress", "2024-05-01T11:59:00Z"))
    original = world.cluster.images()
    assert promote(world) == Result(retry=True)
    assert_waiting(world, Reason.AWAITING_PROMOTION)
    assert world.cluster.images() == original and world.cluster.patched() == []
    assert world.registry.requests == []  # no tag is resolved
    assert world.status().revision == 0


def test_inside_the_soak_it_waits_until_its_exact_end_then_deploys(world: World) -> None:
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:58:00Z", succeededAt="2024-05-01T11:59:50Z"))
    # 50 s left, and a tenth of a second: late rather than early, and well within a second of the end.
    assert promote(world, soak=60) == Result(requeue_after=50.1)
    assert_waiting(world, Reason.AWAITING_PROMOTION)
    assert world.cluster.patched() == []

    world.wall.advance(50)
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)
    head = world.status().history[0]
    assert (head.digest, head.promoted_from, head.git_commit) == (UP_DIGEST, f"{NS}/{UPSTREAM}#4", commit_of("v2"))
    assert [e.reason for e in world.events()][-1] == "Promoting"
    assert world.registry.requests == []
    world.cluster.roll_out()
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_the_look_at_the_soak_end_is_never_early_and_about_a_second_late_at_most(world: World, fraction: float) -> None:
    # Status times have whole seconds: the reconciler's `now` reads 12:00:00 from 12:00:00.0 to 12:00:00.99.
    world.wall.advance(fraction)
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:58:00Z", succeededAt="2024-05-01T11:59:50Z"))
    result = promote(world, soak=60)
    assert result.requeue_after is not None
    world.wall.advance(result.requeue_after)
    late = world.wall.now.timestamp() - dt.datetime(2024, 5, 1, 12, 0, 50, tzinfo=dt.UTC).timestamp()
    assert 0 < late < 1.1  # the soak ended at 12:00:50.0 (up to 2 s late with the former 1 s margin)
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)


def test_a_soak_is_never_counted_from_deployed_at_when_upstream_recorded_no_succeeded_at(world: World) -> None:
    # succeededAt is the bake's end; deployedAt (an hour ago) says nothing about how long it has been Succeeded.
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z"))
    assert promote(world, soak=30) == Result(retry=True)
    assert_waiting(world, Reason.AWAITING_PROMOTION)
    ready = next(c for c in world.status().conditions if c.type == READY)
    assert "recorded no succeededAt" in ready.message
    assert world.cluster.patched() == []


def test_without_a_soak_an_upstream_success_lacking_succeeded_at_is_promoted(world: World) -> None:
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:59:00Z"))
    assert promote(world, soak=0) == Result(requeue_after=POLL)
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)


def test_after_an_upstream_automatic_rollback_the_promotion_is_revoked(world: World) -> None:
    upstream(
        world,
        entry(3, "v1", "Succeeded", "2024-05-01T11:50:00Z", digest=V1_DIGEST, cause="AutoRollback"),
        entry(2, "v2", "Failed", "2024-05-01T11:40:00Z", failure="Deployment web: CrashLoopBackOff"),
        entry(1, "v1", "Succeeded", "2024-05-01T11:00:00Z", digest=V1_DIGEST),
    )
    assert promote(world) == Result(stalled=True)
    assert_stalled(world, Reason.PROMOTION_REVOKED)
    message = next(c.message for c in world.status().conditions if c.type == STALLED)
    assert f"failed upstream in {NS}/{UPSTREAM}#2" in message
    assert world.cluster.patched() == []


def test_a_later_upstream_failure_of_the_same_version_revokes_an_earlier_success(world: World) -> None:
    upstream(
        world,
        entry(3, "v2", "Failed", "2024-05-01T11:50:00Z"),
        entry(2, "v2", "Succeeded", "2024-05-01T11:00:00Z"),
    )
    assert promote(world) == Result(stalled=True)
    assert_stalled(world, Reason.PROMOTION_REVOKED)


def test_a_tag_moved_in_the_registry_does_not_matter_the_upstream_digest_wins(world: World) -> None:
    moved = world.registry.release("v2")  # the tag now points elsewhere than what staging ran
    assert moved != UP_DIGEST
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z"))
    promote(world)
    world.cluster.roll_out()
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    world.clock.now += RESYNC  # the tag is checked from the operator's second interval on
    world.reconcile()
    [moved_event] = world.events("TagMoved")
    assert moved in moved_event.message and UP_DIGEST in moved_event.message


def test_spec_digest_must_equal_the_upstream_digest(world: World) -> None:
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z"))
    assert promote(world, digest="sha256:" + "c" * 64) == Result(stalled=True)
    assert_stalled(world, Reason.DIGEST_MISMATCH)
    assert world.cluster.patched() == []


def test_a_source_namespace_not_listed_is_refused_before_anything_is_read(world: World) -> None:
    world.create("v2", promotion={"from": {"namespace": "elsewhere", "name": UPSTREAM}})
    assert world.reconcile() == Result(stalled=True)  # the fake cluster would fail a read of another namespace
    assert_stalled(world, Reason.PROMOTION_SOURCE_NOT_ALLOWED)

    # The platform team lists the namespace: the refusal is looked at again without a spec change.
    world.reconciler = Reconciler(
        world.cluster,
        world.reconciler.registry,
        resync_seconds=RESYNC,
        rollout_poll_seconds=POLL,
        now=world.wall,
        monotonic=world.clock,
        promotion_sources=["dev", "*"],
    )
    world.cluster.appreleases[NAME]["spec"]["promotion"]["from"]["namespace"] = NS  # (one namespace in the fake)
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z"))
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)


def test_a_rollback_within_its_own_history_needs_no_upstream(world: World) -> None:
    upstream(
        world,
        entry(5, "v2", "Succeeded", "2024-05-01T11:00:00Z"),
        entry(4, "v1", "Succeeded", "2024-05-01T10:00:00Z", digest=V1_DIGEST),
    )
    promote(world, version="v1")
    world.cluster.roll_out()
    world.reconcile()
    world.update(version="v2")
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    del world.cluster.appreleases[UPSTREAM]  # gone: a rollback must not need it
    world.update(version="v1")
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(V1_DIGEST)
    head = world.status().history[0]
    assert (head.restored_from, head.promoted_from) == (1, None)


def test_an_upstream_that_does_not_exist_is_awaited(world: World) -> None:
    assert promote(world) == Result(retry=True)
    assert_waiting(world, Reason.AWAITING_PROMOTION)
    assert "does not exist" in next(c.message for c in world.status().conditions if c.type == READY)


@pytest.mark.parametrize("namespace", ["n" * 64, "a.b", "Staging"])
def test_a_source_namespace_that_is_no_dns_label_is_an_invalid_spec(world: World, namespace: str) -> None:
    # A namespace name is an RFC 1123 label; promotedFrom's bound (limits.MAX_PROMOTED_FROM) rests on it.
    world.create("v2", promotion={"from": {"namespace": namespace, "name": UPSTREAM}})
    world.reconcile()
    assert_stalled(world, Reason.INVALID_SPEC)
    assert world.cluster.patched() == []


def _promoted_and_ready(world: World) -> None:
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", succeededAt="2024-05-01T11:01:00Z"))
    promote(world)
    world.cluster.roll_out()
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_a_promoted_revision_whose_upstream_fails_later_is_revoked_and_keeps_running(world: World) -> None:
    _promoted_and_ready(world)
    calls = len(world.cluster.patched())
    # Upstream deploys v2 again (same digest), it fails there and is rolled back automatically.
    upstream(
        world,
        entry(6, "v1", "Succeeded", "2024-05-01T11:50:00Z", digest=V1_DIGEST, cause="AutoRollback"),
        entry(5, "v2", "Failed", "2024-05-01T11:40:00Z", failure="Deployment web: CrashLoopBackOff"),
        entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", succeededAt="2024-05-01T11:01:00Z"),
    )
    assert world.reconcile() == Result(stalled=True)
    assert_stalled(world, Reason.PROMOTION_REVOKED)
    message = next(c.message for c in world.status().conditions if c.type == STALLED)
    assert f"{NS}/{UPSTREAM}#5" in message and "CrashLoopBackOff" in message
    [warning] = world.events("PromotionRevoked")
    assert warning.type == "Warning" and f"{NS}/{UPSTREAM}#5" in warning.message
    # No rollback (the design: revoked -> Stalled, nothing patched): the promoted digest keeps running.
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)
    assert len(world.cluster.patched()) == calls
    assert world.status().revision == 1
    # Stalled until the spec changes: later passes neither read nor tell it again.
    assert world.reconcile() == Result(stalled=True)
    assert len(world.events("PromotionRevoked")) == 1


def test_an_upstream_failure_of_another_version_or_digest_revokes_nothing(world: World) -> None:
    _promoted_and_ready(world)
    other = "sha256:" + "d" * 64
    upstream(
        world,
        entry(6, "v3", "Failed", "2024-05-01T11:50:00Z", digest=other),
        entry(5, "v2", "Failed", "2024-05-01T11:40:00Z", digest=other),  # v2 of another build: not what runs here
        entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", succeededAt="2024-05-01T11:01:00Z"),
    )
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    assert world.events("PromotionRevoked") == []


def test_a_revision_restored_from_its_own_history_is_never_revoked(world: World) -> None:
    upstream(
        world,
        entry(5, "v2", "Succeeded", "2024-05-01T11:00:00Z"),
        entry(4, "v1", "Succeeded", "2024-05-01T10:00:00Z", digest=V1_DIGEST),
    )
    promote(world, version="v1")
    world.cluster.roll_out()
    world.reconcile()
    world.update(version="v2")
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    world.update(version="v1")  # back within its own history: revision 3, restored from 1, not promoted
    world.reconcile()
    world.cluster.roll_out()
    upstream(world, entry(6, "v1", "Failed", "2024-05-01T11:50:00Z", digest=V1_DIGEST))
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    assert world.events("PromotionRevoked") == []


def test_a_promoted_revision_still_rolling_out_is_judged_by_its_own_rollout_before_any_revocation(
    world: World,
) -> None:
    # Found by review: a revocation read while the promoted revision was InProgress (or baking) stalled the
    # AppRelease before its own rollout was judged, so a crash here was never rolled back.
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", succeededAt="2024-05-01T11:01:00Z"))
    promote(world)
    assert world.status().history[0].outcome == "InProgress"
    upstream(
        world,
        entry(5, "v2", "Failed", "2024-05-01T11:40:00Z", failure="Deployment web: CrashLoopBackOff"),
        entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", succeededAt="2024-05-01T11:01:00Z"),
    )
    world.reconcile()
    assert world.events("PromotionRevoked") == []
    assert world.condition(STALLED)[1] != Reason.PROMOTION_REVOKED
    # Once its own rollout has succeeded, the upstream failure revokes it (and nothing is rolled back).
    world.cluster.roll_out()
    world.reconcile()
    world.reconcile()
    assert_stalled(world, Reason.PROMOTION_REVOKED)
    assert world.cluster.images()["web"] == pinned(UP_DIGEST)
