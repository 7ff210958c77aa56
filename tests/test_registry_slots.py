"""Large registry documents held at once are bounded by a count, not by the workers (registry/slots.py)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from apprelease.core.conditions import Reason
from apprelease.reference import parse
from apprelease.registry import RegistryBusy, RegistryClient, RegistrySettings, RegistryUnavailable
from apprelease.registry.caches import FlightTimeout, SingleFlight
from apprelease.registry.network import Deadline
from apprelease.registry.slots import BodySlots
from tests.conftest import World, assert_waiting
from tests.hostile import Request, Server, respond, sha
from tests.hostile_rss import image


def _in(seconds: float) -> Deadline:
    return Deadline(time.monotonic() + seconds, time.monotonic)


def _held_elsewhere(slots: BodySlots) -> tuple[threading.Thread, threading.Event]:
    """Another thread holds one of `slots` until the returned event is set (at most 5 s)."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.hold(_in(5), "r.example"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    return thread, release


def test_a_slot_is_waited_for_until_the_deadline_then_refused() -> None:
    slots = BodySlots(1)
    thread, release = _held_elsewhere(slots)
    with pytest.raises(RegistryBusy, match="held every slot"), slots.hold(_in(0.05), "r.example"):
        pass
    release.set()
    thread.join(5)
    with slots.hold(_in(0.05), "r.example"):  # free again
        pass


def test_a_thread_inside_a_slot_reuses_it() -> None:
    slots = BodySlots(1)
    with slots.hold(_in(0.05), "r.example"), slots.hold(_in(0.05), "r.example"):  # would wait for itself otherwise
        pass
    with slots.hold(_in(0.05), "r.example"):  # the outer block gave it back
        pass


@pytest.mark.parametrize("head_status", [200, 404])
def test_manifests_and_configs_are_fetched_at_most_count_at_a_time(head_status: int) -> None:
    """32 threads resolve distinct images at once (the operator's workers); the registry sees at most
    `max_concurrent_fetches` manifest or config GETs in flight, also when HEAD fails and a GET resolves."""
    lock, in_flight, most = threading.Lock(), [0], [0]
    documents = {n: image("ordinary", n) for n in range(32)}
    by_digest = {sha(doc): doc for pair in documents.values() for doc in pair}

    def registry(request: httpx.Request) -> httpx.Response:
        number = int(request.url.path.split("/")[3].removeprefix("img"))
        manifest = documents[number][0]
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": sha(manifest)}
        if request.method == "HEAD":
            return httpx.Response(head_status, headers=headers if head_status == 200 else {})
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.02)  # long enough for the others to pile up
        with lock:
            in_flight[0] -= 1
        if "/blobs/" in request.url.path:
            return httpx.Response(200, content=by_digest[request.url.path.rsplit("/", 1)[-1]])
        return httpx.Response(200, headers=headers, content=manifest)

    client = RegistryClient(RegistrySettings(max_concurrent_fetches=3), transport=httpx.MockTransport(registry))
    failures: list[Exception] = []

    def resolve(number: int) -> None:
        ref = parse(f"registry.example.com/shop/img{number}:v1")
        try:
            client.labels(ref.with_digest(client.resolve(ref).digest))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            failures.append(err)

    threads = [threading.Thread(target=resolve, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert most[0] == 3  # bounded, and the bound is used


def test_a_slot_is_given_back_when_the_fetch_fails() -> None:
    slots = BodySlots(1)
    with pytest.raises(ValueError), slots.hold(_in(0.05), "r.example"):
        raise ValueError("a parse error")
    with slots.hold(_in(0.05), "r.example"):
        pass


def test_a_fetch_that_waited_for_its_slot_still_has_its_own_deadline() -> None:
    """The wait used most of the request's deadline: the fetch after it is not cut short (it would look like an
    unreachable registry, and provenance Disabled would record the revision without its labels)."""
    slots = BodySlots(1)
    thread, release = _held_elsewhere(slots)
    threading.Timer(0.3, release.set).start()

    manifest = image("ordinary", 1)[0]

    def slow_registry(conn: socket.socket, request: Request) -> None:  # on loopback: real request deadlines
        if request.method == "HEAD":
            respond(conn, 404)  # the GET that resolves then takes a slot
            return
        time.sleep(0.3)  # within its own 0.5 s, not within what the wait for the slot left of the first 0.5 s
        oci = "application/vnd.oci.image.manifest.v1+json"
        respond(conn, 200, {"Content-Type": oci, "Docker-Content-Digest": sha(manifest)}, manifest)

    server = Server(slow_registry)
    try:
        client = RegistryClient(RegistrySettings(insecure_registries=[server.netloc], timeout_seconds=0.5))
        client._slots = slots  # noqa: SLF001 - the seam: a slot another fetch holds
        ref = parse(f"{server.netloc}/shop/img1:v1")
        assert client.resolve(ref, use_cache=False).digest == sha(manifest)
    finally:
        server.close()
    thread.join(5)


def test_waiting_for_another_callers_fetch_is_retried_not_an_unreachable_registry() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "facts"

    thread = threading.Thread(target=lambda: flight.do("k", slow))
    thread.start()
    started.wait(5)
    with pytest.raises(FlightTimeout) as caught:
        flight.do("k", slow, 0.05)
    release.set()
    thread.join(5)
    assert isinstance(caught.value, RegistryBusy) and isinstance(caught.value, RegistryUnavailable)
    assert "did not arrive before the deadline" in str(caught.value)


class _NoSlotFree:
    """The client's fetch slots, all held by other AppReleases' slow registries (the wait itself is
    tested above)."""

    def hold(self, *_: object) -> None:
        raise RegistryBusy("registry r.example: other AppReleases' registry reads held every slot")


def test_no_free_slot_is_retried_even_where_unreadable_labels_are_tolerated(world: World) -> None:
    """provenance Disabled deploys an image whose labels cannot be read; a wait for a slot is not that: the
    revision would be recorded without its labels (gitCommit) for good."""
    world.registry.release("v1")
    world.reconciler.registry._slots = _NoSlotFree()  # type: ignore[assignment]  # noqa: SLF001 - the seam
    world.create("v1", provenance="Disabled")
    result = world.reconcile()
    assert result.retry
    assert_waiting(world, Reason.REGISTRY_UNAVAILABLE)
    assert world.cluster.patched() == [] and world.status().revision == 0
