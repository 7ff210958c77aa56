"""Helpers for tests and the demo: the test bed's settings, kubectl, images, registries, the operator process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.hostile_rss import IMAGE_MALLOC_ENV

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], *, timeout: float = 60, interval: float = 0.5, what: str = "") -> T:
    """Poll until check() is truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except Exception as err:  # noqa: BLE001 - the last error is reported below
            last = err
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")
        time.sleep(interval)


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class despite its name

    kubeconfig: str
    registry: str
    registry_auth: str
    registry_auth_user: str
    registry_auth_password: str
    registry_auth_ca: str
    docker_host: str
    base_image: str
    bin_dir: str = ""
    # The plain registry as pods reach it (the test bed: HOST_IP:5000; the registry is on 127.0.0.1 for the host).
    pod_registry: str = ""
    # The API server as pods reach it when the cluster has no Service data path (the test bed: no kube-proxy).
    api_server_host: str = ""
    api_server_port: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_existing_cluster(cls) -> Testbed:
        e = os.environ
        return cls(
            kubeconfig=e["APPRELEASE_KUBECONFIG"],
            registry=e.get("APPRELEASE_REGISTRY", "127.0.0.1:5000"),
            registry_auth=e.get("APPRELEASE_REGISTRY_AUTH", "127.0.0.1:5443"),
            registry_auth_user=e.get("APPRELEASE_REGISTRY_AUTH_USER", "apprelease"),
            registry_auth_password=e.get("APPRELEASE_REGISTRY_AUTH_PASSWORD", ""),
            registry_auth_ca=e.get("APPRELEASE_REGISTRY_AUTH_CA", ""),
            docker_host=e.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
            base_image=e.get("APPRELEASE_BASE_IMAGE", "apprelease-testbed/busybox:1"),
            pod_registry=e.get("APPRELEASE_POD_REGISTRY", e.get("APPRELEASE_REGISTRY", "127.0.0.1:5000")),
            api_server_host=e.get("APPRELEASE_API_SERVER_HOST", ""),
            api_server_port=e.get("APPRELEASE_API_SERVER_PORT", ""),
        )

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True, input=input
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def create_namespace(self, name: str) -> None:
        """Create a namespace and wait for its default ServiceAccount: until it exists, pods are refused and
        the ReplicaSet controller backs off for many seconds."""
        self.kubectl("create", "namespace", name)
        wait_until(
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
            timeout=30,
            what=f"the default ServiceAccount in {name}",
        )

    def operator_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=self.kubeconfig,
            DOCKER_HOST=self.docker_host,
            APPRELEASE_INSECURE_REGISTRIES=self.registry,
            # The e2e operator runs as a multi-tenant cluster should: only the test bed's registries.
            APPRELEASE_ALLOWED_REGISTRIES=f"{self.registry},{self.registry_auth}",
            APPRELEASE_CA_BUNDLE=self.registry_auth_ca,
            APPRELEASE_RESYNC_SECONDS="30",
            APPRELEASE_ROLLOUT_POLL_SECONDS="1",
            APPRELEASE_RETRY_BASE_SECONDS="1",
            APPRELEASE_RETRY_MAX_SECONDS="5",
            APPRELEASE_REGISTRY_CACHE_SECONDS="0",
            APPRELEASE_HEALTH_PORT=env.get("APPRELEASE_HEALTH_PORT", "18080"),
            APPRELEASE_METRICS_PORT=env.get("APPRELEASE_METRICS_PORT", "18090"),
        )
        env.update(IMAGE_MALLOC_ENV)  # the allocator the operator's image gives it: memory measured as in a pod
        return env


def load_testbed(root: Path = ROOT) -> Testbed:
    values: dict[str, str] = {}
    for line in (root / ".testbed" / "env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return Testbed(
        kubeconfig=values["KUBECONFIG"],
        registry=values["REGISTRY"],
        registry_auth=values["REGISTRY_AUTH"],
        registry_auth_user=values["REGISTRY_AUTH_USER"],
        registry_auth_password=values["REGISTRY_AUTH_PASSWORD"],
        registry_auth_ca=values["REGISTRY_AUTH_CA"],
        docker_host=values["DOCKER_HOST"],
        base_image=values["TESTBED_BASE_IMAGE"],
        bin_dir=values.get("TESTBED_BIN", ""),
        pod_registry=f"{values['HOST_IP']}:{values['REGISTRY'].rpartition(':')[2]}" if "HOST_IP" in values else "",
        api_server_host=values.get("API_SERVER_HOST", ""),
        api_server_port=values.get("API_SERVER_PORT", ""),
        env=values,
    )


# How a refusal by the API server shows in the operator's log: kopf's APIForbiddenError, the client's
# "(403) Reason: Forbidden", or a Status body's code. A bare 403 is not one: log timestamps carry milliseconds
# ("14:21:04,403") and digests carry digits, which once failed CI on a clean run.
_REFUSAL = re.compile(r"forbidden|['\"]code['\"]\s*:\s*403\b|\(403\)", re.IGNORECASE)


def refusals(log: str) -> list[str]:
    """The operator-log lines that report an authorization refusal by the API server."""
    return [line for line in log.splitlines() if _REFUSAL.search(line)]


class Operator:
    """The operator as a real process (`apprelease run`), with its log in a file."""

    def __init__(self, testbed: Testbed, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.testbed = testbed
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.testbed.operator_env(), **self.extra_env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "apprelease", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        port = env["APPRELEASE_HEALTH_PORT"]
        wait_until(lambda: self._healthy(port), timeout=60, what="the operator's liveness endpoint")

    def _healthy(self, port: str) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"the operator exited; see {self.log_path}")
        result = subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{port}/healthz"], capture_output=True)
        return result.returncode == 0

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0
