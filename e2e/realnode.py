"""The real node of the test bed (or of any cluster): finding it by label, placing workloads on it, asking the
running sample app what it is, and reading what the kubelet reports about the containers it really runs.

The node is found by its label, never by name, so the tests run unchanged against another cluster whose node
carries the label and the taint. A kwok node (no container runtime) is refused: its pods run nothing.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from e2e.images import APP_PORT
from e2e.support import Testbed, wait_until

NODE_LABEL_KEY = "apprelease.dev/testbed-node"
NODE_LABEL_VALUE = "real"
TAINT_KEY = "apprelease.dev/real-node"
RELEASE_LABEL = "apprelease.dev/release"
REAL_RUNTIMES = ("containerd://", "cri-o://", "docker://")


def find_real_node(testbed: Testbed) -> dict[str, Any]:
    """The Ready node labelled apprelease.dev/testbed-node=real that runs a container runtime; fails otherwise."""
    nodes = testbed.kubectl_json("get", "nodes", "-l", f"{NODE_LABEL_KEY}={NODE_LABEL_VALUE}")["items"]
    assert nodes, f"no node is labelled {NODE_LABEL_KEY}={NODE_LABEL_VALUE}: the real node is missing"
    node: dict[str, Any] = nodes[0]
    name = node["metadata"]["name"]
    assert "kwok.x-k8s.io/node" not in (node["metadata"].get("annotations") or {}), f"{name} is a kwok node"
    runtime = node["status"].get("nodeInfo", {}).get("containerRuntimeVersion", "")
    assert runtime.startswith(REAL_RUNTIMES), f"{name} reports no real container runtime: {runtime!r}"
    ready = [c for c in node["status"].get("conditions") or [] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", f"the real node {name} is not Ready: {ready}"
    return node


def on_real_node(manifest: dict[str, Any], release: str, *, probe: bool = True) -> dict[str, Any]:
    """A Deployment manifest placed on the real node, opted in to the AppRelease `release`, with the sample app's
    port and readiness probe on every container."""
    manifest["metadata"].setdefault("labels", {})[RELEASE_LABEL] = release
    pod = manifest["spec"]["template"]["spec"]
    pod["nodeSelector"] = {NODE_LABEL_KEY: NODE_LABEL_VALUE}
    pod["tolerations"] = [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    pod["terminationGracePeriodSeconds"] = 5
    for container in pod["containers"]:
        container["ports"] = [{"name": "http", "containerPort": APP_PORT}]
        if probe:
            container["readinessProbe"] = {
                "httpGet": {"path": "/version", "port": "http"},
                "periodSeconds": 1,
                "failureThreshold": 2,
            }
    return manifest


def live_pods(testbed: Testbed, namespace: str, app: str) -> list[dict[str, Any]]:
    """The pods of `app` that are not being deleted."""
    items: list[dict[str, Any]] = testbed.kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def image_ids(pod: dict[str, Any]) -> list[str]:
    return [s.get("imageID", "") for s in pod.get("status", {}).get("containerStatuses") or []]


def ask_version(pod_ip: str) -> dict[str, Any]:
    """GET /version from the app, from this host, through the node's CNI bridge."""
    response = httpx.get(f"http://{pod_ip}:{APP_PORT}/version", timeout=5)
    response.raise_for_status()
    answer: dict[str, Any] = json.loads(response.text)
    return answer


def wait_running(testbed: Testbed, namespace: str, app: str, digest: str, replicas: int) -> list[dict[str, Any]]:
    """Wait until exactly `replicas` live pods of `app` run, all Ready and all from the image `digest` (their
    imageID, as the kubelet reports it from the runtime); old pods must be gone."""

    def check() -> list[dict[str, Any]] | None:
        pods = live_pods(testbed, namespace, app)
        if len(pods) != replicas:
            return None
        for pod in pods:
            statuses = pod["status"].get("containerStatuses") or []
            if not statuses or not all(s.get("ready") for s in statuses):
                return None
            if any(i.rpartition("@")[2] != digest for i in image_ids(pod)):
                return None
        total: list[dict[str, Any]] = testbed.kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
        return pods if len(total) == replicas else None

    result: list[dict[str, Any]] = wait_until(
        check, timeout=120, what=f"{replicas} Ready pod(s) of {app} running {digest}"
    )
    return result


def waiting_reasons(pod: dict[str, Any]) -> set[str]:
    reasons = set()
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reasons.add(waiting["reason"])
    return reasons
