"""A running operator's series stay bounded whatever tenants write (issue 16, case 2): registry hosts beyond
APPRELEASE_METRICS_MAX_REGISTRIES are `other`, and AppReleases beyond APPRELEASE_METRICS_MAX_RELEASES have no
series but are counted in apprelease_series_dropped_total. Its own operator process (own ports), with no
allowed registries: the single-tenant setting where hosts are the tenants' choice."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.releases import apply, deployment_manifest, release_manifest
from e2e.support import ROOT, Operator, Testbed, wait_until

PORTS = {"APPRELEASE_HEALTH_PORT": "18280", "APPRELEASE_METRICS_PORT": "18290"}
# Registries named by tenants: closed ports on loopback (each request fails before a byte is sent back).
HOSTS = [f"127.0.0.1:{port}" for port in (39901, 39902, 39903, 39904, 39905)]

Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture
def bounded_operator(testbed: Testbed, crd_installed: None, namespace: str) -> Iterator[Operator]:
    op = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / f"operator-{namespace}.log",
        extra_env={
            **PORTS,
            "APPRELEASE_WATCH_NAMESPACES": namespace,
            "APPRELEASE_ALLOWED_REGISTRIES": "",
            "APPRELEASE_INSECURE_REGISTRIES": ",".join(HOSTS),
            "APPRELEASE_METRICS_MAX_REGISTRIES": "2",
            "APPRELEASE_METRICS_MAX_RELEASES": "2",
        },
    )
    op.start()
    yield op
    op.stop()


def scrape() -> Samples:
    url = f"http://127.0.0.1:{PORTS['APPRELEASE_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_tenant_hosts_and_apprelease_counts_beyond_the_caps_are_folded_and_counted(
    testbed: Testbed, bounded_operator: Operator, namespace: str
) -> None:
    for i, host in enumerate(HOSTS):
        name = f"app-{i}"
        apply(testbed, deployment_manifest(namespace, name, {"app": f"{host}/t/app:v0"}, release=name, replicas=0))
        apply(
            testbed,
            release_manifest(namespace, name, f"{host}/t/app", "v1.0.0", [{"kind": "Deployment", "name": name}]),
        )

    def folded() -> Samples | None:
        samples = scrape()
        registries = {labels["registry"] for name, labels, _ in samples if name == "apprelease_registry_requests_total"}
        dropped = sum(v for name, _, v in samples if name == "apprelease_series_dropped_total")
        return samples if "other" in registries and dropped > 0 else None

    samples = wait_until(folded, timeout=60, interval=1, what="requests to 5 hosts and updates of 5 AppReleases")
    requests = [labels for name, labels, _ in samples if name == "apprelease_registry_requests_total"]
    registries = {labels["registry"] for labels in requests}
    assert len(registries) == 3 and "other" in registries and registries - {"other"} <= set(HOSTS), registries
    assert {labels["code"] for labels in requests} == {"error"}  # nothing answered: closed ports
    with_series = {labels["name"] for name, labels, _ in samples if name == "apprelease_condition"}
    assert len(with_series) <= 2, with_series
    assert any(name == "apprelease_series_dropped_total" and v > 0 for name, _, v in samples)
