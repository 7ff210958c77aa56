"""The chart's metrics plumbing: a metrics Service always, ServiceMonitor/PodMonitor and scrape annotations
only when asked, all pointing at the container's "metrics" port (helm template, and the API server's dry run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from e2e.conftest import Helm
from e2e.support import Testbed
from e2e.test_chart import CHART, _docs, _dry_run, _env, _one, _template, _values_file

MONITORS = {"ServiceMonitor", "PodMonitor"}


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    template: dict[str, Any] = _one(docs, "Deployment")["spec"]["template"]
    return template


def test_default_render_has_a_metrics_service_and_no_monitor_or_scrape_annotation(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    rendered = _template(helm, tmp_path, namespace, {})
    docs = _docs(rendered)
    assert not MONITORS & {d["kind"] for d in docs}
    pod = _pod(docs)
    assert not any(k.startswith("prometheus.io/") for k in (pod["metadata"].get("annotations") or {}))
    [container] = pod["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert _env(container)["APPRELEASE_METRICS_PORT"] == "8081"

    service = _one(docs, "Service")
    assert service["metadata"]["name"] == "ar-apprelease-operator-metrics"
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == _one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    answered = _one(_dry_run(testbed, rendered), "Service")
    assert answered["spec"]["ports"][0]["targetPort"] == "metrics"


def test_monitors_and_annotations_render_only_when_asked_and_select_the_right_objects(
    helm: Helm, tmp_path: Path, namespace: str
) -> None:
    values = {
        "metrics": {
            "port": 9102,
            "scrapeAnnotations": True,
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}, "interval": "15s"},
            "podMonitor": {"enabled": True},
        }
    }
    docs = _docs(_template(helm, tmp_path, namespace, values))
    pod = _pod(docs)
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9102",
        "prometheus.io/path": "/metrics",
    }
    [container] = pod["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9102, "protocol": "TCP"} in container["ports"]
    assert _env(container)["APPRELEASE_METRICS_PORT"] == "9102"

    service = _one(docs, "Service")
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [namespace]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")

    pod_monitor = _one(docs, "PodMonitor")
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_a_service_monitor_without_its_service_is_refused(helm: Helm, tmp_path: Path, namespace: str) -> None:
    values = {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    path = _values_file(tmp_path / "values.yaml", values)
    result = helm("template", "ar", str(CHART), "-n", namespace, "-f", path, check=False)
    assert result.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in result.stderr


def test_lint_is_clean_with_every_metrics_option(helm: Helm, tmp_path: Path) -> None:
    values = {
        "metrics": {"scrapeAnnotations": True, "serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}
    }
    result = helm("lint", "--strict", str(CHART), "-f", _values_file(tmp_path / "v.yaml", values), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "[WARNING]" not in output and "[ERROR]" not in output, output
    assert yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["scrapeAnnotations"] is False


def test_the_grafana_dashboard_configmap_carries_the_dashboard_file(helm: Helm, tmp_path: Path, namespace: str) -> None:
    assert not [d for d in _docs(_template(helm, tmp_path, namespace, {})) if d["kind"] == "ConfigMap"]
    values = {"metrics": {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}}
    config_map = _one(_docs(_template(helm, tmp_path, namespace, values)), "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"]["apprelease.json"] == (CHART / "dashboards" / "apprelease.json").read_text().rstrip("\n")


def test_the_network_policy_lets_only_the_named_scrapers_reach_the_metrics_port(
    helm: Helm, tmp_path: Path, namespace: str
) -> None:
    values: dict[str, Any] = {
        "networkPolicy": {"enabled": True, "apiServerCIDR": "192.0.2.1/32"},
        "metrics": {"port": 9102},
    }
    policy = _one(_docs(_template(helm, tmp_path, namespace, values)), "NetworkPolicy")
    assert not policy["spec"].get("ingress")  # nobody named: nobody admitted (the node's kubelet always is)
    values["networkPolicy"]["metrics"] = {"namespaceSelector": {"kubernetes.io/metadata.name": "monitoring"}}
    policy = _one(_docs(_template(helm, tmp_path, namespace, values)), "NetworkPolicy")
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9102, "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
