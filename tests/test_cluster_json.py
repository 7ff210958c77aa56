"""KubernetesCluster reads workloads, pods and ReplicaSets as the API server's JSON: the client's typed models
would drop fields they do not know (a newer API server's) and cost a reconcile most of its CPU (issue 19).
The seam: the generated client's REST layer, answered in memory (no connection)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import RESTResponse

from apprelease.controller import cluster as cluster_module
from apprelease.controller.cluster import KubernetesCluster
from apprelease.core.workloads import Kind


class Raw:
    """What urllib3 hands the client: status, reason, headers, bytes."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.reason = status, "OK" if status < 300 else "Not Found"
        self.data = json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json"}


def deployment(**extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "generation": 3, "uid": "u1"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                # A field this client's models do not know, as a newer API server may send.
                "spec": {"containers": [{"name": "web", "image": "r/web:1", "futureField": {"x": 1}}]},
            },
            **extra,
        },
    }


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> tuple[KubernetesCluster, list[tuple[str, str, Raw]]]:
    api = client.ApiClient(client.Configuration(host="https://apiserver.invalid"))
    routes: list[tuple[str, str, Raw]] = []

    def request(method: str, url: str, *_: Any, **__: Any) -> RESTResponse:
        for verb, path, raw in routes:
            if verb == method and path in url:
                return RESTResponse(raw)
        raise AssertionError(f"unexpected {method} {url}")

    monkeypatch.setattr(api.rest_client, "request", request)
    return KubernetesCluster(api), routes


def test_a_workload_is_read_and_patched_as_the_api_servers_json(
    answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]],
) -> None:
    cluster, routes = answers
    routes.append(("GET", "/deployments/web", Raw(200, deployment())))
    routes.append(("PATCH", "/deployments/web", Raw(200, deployment(replicas=2))))
    read = cluster.get_workload(Kind.DEPLOYMENT, "prod", "web")
    assert read == deployment()  # every field, camelCase as sent, nothing dropped or added
    patched = cluster.patch_workload(Kind.DEPLOYMENT, "prod", "web", {"spec": {"replicas": 2}})
    assert patched == deployment(replicas=2)


def test_a_missing_workload_is_none(answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]]) -> None:
    cluster, routes = answers
    routes.append(("GET", "/deployments/gone", Raw(404, {"kind": "Status", "code": 404})))
    assert cluster.get_workload(Kind.DEPLOYMENT, "prod", "gone") is None


def test_pods_and_replica_sets_are_listed_as_json(
    answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]],
) -> None:
    cluster, routes = answers
    pod = {"metadata": {"name": "web-1", "futureMeta": "kept"}, "status": {"phase": "Running"}}
    routes.append(("GET", "/pods", Raw(200, {"kind": "PodList", "items": [pod]})))
    routes.append(("GET", "/replicasets", Raw(200, {"kind": "ReplicaSetList", "items": []})))
    assert cluster.list_pods("prod", "app=web") == [pod]
    assert cluster.list_replica_sets("prod", "app=web") == []


def test_a_service_accounts_pull_secrets_are_read_once_per_period_per_account(
    answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wave of new AppReleases in one namespace read its ServiceAccount once per pin (issue 19).
    cluster, routes = answers
    many = [{"name": f"s{i}"} for i in range(cluster_module.MAX_ACCOUNT_PULL_SECRETS + 5)]
    reads: list[str] = []
    for namespace, secrets in (("prod", [{"name": "pull"}]), ("other", many)):
        account = {"metadata": {"name": "default", "namespace": namespace}, "imagePullSecrets": secrets}
        routes.append(("GET", f"/namespaces/{namespace}/serviceaccounts/default", Raw(200, account)))
    routes.append(("GET", "/namespaces/gone/serviceaccounts/default", Raw(404, {"kind": "Status", "code": 404})))
    real = cluster._core.read_namespaced_service_account

    def counted(name: str, namespace: str, **kwargs: Any) -> Any:
        reads.append(namespace)
        return real(name, namespace, **kwargs)

    monkeypatch.setattr(cluster._core, "read_namespaced_service_account", counted)
    for _ in range(3):
        assert cluster.get_service_account_pull_secrets("prod", "default") == ["pull"]
        assert cluster.get_service_account_pull_secrets("gone", "default") == []
        kept = cluster.get_service_account_pull_secrets("other", "default")
    assert kept == [f"s{i}" for i in range(cluster_module.MAX_ACCOUNT_PULL_SECRETS)]  # bounded per account
    assert reads == ["prod", "gone", "other"]  # one read per account, never another namespace's answer
    cluster._accounts.expire(time=cluster._accounts.timer() + cluster_module.SERVICE_ACCOUNT_SECONDS + 1)
    assert cluster.get_service_account_pull_secrets("prod", "default") == ["pull"]
    assert reads[-1] == "prod" and len(reads) == 4  # read again after the period
