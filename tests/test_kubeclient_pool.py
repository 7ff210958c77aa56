"""The operator's API client keeps a connection per thread that calls it at once (controller/kubeclient.py):
a thread that found urllib3's pool full paid a new TCP and TLS handshake per request."""

from __future__ import annotations

from pathlib import Path

from apprelease.controller.kubeclient import connect

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team}}]
current-context: x
"""


def _kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def test_the_pool_holds_a_connection_per_calling_thread(tmp_path: Path) -> None:
    connection = connect(_kubeconfig(tmp_path), pool_size=200)  # more than any machine's 5 per CPU
    assert connection.api_client.configuration.connection_pool_maxsize == 200
    assert connection.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 200
    assert connection.namespace == "team"


def test_a_smaller_pool_size_never_shrinks_the_clients_default(tmp_path: Path) -> None:
    default = connect(_kubeconfig(tmp_path)).api_client.configuration.connection_pool_maxsize
    assert connect(_kubeconfig(tmp_path), pool_size=1).api_client.configuration.connection_pool_maxsize == default
