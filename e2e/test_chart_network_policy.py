"""The chart's NetworkPolicy and the metrics token (issue 16, cases 1 and 3): rendered by helm, and accepted by
the API server (dry-run). The test bed's CNI (the bridge plugin) does not enforce NetworkPolicy, so what the
policy admits is checked on what the API server stores, not with traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import Helm
from e2e.support import Testbed
from e2e.test_chart import CHART, _docs, _dry_run, _env, _one, _template, _values_file

API = {"apiServerCIDR": "192.0.2.10/32", "apiServerPort": 6443}  # TEST-NET-1: rendered, never contacted
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


def _policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(docs, "NetworkPolicy")["spec"]
    return spec


def _nothing_open_to_everyone(policy: dict[str, Any]) -> None:
    """No rule without peers: a rule with only ports admits every source or destination on them."""
    for rule in policy.get("ingress") or []:
        assert rule.get("from"), f"an ingress rule admits any source: {rule}"
    for rule in policy["egress"]:
        assert rule.get("to"), f"an egress rule admits any destination: {rule}"
        for peer in rule["to"]:
            assert peer != {} and peer.get("namespaceSelector") != {}, f"a peer selects everything: {rule}"


@pytest.mark.parametrize(
    "network_policy",
    [{"enabled": True}, {"enabled": True, "apiServerCIDR": ""}, {"enabled": True, "apiServerCIDR": []}],
    ids=["unset", "empty", "empty-list"],
)
def test_enabling_the_policy_without_the_api_server_address_fails_with_a_clear_message(
    helm: Helm, tmp_path: Path, namespace: str, network_policy: dict[str, Any]
) -> None:
    path = _values_file(tmp_path / "values.yaml", {"networkPolicy": network_policy})
    result = helm("template", "ar", str(CHART), "-n", namespace, "-f", path, check=False)
    assert result.returncode != 0, result.stdout
    assert "networkPolicy.enabled needs networkPolicy.apiServerCIDR" in result.stderr, result.stderr
    assert "NetworkPolicy" not in result.stdout


def test_the_default_policy_admits_no_ingress_and_dns_only_to_the_cluster_dns_pods(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    rendered = _template(helm, tmp_path, namespace, {"networkPolicy": {"enabled": True, **API}})
    for policy in (_policy(_docs(rendered)), _policy(_dry_run(testbed, rendered))):
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert not policy.get("ingress")  # isolated for ingress: only the node (the kubelet's probes) gets in
        dns, api = policy["egress"]
        assert dns == {"to": [KUBE_DNS], "ports": DNS_PORTS}
        assert api == {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"port": 6443, "protocol": "TCP"}]}
        _nothing_open_to_everyone(policy)


def test_prometheus_selectors_admit_scrapers_to_the_metrics_port_only(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    values = {
        "metrics": {"port": 9102},
        "networkPolicy": {
            "enabled": True,
            **API,
            "metrics": {
                "namespaceSelector": {"kubernetes.io/metadata.name": "monitoring"},
                "podSelector": {"app.kubernetes.io/name": "prometheus"},
                "from": [{"ipBlock": {"cidr": "192.0.2.64/26"}}],
            },
            "health": {"from": [{"podSelector": {"matchLabels": {"app": "blackbox"}}}]},
        },
    }
    rendered = _template(helm, tmp_path, namespace, values)
    for policy in (_policy(_docs(rendered)), _policy(_dry_run(testbed, rendered))):
        scrape, health = policy["ingress"]
        assert scrape == {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                },
                {"ipBlock": {"cidr": "192.0.2.64/26"}},
            ],
            "ports": [{"port": 9102, "protocol": "TCP"}],
        }
        assert health == {
            "from": [{"podSelector": {"matchLabels": {"app": "blackbox"}}}],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
        _nothing_open_to_everyone(policy)


def test_a_pod_selector_alone_admits_pods_of_the_release_namespace_only(
    helm: Helm, tmp_path: Path, namespace: str
) -> None:
    values = {"networkPolicy": {"enabled": True, **API, "metrics": {"podSelector": {"app": "prometheus"}}}}
    [scrape] = _policy(_docs(_template(helm, tmp_path, namespace, values)))["ingress"]
    assert scrape["from"] == [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]  # no namespaceSelector


def test_dns_peers_api_server_cidrs_and_registry_rules_can_be_given(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    registry = {"to": [{"ipBlock": {"cidr": "192.0.2.128/25"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    values = {
        "networkPolicy": {
            "enabled": True,
            "apiServerCIDR": ["192.0.2.1/32", "192.0.2.2/32"],
            "dns": {"to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}]},  # NodeLocal DNSCache
            "egress": [registry],
        }
    }
    rendered = _template(helm, tmp_path, namespace, values)
    for policy in (_policy(_docs(rendered)), _policy(_dry_run(testbed, rendered))):
        dns, api, extra = policy["egress"]
        assert dns == {"to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}], "ports": DNS_PORTS}
        assert [p["ipBlock"]["cidr"] for p in api["to"]] == ["192.0.2.1/32", "192.0.2.2/32"]
        assert extra == registry
        _nothing_open_to_everyone(policy)


def test_a_dns_rule_with_no_peer_is_refused(helm: Helm, tmp_path: Path, namespace: str) -> None:
    # null removes a default in Helm (an empty map would merge with it)
    values = {"networkPolicy": {"enabled": True, **API, "dns": {"namespaceSelector": None, "podSelector": None}}}
    path = _values_file(tmp_path / "values.yaml", values)
    result = helm("template", "ar", str(CHART), "-n", namespace, "-f", path, check=False)
    assert result.returncode != 0 and "networkPolicy.dns needs" in result.stderr, result.stderr


def test_the_metrics_token_secret_is_mounted_and_sent_by_the_monitors(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    values = {
        "metrics": {
            "auth": {"tokenSecret": "scrape-token", "tokenKey": "bearer"},
            "serviceMonitor": {"enabled": True},
            "podMonitor": {"enabled": True},
        }
    }
    docs = _docs(_template(helm, tmp_path, namespace, values))
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert _env(container)["APPRELEASE_METRICS_TOKEN_FILE"] == "/etc/apprelease/metrics-token/token"
    assert {"name": "metrics-token", "mountPath": "/etc/apprelease/metrics-token", "readOnly": True} in container[
        "volumeMounts"
    ]
    volume = {
        "name": "metrics-token",
        "secret": {"secretName": "scrape-token", "defaultMode": 0o440, "items": [{"key": "bearer", "path": "token"}]},
    }
    assert volume in pod["volumes"]
    authorization = {"type": "Bearer", "credentials": {"name": "scrape-token", "key": "bearer"}}
    assert _one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["authorization"] == authorization
    assert _one(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["authorization"] == authorization
    # The test bed has no Prometheus Operator CRDs: the API server checks the rest.
    plain = _template(helm, tmp_path, namespace, {"metrics": {"auth": values["metrics"]["auth"]}})
    answered = _one(_dry_run(testbed, plain), "Deployment")["spec"]["template"]["spec"]
    assert volume in answered["volumes"]

    untouched = _one(_docs(_template(helm, tmp_path, namespace, {})), "Deployment")["spec"]["template"]["spec"]
    assert "APPRELEASE_METRICS_TOKEN_FILE" not in _env(untouched["containers"][0])
    assert all(v["name"] != "metrics-token" for v in untouched["volumes"])


def test_lint_is_clean_with_the_policy_and_the_token(helm: Helm, tmp_path: Path) -> None:
    values = {
        "networkPolicy": {"enabled": True, **API, "metrics": {"podSelector": {"app": "prometheus"}}},
        "metrics": {"auth": {"tokenSecret": "scrape-token"}, "serviceMonitor": {"enabled": True}},
    }
    result = helm("lint", "--strict", str(CHART), "-f", _values_file(tmp_path / "v.yaml", values), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "[WARNING]" not in output and "[ERROR]" not in output, output
