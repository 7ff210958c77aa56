"""`make bench`, promotion: how soon after the soak's end the promoted digest reaches the downstream Deployment,
next to a raw `kubectl patch` of a Deployment to the same digest in the same run, as a ratio (issue 18: "deploys
within 2 s of its end").

For each of PROMOTIONS (`BENCH_PROMOTIONS`, default 10) pairs: the downstream AppRelease names its upstream in
`spec.promotion.from` with a soak of SOAK_SECONDS and waits (`AwaitingPromotion`); the upstream then releases
the version. The soak's end is what status says: the upstream history entry's `succeededAt` plus the soak
(`succeededAt` has whole seconds, as every status time). The delay runs from there to the watch event showing
the downstream Deployment's pod template on the upstream's digest (wall clock: both times are this machine's).
Baseline: `kubectl patch` of an unmanaged Deployment, pre-pinned to another digest, to the same digest, from
the start of the command to the watch event.
Deployments have 0 replicas: the operator's reaction is measured, not the kubelet's. Run alone with
`python -m e2e.bench_promotion` (test bed up); it starts its own operator on its own ports.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
from e2e.images import build_and_push, make_app_repo
from e2e.releases import deployment_manifest, get_release, release_manifest, wait_condition
from e2e.support import ROOT, Operator, Testbed, load_testbed, wait_until

NAMESPACE = "bench-promotion"
PROMOTIONS = int(os.environ.get("BENCH_PROMOTIONS", "10"))
SOAK_SECONDS = 3
VERSION = "v1.0.0"
PROMOTED = "soak's end -> promoted digest in the Deployment"
RAW = "raw kubectl patch -> Deployment observed"
ELSEWHERE = "sha256:" + "0" * 64  # the baseline Deployment's digest before its patch (0 replicas: never pulled)

Summary = Callable[[str, list[float]], dict[str, object]]


class _Deployments:
    """Each Deployment's first container image as the watch reports it, with the wall-clock time it arrived."""

    def __init__(self, api: client.ApiClient) -> None:
        self._apps = client.AppsV1Api(api)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.images: dict[str, tuple[float, str]] = {}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._apps.list_namespaced_deployment, NAMESPACE, timeout_seconds=30
            )
            for event in stream:
                obj = event["object"]
                with self._lock:
                    self.images[obj.metadata.name] = (time.time(), obj.spec.template.spec.containers[0].image)

    def seen(self, name: str, image: str, since: float) -> float | None:
        with self._lock:
            at, current = self.images.get(name, (0.0, ""))
        return at if current == image and at >= since else None

    def stop(self) -> None:
        self._stop.set()


def _run(args: list[str], input: str | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, input=input)


def _apply(kubectl: list[str], *manifests: dict[str, Any]) -> None:
    _run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump_all(manifests))


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _succeeded_at(testbed: Testbed, name: str) -> str | None:
    history = get_release(testbed, NAMESPACE, name).get("status", {}).get("history") or [{}]
    stamp = history[0].get("succeededAt")
    return str(stamp) if stamp else None


def _promote_once(testbed: Testbed, kubectl: list[str], seen: _Deployments, i: int, repository: str) -> float:
    """One pair: downstream waiting, upstream released; milliseconds from the soak's end to the patch seen."""
    up, down = f"up-{i}", f"down-{i}"
    for name in (up, down):
        _apply(kubectl, deployment_manifest(NAMESPACE, name, {"app": f"{repository}:v0"}, replicas=0, release=name))
    promotion = {"from": {"namespace": NAMESPACE, "name": up}, "soakSeconds": SOAK_SECONDS}
    workloads = [{"kind": "Deployment", "name": down}]
    _apply(kubectl, release_manifest(NAMESPACE, down, repository, VERSION, workloads, promotion=promotion))
    wait_condition(testbed, NAMESPACE, down, "Ready", "False", "AwaitingPromotion", timeout=60)
    _apply(kubectl, release_manifest(NAMESPACE, up, repository, VERSION, [{"kind": "Deployment", "name": up}]))
    stamp = wait_until(lambda: _succeeded_at(testbed, up), timeout=120, interval=0.1, what=f"{up} Succeeded")
    pinned = f"{repository}@{get_release(testbed, NAMESPACE, up)['status']['digest']}"
    soak_end = _epoch(stamp) + SOAK_SECONDS
    arrived = wait_until(lambda: seen.seen(down, pinned, 0), timeout=120, interval=0.005, what=f"{down} patched")
    return (arrived - soak_end) * 1000


def _raw_once(kubectl: list[str], seen: _Deployments, i: int, repository: str, digest: str) -> float:
    """Milliseconds from starting `kubectl patch` of a pre-pinned Deployment to the watch showing `digest`."""
    name = f"raw-{i}"
    _apply(
        kubectl, deployment_manifest(NAMESPACE, name, {"app": f"{repository}@{ELSEWHERE}"}, replicas=0, release=None)
    )
    wait_until(lambda: seen.seen(name, f"{repository}@{ELSEWHERE}", 0), timeout=60, interval=0.01, what=name)
    target = f"{repository}@{digest}"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": target}]}}}}
    started = time.time()
    _run([*kubectl, "patch", "deployment", name, "--type=merge", "-p", json.dumps(patch)])
    arrived = wait_until(lambda: seen.seen(name, target, started), timeout=60, interval=0.005, what=f"{name} patched")
    return (arrived - started) * 1000


def measure(testbed: Testbed, work: Path, promotions: int = PROMOTIONS) -> dict[str, list[float]]:
    """The promotions and the baseline patches, in milliseconds; starts and stops its own operator."""
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true"], check=False)
    testbed.create_namespace(NAMESPACE)
    _run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")])
    path = work / "promotion-app"
    _run(["rm", "-rf", str(path)])
    make_app_repo(path, testbed.base_image, [VERSION])
    repository = f"{testbed.registry}/bench/promotion"
    digest = build_and_push(path, repository, VERSION, git_ref=VERSION).digest
    env = {
        "APPRELEASE_WATCH_NAMESPACES": NAMESPACE,
        "APPRELEASE_HEALTH_PORT": "18310",
        "APPRELEASE_METRICS_PORT": "18311",
    }
    operator = Operator(testbed, ROOT / ".testbed" / "logs" / "bench-promotion-operator.log", extra_env=env)
    seen = _Deployments(connect(testbed.kubeconfig).api_client)
    timings: dict[str, list[float]] = {PROMOTED: [], RAW: []}
    in_namespace = [*kubectl, "-n", NAMESPACE]
    operator.start()
    try:
        for i in range(promotions):
            timings[PROMOTED].append(_promote_once(testbed, in_namespace, seen, i, repository))
            timings[RAW].append(_raw_once(in_namespace, seen, i, repository, digest))
            late, raw = timings[PROMOTED][-1], timings[RAW][-1]
            print(f"  promotion {i + 1}: {late:.0f} ms after the soak's end; raw patch {raw:.0f} ms")
    finally:
        seen.stop()
        operator.stop()
        subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=false"], capture_output=True)
    return timings


def report(timings: dict[str, list[float]], summary: Summary) -> list[dict[str, object]]:
    print(f"promotion (soak {SOAK_SECONDS}s; the soak's end from status: upstream succeededAt + soakSeconds):")
    lines = [summary(name, values) for name, values in timings.items()]
    ratio = statistics.median(timings[PROMOTED]) / statistics.median(timings[RAW])
    print(f"  promoted after the soak: {ratio:.2f}x a raw kubectl patch (p50)")
    lines.append({"metric": f"{PROMOTED} / {RAW} (p50)", "value": round(ratio, 2), "unit": "x"})
    return lines


def main() -> None:
    from e2e.bench import summary  # the one formatting of `make bench` lines

    results = report(measure(load_testbed(), ROOT / ".testbed" / "bench"), summary)
    out = ROOT / ".testbed" / "bench-promotion.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
