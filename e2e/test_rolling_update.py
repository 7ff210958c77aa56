"""A rolling update of the chart's Deployment, two replicas as real pods on the real node (issue 19, test 3):
`helm upgrade` changes the pod template; the old leader's pod is deleted (SIGTERM), releases the Lease, and
another replica holds it; reconciling goes on. The hand-over time is printed here and measured in `make bench`
(e2e/bench_ha.py), never asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e.conftest import Helm
from e2e.handover import CHART, POD_SELECTOR, Watcher, chart_values, write_values
from e2e.images import Pushed, bake, make_app_repo
from e2e.realnode import on_real_node
from e2e.releases import apply, deployment_manifest, release_manifest, wait_ready
from e2e.support import Operator, Testbed, wait_until


@pytest.fixture
def chart_release(helm: Helm, namespace: str, operator: Operator) -> Iterator[str]:
    """A release name of its own (the chart makes a cluster-scoped ClusterRole), uninstalled afterwards; the
    session's operator process (every namespace) paused meanwhile, so only the chart's pods reconcile here."""
    operator.stop()
    name = f"ru-{namespace[-5:]}"
    try:
        yield name
    finally:
        helm("uninstall", name, "-n", namespace, "--wait", check=False)
        operator.start()


def _live_pods(testbed: Testbed, namespace: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = testbed.kubectl_json("get", "pods", "-n", namespace, "-l", POD_SELECTOR)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _pods_of(testbed: Testbed, namespace: str, count: int) -> list[dict[str, Any]] | None:
    pods = _live_pods(testbed, namespace)
    return pods if len(pods) == count else None


def _new_pair(testbed: Testbed, namespace: str, old: set[str]) -> set[str] | None:
    names = {p["metadata"]["name"] for p in _live_pods(testbed, namespace)}
    return names if len(names) == 2 and not names & old else None


def _install(helm: Helm, verb: str, release: str, namespace: str, values: Path) -> None:
    helm(verb, release, str(CHART), "-n", namespace, "--skip-crds", "-f", str(values), "--wait", "--timeout", "240s")


def test_a_rolling_update_of_the_chart_hands_the_lease_over_and_reconciling_goes_on(
    testbed: Testbed,
    api: client.ApiClient,
    namespace: str,
    real_node: str,
    helm: Helm,
    operator_image: Pushed,
    chart_release: str,
    crd_installed: None,
    tmp_path: Path,
) -> None:
    lease = f"{chart_release}-apprelease-operator"  # the chart's full name: leaderElection.leaseName's default
    values = tmp_path / "values.yaml"
    _install(
        helm,
        "install",
        chart_release,
        namespace,
        write_values(values, chart_values(testbed, operator_image, namespace)),
    )
    watcher = Watcher(api, namespace, lease)
    try:
        old_pods = wait_until(lambda: _pods_of(testbed, namespace, 2), timeout=60, what="two operator pods")
        assert {p["spec"]["nodeName"] for p in old_pods} == {real_node}
        old_names = {p["metadata"]["name"] for p in old_pods}
        leader = wait_until(lambda: watcher.holder() in old_names and watcher.holder(), timeout=60, what="a leader")

        write_values(values, chart_values(testbed, operator_image, namespace, rollout=1))
        _install(helm, "upgrade", chart_release, namespace, values)
        new_names: set[str] = wait_until(
            lambda: _new_pair(testbed, namespace, old_names), timeout=120, what="two new operator pods, the old gone"
        )
        new_leader = wait_until(
            lambda: watcher.holder() in new_names and watcher.holder(), timeout=60, what="a new leader"
        )
        assert new_leader != leader
        handovers = watcher.handovers()
        first = handovers[0]
        assert first.old == leader and first.released_at is not None, handovers  # released, not waited out
        assert first.deleted_at is not None and first.deleted_at <= first.released_at <= first.acquired_at
        for handover in handovers:
            print(
                f"hand-over {handover.old} -> {handover.new}: {handover.from_sigterm_ms():.0f} ms from the pod's "
                f"deletion (SIGTERM), {handover.from_release_ms():.0f} ms from the Lease's release"
            )
    finally:
        watcher.stop()

    # Reconciling goes on under the new leader: an AppRelease made now becomes Ready, its app on the real node.
    path = tmp_path / "app"
    commits = make_app_repo(path, testbed.base_image, ["v1.0.0"])
    bake((path, commits), f"{testbed.registry}/e2e/ru-web", "v1.0.0")
    repository = f"{testbed.pod_registry}/e2e/ru-web"
    web = on_real_node(
        deployment_manifest(namespace, "web", {"web": f"{repository}:v1.0.0"}, replicas=1, release="web"), "web"
    )
    apply(testbed, web)
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    release = wait_ready(testbed, namespace, "web", "v1.0.0", timeout=120)
    assert release["status"]["history"][0]["revision"] == 1
    events = testbed.kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=AppRelease"
    )
    assert {e.get("reportingInstance") for e in events["items"]} == {new_leader}
