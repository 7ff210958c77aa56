"""Label values from tenants and registries stay a bounded set (issue 16, case 2)."""

from __future__ import annotations

import pytest

from apprelease.controller.metric_labels import RegistryLabels, method, status_code
from apprelease.controller.metrics import Metrics
from tests.scrape import samples

D1 = "sha256:" + "1" * 64


def series(metrics: Metrics, family: str) -> list[dict[str, str]]:
    """The label sets of a family as /metrics shows it."""
    return [s.labels for s in samples(metrics, family)]


def ready(version: str = "v1", revision: int = 1) -> dict[str, object]:
    return {
        "version": version,
        "digest": D1,
        "revision": revision,
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "Stalled", "status": "False"}],
        "history": [{"revision": revision, "version": version, "digest": D1, "outcome": "Succeeded"}],
    }


@pytest.mark.parametrize(
    ("code", "label"),
    [(200, "200"), (401, "401"), (403, "403"), (404, "404"), (429, "429"), (201, "2xx"), (307, "3xx"),
     (418, "4xx"), (503, "5xx"), (599, "5xx"), (None, "error"), (0, "other"), (999, "other"), (-1, "other")],
)  # fmt: skip
def test_status_codes_are_bucketed(code: int | None, label: str) -> None:
    assert status_code(code) == label


def test_methods_are_the_client_s_or_other() -> None:
    assert [method(m) for m in ("head", "GET", "PROPFIND")] == ["HEAD", "GET", "other"]


def test_with_allowed_registries_the_label_is_the_pattern_or_other() -> None:
    label = RegistryLabels(["registry.example.com", "*.corp.example:5000"])
    assert label("registry.example.com") == "registry.example.com"
    assert label("Registry.Example.com") == "registry.example.com"
    assert label("a.corp.example:5000") == label("b.c.corp.example:5000") == "*.corp.example:5000"
    assert label("auth.example.com") == "other"  # a token service or a redirect target elsewhere
    assert label("registry.example.com:5000") == "other"


def test_without_allowed_registries_the_first_hosts_keep_their_name_and_the_rest_are_other() -> None:
    label = RegistryLabels([], max_distinct=3)
    labels = [label(h) for h in ("a:1", "b:1", "a:1", "c:1", "d:1", "b:1")]
    assert labels == ["a:1", "b:1", "a:1", "c:1", "other", "b:1"]


def test_a_hundred_thousand_tenant_hosts_make_a_bounded_number_of_series() -> None:
    metrics = Metrics(max_registries=32)
    for i in range(100_000):
        metrics.registry_request(f"host-{i}.tenant.example:{1000 + i % 60000}", "GET", 200 + i % 400)
    samples = series(metrics, "apprelease_registry_requests")
    assert len({s["registry"] for s in samples}) == 33  # 32 names and "other"
    assert {s["code"] for s in samples} <= {"200", "401", "403", "404", "429", "2xx", "3xx", "4xx", "5xx"}
    total = sum(s.value for f in metrics.registry.collect() if f.name == "apprelease_registry_requests"
                for s in f.samples if s.name.endswith("_total"))  # fmt: skip
    assert total == 100_000  # folded, not lost


def test_allowed_registries_reach_the_metrics_label() -> None:
    metrics = Metrics(allowed_registries=["registry.example.com"])
    metrics.registry_request("registry.example.com", "HEAD", 200)
    metrics.registry_request("evil.example:53", "GET", 302)
    assert sorted((s["registry"], s["code"]) for s in series(metrics, "apprelease_registry_requests")) == [
        ("other", "3xx"),
        ("registry.example.com", "200"),
    ]


def test_per_apprelease_series_stop_at_the_cap_and_the_drops_are_counted() -> None:
    metrics = Metrics(max_releases=3)
    for i in range(5):
        metrics.observe_status("shop", f"app-{i}", ready())
    names = {s["name"] for s in series(metrics, "apprelease_info")}
    assert names == {"app-0", "app-1", "app-2"}
    assert metrics.registry.get_sample_value("apprelease_series_dropped_total") == 2
    metrics.observe_status("shop", "app-4", ready())  # every update of an untracked one counts
    assert metrics.registry.get_sample_value("apprelease_series_dropped_total") == 3
    metrics.revision("shop", "app-4", "Registry", "Spec")
    metrics.rollout_finished("shop", "app-4", "Succeeded", 3)
    assert metrics.registry.get_sample_value("apprelease_series_dropped_total") == 5
    assert not [s for s in series(metrics, "apprelease_revisions") if s["name"] == "app-4"]

    metrics.forget("shop", "app-0")  # a slot frees: the next update of another takes it
    metrics.observe_status("shop", "app-4", ready())
    assert {s["name"] for s in series(metrics, "apprelease_info")} == {"app-1", "app-2", "app-4"}


def test_labels_copied_from_status_are_the_known_values_only() -> None:
    metrics = Metrics()
    status = ready()
    status["conditions"] = [{"type": f"Tenant{i}", "status": "True"} for i in range(50)] + [
        {"type": "Ready", "status": "True"}
    ]
    metrics.observe_status("shop", "web", status)
    assert {s["type"] for s in series(metrics, "apprelease_condition")} == {"Ready"}
    metrics.revision("shop", "web", "Somewhere" * 10, "Because")
    assert {(s["source"], s["cause"]) for s in series(metrics, "apprelease_revisions")} == {("other", "other")}
    with pytest.raises(ValueError, match="unknown rollout outcome"):
        metrics.rollout_finished("shop", "web", "Whatever", 1)
