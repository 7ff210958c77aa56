"""`make bench`, the bake: from a container of a new release crashing inside the bake (it served, the rollout was
complete) to the automatic rollback being patched into the Deployment, on the test bed's real node with real
containers; next to the time `kubectl rollout undo` takes to patch a Deployment back in the same run (what a
person would type, once they noticed).

Times come from watch events on the pods and the Deployments (a poll with kubectl is slower than the rollback).
Run alone with `python -m e2e.bench_bake` (it starts its own operator), or from e2e/bench.py.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from apprelease.controller.kubeclient import connect
from e2e.images import APP_PORT, build_and_push, git, make_app_repo
from e2e.realnode import on_real_node
from e2e.releases import deployment_manifest, get_release, release_manifest, wait_ready
from e2e.support import ROOT, Operator, Testbed, load_testbed, wait_until

CYCLES = 5
NAME, UNDO = "bake", "undo"
GOOD, LATE = "v1.0.0", "v1.1.0"
CRASH_AFTER_SECONDS = 3
BAKE_SECONDS = 20
ROLLBACK = "crash inside the bake -> rollback patched"
KUBECTL_UNDO = "kubectl rollout undo -> Deployment patched"
LATE_SCRIPT = """#!/bin/sh
echo "$(cat /app/VERSION): serving :{port} for {seconds}s, then exit 4"
httpd -f -p {port} -h /app/www &
trap 'kill $!; exit 0' TERM INT
sleep {seconds}
kill $!
exit 4
"""


class _Watch:
    """The first moment a pod of `NAME` running `crashing` shows a terminated or restarted container, and the
    moments each Deployment's first container image was seen."""

    def __init__(self, api: client.ApiClient, namespace: str, crashing_digest: str) -> None:
        self._core, self._apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self._namespace, self._digest = namespace, crashing_digest
        self._lock = threading.Lock()
        self.crashed: float | None = None
        self.images: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        for target in (self._pods, self._deployments):
            threading.Thread(target=target, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.crashed = None

    def stop(self) -> None:
        self._stop.set()

    def _pods(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._core.list_namespaced_pod, self._namespace, label_selector=f"app={NAME}", timeout_seconds=30
            )
            for event in stream:
                for s in event["object"].status.container_statuses or []:
                    broke = (s.state and s.state.terminated) or (s.restart_count or 0) > 0
                    if broke and (s.image_id or "").endswith(self._digest):
                        with self._lock:
                            self.crashed = self.crashed or time.monotonic()

    def _deployments(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._apps.list_namespaced_deployment, self._namespace, timeout_seconds=30
            )
            for event in stream:
                obj = event["object"]
                with self._lock:
                    self.images[obj.metadata.name] = (time.monotonic(), obj.spec.template.spec.containers[0].image)

    def image_since(self, name: str, image: str, since: float) -> float | None:
        with self._lock:
            at, seen = self.images.get(name, (0.0, ""))
        return at if seen == image and at >= since else None


def _images(testbed: Testbed, work: Path) -> tuple[str, dict[str, str]]:
    """GOOD serves; LATE serves for CRASH_AFTER_SECONDS, then exits with code 4 (no readiness probe sees it)."""
    path = work / "bake-app"
    subprocess.run(["rm", "-rf", str(path)], check=True)
    make_app_repo(path, testbed.base_image, [GOOD])
    (path / "VERSION").write_text(LATE + "\n")
    (path / "app.sh").write_text(LATE_SCRIPT.format(port=APP_PORT, seconds=CRASH_AFTER_SECONDS))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"release {LATE}")
    git(path, "tag", LATE)
    repository = f"{testbed.registry}/bench/bake"
    return repository, {v: build_and_push(path, repository, v, git_ref=v).digest for v in (GOOD, LATE)}


def measure(testbed: Testbed, namespace: str, work: Path) -> dict[str, list[float]]:
    """CYCLES times: LATE released from GOOD, crashes inside the bake, is rolled back; milliseconds. In the same
    run, `kubectl rollout undo` of an unmanaged Deployment (kwok) from LATE's image to GOOD's."""
    repository, digests = _images(testbed, work)
    good, late = (f"{repository}@{digests[v]}" for v in (GOOD, LATE))
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig, "-n", namespace]
    managed = deployment_manifest(namespace, NAME, {"app": f"{repository}:v0"}, replicas=1, release=NAME)
    _apply(kubectl, on_real_node(managed, NAME, probe=False))
    _apply(kubectl, deployment_manifest(namespace, UNDO, {"app": good}, replicas=1, release=None))
    rollout = {"bakeSeconds": BAKE_SECONDS, "timeoutSeconds": 120}
    workloads = [{"kind": "Deployment", "name": NAME}]
    _apply(kubectl, release_manifest(namespace, NAME, repository, GOOD, workloads, rollout=rollout))
    wait_ready(testbed, namespace, NAME, GOOD, timeout=180)
    seen = _Watch(connect(testbed.kubeconfig).api_client, namespace, digests[LATE])
    timings: dict[str, list[float]] = {ROLLBACK: [], KUBECTL_UNDO: []}
    try:
        for _ in range(CYCLES):
            seen.reset()
            _patch_version(kubectl, LATE)
            patched = wait_until(
                lambda: seen.crashed and seen.image_since(NAME, good, seen.crashed),
                timeout=120,
                interval=0.005,
                what="the rollback patched",
            )
            assert seen.crashed is not None
            timings[ROLLBACK].append((patched - seen.crashed) * 1000)
            wait_until(lambda: _settled(testbed, namespace), timeout=120, interval=0.2, what="rolled back, baked")
            _patch_version(kubectl, GOOD)  # accept the rollback for the next cycle
            wait_ready(testbed, namespace, NAME, GOOD, timeout=60)

            _run([*kubectl, "set", "image", f"deployment/{UNDO}", f"app={late}"])
            wait_until(lambda: seen.image_since(UNDO, late, 0), timeout=60, interval=0.01, what="undo at LATE")
            _run([*kubectl, "rollout", "status", f"deployment/{UNDO}", "--timeout=60s"])
            timings[KUBECTL_UNDO].append(_undo(kubectl, seen, good))
    finally:
        seen.stop()
    return timings


def _undo(kubectl: list[str], seen: _Watch, good: str) -> float:
    """Milliseconds from starting `kubectl rollout undo` to the watch showing the Deployment back on `good`."""
    started = time.monotonic()
    _run([*kubectl, "rollout", "undo", f"deployment/{UNDO}"])
    undone = wait_until(lambda: seen.image_since(UNDO, good, started), timeout=60, interval=0.005, what="undo patched")
    return (undone - started) * 1000


def _settled(testbed: Testbed, namespace: str) -> bool:
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
    print(
        f"the bake (real node: a release serves, its process exits after {CRASH_AFTER_SECONDS}s, inside a "
        f"{BAKE_SECONDS}s bake):"
    )
    lines = [summary(name, values) for name, values in timings.items()]
    ratio = statistics.median(timings[ROLLBACK]) / statistics.median(timings[KUBECTL_UNDO])
    print(f"  automatic rollback after a crash in the bake: {ratio:.2f}x a kubectl rollout undo (p50)")
    lines.append({"metric": f"{ROLLBACK} / {KUBECTL_UNDO} (p50)", "value": round(ratio, 2), "unit": "x"})
    return lines


def main() -> None:
    from e2e.bench import summary  # the one formatting of `make bench` lines

    testbed = load_testbed()
    namespace = "bench-bake"
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    subprocess.run([*kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true"], check=False)
    testbed.create_namespace(namespace)
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    operator = Operator(testbed, ROOT / ".testbed" / "logs" / "bench-bake-operator.log")
    operator.start()
    try:
        results = report(measure(testbed, namespace, ROOT / ".testbed" / "bench"), summary)
    finally:
        operator.stop()
        subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"], capture_output=True)
    out = ROOT / ".testbed" / "bench-bake.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
