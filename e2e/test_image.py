"""The operator's production image (operator/Dockerfile, built by e2e/image.sh) on the real Docker engine.

Every container runs with a read-only root filesystem and no tmpfs: the image must not need to write anywhere.
The last test runs the operator itself from the image with in-cluster credentials against the test bed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.hostile_rss import IMAGE_MALLOC_ENV

import apprelease
from e2e.support import ROOT, Testbed

pytestmark = pytest.mark.e2e

REPOSITORY = "apprelease/operator"
TEST_VERSION = "e2e-test"
MAX_SIZE_MB = 350  # python:3.11-slim or the bookworm base is ~130 MB, the virtualenv ~95 MB
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_DOCKER_ENV = dict(os.environ)


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The docker CLI against the test bed's engine (DOCKER_HOST is set by the `image` fixture)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=_DOCKER_ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result


@pytest.fixture(scope="module")
def image(testbed: Testbed) -> str:
    """e2e/image.sh, as `make image` runs it: wheels on the host, then docker build. Its failure fails the tests."""
    _DOCKER_ENV["DOCKER_HOST"] = testbed.docker_host
    try:
        result = subprocess.run(
            [str(ROOT / "e2e" / "image.sh"), REPOSITORY, TEST_VERSION],
            cwd=ROOT,
            env=_DOCKER_ENV,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"e2e/image.sh timed out:\n{(err.stderr or b'')[-4000:]!r}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"e2e/image.sh failed ({result.returncode}):\n{result.stderr[-6000:]}", pytrace=False)
    reference = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert reference == f"{REPOSITORY}:{TEST_VERSION}", f"image.sh printed {result.stdout!r}"
    return reference


@pytest.fixture(scope="module")
def inspected(image: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker("image", "inspect", image).stdout)
    return data[0]


def test_runs_as_a_non_root_numeric_user(inspected: dict[str, Any]) -> None:
    user = inspected["Config"]["User"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"User {user!r} must be a numeric non-root uid"
    assert gid.isdigit() and int(gid) != 0, f"User {user!r} must name a numeric non-root gid"
    assert user == "65532:65532"


def test_entrypoint_command_port_and_environment(inspected: dict[str, Any]) -> None:
    config = inspected["Config"]
    assert config["Entrypoint"] == ["/opt/apprelease/bin/apprelease"]
    assert config["Cmd"] == ["run"]
    assert "8080/tcp" in config["ExposedPorts"]
    env = dict(item.partition("=")[::2] for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/apprelease/bin:")
    # The allocator settings the memory test and the bench measure the operator with are the image's own.
    assert {name: env.get(name) for name in IMAGE_MALLOC_ENV} == IMAGE_MALLOC_ENV


def test_oci_labels(inspected: dict[str, Any]) -> None:
    labels = inspected["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == TEST_VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"]
    assert labels["org.opencontainers.image.description"]
    assert "org.opencontainers.image.source" in labels
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])
    revision = labels["org.opencontainers.image.revision"]
    if (ROOT / ".git").exists():
        # The commit checked out when the image was built (HEAD may have moved since): one of this repository's.
        assert re.fullmatch(r"[0-9a-f]{40}", revision), revision
        kind = subprocess.run(["git", "cat-file", "-t", revision], cwd=ROOT, capture_output=True, text=True)
        assert kind.stdout.strip() == "commit", f"revision {revision} is not a commit here: {kind.stderr}"
    else:
        assert revision


def test_image_is_small(inspected: dict[str, Any]) -> None:
    size_mb = inspected["Size"] / 1e6
    assert size_mb < MAX_SIZE_MB, f"the image is {size_mb:.0f} MB (budget {MAX_SIZE_MB} MB)"


def test_version_on_a_read_only_root_as_65532(image: str) -> None:
    result = docker("run", "--rm", "--read-only", "--user", "65532", image, "--version")
    assert result.stdout.strip() == f"apprelease {apprelease.__version__}"


def test_run_help_on_a_read_only_root(image: str) -> None:
    result = docker("run", "--rm", "--read-only", image, "run", "--help")
    assert "Usage: apprelease run" in result.stdout
    assert "KUBECONFIG" in result.stdout


def test_kopf_handlers_import_on_a_read_only_root(image: str) -> None:
    code = "import apprelease.controller.handlers, kopf; print('handlers', kopf.__version__)"
    result = docker("run", "--rm", "--read-only", "--entrypoint", "/opt/apprelease/bin/python", image, "-c", code)
    assert result.stdout.startswith("handlers "), result.stdout + result.stderr


def test_no_build_tools_at_run_time(image: str) -> None:
    code = (
        "import importlib.util, shutil, sys\n"
        "found = [m for m in ('pip', 'setuptools', 'wheel') if importlib.util.find_spec(m)]\n"
        "found += [t for t in ('gcc', 'cc', 'make') if shutil.which(t)]\n"
        "sys.exit(f'build tools in the image: {found}' if found else 0)\n"
    )
    docker("run", "--rm", "--read-only", "--entrypoint", "/opt/apprelease/bin/python", image, "-c", code)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_account_files(testbed: Testbed, namespace: str, directory: Path) -> tuple[str, str]:
    """A ServiceAccount token and the cluster CA as a pod gets them; returns the API server's host and port."""
    directory.mkdir(mode=0o755)
    view = json.loads(testbed.kubectl("config", "view", "--raw", "--flatten", "--minify", "-o", "json").stdout)
    cluster = view["clusters"][0]["cluster"]
    server = urlsplit(cluster["server"])
    (directory / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    token = testbed.kubectl("-n", namespace, "create", "token", "apprelease", "--duration=10m").stdout.strip()
    (directory / "token").write_text(token)
    (directory / "namespace").write_text(namespace)
    for path in directory.iterdir():
        path.chmod(0o644)  # readable by uid 65532 in the container
    return server.hostname or "127.0.0.1", str(server.port or 443)


def test_operator_runs_from_the_image_read_only_with_in_cluster_credentials(
    image: str, testbed: Testbed, namespace: str, crd_installed: None, tmp_path: Path
) -> None:
    """`apprelease run` as in a pod: uid 65532, read-only root, no tmpfs, ServiceAccount token; /healthz answers."""
    binding = f"apprelease-image-{uuid.uuid4().hex[:6]}"
    testbed.kubectl("-n", namespace, "create", "serviceaccount", "apprelease")
    subject = f"--serviceaccount={namespace}:apprelease"
    testbed.kubectl("create", "clusterrolebinding", binding, "--clusterrole=cluster-admin", subject)
    container = f"apprelease-image-test-{uuid.uuid4().hex[:6]}"
    try:
        host, port = _service_account_files(testbed, namespace, tmp_path / "serviceaccount")
        health_port = _free_port()
        env = {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "APPRELEASE_HEALTH_PORT": str(health_port),
            "APPRELEASE_WATCH_NAMESPACES": namespace,
        }
        docker(
            *("run", "--detach", "--name", container, "--read-only", "--user", "65532", "--network", "host"),
            *("--volume", f"{tmp_path / 'serviceaccount'}:{SERVICE_ACCOUNT_DIR}:ro"),
            *(arg for key, value in env.items() for arg in ("--env", f"{key}={value}")),
            image,
        )
        _wait_healthy(container, f"http://127.0.0.1:{health_port}/healthz")
        time.sleep(2)  # watch errors (RBAC, TLS, writes) show within a second of the first watch
        logs = _logs(container)
        assert "login_via_client' succeeded" in logs, logs
        for bad in ("Traceback", " ERROR ", "Read-only file system", "No usable temporary directory"):
            assert bad not in logs, f"{bad!r} in the operator's log:\n{logs}"

        docker("stop", "--time", "20", container, timeout=60)
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
        assert state["ExitCode"] == 0, f"exit code {state['ExitCode']} after SIGTERM:\n{_logs(container)}"
    finally:
        docker("rm", "--force", container, check=False)
        testbed.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)


def _logs(container: str) -> str:
    result = docker("logs", container, check=False)
    return result.stdout + result.stderr


def _wait_healthy(container: str, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        running = docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if running != "true":
            raise AssertionError(f"the operator's container exited:\n{_logs(container)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except OSError as err:
            last = repr(err)
        time.sleep(0.5)
    raise AssertionError(f"{url} not healthy after {timeout}s ({last}):\n{_logs(container)}")
