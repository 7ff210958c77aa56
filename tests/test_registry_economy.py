"""Request economy: 1,000 AppReleases of one version cost a handful of registry requests, not thousands.

Counted through the real RegistryClient and Reconciler, with the in-memory cluster and registry of
test_reconciler; the registry answers slowly enough that worker threads overlap, as in the operator.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from apprelease.controller.reconciler import Reconciler
from apprelease.core.conditions import READY
from apprelease.core.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings, RegistryUnavailable, Unauthorized
from tests.conftest import IMAGE, NS, Clock, FakeCluster, FakeRegistry, deployment

OCI_INDEX = "application/vnd.oci.image.index.v1+json"

RELEASES = 1000
WORKERS = 8


class SlowRegistry(FakeRegistry):
    def __call__(self, request: httpx.Request) -> httpx.Response:
        time.sleep(0.02)  # long enough for every worker to ask at once
        return super().__call__(request)


def test_client_single_flight_and_digest_cache_under_threads() -> None:
    registry = SlowRegistry()
    digest = registry.release("v1")
    client = RegistryClient(RegistrySettings(), transport=httpx.MockTransport(registry))
    ref = parse(f"{IMAGE}:v1")

    def release(_: int) -> dict[str, str]:
        resolved = client.resolve(ref)
        return client.labels(ref.with_digest(resolved.digest))

    with ThreadPoolExecutor(WORKERS) as pool:
        labels = list(pool.map(release, range(RELEASES)))
    assert all(found["org.opencontainers.image.version"] == "v1" for found in labels)
    paths = [(r.method, r.url.path.rsplit("/", 2)[-2]) for r in registry.requests]
    assert paths == [("HEAD", "manifests"), ("GET", "manifests"), ("GET", "blobs")]
    assert digest in str(registry.requests[1].url)


def test_single_flight_shares_a_failure_too() -> None:
    registry = SlowRegistry(password="needed")
    registry.release("v1")
    client = RegistryClient(RegistrySettings(), transport=httpx.MockTransport(registry))
    errors: list[BaseException] = []

    def resolve(_: int) -> None:
        try:
            client.resolve(parse(f"{IMAGE}:v1"))
        except Unauthorized as exc:
            errors.append(exc)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(resolve, range(WORKERS)))
    assert len(errors) == WORKERS
    assert len(registry.requests) < WORKERS  # concurrent callers waited for the one in flight


def _apprelease(name: str, version: str) -> dict[str, object]:
    return {
        "apiVersion": "apprelease.dev/v1alpha1",
        "kind": "AppRelease",
        "metadata": {"name": name, "namespace": NS, "generation": 1, "uid": f"uid-{name}"},
        "spec": {"image": IMAGE, "version": version, "workloads": [{"name": name}], "rollout": {"bakeSeconds": 0}},
    }


def test_a_thousand_appreleases_cost_three_requests_to_create_three_to_upgrade_none_to_roll_back() -> None:
    cluster = FakeCluster()
    registry = SlowRegistry()
    clock = Clock()
    registry.release("v1")
    registry.release("v2")
    client = RegistryClient(RegistrySettings(), transport=httpx.MockTransport(registry), clock=clock)
    reconciler = Reconciler(cluster, client, resync_seconds=300, rollout_poll_seconds=5, monotonic=clock)
    names = [f"app-{i}" for i in range(RELEASES)]
    for name in names:
        cluster.deployments[name] = deployment(name, release=name)
        cluster.appreleases[name] = _apprelease(name, "v1")

    def phase() -> Counter[str]:
        registry.requests.clear()
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda name: reconciler.reconcile(NS, name), names))  # deploys
            clock.now += 120  # rollouts take a while: the 60 s resolution cache has expired at Ready
            cluster.roll_out()
            list(pool.map(lambda name: reconciler.reconcile(NS, name), names))  # Ready, tag check
        for name in names:
            ready = next(c for c in cluster.appreleases[name]["status"]["conditions"] if c["type"] == READY)
            assert ready["status"] == "True", ready
        return Counter(f"{r.method} {r.url.path.rsplit('/', 2)[-2]}" for r in registry.requests)

    def set_version(version: str) -> None:
        for name in names:
            obj = cluster.appreleases[name]
            obj["spec"] = copy.deepcopy({**obj["spec"], "version": version})
            obj["metadata"]["generation"] += 1

    assert phase() == Counter({"HEAD manifests": 1, "GET manifests": 1, "GET blobs": 1})
    set_version("v2")
    assert phase() == Counter({"HEAD manifests": 1, "GET manifests": 1, "GET blobs": 1})
    set_version("v1")
    assert phase() == Counter()  # from history, and the tag check of v1 is still fresh


def test_on_request_sees_every_request_with_registry_method_and_status() -> None:
    seen: list[tuple[str, str, int | None]] = []
    token_realm = "https://auth.example.com/token"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            return httpx.Response(200, json={"token": "t0ken", "expires_in": 300})
        if request.headers.get("Authorization") != "Bearer t0ken":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{token_realm}"'})
        if request.url.path.endswith("/v1"):
            return httpx.Response(
                200, headers={"Docker-Content-Digest": "sha256:" + "1" * 64, "Content-Type": OCI_INDEX}
            )
        raise httpx.ConnectError("refused", request=request)

    client = RegistryClient(
        RegistrySettings(max_attempts=2),
        lambda registry, method, status: seen.append((registry, method, status)),
        transport=httpx.MockTransport(handler),
        sleep=lambda _: None,
    )
    client.resolve(parse(f"{IMAGE}:v1"))
    assert seen == [
        ("registry.example.com", "HEAD", 401),
        ("registry.example.com", "GET", 200),  # the token, counted for the registry that asked for it
        ("registry.example.com", "HEAD", 200),
    ]
    seen.clear()
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        client.resolve(parse(f"{IMAGE}:v2"))
    assert seen == [("registry.example.com", "HEAD", None)] * 2  # no reply: status None, and the retry too


def test_a_failing_observer_never_breaks_a_request() -> None:
    def observer(registry: str, method: str, status: int | None) -> None:
        raise RuntimeError("metrics backend down")

    client = RegistryClient(
        RegistrySettings(),
        observer,
        transport=httpx.MockTransport(
            lambda r: httpx.Response(
                200, headers={"Docker-Content-Digest": "sha256:" + "2" * 64, "Content-Type": OCI_INDEX}
            )
        ),
    )
    assert client.resolve(parse(f"{IMAGE}:v1")).digest == "sha256:" + "2" * 64
