"""apprelease.dev/retry values are compared in full: a new value acts once, whatever it shares with the last."""

from __future__ import annotations

import hashlib

from apprelease.core import limits
from apprelease.core.api import AppReleaseStatus
from tests.conftest import World
from tests.test_release_safety import add_pod, annotate_retry, mid_rollout, upgrade_that_crashes

SHARED = "retry requested by the release pipeline, run 2026-11-27, attempt number " * 2  # 148 characters


def test_short_values_are_kept_and_long_ones_become_a_hash_of_the_whole_value() -> None:
    assert limits.retry_token(None) is None and limits.retry_token("") is None
    assert limits.retry_token("2026-11-27T12:00:00.000000Z") == "2026-11-27T12:00:00.000000Z"  # as `apprelease retry`
    first, second = limits.retry_token(SHARED + "1"), limits.retry_token(SHARED + "2")
    assert first != second
    assert first == "sha256:" + hashlib.sha256((SHARED + "1").encode()).hexdigest()[:57]
    assert first is not None and len(first) == limits.MAX_RETRY_TOKEN == 64  # the CRD's maxLength
    # A short value that looks like a stored hash is hashed too: a stored token means one thing only.
    lookalike = "sha256:" + "0" * 57
    assert limits.retry_token(lookalike) not in (lookalike, None)
    # Bounded whatever the annotation holds (up to the API server's 256 KiB of annotations).
    assert len(limits.retry_token("x" * 256 * 1024) or "") == 64
    AppReleaseStatus(lastHandledRetry=first)  # fits the status field


def test_a_second_long_value_sharing_the_first_64_characters_retries_again(world: World) -> None:
    world.deploy("v1")
    upgrade_that_crashes(world)
    world.reconcile()
    world.cluster.roll_out()
    world.cluster.pods.clear()
    world.reconcile()

    annotate_retry(world, SHARED + "1")
    world.reconcile()
    assert (world.status().revision, world.status().version) == (4, "v2")  # retried
    mid_rollout(world)
    add_pod(world)
    world.reconcile()  # fails again: rolled back to v1
    world.cluster.roll_out()
    world.cluster.pods.clear()
    world.reconcile()
    assert (world.status().revision, world.status().version) == (5, "v1")
    first = world.status().last_handled_retry

    world.reset_records()
    annotate_retry(world, SHARED + "2")  # the same first 148 characters: a new value all the same
    world.reconcile()
    assert (world.status().revision, world.status().version) == (6, "v2")
    assert [e.reason for e in world.events()] == ["Retrying"]
    assert (first, world.status().last_handled_retry) == (
        limits.retry_token(SHARED + "1"),
        limits.retry_token(SHARED + "2"),
    )
