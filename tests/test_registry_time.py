"""Time (issue 15): one deadline for a whole resolution, and host-name lookups that cannot starve one another.

Before issue 15 the deadline was per request (a registry answering just inside each one held a worker for
a minute per reconcile), and lookups shared one pool of 4 threads: 4 names whose DNS never answers made
every registry named by host unreachable for everyone. No assertion here is about elapsed time: each test
asserts what completed, failed or was never asked (run_with_deadline only keeps a stuck client from
hanging the suite).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistryError, RegistrySettings, RegistryUnavailable, Resolver
from tests.hostile import OCI_MANIFEST, Request, Server, respond, run_with_deadline, sha

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CHILDREN = 10
DOCUMENTS: dict[str, tuple[bytes, str]] = {}


def _put(content: bytes, media_type: str) -> str:
    DOCUMENTS[sha(content)] = (content, media_type)
    return sha(content)


def _child(number: int) -> dict[str, object]:
    """A distinct image per platform (nothing cached from one child serves another)."""
    config = json.dumps({"config": {"Labels": {"org.opencontainers.image.version": "v1", "n": str(number)}}})
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": _put(config.encode(), "")}}
    digest = _put(json.dumps(manifest).encode(), OCI_MANIFEST)
    return {"digest": digest, "platform": {"os": "linux", "architecture": f"arch{number}"}}


INDEX = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [_child(i) for i in range(CHILDREN)]})
DOCUMENTS["v1"] = (INDEX.encode(), OCI_INDEX)
INDEX_DIGEST = _put(INDEX.encode(), OCI_INDEX)


def registry(delay: float) -> Server:
    """A registry serving a 10-platform index as :v1, answering every request after ``delay`` seconds."""

    def handler(conn: socket.socket, request: Request) -> None:
        time.sleep(delay)
        found = DOCUMENTS.get(request.path.rsplit("/", 1)[-1])
        if found is None:
            respond(conn, 404)
            return
        content, media_type = found
        headers = {"Content-Type": media_type or "application/octet-stream", "Docker-Content-Digest": sha(content)}
        respond(
            conn, 200, {**headers, "Content-Length": str(len(content))}, b"" if request.method == "HEAD" else content
        )

    return Server(handler)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def test_one_deadline_covers_every_request_of_a_resolution(servers: list[Server]) -> None:
    # Each request answers well within its own 2 s; the 12 reads of a 10-platform image do not fit in 1.5 s.
    slow = registry(0.3)
    servers.append(slow)
    settings = RegistrySettings(insecure_registries=[slow.netloc], timeout_seconds=2, resolution_timeout_seconds=1.5)
    errors: list[Exception] = []
    ref = parse(f"{slow.netloc}/shop/web:v1")

    def reconcile() -> None:
        with RegistryClient(settings) as client, client.resolution():
            try:
                resolved = client.resolve(ref)
                client.platform_labels(ref.with_digest(resolved.digest))
            except RegistryError as exc:
                errors.append(exc)

    finished, _ = run_with_deadline(reconcile, 60)
    assert finished
    assert [type(e) for e in errors] == [RegistryUnavailable]
    # HEAD, the index, then the children and configs that fit: never all 2 + 10 + 10 reads.
    assert len(slow.requests) < 2 + 2 * CHILDREN


def test_the_resolution_deadline_holds_without_an_explicit_block(servers: list[Server]) -> None:
    slow = registry(0.3)
    servers.append(slow)
    settings = RegistrySettings(insecure_registries=[slow.netloc], timeout_seconds=2, resolution_timeout_seconds=1)
    with RegistryClient(settings) as client, pytest.raises(RegistryUnavailable):
        client.platform_labels(parse(f"{slow.netloc}/shop/web@{INDEX_DIGEST}"))
    assert len(slow.requests) < 1 + 2 * CHILDREN


def test_blackholed_names_and_slow_registries_do_not_starve_a_healthy_resolution(servers: list[Server]) -> None:
    never = threading.Event()  # lookups of blackholed names wait on it: they never answer during the test
    healthy = registry(0.0)
    slow = [registry(0.5) for _ in range(25)]
    servers.extend([healthy, *slow])
    blackholed = [f"blackhole-{i}.test:5000" for i in range(4)]
    lookups: list[str] = []

    def lookup(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        lookups.append(host)
        if host.startswith("blackhole-"):
            never.wait()
            raise socket.gaierror("released at the end of the test")
        if host == "healthy.test":
            return [ipaddress.ip_address("127.0.0.1")]
        raise socket.gaierror("unknown in this test")

    healthy_name = f"healthy.test:{healthy.port}"
    settings = RegistrySettings(
        insecure_registries=[healthy_name, *blackholed, *(s.netloc for s in slow)],
        timeout_seconds=5,
        resolution_timeout_seconds=8,
    )
    client = RegistryClient(settings, resolver=Resolver(lookup))
    outcomes: dict[str, list[object]] = {"slow": [], "blackholed": []}

    def resolve(kind: str, name: str) -> None:
        ref = parse(f"{name}/shop/web:v1")
        try:
            resolved = client.resolve(ref)
            outcomes[kind].append(client.platform_labels(ref.with_digest(resolved.digest)))
        except RegistryError as exc:
            outcomes[kind].append(exc)

    busy = [threading.Thread(target=resolve, args=("slow", s.netloc), daemon=True) for s in slow]
    busy += [threading.Thread(target=resolve, args=("blackholed", n), daemon=True) for n in blackholed * 3]
    try:
        for thread in busy:
            thread.start()
        while len(set(lookups)) < len(blackholed):  # every blackholed lookup is hanging before the healthy one
            time.sleep(0.01)
        result: list[object] = []
        finished, _ = run_with_deadline(lambda: result.append(client.resolve(parse(f"{healthy_name}/shop/web:v1"))), 60)
        assert finished
        [resolved] = result
        assert getattr(resolved, "digest", None) == INDEX_DIGEST
        assert lookups.count("healthy.test") == 1
        # One lookup per blackholed name at a time, however many resolutions wait for it.
        assert sorted(h for h in lookups if h.startswith("blackhole-")) == sorted(n.split(":")[0] for n in blackholed)
        for thread in busy:
            thread.join(60)
        assert not any(thread.is_alive() for thread in busy)  # every resolution ended within its deadline
        assert len(outcomes["blackholed"]) == 12
        assert all(isinstance(o, RegistryUnavailable) for o in outcomes["blackholed"])
        assert len(outcomes["slow"]) == 25
    finally:
        never.set()
        client.close()
