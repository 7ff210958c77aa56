"""The running operator's /metrics after a release, an upgrade, a rollback, a failed rollout and a deletion."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from e2e.images import Pushed
from e2e.releases import apply, deployment_manifest, patch_release, release_manifest, wait_condition, wait_ready
from e2e.support import Operator, Testbed, wait_until
from e2e.test_release_safety import _settled_rollback, _start_good_then_upgrade

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(testbed: Testbed) -> Samples:
    port = testbed.operator_env()["APPRELEASE_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape_until(testbed: Testbed, ready: Callable[[Samples], Any], what: str) -> Samples:
    """Scrape until `ready` holds: the metrics follow the watch, a moment after the status is written."""

    def check() -> Samples | None:
        samples = scrape(testbed)
        return samples if ready(samples) else None

    result: Samples = wait_until(check, timeout=30, what=what)
    return result


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def series(samples: Samples, metric: str, **labels: str) -> list[dict[str, str]]:
    """Label sets of `metric` that contain `labels`."""
    return [dict(key) for (n, key) in samples if n == metric and frozenset(labels.items()) <= key]


def deployment(namespace: str, name: str, image: str, **spec: Any) -> dict[str, Any]:
    manifest = deployment_manifest(namespace, name, {name: image}, release=name, replicas=1)
    manifest["spec"].update(spec)
    return manifest


def test_metrics_follow_a_release_an_upgrade_a_rollback_a_failure_and_a_deletion(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    v1, v2 = web["v1.0.0"].digest, web["v1.1.0"].digest
    ns = {"namespace": namespace, "name": "web"}
    before = scrape(testbed)
    reconciles_before = value(before, "apprelease_reconcile_duration_seconds_count", result="ok") or 0

    apply(testbed, deployment(namespace, "web", f"{repository}:v1.0.0"))
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    wait_ready(testbed, namespace, "web", "v1.0.0")
    m = scrape_until(
        testbed,
        lambda s: value(s, "apprelease_info", **ns, version="v1.0.0", digest=v1, revision="1"),
        "apprelease_info of revision 1",
    )
    assert value(m, "apprelease_condition", **ns, type="Ready", status="True") == 1
    assert value(m, "apprelease_condition", **ns, type="Ready", status="False") == 0
    assert value(m, "apprelease_condition", **ns, type="Stalled", status="True") == 0
    assert value(m, "apprelease_revisions_total", **ns, source="Registry", cause="Spec") == 1
    assert value(m, "apprelease_rollout_duration_seconds_count", **ns, outcome="Succeeded") == 1
    first_rollout = value(m, "apprelease_rollout_duration_seconds_sum", **ns, outcome="Succeeded")
    assert first_rollout is not None and 0 <= first_rollout < 90
    assert (value(m, "apprelease_reconcile_duration_seconds_count", result="ok") or 0) > reconciles_before
    assert value(m, "apprelease_workqueue_depth") is not None
    to_registry = series(m, "apprelease_registry_requests_total", registry=testbed.registry)
    assert any(labels["code"] == "200" for labels in to_registry), to_registry  # resolved: HEAD/GET answered 200

    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    wait_ready(testbed, namespace, "web", "v1.1.0")
    m = scrape_until(
        testbed,
        lambda s: value(s, "apprelease_info", **ns, version="v1.1.0", digest=v2, revision="2"),
        "apprelease_info of revision 2",
    )
    assert series(m, "apprelease_info", **ns) == [{**ns, "version": "v1.1.0", "digest": v2, "revision": "2"}]
    assert value(m, "apprelease_revisions_total", **ns, source="Registry", cause="Spec") == 2
    assert value(m, "apprelease_rollout_duration_seconds_count", **ns, outcome="Succeeded") == 2

    patch_release(testbed, namespace, "web", {"version": "v1.0.0"})  # rollback by field change
    wait_ready(testbed, namespace, "web", "v1.0.0")
    m = scrape_until(
        testbed,
        lambda s: value(s, "apprelease_info", **ns, version="v1.0.0", digest=v1, revision="3"),
        "apprelease_info of revision 3",
    )
    assert value(m, "apprelease_revisions_total", **ns, source="History", cause="Spec") == 1
    assert value(m, "apprelease_revisions_total", **ns, source="Registry", cause="Spec") == 2
    assert value(m, "apprelease_rollout_duration_seconds_count", **ns, outcome="Succeeded") == 3

    # A rollout that cannot finish: its pods fit no node, and the Deployment's progress deadline passes.
    broken = {"namespace": namespace, "name": "broken"}
    apply(
        testbed,
        deployment(
            namespace, "broken", f"{repository}:v1.0.0", progressDeadlineSeconds=5,
            template={"metadata": {"labels": {"app": "broken"}},
                      "spec": {"containers": [{"name": "broken", "image": f"{repository}:v1.0.0"}],
                               "nodeSelector": {"apprelease.dev/e2e": "no-such-node"}}},
        ),
    )  # fmt: skip
    apply(
        testbed, release_manifest(namespace, "broken", repository, "v1.0.0", [{"kind": "Deployment", "name": "broken"}])
    )
    wait_condition(testbed, namespace, "broken", "Ready", "False", "RolloutFailed", timeout=90)
    m = scrape_until(
        testbed,
        lambda s: value(s, "apprelease_rollout_duration_seconds_count", **broken, outcome="Failed"),
        "a failed rollout in the metrics",
    )
    assert value(m, "apprelease_rollout_duration_seconds_count", **broken, outcome="Failed") == 1
    failed_after = value(m, "apprelease_rollout_duration_seconds_sum", **broken, outcome="Failed")
    assert failed_after is not None and failed_after >= 4  # not before the 5 s deadline (whole seconds)
    assert value(m, "apprelease_condition", **broken, type="Ready", status="False") == 1
    assert value(m, "apprelease_revisions_total", **broken, source="Registry", cause="Spec") == 1
    assert series(m, "apprelease_info", **broken)  # it did deploy revision 1; it just never came up

    # A refused spec: Stalled, and its reconciles are counted as such.
    stalled_before = value(m, "apprelease_reconcile_duration_seconds_count", result="stalled") or 0
    apply(testbed, deployment(namespace, "refused", f"{repository}:v1.0.0"))
    refused = release_manifest(
        namespace,
        "refused",
        repository,
        "v1.0.0",
        [{"kind": "Deployment", "name": "refused"}],
        digest="sha256:" + "0" * 64,
    )
    apply(testbed, refused)
    wait_condition(testbed, namespace, "refused", "Stalled", "True", "DigestMismatch")
    m = scrape_until(
        testbed,
        lambda s: value(s, "apprelease_condition", namespace=namespace, name="refused", type="Stalled", status="True"),
        "the Stalled condition in the metrics",
    )
    assert (value(m, "apprelease_reconcile_duration_seconds_count", result="stalled") or 0) > stalled_before

    testbed.kubectl("delete", "appreleases.apprelease.dev", "broken", "-n", namespace)
    m = scrape_until(
        testbed,
        lambda s: not [k for (_, k) in s if ("name", "broken") in k],
        "the deleted AppRelease's series to go",
    )
    assert value(m, "apprelease_condition", **ns, type="Ready", status="True") == 1  # the other one stays


def test_metrics_of_an_automatic_rollback(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    shop = {"namespace": namespace, "name": "shop"}
    _start_good_then_upgrade(testbed, namespace, web, {"Deployment": "web"}, "CrashLoopBackOff")
    _settled_rollback(testbed, namespace, "shop")
    m = scrape_until(
        testbed,
        lambda s: value(s, "apprelease_revisions_total", **shop, source="History", cause="AutoRollback"),
        "the automatic rollback in the metrics",
    )
    assert value(m, "apprelease_revisions_total", **shop, source="History", cause="AutoRollback") == 1
    assert value(m, "apprelease_revisions_total", **shop, source="Registry", cause="Spec") == 2
    assert value(m, "apprelease_rollout_duration_seconds_count", **shop, outcome="Failed") == 1
    assert value(m, "apprelease_condition", **shop, type="Stalled", status="True") == 1
    good = web["v1.0.0"]
    assert series(m, "apprelease_info", **shop) == [
        {**shop, "version": "v1.0.0", "digest": good.digest, "revision": "3"}
    ]
