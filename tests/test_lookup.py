"""The event intake (issue 19): constant work per event in our own lookups (no kopf index), a person's changes
queued ahead of re-checks, Events posted off the workers."""

from __future__ import annotations

import kopf

from apprelease.controller import handlers
from apprelease.controller.lookup import ReverseIndex
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from tests.kopf_intake import KopfIntake, apprelease


def test_the_operator_registers_no_kopf_index() -> None:
    # kopf holds every event of every resource until each index has seen its whole first list: with 10,000
    # AppReleases resident a new replica made no pass in 7.5 minutes. The lookups are ours (controller/lookup).
    assert handlers.on_apprelease_event  # the handlers module is imported, so its decorators have run
    assert list(kopf.get_default_registry()._indexing.get_all_handlers()) == []


def test_a_reverse_index_replaces_one_keys_entries_and_drops_empty_targets() -> None:
    index: ReverseIndex[str, str] = ReverseIndex()
    index.replace("web", ["a", "b"])
    index.replace("api", ["b"])
    assert sorted(index.get("b")) == ["api", "web"] and index.get("a") == ("web",)
    index.replace("web", ["c"])
    assert sorted(index) == ["b", "c"] and index.get("a") == () and index.get("b") == ("api",)
    index.replace("web", [])
    index.discard("api")
    index.discard("never-seen")
    assert len(index) == 0 and index.get("b") == ()


def test_a_reverse_index_replace_touches_only_that_keys_entries() -> None:
    # Constant work per event: 10,000 other AppReleases listing the same workload are not walked.
    index: ReverseIndex[str, int] = ReverseIndex()
    for key in range(10_000):
        index.replace(key, [f"w{key}", "shared"])
    shared = index._keys["shared"]
    index.replace(5, ["w5"])
    assert index._keys["shared"] is shared and 5 not in shared and len(shared) == 9_999


async def test_a_new_or_edited_apprelease_is_urgent_and_a_settled_one_seen_again_is_not() -> None:
    runtime = Runtime(OperatorSettings(metrics_port=0), object())  # type: ignore[arg-type]
    intake = KopfIntake(runtime)
    settled = apprelease("shop", "old", 3, [("Deployment", "old")])
    settled["status"] = {"observedGeneration": 3}
    await intake.apprelease("ADDED", settled)  # a replica's first list: a re-check
    await intake.apprelease("ADDED", apprelease("shop", "new", 1, [("Deployment", "new")]))  # no status yet
    edited = apprelease("shop", "edited", 4, [("Deployment", "edited")])
    edited["status"] = {"observedGeneration": 3}
    await intake.apprelease("ADDED", edited)
    order = [await runtime.queue.get() for _ in range(3)]
    assert order == [("shop", "new"), ("shop", "edited"), ("shop", "old")]


async def test_a_retry_annotation_is_urgent() -> None:
    runtime = Runtime(OperatorSettings(metrics_port=0), object())  # type: ignore[arg-type]
    runtime.observe(("shop", "a"), 2)
    runtime.observe(("shop", "b"), 2)
    assert [await runtime.queue.get(), await runtime.queue.get()] == [("shop", "a"), ("shop", "b")]
    runtime.queue.done(("shop", "a"))
    runtime.queue.done(("shop", "b"))
    runtime.observe(("shop", "c"), 1)
    runtime.observe(("shop", "b"), 2, "2026-11-30T12:00:00Z")
    assert await runtime.queue.get() == ("shop", "b")
