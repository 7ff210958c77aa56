"""Metrics: exactly the README's names, types and labels, derived from AppRelease status as the watch sees it."""

from __future__ import annotations

import datetime as dt
import urllib.request
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apprelease.controller.metrics import Metrics
from apprelease.core import reference
from apprelease.registry import RegistryClient, RegistryError, RegistrySettings
from tests.scrape import samples, value

T0 = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=dt.UTC)
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64

# the README's "Metrics": name -> (type, labels)
CONTRACT = {
    "apprelease_info": ("gauge", {"namespace", "name", "version", "digest", "revision"}),
    "apprelease_condition": ("gauge", {"namespace", "name", "type", "status"}),
    "apprelease_revisions": ("counter", {"namespace", "name", "source", "cause"}),
    "apprelease_rollout_duration_seconds": ("histogram", {"namespace", "name", "outcome"}),
    "apprelease_reconcile_duration_seconds": ("histogram", {"result"}),
    "apprelease_registry_requests": ("counter", {"registry", "method", "code"}),
    "apprelease_workqueue_depth": ("gauge", set()),
    "apprelease_leader": ("gauge", set()),
    "apprelease_series_dropped": ("counter", set()),  # not in the README: issue 16, the per-AppRelease cap
    "apprelease_events_dropped": ("counter", set()),  # issue 19: the Event queue, or a namespace's share, full
}


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def entry(revision: int, version: str, digest: str, outcome: str, at: int, **extra: Any) -> dict[str, Any]:
    deployed = (T0 + dt.timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"revision": revision, "version": version, "digest": digest, "outcome": outcome, "deployedAt": deployed}
    return fields | extra


def status(history: list[dict[str, Any]], ready: str, reason: str = "Succeeded") -> dict[str, Any]:
    head = history[0] if history else {}
    return {
        "revision": head.get("revision", 0),
        "version": head.get("version"),
        "digest": head.get("digest"),
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason},
            {"type": "Reconciling", "status": "True" if ready == "False" else "False"},
            {"type": "Stalled", "status": "False"},
        ],
        "history": history,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(clock=clock)


def test_names_types_and_labels_are_the_contract(metrics: Metrics) -> None:
    metrics.observe_status("shop", "web", None)
    metrics.observe_status("shop", "web", status([entry(1, "v1", D1, "InProgress", 0)], "False", "Progressing"))
    metrics.observe_status("shop", "web", status([entry(1, "v1", D1, "Succeeded", 0)], "True"))
    metrics.reconcile("ok", 0.2)
    metrics.registry_request("127.0.0.1:5000", "head", 200)
    metrics.queue_depth(3)
    port = metrics.serve(0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        metrics.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families.keys() == CONTRACT.keys()
    for name, (kind, labels) in CONTRACT.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, sample
    assert "apprelease_revisions_total{" in text and "apprelease_registry_requests_total{" in text


def test_a_release_an_upgrade_a_rollback_and_a_failure(metrics: Metrics, clock: Clock) -> None:
    web = {"namespace": "shop", "name": "web"}
    metrics.observe_status("shop", "web", None)  # created: no status yet
    assert value(metrics, "apprelease_revisions_total", **web, source="Registry", cause="Spec") is None

    v1 = entry(1, "v1", D1, "InProgress", 0)
    metrics.observe_status("shop", "web", status([v1], "False", "Progressing"))
    assert value(metrics, "apprelease_revisions_total", **web, source="Registry", cause="Spec") == 1
    assert value(metrics, "apprelease_condition", **web, type="Ready", status="False") == 1
    assert value(metrics, "apprelease_condition", **web, type="Ready", status="True") == 0
    assert value(metrics, "apprelease_info", **web, version="v1", digest=D1, revision="1") == 1

    clock.now += 12
    v1 = v1 | {"outcome": "Succeeded"}
    metrics.observe_status("shop", "web", status([v1], "True"))
    metrics.observe_status("shop", "web", status([v1], "True"))  # a resync writes the same status again
    assert value(metrics, "apprelease_condition", **web, type="Ready", status="True") == 1
    assert value(metrics, "apprelease_rollout_duration_seconds_count", **web, outcome="Succeeded") == 1
    assert value(metrics, "apprelease_rollout_duration_seconds_sum", **web, outcome="Succeeded") == 12
    assert value(metrics, "apprelease_revisions_total", **web, source="Registry", cause="Spec") == 1

    # Upgrade, finished before the watch saw it in progress (events coalesce): still counted and timed.
    clock.now += 30
    v2 = entry(2, "v2", D2, "Succeeded", 20)
    metrics.observe_status("shop", "web", status([v2, v1 | {"outcome": "Superseded"}], "True"))
    assert value(metrics, "apprelease_revisions_total", **web, source="Registry", cause="Spec") == 2
    assert value(metrics, "apprelease_rollout_duration_seconds_sum", **web, outcome="Succeeded") == 12 + 22
    assert value(metrics, "apprelease_info", **web, version="v2", digest=D2, revision="2") == 1
    assert value(metrics, "apprelease_info", **web, version="v1", digest=D1, revision="1") is None

    # Rollback by field change: restored from history.
    v3 = entry(3, "v1", D1, "InProgress", 42, source="History", restoredFrom=1)
    metrics.observe_status("shop", "web", status([v3, v2, v1], "False", "Progressing"))
    assert value(metrics, "apprelease_revisions_total", **web, source="History", cause="Spec") == 1

    # It fails, and the operator rolls back on its own.
    clock.now += 60
    v3 = v3 | {"outcome": "Failed"}
    v4 = entry(4, "v2", D2, "InProgress", 100, source="History", restoredFrom=2, cause="AutoRollback")
    metrics.observe_status("shop", "web", status([v4, v3, v2, v1], "False", "RolledBack"))
    assert value(metrics, "apprelease_rollout_duration_seconds_count", **web, outcome="Failed") == 1
    assert value(metrics, "apprelease_rollout_duration_seconds_sum", **web, outcome="Failed") == 60
    assert value(metrics, "apprelease_revisions_total", **web, source="History", cause="AutoRollback") == 1
    assert value(metrics, "apprelease_condition", **web, type="Ready", status="False") == 1


def test_a_restarted_operator_does_not_count_what_was_there_and_still_times_what_runs(
    metrics: Metrics, clock: Clock
) -> None:
    history = [entry(3, "v3", D2, "InProgress", 0), entry(2, "v2", D1, "Succeeded", -100)]
    metrics.observe_status("shop", "web", status(history, "False", "Progressing"))
    assert (
        value(metrics, "apprelease_revisions_total", namespace="shop", name="web", source="Registry", cause="Spec")
        is None
    )
    clock.now += 5
    history[0] = history[0] | {"outcome": "Succeeded"}
    metrics.observe_status("shop", "web", status(history, "True"))
    assert (
        value(metrics, "apprelease_rollout_duration_seconds_sum", namespace="shop", name="web", outcome="Succeeded")
        == 5
    )


def test_a_deleted_release_leaves_no_series(metrics: Metrics) -> None:
    metrics.observe_status("shop", "web", status([entry(1, "v1", D1, "InProgress", 0)], "False", "Progressing"))
    metrics.observe_status("shop", "web", status([entry(1, "v1", D1, "Succeeded", 0)], "True"))
    metrics.observe_status("shop", "api", status([entry(1, "v1", D1, "InProgress", 0)], "False", "Progressing"))
    metrics.forget("shop", "web")
    metrics.forget("shop", "gone")  # never seen: nothing to do
    for sample in samples(metrics):
        assert sample.labels.get("name") != "web", sample
    assert value(metrics, "apprelease_condition", namespace="shop", name="api", type="Ready", status="False") == 1


def test_condition_types_that_disappear_are_dropped(metrics: Metrics) -> None:
    metrics.observe_status("shop", "web", status([], "False", "Progressing"))
    metrics.observe_status("shop", "web", {"conditions": [{"type": "Ready", "status": "True"}]})
    assert value(metrics, "apprelease_condition", namespace="shop", name="web", type="Stalled", status="False") is None
    assert value(metrics, "apprelease_condition", namespace="shop", name="web", type="Ready", status="True") == 1


def test_operator_calls(metrics: Metrics) -> None:
    metrics.reconcile("stalled", 0.01)
    metrics.reconcile("stalled", 0.03)
    with pytest.raises(ValueError, match="unknown reconcile result"):
        metrics.reconcile("fine", 1)
    metrics.registry_request("registry-1.docker.io", "GET", 429)
    metrics.registry_request("registry-1.docker.io", "GET", None)
    depth = [7]
    metrics.queue_depth_from(lambda: depth[0])
    assert value(metrics, "apprelease_reconcile_duration_seconds_count", result="stalled") == 2
    assert value(metrics, "apprelease_reconcile_duration_seconds_bucket", result="stalled", le="0.025") == 1
    assert (
        value(metrics, "apprelease_registry_requests_total", registry="registry-1.docker.io", method="GET", code="429")
        == 1
    )
    assert (
        value(
            metrics, "apprelease_registry_requests_total", registry="registry-1.docker.io", method="GET", code="error"
        )
        == 1
    )
    assert value(metrics, "apprelease_workqueue_depth") == 7
    depth[0] = 0
    assert value(metrics, "apprelease_workqueue_depth") == 0


def test_the_registry_client_hook_counts_requests_by_registry_method_and_code(metrics: Metrics) -> None:
    def registry(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    settings = RegistrySettings(insecure_registries=["reg.test:5000"], max_attempts=1)
    transport = httpx.MockTransport(registry)
    with RegistryClient(settings, on_request=metrics.registry_request, transport=transport) as client:
        with pytest.raises(RegistryError):
            client.resolve(reference.parse("reg.test:5000/shop/web:v1"))
    requests = [
        (s.labels["method"], s.labels["code"], s.value)
        for family in metrics.registry.collect()
        if family.name == "apprelease_registry_requests"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["registry"] == "reg.test:5000"
    ]
    assert requests and all(code == "404" for _, code, _ in requests), requests
    assert sum(count for _, _, count in requests) >= 1
