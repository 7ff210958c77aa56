"""Large registry documents held at once are bounded by a count, not by the workers (registry/slots.py)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings, RegistryUnavailable
from apprelease.registry.slots import BodySlots
from tests.hostile import sha
from tests.hostile_rss import image


def test_a_slot_is_waited_for_until_the_deadline_then_refused() -> None:
    slots = BodySlots(1)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.hold(5, "r.example"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with pytest.raises(RegistryUnavailable, match="held every slot"), slots.hold(0.05, "r.example"):
        pass
    release.set()
    thread.join(5)
    with slots.hold(0.05, "r.example"):  # free again
        pass


def test_a_thread_inside_a_slot_reuses_it() -> None:
    slots = BodySlots(1)
    with slots.hold(0.05, "r.example"), slots.hold(0.05, "r.example"):  # would wait for itself otherwise
        pass
    with slots.hold(0.05, "r.example"):  # the outer block gave it back
        pass


def test_manifests_and_configs_are_fetched_at_most_count_at_a_time() -> None:
    """32 threads resolve distinct images at once (the operator's workers); the registry sees at most
    `max_concurrent_fetches` manifest or config GETs in flight."""
    lock, in_flight, most = threading.Lock(), [0], [0]
    documents = {n: image("ordinary", n) for n in range(32)}
    by_digest = {sha(doc): doc for pair in documents.values() for doc in pair}

    def registry(request: httpx.Request) -> httpx.Response:
        number = int(request.url.path.split("/")[3].removeprefix("img"))
        manifest = documents[number][0]
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": sha(manifest)}
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
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
