"""Smoke tests proving each part of the test bed is real: scheduling, RBAC, Docker builds and both registries."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from kubernetes import client

from e2e.images import build_and_push, make_app_repo, skopeo_digest
from e2e.support import Testbed, wait_until

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def test_deployment_gets_scheduled_pods_that_become_ready(
    testbed: Testbed, namespace: str, api: client.ApiClient
) -> None:
    testbed.kubectl(
        "create", "deployment", "smoke", "--image=example.invalid/smoke:v1", "--replicas=2", "-n", namespace
    )
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)

    def available() -> bool:
        d: Any = apps.read_namespaced_deployment("smoke", namespace)
        return any(c.type == "Available" and c.status == "True" for c in d.status.conditions or [])

    wait_until(available, timeout=60, what="Deployment smoke Available")
    replica_sets: list[Any] = apps.list_namespaced_replica_set(namespace).items
    assert len(replica_sets) == 1 and replica_sets[0].status.ready_replicas == 2
    pods: list[Any] = core.list_namespaced_pod(namespace).items
    assert len(pods) == 2
    nodes = {n.metadata.name for n in core.list_node().items if n.metadata}
    for pod in pods:
        assert pod.spec.node_name in nodes and pod.spec.node_name.startswith("kwok-node-")
        assert pod.status.phase == "Running"
        assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def test_namespace_deletion_removes_its_pods(testbed: Testbed, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = "t-ns-deletion"
    testbed.kubectl("create", "namespace", name)
    wait_until(lambda: core.read_namespaced_service_account("default", name), timeout=30, what="default SA")
    testbed.kubectl("create", "deployment", "gone", "--image=example.invalid/gone:v1", "--replicas=2", "-n", name)
    wait_until(lambda: len(core.list_namespaced_pod(name).items) == 2, timeout=60, what="2 pods")
    testbed.kubectl("delete", "namespace", name, "--wait=false")

    def namespace_gone() -> bool:
        try:
            core.read_namespace(name)
            return False
        except client.exceptions.ApiException as err:
            return bool(err.status == 404)

    wait_until(namespace_gone, timeout=120, what=f"namespace {name} deleted")
    assert core.list_namespaced_pod(name).items == []


def test_rbac_is_enforced_for_service_account_tokens(testbed: Testbed, namespace: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    answer: Any = core.create_namespaced_service_account_token(
        "reader", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    token = answer.status.token
    assert token

    # A kubeconfig with the token alone: the admin one carries a client certificate that would win.
    token_kubeconfig = _token_kubeconfig(testbed, token, Path(testbed.kubeconfig).parent / f"{namespace}.kubeconfig")
    denied = subprocess.run(
        ["kubectl", "--kubeconfig", token_kubeconfig, "get", "pods", "-n", namespace], capture_output=True, text=True
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr

    testbed.kubectl("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace)
    testbed.kubectl(
        "create", "rolebinding", "reader", "--role=pod-reader", f"--serviceaccount={namespace}:reader", "-n", namespace
    )
    wait_until(
        lambda: (
            subprocess.run(
                ["kubectl", "--kubeconfig", token_kubeconfig, "get", "pods", "-n", namespace], capture_output=True
            ).returncode
            == 0
        ),
        timeout=30,
        what="list pods allowed after the RoleBinding",
    )
    still_denied = subprocess.run(
        ["kubectl", "--kubeconfig", token_kubeconfig, "get", "secrets", "-n", namespace], capture_output=True, text=True
    )
    assert still_denied.returncode != 0


def _ca(testbed: Testbed) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=testbed.registry_auth_ca)


def _token_kubeconfig(testbed: Testbed, token: str, path: Path) -> str:
    server = testbed.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    ca = testbed.kubectl(
        "config", "view", "--minify", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority}"
    ).stdout
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}', certificate-authority: '{ca}'}}}}]\n"
        f"users: [{{name: u, user: {{token: '{token}'}}}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    return str(path)


def test_image_from_git_tag_pushed_to_both_registries(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "app"
    commits = make_app_repo(repo, testbed.base_image, ["v0.1.0"])
    plain = build_and_push(
        repo,
        f"{testbed.registry}/smoke/app",
        "v0.1.0",
        labels={"org.opencontainers.image.revision": commits["v0.1.0"]},
        git_ref="v0.1.0",
    )
    assert plain.digest.startswith("sha256:")
    head = httpx.head(f"http://{testbed.registry}/v2/smoke/app/manifests/v0.1.0", headers={"Accept": MANIFEST_TYPES})
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == plain.digest
    assert skopeo_digest(f"{testbed.registry}/smoke/app:v0.1.0", tls_verify=False) == plain.digest

    auth = {"username": testbed.registry_auth_user, "password": testbed.registry_auth_password}
    secure = build_and_push(repo, f"{testbed.registry_auth}/smoke/app", "v0.1.0", auth=auth)
    basic = (testbed.registry_auth_user, testbed.registry_auth_password)
    head = httpx.head(
        f"https://{testbed.registry_auth}/v2/smoke/app/manifests/v0.1.0",
        headers={"Accept": MANIFEST_TYPES},
        auth=basic,
        verify=_ca(testbed),
    )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == secure.digest
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(Path(testbed.registry_auth_ca).read_bytes())
    creds = f"{testbed.registry_auth_user}:{testbed.registry_auth_password}"
    assert (
        skopeo_digest(f"{testbed.registry_auth}/smoke/app:v0.1.0", creds=creds, cert_dir=str(cert_dir)) == secure.digest
    )
    # TLS is real: without the test bed's CA the certificate is not trusted.
    with pytest.raises(httpx.ConnectError):
        httpx.head(f"https://{testbed.registry_auth}/v2/", verify=True)


def test_registry_refuses_a_wrong_password(testbed: Testbed, tmp_path: Path) -> None:
    wrong = httpx.get(
        f"https://{testbed.registry_auth}/v2/", auth=(testbed.registry_auth_user, "wrong"), verify=_ca(testbed)
    )
    assert wrong.status_code == 401
    anonymous = httpx.get(f"https://{testbed.registry_auth}/v2/", verify=_ca(testbed))
    assert anonymous.status_code == 401
    right = httpx.get(
        f"https://{testbed.registry_auth}/v2/",
        auth=(testbed.registry_auth_user, testbed.registry_auth_password),
        verify=_ca(testbed),
    )
    assert right.status_code == 200
    engine = docker.from_env()
    with pytest.raises(docker.errors.APIError):
        engine.login(
            username=testbed.registry_auth_user,
            password="wrong",
            registry=f"https://{testbed.registry_auth}",
            reauth=True,
            dockercfg_path=str(tmp_path / "config.json"),
        )
