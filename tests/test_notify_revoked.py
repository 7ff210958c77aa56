"""A promotion revoked after the fact (its upstream revision failed later) is told once, about the revision that
runs, to every receiver of PromotionRevoked; its key never collides with a later revocation's.

Fakes for the cluster and registry, a real receiver on loopback (tests/test_notify.py's).
"""

from __future__ import annotations

from typing import Any

from tests.conftest import NS, World
from tests.test_notify import UID, Receiver, Secrets, operator
from tests.test_notify import receiver as receiver  # the fixture
from tests.test_promotion import SOURCE, UP_DIGEST, UPSTREAM, entry, upstream

OTHER = "sha256:" + "d" * 64
SUCCEEDED = entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", succeededAt="2024-05-01T11:01:00Z")
FAILED_LATER = entry(5, "v2", "Failed", "2024-05-01T11:40:00Z", failure="Deployment web: CrashLoopBackOff")


def _hook(on: list[str]) -> list[dict[str, Any]]:
    return [{"type": "webhook", "secretRef": {"name": "hook"}, "on": on}]


def test_a_promotion_revoked_after_the_fact_is_told_once_about_the_running_revision(
    world: World, receiver: Receiver
) -> None:
    secrets = Secrets({"hook": {"url": receiver.url.encode()}})
    operator(world, receiver, secrets)
    upstream(world, SUCCEEDED)
    world.create("v2", promotion=SOURCE, notify=_hook(["Succeeded", "PromotionRevoked"]))
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/Succeeded"]

    upstream(world, FAILED_LATER, SUCCEEDED)
    world.reconcile()
    world.reconcile()
    operator(world, receiver, secrets)  # a restart does not tell it again
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/Succeeded", f"{UID}/1/PromotionRevoked"]
    told = receiver.received[1].json()
    assert (told["revision"], told["version"], told["digest"]) == (1, "v2", UP_DIGEST)
    assert f"{NS}/{UPSTREAM}#5" in told["message"] and "promotion revoked" in told["message"]

    # A version whose upstream failed before it was promoted: about revision 2, a key of its own.
    upstream(world, entry(6, "v3", "Failed", "2024-05-01T11:50:00Z", digest=OTHER), FAILED_LATER, SUCCEEDED)
    world.update(version="v3")
    world.reconcile()
    assert receiver.keys()[2:] == [f"{UID}/2/PromotionRevoked"]


def test_a_receiver_added_after_the_promotion_is_told_of_its_revocation(world: World, receiver: Receiver) -> None:
    secrets = Secrets({"hook": {"url": receiver.url.encode()}})
    operator(world, receiver, secrets)
    upstream(world, SUCCEEDED)
    world.create("v2", promotion=SOURCE)
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    world.update(notify=_hook(["Succeeded", "PromotionRevoked"]))  # revision 1 is old history for it
    world.reconcile()
    assert receiver.keys() == []

    upstream(world, FAILED_LATER, SUCCEEDED)
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/PromotionRevoked"]  # news of today, not history
