"""The event intake's own lookups and priorities (issue 19): constant work per event, no kopf index, user
changes ahead of re-checks."""

from __future__ import annotations

import threading
from functools import partial

import kopf
from kubernetes.client import ApiClient

from apprelease.controller import handlers
from apprelease.controller.cluster import KubernetesCluster
from apprelease.controller.eventqueue import EventQueue
from apprelease.controller.lookup import ReverseIndex
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from apprelease.controller.workqueue import URGENT_RUN, WorkQueue
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


async def test_urgent_keys_go_ahead_of_rechecks_and_are_never_queued_twice() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("r1", "r2", "r3"):
        queue.add(key)
    queue.add("new", urgent=True)
    queue.add("r3", urgent=True)  # a queued re-check asked for urgently moves ahead
    queue.add("r3", urgent=True)
    assert len(queue) == 4
    order = [await queue.get() for _ in range(4)]
    assert order == ["new", "r3", "r1", "r2"]
    assert len(queue) == 0
    for key in order:
        queue.done(key)
    queue.add("r3")  # its stale entry of before may be taken first; it is still one key, once
    assert len(queue) == 1 and await queue.get() == "r3"
    queue.add("r3", urgent=True)  # added while processed: runs again after, still urgent
    queue.add("r9")
    queue.done("r3")
    assert [await queue.get(), await queue.get()] == ["r3", "r9"]


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


def test_submitting_an_event_never_waits_for_the_api_server_and_a_full_queue_drops() -> None:
    gate = threading.Event()
    sent: list[int] = []

    def slow(i: int) -> None:
        gate.wait(10)
        sent.append(i)

    events = EventQueue(max_queued=2)
    accepted: list[bool] = []
    submitter = threading.Thread(target=lambda: accepted.extend(events.submit(partial(slow, i)) for i in range(5)))
    submitter.start()
    submitter.join(10)  # a deadlock guard: the POSTs are held until the gate opens
    assert not submitter.is_alive() and not gate.is_set()
    assert accepted.count(False) == events.dropped and 2 <= events.dropped <= 3  # 2 queued (+1 taken already)
    gate.set()
    events.close(timeout=10)
    assert sent == sorted(sent) and len(sent) == accepted.count(True)


class _Sink:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, int]] = []

    def create_namespaced_event(self, namespace: str, event: object, **_: object) -> None:
        self.posted.append((namespace, getattr(event, "reason", ""), threading.get_ident()))


def test_a_cluster_with_an_event_queue_posts_from_the_queues_thread_in_order() -> None:
    events = EventQueue()
    cluster = KubernetesCluster(ApiClient(), events=events)
    sink = _Sink()
    cluster._core = sink  # type: ignore[assignment]  # the seam: the Events API, recorded
    involved = {"namespace": "shop", "name": "web", "kind": "AppRelease"}
    for reason in ("Resolved", "Deployed", "Succeeded"):
        cluster.post_event(involved, "Normal", reason, "m")
    involved["name"] = "changed later"  # the Event was bound when queued
    events.close(timeout=10)
    assert [(ns, reason) for ns, reason, _ in sink.posted] == [
        ("shop", "Resolved"),
        ("shop", "Deployed"),
        ("shop", "Succeeded"),
    ]
    assert threading.get_ident() not in {thread for _, _, thread in sink.posted}


def test_events_post_at_once_without_a_queue() -> None:
    cluster = KubernetesCluster(ApiClient())
    sink = _Sink()
    cluster._core = sink  # type: ignore[assignment]
    cluster.post_event({"namespace": "shop", "name": "web"}, "Warning", "Stalled", "m")
    assert sink.posted == [("shop", "Stalled", threading.get_ident())]


async def test_rechecks_are_never_starved_by_a_stream_of_urgent_keys() -> None:
    # A tenant editing AppReleases in a loop must not stop the rollout checks (and rollbacks) of others.
    queue: WorkQueue[str] = WorkQueue()
    for i in range(3):
        queue.add(f"check{i}")
    for i in range(20):
        queue.add(f"edit{i}", urgent=True)
    order = [await queue.get() for _ in range(23)]
    checks = [i for i, key in enumerate(order) if key.startswith("check")]
    assert checks == [URGENT_RUN, 2 * URGENT_RUN + 1, 22]
    assert [key for key in order if key.startswith("edit")] == [f"edit{i}" for i in range(20)]
