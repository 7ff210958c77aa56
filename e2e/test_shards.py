"""Two operator shards split 1,000 AppReleases over 50 namespaces with no overlap and no gap (issue 19), against
the real API server: once by the shard label, once by the API server's sharded list and watch (shardRange over
the namespace, feature gate ShardedListAndWatch, which e2e/testbed/up.sh turns on).

Who reconciled what is read from the Events the operators post about each AppRelease: their reportingInstance
is the replica's identity (POD_NAME). Each shard's per-AppRelease metrics say what its watch delivered.
Timings are printed, never asserted (`make bench` holds numbers).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from apprelease.election import shards
from e2e.ha import Replicas
from e2e.images import Pushed
from e2e.shardfleet import FLEET_LABEL, Fleet
from e2e.support import Operator, Testbed, wait_until

SHARD_ENV = {
    "APPRELEASE_WATCH_NAMESPACES": "",  # the whole cluster: the shard, not a namespace list, decides
    "APPRELEASE_WORKERS": "8",
    "APPRELEASE_RESYNC_SECONDS": "600",
    "APPRELEASE_REGISTRY_CACHE_SECONDS": "120",
}


@pytest.fixture
def fleet(api: client.ApiClient, namespace: str) -> Iterator[Fleet]:
    made = Fleet(api, namespace[:50])
    try:
        yield made
    finally:
        made.delete()


@pytest.fixture
def pair(testbed: Testbed, operator: Operator, namespace: str) -> Iterator[Replicas]:
    # The session's operator (every namespace, no shard) would reconcile the fleet too: paused.
    operator.stop()
    started = Replicas(testbed, namespace, prefix="shard", base_port=18380)
    try:
        yield started
    finally:
        started.stop_all()
        testbed.kubectl("delete", "leases", "--all", "-n", namespace, check=False)  # one per shard
        operator.start()


def _assert_split(fleet: Fleet, pair: Replicas, owner: Callable[[str], int], identities: list[str]) -> None:
    """Every AppRelease Ready, reconciled by exactly the one shard `owner(namespace)` names, and each shard's
    watch delivered exactly its own AppReleases."""
    fleet.wait_ready("v1.0.0")
    # Events go out just after the status writes that record them: the last ones may still be on their way.
    with contextlib.suppress(AssertionError):  # the assertion below says which are missing
        wait_until(lambda: all(key in fleet.reporters() for key in fleet.keys), timeout=30, interval=2)
    reporters = fleet.reporters()
    silent = [key for key in fleet.keys if key not in reporters]
    assert not silent, f"{len(silent)} AppReleases no operator posted an Event about, e.g. {silent[:3]}"
    wrong = {key: who for key, who in reporters.items() if who != {identities[owner(key[0])]}}
    assert not wrong, (
        f"{len(wrong)} AppReleases reconciled by the other or by both shards, e.g. {list(wrong.items())[:3]}"
    )
    names = {name for _, name in fleet.keys}
    expected: list[set[str]] = [set(), set()]
    for namespace, name in fleet.keys:
        expected[owner(namespace)].add(name)
    for slot in (0, 1):
        assert pair.served_releases(slot) & names == expected[slot]
    assert expected[0] and expected[1] and not expected[0] & expected[1]
    assert len(expected[0]) + len(expected[1]) == fleet.size


def test_two_label_shards_split_1000_appreleases(
    testbed: Testbed, pair: Replicas, fleet: Fleet, web: dict[str, Pushed]
) -> None:
    shard_names = ("a", "b")
    owner: Callable[[str], int] = lambda ns: fleet.namespaces.index(ns) % 2  # noqa: E731 - by namespace
    identities = [pair.start(slot, {**SHARD_ENV, "APPRELEASE_SHARD": shard}) for slot, shard in enumerate(shard_names)]
    for identity, shard in zip(identities, shard_names, strict=True):
        pair.wait_holder(identity, lease=f"{pair.lease}-{shard}")
    seconds = fleet.create(web["v1.0.0"].repository, "v1.0.0", lambda ns: shard_names[owner(ns)])
    print(f"created {fleet.size} AppReleases and workloads in {seconds:.1f}s")
    _assert_split(fleet, pair, owner, identities)


def _listed_namespaces(testbed: Testbed, path: str, selector: str, label: str) -> set[str]:
    query = urllib.parse.urlencode({"labelSelector": label, "shardSelector": selector})
    listed = json.loads(testbed.kubectl("get", "--raw", f"{path}?{query}").stdout)
    return {item["metadata"]["namespace"] for item in listed["items"]}


def test_two_range_shards_split_1000_appreleases(
    testbed: Testbed, pair: Replicas, fleet: Fleet, web: dict[str, Pushed]
) -> None:
    # Each shard gets half of these namespaces (FNV-1a of similar names clusters), and together the ranges
    # cover the whole hash space: any other namespace belongs to exactly one of them too.
    ranges = shards.balanced(fleet.namespaces, 2)
    bounds = [shards.parse_range(text) for text in ranges]

    def owner(namespace: str) -> int:
        digest = shards.fnv1a64(namespace)
        return next(i for i, (start, end) in enumerate(bounds) if start <= digest < end)

    # Every namespace of the cluster is in one of the ranges, and the shared test bed may hold thousands of other
    # AppReleases (a benchmark's): each shard watches the fleet's 50 namespaces, all of them, and the server's
    # shard selector alone decides which half each one is handed.
    fleet.create_namespaces()
    env = {**SHARD_ENV, "APPRELEASE_WATCH_NAMESPACES": ",".join(fleet.namespaces)}
    identities = [pair.start(slot, {**env, "APPRELEASE_SHARD_RANGE": text}) for slot, text in enumerate(ranges)]
    for identity, text in zip(identities, ranges, strict=True):
        pair.wait_holder(identity, lease=shards.lease_name(pair.lease, None, text))
        assert "sharding: the API server honours shardRange(" in pair.log(identity)
    seconds = fleet.create(web["v1.0.0"].repository, "v1.0.0", lambda ns: None)
    print(f"created {fleet.size} AppReleases and workloads in {seconds:.1f}s")
    _assert_split(fleet, pair, owner, identities)

    # The API server itself: a sharded list of the custom resource and of both workload kinds returns exactly
    # the namespaces whose FNV-1a hash (ours) is in the range, so the server and the operator agree on the hash.
    label = f"{FLEET_LABEL}={fleet.base}"
    for slot, text in enumerate(ranges):
        selector = shards.range_selector(text)
        mine = {ns for ns in fleet.namespaces if owner(ns) == slot}
        assert _listed_namespaces(testbed, "/apis/apprelease.dev/v1alpha1/appreleases", selector, label) == mine
        workload_label = "apprelease.dev/release"
        deployments = _listed_namespaces(testbed, "/apis/apps/v1/deployments", selector, workload_label)
        assert deployments & set(fleet.namespaces) == mine
        cron_jobs = _listed_namespaces(testbed, "/apis/batch/v1/cronjobs", selector, workload_label)
        assert cron_jobs & set(fleet.namespaces) == mine
