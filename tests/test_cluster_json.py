"""KubernetesCluster reads workloads, pods and ReplicaSets as the API server's JSON: the client's typed models
would drop fields they do not know (a newer API server's) and cost a reconcile most of its CPU (issue 19).
The seam: the generated client's REST layer, answered in memory (no connection)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import RESTResponse

from apprelease.controller.cluster import KubernetesCluster
from apprelease.controller.seenversions import SeenVersions
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


def _api(routes: list[tuple[str, str, Raw]]) -> client.ApiClient:
    """A client whose REST layer answers from `routes` (the first whose verb matches and whose path is part of
    the URL), in memory."""
    api = client.ApiClient(client.Configuration(host="https://apiserver.invalid"))

    def request(method: str, url: str, *_: Any, **__: Any) -> RESTResponse:
        for verb, path, raw in routes:
            if verb == method and path in url:
                return RESTResponse(raw)
        raise AssertionError(f"unexpected {method} {url}")

    api.rest_client.request = request  # type: ignore[method-assign]
    return api


@pytest.fixture
def answers() -> tuple[KubernetesCluster, list[tuple[str, str, Raw]]]:
    routes: list[tuple[str, str, Raw]] = []
    return KubernetesCluster(_api(routes)), routes


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


def test_the_operator_reads_an_apprelease_from_the_watch_cache_never_older_than_it_has_seen(
    answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]],
) -> None:
    _, routes = answers
    versions = SeenVersions()
    cluster = KubernetesCluster(_api(routes), versions=versions)
    release = {"apiVersion": "apprelease.dev/v1alpha1", "kind": "AppRelease", "metadata": {"name": "web"}}
    written = release | {"metadata": {"name": "web", "resourceVersion": "1200"}}
    # Never seen: a quorum read (no resourceVersion).
    routes.append(("GET", "/namespaces/prod/appreleases/new", Raw(200, release)))
    assert cluster.get_apprelease("prod", "new") == release
    # Seen in an event: not older than it, from the watch cache.
    versions.note(("prod", "web"), "1100")
    routes.insert(0, ("GET", "/namespaces/prod/appreleases/web?resourceVersion=1100", Raw(200, release)))
    assert cluster.get_apprelease("prod", "web") == release
    # Its own status write: the next pass reads that write or newer (an automatic rollback is never undone by
    # a copy older than it), and an older event seen late does not take that back.
    routes.insert(0, ("PATCH", "/namespaces/prod/appreleases/web/status", Raw(200, written)))
    assert cluster.patch_apprelease_status("prod", "web", {"revision": 2}, "1100") == "1200"
    versions.note(("prod", "web"), "1150")
    routes.insert(0, ("GET", "/namespaces/prod/appreleases/web?resourceVersion=1200", Raw(200, written)))
    assert cluster.get_apprelease("prod", "web") == written


def test_the_cli_and_workloads_read_with_quorum_reads(
    answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]],
) -> None:
    cluster, routes = answers  # as the CLI makes it: no seen versions
    release = {"kind": "AppRelease", "metadata": {"name": "web"}}

    routes.append(("GET", "resourceVersion=", Raw(500, {"kind": "Status", "code": 500})))  # must not be asked
    routes.append(("GET", "/namespaces/prod/appreleases/web", Raw(200, release)))
    routes.append(("GET", "/apis/apps/v1/namespaces/prod/deployments/web", Raw(200, deployment())))
    routes.append(("GET", "/apis/batch/v1/namespaces/prod/cronjobs/nightly", Raw(200, {"a": 1})))
    assert cluster.get_apprelease("prod", "web") == release
    assert cluster.get_workload(Kind.DEPLOYMENT, "prod", "web") == deployment()
    assert cluster.get_workload(Kind.CRON_JOB, "prod", "nightly") == {"a": 1}


def test_a_read_of_a_missing_object_is_none_and_other_errors_raise(
    answers: tuple[KubernetesCluster, list[tuple[str, str, Raw]]],
) -> None:
    cluster, routes = answers
    routes.append(("GET", "/appreleases/gone", Raw(404, {"kind": "Status", "code": 404})))
    routes.append(("GET", "/statefulsets/db", Raw(500, {"kind": "Status", "code": 500})))
    routes.append(("GET", "/appreleases/evil%2F..%2Fx", Raw(404, {"kind": "Status", "code": 404})))
    assert cluster.get_apprelease("prod", "gone") is None
    with pytest.raises(client.ApiException) as raised:
        cluster.get_workload(Kind.STATEFUL_SET, "prod", "db")
    assert raised.value.status == 500
    assert cluster.get_apprelease("prod", "evil/../x") is None  # a path part is quoted, never a path
