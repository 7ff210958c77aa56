"""The registry client against the real distribution registry: multi-arch indexes and authentication."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from apprelease.core.reference import parse
from apprelease.registry import Credential, RegistryClient, RegistrySettings, Unauthorized
from e2e.images import bake, skopeo_digest
from e2e.releases import (
    apply,
    container_images,
    deployment_manifest,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import Operator, Testbed

MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _manifest(testbed: Testbed, path: str, tag: str) -> bytes:
    reply = httpx.get(f"http://{testbed.registry}/v2/{path}/manifests/{tag}", headers={"Accept": DOCKER_MANIFEST})
    reply.raise_for_status()
    return reply.content


@pytest.fixture
def multi_arch(testbed: Testbed, app_repo: tuple[Path, dict[str, str]], namespace: str) -> tuple[str, str, str]:
    """A manifest list at tag v5.0.0 whose linux/amd64 child is the v1.1.0 build (arm64 listed first)."""
    path = f"e2e/multi-{namespace}"
    repository = f"{testbed.registry}/{path}"
    bake(app_repo, repository, "v1.0.0", tag="arm64-src", label_version="v5.0.0-arm64")
    amd64 = bake(app_repo, repository, "v1.1.0", tag="amd64-src", label_version="v5.0.0")
    children = []
    for tag, arch in (("arm64-src", "arm64"), ("amd64-src", "amd64")):
        body = _manifest(testbed, path, tag)
        children.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": children}).encode()
    put = httpx.put(
        f"http://{testbed.registry}/v2/{path}/manifests/v5.0.0", content=index, headers={"Content-Type": MANIFEST_LIST}
    )
    assert put.status_code == 201, put.text
    return repository, "sha256:" + hashlib.sha256(index).hexdigest(), amd64.digest


def test_a_multi_arch_image_resolves_to_its_index_digest(testbed: Testbed, multi_arch: tuple[str, str, str]) -> None:
    repository, index_digest, _ = multi_arch
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{repository}:v5.0.0"],
        capture_output=True,
        check=True,
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index_digest
    with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as registry:
        resolved = registry.resolve(parse(f"{repository}:v5.0.0"), use_cache=False)
        assert resolved.digest == index_digest
        assert resolved.media_type == MANIFEST_LIST
        labels = registry.labels(parse(f"{repository}@{index_digest}"))
    assert labels["org.opencontainers.image.version"] == "v5.0.0"  # the linux/amd64 child's, not the first's


def test_operator_pins_the_index_digest_and_checks_provenance_on_every_platform(
    testbed: Testbed, operator: Operator, namespace: str, multi_arch: tuple[str, str, str]
) -> None:
    repository, index_digest, _ = multi_arch
    # The arm64 child says v5.0.0-arm64: the pinned index runs it too, so Required refuses the whole index.
    apply(testbed, deployment_manifest(namespace, "checked", {"web": f"{repository}:v0"}, release="checked"))
    apply(
        testbed,
        release_manifest(
            namespace,
            "checked",
            repository,
            "v5.0.0",
            [{"kind": "Deployment", "name": "checked"}],
            provenance="Required",
        ),
    )
    stalled = wait_condition(testbed, namespace, "checked", "Stalled", "True", "ProvenanceMismatch")
    message = next(c["message"] for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert "linux/arm64" in message and "v5.0.0-arm64" in message
    assert container_images(testbed, namespace, "checked") == {"web": f"{repository}:v0"}  # nothing deployed
    # Without provenance, the index digest is pinned: every node pulls its own platform from it.
    apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, release="web"))
    apply(
        testbed,
        release_manifest(
            namespace, "web", repository, "v5.0.0", [{"kind": "Deployment", "name": "web"}], provenance="Disabled"
        ),
    )
    release = wait_ready(testbed, namespace, "web", "v5.0.0")
    assert release["status"]["digest"] == index_digest
    assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{index_digest}"}


def test_basic_auth_over_tls_with_the_test_bed_ca(
    testbed: Testbed, app_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repository = f"{testbed.registry_auth}/e2e/basic"
    auth = {"username": testbed.registry_auth_user, "password": testbed.registry_auth_password}
    pushed = bake(app_repo, repository, "v1.0.0", auth=auth)
    good = Credential.model_validate(
        {"username": testbed.registry_auth_user, "password": testbed.registry_auth_password}
    )
    bad = Credential.model_validate({"username": testbed.registry_auth_user, "password": "wrong"})
    with RegistryClient(RegistrySettings(ca_bundle=testbed.registry_auth_ca)) as registry:
        assert registry.resolve(parse(f"{repository}:v1.0.0"), good).digest == pushed.digest
        with pytest.raises(Unauthorized) as refused:
            registry.resolve(parse(f"{repository}:v1.0.0"), bad, use_cache=False)
        assert "wrong" not in str(refused.value)
        with pytest.raises(Unauthorized):
            registry.resolve(parse(f"{repository}:v1.0.0"), None, use_cache=False)
    creds = f"{testbed.registry_auth_user}:{testbed.registry_auth_password}"
    cert_dir = tmp_path / "certs"  # skopeo reads every *.key there as a client certificate: only the CA
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(Path(testbed.registry_auth_ca).read_bytes())
    assert skopeo_digest(f"{repository}:v1.0.0", creds=creds, cert_dir=str(cert_dir)) == pushed.digest


def test_operator_picks_the_repository_path_credential_over_the_host_key_as_the_kubelet_does(
    testbed: Testbed, operator: Operator, namespace: str, app_repo: tuple[Path, dict[str, str]]
) -> None:
    """Issue 15 case 3 against the TLS + Basic registry: a wrong credential under the host key (and under
    another team's path), the right one under the repository's path; the kubelet pulls with the path's,
    so the operator must resolve with it too ("Interpretation of config.json", Kubernetes docs)."""
    host = testbed.registry_auth
    repository = f"{host}/e2e/team-b-{namespace}/app"
    right = {"username": testbed.registry_auth_user, "password": testbed.registry_auth_password}
    pushed = bake(app_repo, repository, "v1.0.0", auth=right)
    wrong = {"username": testbed.registry_auth_user, "password": "wrong-for-the-host"}
    config = {
        "auths": {
            f"{host}/e2e/team-a-{namespace}": wrong,
            f"{host}/e2e/team-b-{namespace}": right,
            f"https://{host}/v2/": wrong,
        }
    }
    testbed.kubectl(
        "create",
        "secret",
        "generic",
        "teams",
        "-n",
        namespace,
        "--type=kubernetes.io/dockerconfigjson",
        f"--from-literal=.dockerconfigjson={json.dumps(config)}",
    )
    apply(testbed, deployment_manifest(namespace, "app", {"app": f"{repository}:v0"}, release="app"))
    apply(
        testbed,
        release_manifest(
            namespace,
            "app",
            repository,
            "v1.0.0",
            [{"kind": "Deployment", "name": "app"}],
            imagePullSecrets=[{"name": "teams"}],
        ),
    )
    release = wait_ready(testbed, namespace, "app", "v1.0.0")
    assert release["status"]["digest"] == pushed.digest
    assert container_images(testbed, namespace, "app") == {"app": f"{repository}@{pushed.digest}"}
