"""Session fixtures for tests against a real cluster, registries and Docker engine.

By default they bring up the local test bed (e2e/testbed/up.sh, idempotent). With APPRELEASE_KUBECONFIG set,
they use that cluster instead (kind on a laptop) and take registry settings from APPRELEASE_REGISTRY,
APPRELEASE_REGISTRY_AUTH, APPRELEASE_REGISTRY_AUTH_USER/_PASSWORD and APPRELEASE_REGISTRY_AUTH_CA.
A component that cannot be started fails the session: nothing is skipped.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from apprelease.controller.kubeclient import connect
from e2e.handover import build_operator_image
from e2e.images import Pushed, bake, make_app_repo
from e2e.realnode import find_real_node
from e2e.support import ROOT, Operator, Testbed, load_testbed, wait_until

LOGS = ROOT / ".testbed" / "logs"


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    if os.environ.get("APPRELEASE_KUBECONFIG"):
        return Testbed.from_existing_cluster()
    result = subprocess.run([str(ROOT / "e2e/testbed/up.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"the test bed did not come up:\n{result.stderr[-4000:]}", pytrace=False)
    return load_testbed()


@pytest.fixture(scope="session")
def api(testbed: Testbed) -> client.ApiClient:
    return connect(testbed.kubeconfig).api_client


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(api)
    slug = request.node.name.lower().replace("_", "-")[:30].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(lambda: _has_default_sa(core, name), timeout=30, what=f"default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except client.exceptions.ApiException:
        return False


Helm = Callable[..., subprocess.CompletedProcess[str]]


def helm_env(testbed: Testbed, home: Path) -> dict[str, str]:
    """Helm 3 or 4 against the test bed, with its cache, config, data and discovery cache in `home`."""
    return {
        **os.environ,
        "HOME": str(home),  # helm's discovery cache goes to $HOME/.kube: never the checkout
        "KUBECONFIG": testbed.kubeconfig,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="session")
def helm(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Run the test bed's helm against the test bed, with its cache/config/data kept out of $HOME."""
    binary = Path(testbed.bin_dir) / "helm" if testbed.bin_dir else Path("helm")
    env = helm_env(testbed, tmp_path_factory.mktemp("helm"))

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def real_node(testbed: Testbed) -> str:
    """The name of the test bed's real node (found by label, so another cluster's real node works too)."""
    name: str = find_real_node(testbed)["metadata"]["name"]
    return name


@pytest.fixture(scope="session")
def crd_installed(testbed: Testbed) -> None:
    testbed.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    testbed.kubectl("wait", "--for=condition=Established", "crd/appreleases.apprelease.dev", "--timeout=60s")


@pytest.fixture(scope="session")
def operator(testbed: Testbed, crd_installed: None) -> Iterator[Operator]:
    op = Operator(testbed, LOGS / "operator.log")
    op.start()
    yield op
    op.stop()


VERSIONS = ["v1.0.0", "v1.1.0"]


@pytest.fixture(scope="session")
def app_repo(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("app")
    return path, make_app_repo(path, testbed.base_image, [*VERSIONS, "v2.0.0"])


@pytest.fixture(scope="session")
def web(testbed: Testbed, app_repo: tuple[Path, dict[str, str]]) -> dict[str, Pushed]:
    repository = f"{testbed.registry}/e2e/web"
    return {v: bake(app_repo, repository, v) for v in VERSIONS}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and LOGS.is_dir():
        for log in sorted(LOGS.glob("*.log")):
            report.sections.append((f"tail of {log.name}", _tail(log, 25)))


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"({err})"


@pytest.fixture(scope="session")
def operator_image(testbed: Testbed) -> Pushed:
    """The image `make image` builds (e2e/image.sh), pushed to the test bed's registry: built once a session
    for the tests that run the operator as pods from the chart (test_real_node, test_rolling_update)."""
    try:
        return build_operator_image(testbed)
    except AssertionError as err:
        pytest.fail(str(err), pytrace=False)
