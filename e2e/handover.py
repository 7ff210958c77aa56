"""The operator's chart with two replicas on the real node, and the Lease hand-over of a rolling update, as seen
from outside (issue 19): when the old leader's pod was deleted (the kubelet then sends SIGTERM), when its Lease
was released (holder emptied), when another replica held it. Used by e2e/test_rolling_update.py and
e2e/bench_ha.py. Times are time.monotonic() of this process when a watch event arrived."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml
from kubernetes import client, watch

from e2e.images import Pushed, push_local
from e2e.realnode import NODE_LABEL_KEY, NODE_LABEL_VALUE, TAINT_KEY
from e2e.support import ROOT, Testbed

CHART = ROOT / "charts" / "apprelease-operator"
OPERATOR_IMAGE = "apprelease/operator"
OPERATOR_TAG = "e2e-test"  # the tag test_image.py and test_real_node.py build too: one docker build serves all
POD_SELECTOR = "app.kubernetes.io/name=apprelease-operator"
ROLLOUT_ANNOTATION = "e2e.apprelease.dev/rollout"


def build_operator_image(testbed: Testbed) -> Pushed:
    """The image `make image` builds (e2e/image.sh), pushed to the test bed's registry; AssertionError with
    the build's stderr when it fails."""
    env = {**os.environ, "DOCKER_HOST": testbed.docker_host}
    result = subprocess.run(
        [str(ROOT / "e2e" / "image.sh"), OPERATOR_IMAGE, OPERATOR_TAG],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if result.returncode != 0:
        raise AssertionError(f"e2e/image.sh failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return push_local(
        docker.DockerClient(base_url=testbed.docker_host),
        result.stdout.strip(),
        f"{testbed.registry}/{OPERATOR_IMAGE}",
        OPERATOR_TAG,
    )


def chart_values(testbed: Testbed, image: Pushed, namespace: str, rollout: int = 0) -> dict[str, Any]:
    """Two replicas with leader election (the chart's defaults), on the real node, watching `namespace`;
    `rollout` goes into a pod annotation, so a new value is a new pod template."""
    return {
        "replicaCount": 2,
        "image": {"repository": image.repository, "digest": image.digest, "pullPolicy": "IfNotPresent"},
        "watchNamespaces": [namespace],
        "insecureRegistries": [testbed.pod_registry],
        "allowedRegistries": [testbed.pod_registry],
        "nodeSelector": {NODE_LABEL_KEY: NODE_LABEL_VALUE},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "apiServer": {"host": testbed.api_server_host, "port": testbed.api_server_port},
        "extraEnv": [
            {"name": "APPRELEASE_ROLLOUT_POLL_SECONDS", "value": "1"},
            {"name": "APPRELEASE_RETRY_BASE_SECONDS", "value": "1"},
        ],
        "readinessProbe": {"initialDelaySeconds": 2, "periodSeconds": 2},
        "podAnnotations": {ROLLOUT_ANNOTATION: str(rollout)},
    }


def write_values(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


@dataclass(frozen=True)
class Handover:
    old: str
    new: str
    deleted_at: float | None  # the old leader's pod got its deletionTimestamp (SIGTERM follows at once)
    released_at: float | None  # the Lease's holder emptied (None: taken over without a release)
    acquired_at: float

    def from_sigterm_ms(self) -> float | None:
        return None if self.deleted_at is None else (self.acquired_at - self.deleted_at) * 1000

    def from_release_ms(self) -> float | None:
        return None if self.released_at is None else (self.acquired_at - self.released_at) * 1000


class Watcher:
    """Watches one Lease and the operator's pods of a namespace in two threads until `stop`."""

    def __init__(self, api: client.ApiClient, namespace: str, lease: str) -> None:
        self.lease_changes: list[tuple[float, str]] = []  # (when, holder); "" for released
        self.deleted: dict[str, float] = {}  # pod name -> when its deletionTimestamp was first seen
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._leases, args=(client.CoordinationV1Api(api), namespace, lease), daemon=True),
            threading.Thread(target=self._pods, args=(client.CoreV1Api(api), namespace), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _stream(self, call: Any, namespace: str, **kwargs: Any) -> Iterator[Any]:
        while not self._stop.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            for event in stream.stream(call, namespace, timeout_seconds=5, **kwargs):  # type: ignore[no-untyped-call]
                yield event["object"]
                if self._stop.is_set():
                    stream.stop()  # type: ignore[no-untyped-call]

    def _leases(self, api: client.CoordinationV1Api, namespace: str, lease: str) -> None:
        for obj in self._stream(api.list_namespaced_lease, namespace, field_selector=f"metadata.name={lease}"):
            holder = (obj.spec and obj.spec.holder_identity) or ""
            if not self.lease_changes or self.lease_changes[-1][1] != holder:
                self.lease_changes.append((time.monotonic(), holder))

    def _pods(self, api: client.CoreV1Api, namespace: str) -> None:
        for obj in self._stream(api.list_namespaced_pod, namespace, label_selector=POD_SELECTOR):
            if obj.metadata.deletion_timestamp is not None:
                self.deleted.setdefault(obj.metadata.name, time.monotonic())

    def holder(self) -> str:
        return self.lease_changes[-1][1] if self.lease_changes else ""

    def handovers(self) -> list[Handover]:
        """Every change of holder seen, with the release before it and the old holder's pod deletion."""
        found: list[Handover] = []
        previous, released = "", None
        for when, holder in list(self.lease_changes):
            if not holder:
                released = when
                continue
            if previous and holder != previous:
                found.append(Handover(previous, holder, self.deleted.get(previous), released, when))
            previous, released = holder, None
        return found

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
