"""Events posted off the workers (issue 19): a bounded queue, a share per namespace, one deadline to drain."""

from __future__ import annotations

import threading
from functools import partial

from kubernetes.client import ApiClient

from apprelease.controller.cluster import KubernetesCluster
from apprelease.controller.eventqueue import EventQueue


def test_submitting_an_event_never_waits_for_the_api_server_and_a_full_queue_drops() -> None:
    gate = threading.Event()
    sent: list[int] = []

    def slow(i: int) -> None:
        gate.wait(10)
        sent.append(i)

    events = EventQueue(max_queued=2, threads=1)
    accepted: list[bool] = []
    submitter = threading.Thread(
        target=lambda: accepted.extend(events.submit(partial(slow, i), f"ns{i}") for i in range(5))
    )
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


def test_a_noisy_namespace_cannot_make_another_namespaces_warning_drop() -> None:
    # One tenant's flood of Events fills only its share of the queue; another tenant's Warning still goes out.
    gate = threading.Event()
    sent: list[str] = []
    dropped: list[int] = []
    events = EventQueue(max_queued=100, on_drop=lambda: dropped.append(1))

    def noisy() -> None:
        gate.wait(10)
        sent.append("noisy")

    for _ in range(150):
        events.submit(noisy, "noisy")
    assert events.submit(lambda: sent.append("victim"), "victim")
    gate.set()
    events.close(timeout=10)
    assert "victim" in sent
    assert sent.count("noisy") <= 100 // 10 + 2  # its share, plus what the threads had taken already
    assert len(dropped) == events.dropped == 150 - sent.count("noisy")


def test_close_gives_all_its_waits_one_deadline() -> None:
    waits: list[float] = []

    class _Recorder:
        maxsize = 1000

        def put(self, item: object, timeout: float | None = None) -> None:
            waits.append(timeout or 0)

    events = EventQueue(threads=2)
    events._started = True
    events._queue = _Recorder()  # type: ignore[assignment]  # the seam: the queue's blocking calls, recorded
    for thread in events._threads:
        thread.join = lambda timeout=None: waits.append(timeout or 0)  # type: ignore[method-assign]
    events.close(timeout=5)
    assert len(waits) == 4 and max(waits) <= 5 and all(a >= b for a, b in zip(waits, waits[1:], strict=False))


def test_a_namespaces_flood_of_normal_events_never_drops_its_own_warning() -> None:
    """32 workers pinning a wave in one namespace queue Normal Events faster than they post; a Warning (bad
    input must be told) has a share of its own."""
    gate = threading.Event()
    events = EventQueue(max_queued=100, threads=1)
    cluster = KubernetesCluster(ApiClient(), events=events)
    sink = _Sink()

    class _Held(_Sink):
        def create_namespaced_event(self, namespace: str, event: object, **_: object) -> None:
            gate.wait(10)
            sink.create_namespaced_event(namespace, event)

    cluster._core = _Held()  # type: ignore[assignment]  # the seam: the Events API, held until the gate opens
    involved = {"namespace": "shop", "name": "web", "kind": "AppRelease"}
    for _ in range(50):
        cluster.post_event(involved, "Normal", "Deployed", "m")
    cluster.post_event(involved, "Warning", "Stalled", "m")
    gate.set()
    events.close(timeout=10)
    assert events.dropped > 0  # the Normal flood went past its share
    assert [reason for _, reason, _ in sink.posted].count("Stalled") == 1
