"""Two operator replicas with leader election against the real API server (issue 19): a killed leader is
replaced and the rollout completes; a frozen leader stops acting and exits; SIGTERM hands over at once.
Only polls, no timing asserts (the failover times are in `make bench`, e2e/bench_ha.py)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apprelease.controller.cluster import KubernetesCluster
from apprelease.controller.fencing import Conflict
from apprelease.core.fields import Fields
from e2e.ha import Replicas
from e2e.images import Pushed
from e2e.releases import (
    apply,
    container_images,
    deployment_manifest,
    get_release,
    patch_release,
    release_manifest,
    wait_ready,
)
from e2e.support import Operator, Testbed, wait_until


@pytest.fixture
def replicas(testbed: Testbed, operator: Operator, namespace: str) -> Iterator[Replicas]:
    # The session's operator (no election, every namespace) would act on these AppReleases too: pause it.
    operator.stop()
    pair = Replicas(testbed, namespace)
    try:
        yield pair
    finally:
        pair.stop_all()
        operator.start()


def _leader_and_follower(replicas: Replicas) -> tuple[str, str]:
    first = replicas.start(0)
    replicas.wait_holder(first)
    second = replicas.start(1)
    return first, second


def _release_at_v1(testbed: Testbed, namespace: str, web: dict[str, Pushed], min_ready: int) -> str:
    """web at v1.0.0 (revision 1); `min_ready` seconds per new pod make the next rollout last a while."""
    repository = web["v1.0.0"].repository
    manifest = deployment_manifest(
        namespace, "web", {"web": f"{repository}:v1.0.0"}, release="web", min_ready_seconds=min_ready
    )
    apply(testbed, manifest)
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    wait_ready(testbed, namespace, "web", "v1.0.0")
    return repository


def _in_progress(testbed: Testbed, namespace: str, revision: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, "web")
        history = release.get("status", {}).get("history") or []
        if history and history[0].get("revision") == revision and history[0].get("outcome") == "InProgress":
            return release
        return None

    return wait_until(check, timeout=60, what=f"revision {revision} InProgress")


def _assert_history_unique_and_contiguous(release: dict[str, Any], newest: int) -> None:
    revisions = [entry["revision"] for entry in release["status"]["history"]]
    assert revisions == list(range(newest, 0, -1)), revisions


def test_a_killed_leader_is_replaced_and_the_rollout_completes(
    testbed: Testbed, replicas: Replicas, namespace: str, web: dict[str, Pushed]
) -> None:
    leader, follower = _leader_and_follower(replicas)
    repository = _release_at_v1(testbed, namespace, web, min_ready=8)
    assert replicas.holder() == leader
    # Per-AppRelease series from the leader only; apprelease_leader says who leads.
    wait_until(lambda: replicas.served_releases(0) == {"web"}, timeout=30, what="the leader serves web's series")
    assert replicas.served_releases(1) == set()
    assert (replicas.leader_gauge(0), replicas.leader_gauge(1)) == (1.0, 0.0)

    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    recorded = _in_progress(testbed, namespace, 2)
    replicas.signal(leader, signal.SIGKILL)

    replicas.wait_holder(follower)
    # The next status write can only be the follower's: the leader is dead.
    release = wait_ready(testbed, namespace, "web", "v1.1.0", timeout=120)
    assert release["metadata"]["resourceVersion"] != recorded["metadata"]["resourceVersion"]
    assert release["status"]["history"][0]["outcome"] == "Succeeded"
    _assert_history_unique_and_contiguous(release, 2)
    assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{web['v1.1.0'].digest}"}
    assert "now leads" in replicas.log(follower)
    wait_until(lambda: replicas.leader_gauge(1) == 1.0, timeout=30, what="apprelease_leader 1 on the new leader")
    assert replicas.served_releases(1) == {"web"}


def test_a_frozen_leader_stops_acting_and_exits_without_a_duplicate_revision(
    testbed: Testbed, replicas: Replicas, namespace: str, web: dict[str, Pushed]
) -> None:
    leader, follower = _leader_and_follower(replicas)
    _release_at_v1(testbed, namespace, web, min_ready=8)
    generation_at_v1 = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)["metadata"]["generation"]

    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    _in_progress(testbed, namespace, 2)
    replicas.signal(leader, signal.SIGSTOP)
    replicas.wait_holder(follower)
    time.sleep(20)  # the 20 s freeze: well past the lease
    replicas.signal(leader, signal.SIGCONT)

    wait_until(lambda: replicas.exit_code(leader) is not None, timeout=60, what="the old leader exits")
    assert replicas.exit_code(leader) == 1
    assert "lost Lease" in replicas.log(leader)

    release = wait_ready(testbed, namespace, "web", "v1.1.0", timeout=120)
    _assert_history_unique_and_contiguous(release, 2)
    # One patch for revision 2: the Deployment's spec changed once since v1 (a second patch of another
    # template would have moved its generation again).
    deployment = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert deployment["metadata"]["generation"] == generation_at_v1 + 1
    assert replicas.holder() == follower


def test_sigterm_releases_the_lease_and_the_follower_takes_over(
    testbed: Testbed, replicas: Replicas, namespace: str, web: dict[str, Pushed]
) -> None:
    leader, follower = _leader_and_follower(replicas)
    _release_at_v1(testbed, namespace, web, min_ready=0)
    replicas.signal(leader, signal.SIGTERM)
    wait_until(lambda: replicas.exit_code(leader) is not None, timeout=30, what="the leader stops")
    assert replicas.exit_code(leader) == 0
    assert "released Lease" in replicas.log(leader)
    replicas.wait_holder(follower, timeout=10)  # no waiting out the lease: it was released

    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    release = wait_ready(testbed, namespace, "web", "v1.1.0")
    _assert_history_unique_and_contiguous(release, 2)


def test_the_api_server_refuses_a_status_write_from_a_stale_resource_version(
    testbed: Testbed, replicas: Replicas, api: Any, namespace: str
) -> None:
    """Fencing on the real API server: the operator's own adapter, a status write conditional on a
    resourceVersion that another write has since replaced, is refused (409 -> Conflict) and changes nothing."""
    apply(testbed, release_manifest(namespace, "fenced", "127.0.0.1:5000/e2e/web", "v1.0.0", [{"name": "none"}]))
    cluster = KubernetesCluster(api, timeout_seconds=10)
    read = cluster.get_apprelease(namespace, "fenced")
    assert read is not None
    stale = Fields(read).sub("metadata").text("resourceVersion")
    assert stale
    fresh = cluster.patch_apprelease_status(namespace, "fenced", {"revision": 1}, stale)
    assert fresh != stale
    with pytest.raises(Conflict):
        cluster.patch_apprelease_status(namespace, "fenced", {"revision": 2}, stale)  # decided from the old read
    after = get_release(testbed, namespace, "fenced")
    assert after["status"]["revision"] == 1 and after["metadata"]["resourceVersion"] == fresh
    assert cluster.patch_apprelease_status(namespace, "fenced", {"revision": 2}, fresh) != fresh


def test_two_shards_split_the_appreleases_with_no_overlap_and_no_gap(
    testbed: Testbed, replicas: Replicas, namespace: str, web: dict[str, Pushed]
) -> None:
    """Two operators, shards a and b (the label), each with its own Lease: every AppRelease is reconciled, and
    each is in exactly one operator's per-AppRelease metrics (each leader serves what it watches)."""
    repository = web["v1.0.0"].repository
    names = [f"app-{i}" for i in range(6)]
    for slot, shard in enumerate(("a", "b")):
        replicas.start(slot, {"APPRELEASE_SHARD": shard})
    for i, name in enumerate(names):
        apply(testbed, deployment_manifest(namespace, name, {"web": f"{repository}:v1.0.0"}, release=name, replicas=1))
        manifest = release_manifest(namespace, name, repository, "v1.0.0", [{"kind": "Deployment", "name": name}])
        manifest["metadata"]["labels"] = {"apprelease.dev/shard": "ab"[i % 2]}
        apply(testbed, manifest)
    for name in names:
        wait_ready(testbed, namespace, name, "v1.0.0")
    leases = {
        lease["metadata"]["name"]: lease["spec"]["holderIdentity"]
        for lease in testbed.kubectl_json("get", "leases", "-n", namespace)["items"]
    }
    assert leases == {f"{replicas.lease}-a": "ha-0", f"{replicas.lease}-b": "ha-1"}
    served = [replicas.served_releases(slot) for slot in (0, 1)]
    assert served[0] == set(names[0::2]) and served[1] == set(names[1::2])
