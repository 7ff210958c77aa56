"""`make bench`, release safety: from the first failing pod of a bad release to the rollback being patched
into the workload, and to Ready again (the restored revision rolled out), on the test bed with kwok chaos.

Times come from watch events on the pods and the Deployment (a poll with kubectl is slower than the rollback).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client, watch

from apprelease.controller.kubeclient import connect
from e2e.releases import get_release, release_manifest, wait_ready
from e2e.support import Testbed, wait_until
from e2e.workloads import Chaos, workload_manifest

CYCLES = 5
NAME = "safety"
FAILED = "first failing pod -> rollback patched"
READY = "first failing pod -> Ready again"


class _Moments:
    """When watch events first showed a failing pod, and the Deployment's template back on the good image."""

    def __init__(self, api: client.ApiClient, namespace: str, good_image: str) -> None:
        self._core, self._apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self._namespace, self._good = namespace, good_image
        self._lock = threading.Lock()
        self.failing: float | None = None
        self.patched: float | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pods, daemon=True),
            threading.Thread(target=self._deployment, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        with self._lock:
            self.failing = self.patched = None

    def _pods(self) -> None:
        while not self._stop.is_set():
            watcher = watch.Watch()  # type: ignore[no-untyped-call]
            stream = watcher.stream(  # type: ignore[no-untyped-call]
                self._core.list_namespaced_pod, self._namespace, label_selector=f"app={NAME}", timeout_seconds=30
            )
            for event in stream:
                statuses = event["object"].status.container_statuses or []
                if any(s.state and s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff" for s in statuses):
                    with self._lock:
                        self.failing = self.failing or time.monotonic()

    def _deployment(self) -> None:
        while not self._stop.is_set():
            watcher = watch.Watch()  # type: ignore[no-untyped-call]
            stream = watcher.stream(  # type: ignore[no-untyped-call]
                self._apps.list_namespaced_deployment,
                self._namespace,
                field_selector=f"metadata.name={NAME}",
                timeout_seconds=30,
            )
            for event in stream:
                image = event["object"].spec.template.spec.containers[0].image
                with self._lock:
                    if image == self._good and self.failing is not None:
                        self.patched = self.patched or time.monotonic()


def measure(
    testbed: Testbed, namespace: str, image: str, good: str, bad: str, digests: dict[str, str]
) -> dict[str, list[float]]:
    """Release `bad` CYCLES times (its pods crash), each time from `good`; milliseconds per phase."""
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig, "-n", namespace]
    chaos = Chaos(f"{image}@{digests[bad]}", "CrashLoopBackOff")
    _apply(kubectl, workload_manifest("Deployment", namespace, NAME, {"app": f"{image}:v0"}, release=NAME, chaos=chaos))
    _apply(kubectl, release_manifest(namespace, NAME, image, good, [{"kind": "Deployment", "name": NAME}]))
    wait_ready(testbed, namespace, NAME, good, timeout=120)
    moments = _Moments(connect(testbed.kubeconfig).api_client, namespace, f"{image}@{digests[good]}")
    moments.start()
    timings: dict[str, list[float]] = {FAILED: [], READY: []}
    try:
        for _ in range(CYCLES):
            moments.reset()
            _patch_version(kubectl, bad)
            wait_until(lambda: moments.patched, timeout=60, interval=0.005, what="the rollback patched")
            wait_until(lambda: _rolled_back(testbed, namespace), timeout=120, interval=0.02, what="Ready again")
            ready = time.monotonic()
            assert moments.failing is not None and moments.patched is not None
            timings[FAILED].append((moments.patched - moments.failing) * 1000)
            timings[READY].append((ready - moments.failing) * 1000)
            _patch_version(kubectl, good)  # accept the rollback: Ready on the good version for the next cycle
            wait_ready(testbed, namespace, NAME, good, timeout=60)
    finally:
        moments.stop()
    return timings


def _rolled_back(testbed: Testbed, namespace: str) -> bool:
    history = get_release(testbed, namespace, NAME).get("status", {}).get("history") or []
    return bool(history) and history[0].get("cause") == "AutoRollback" and history[0]["outcome"] == "Succeeded"


def _patch_version(kubectl: list[str], version: str) -> None:
    _run([*kubectl, "patch", "apprelease", NAME, "--type=merge", "-p", json.dumps({"spec": {"version": version}})])


def _apply(kubectl: list[str], manifest: dict[str, Any]) -> None:
    _run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(manifest))


def _run(args: list[str], input: str | None = None) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, input=input).stdout


def report(
    timings: dict[str, list[float]], summary: Callable[[str, list[float]], dict[str, object]]
) -> list[dict[str, object]]:
    print("release safety (a bad release's pods crash; automatic rollback; Ready polled with kubectl):")
    return [summary(name, values) for name, values in timings.items()]
