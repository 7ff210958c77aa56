"""What `make bench` needs to drive a fleet of AppReleases and Deployments (e2e/bench.py, e2e/bench_scale.py).

- `Watcher`: one watch of a namespace's objects of one resource, as plain JSON (no typed models: at 10,000
  objects the client's model deserialization would cost the bench more CPU than the operator it measures),
  keeping per object a small view and the time it arrived;
- `create_all`: many Deployments and AppReleases created in parallel, a Deployment before the AppRelease that
  lists it;
- `edit_latencies`: `spec.version` edits of AppReleases next to raw `kubectl patch`es of a Deployment, each
  timed from the start of the kubectl command to the watch event showing the change;
- `RssSampler`: a process's peak resident memory over a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from kubernetes import client, watch

from e2e.releases import deployment_manifest
from e2e.support import wait_until

GROUP, VERSION, PLURAL = "apprelease.dev", "v1alpha1", "appreleases"
V = TypeVar("V")


class Watcher(Generic[V]):
    """`view(obj)` of every object of a resource in a namespace as the watch reports it, with its arrival time."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        resource: tuple[str, str, str],
        view: Callable[[Mapping[str, Any]], V],
    ) -> None:
        self._custom = client.CustomObjectsApi(api)  # returns plain dicts for any group, "apps" included
        self._namespace = namespace
        self._resource = resource
        self._view = view
        self.seen: dict[str, tuple[float, V]] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        group, version, plural = self._resource
        since: str | None = None  # resumed from the last event seen: no second burst of 10,000 ADDED events
        while not self._stop.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            events = stream.stream(  # type: ignore[no-untyped-call]
                self._custom.list_namespaced_custom_object,
                group,
                version,
                self._namespace,
                plural,
                timeout_seconds=300,
                resource_version=since,
                deserialize=False,  # plain JSON: the bench must not cost more CPU than what it measures
            )
            try:
                for event in events:
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED") and isinstance(obj, dict):
                        self.seen[obj["metadata"]["name"]] = (time.monotonic(), self._view(obj))
                    if isinstance(obj, dict):
                        since = obj["metadata"].get("resourceVersion") or since
                    if self._stop.is_set():
                        stream.stop()  # type: ignore[no-untyped-call]
            except Exception:  # noqa: BLE001 - an expired watch (410) starts again from a fresh list
                since = None
                time.sleep(0.5)

    def wait_for(self, name: str, wanted: Callable[[V], bool], since: float, timeout: float = 60) -> float:
        """The arrival time of the first view of `name` since `since` that is `wanted`."""

        def arrived() -> float | None:
            seen = self.seen.get(name)
            return seen[0] if seen is not None and seen[0] >= since and wanted(seen[1]) else None

        return wait_until(arrived, timeout=timeout, interval=0.001, what=f"{name} as wanted")

    def wait_all(self, names: list[str], wanted: Callable[[V], bool], timeout: float, what: str) -> float:
        """Wait until every name's latest view is `wanted`; the arrival time of the last of them."""
        left = set(names)

        def done() -> bool:
            for name in list(left):
                seen = self.seen.get(name)
                if seen is not None and wanted(seen[1]):
                    left.discard(name)
            return not left

        wait_until(done, timeout=timeout, interval=0.2, what=f"{len(names)} {what} ({len(left)} left)")
        return max(self.seen[name][0] for name in names)

    def stop(self) -> None:
        self._stop.set()


def equals(wanted: V) -> Callable[[V], bool]:
    """A predicate for `Watcher.wait_for`/`wait_all`: the view is `wanted`."""
    return lambda seen: seen == wanted


def image_of(obj: Mapping[str, Any]) -> str:
    """A Deployment's first container image."""
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def rolled_out(obj: Mapping[str, Any]) -> tuple[str, bool]:
    """(image, rollout complete): observed its generation, every replica updated and available."""
    spec, status = obj["spec"], obj.get("status") or {}
    replicas = spec.get("replicas", 1)
    complete = (
        status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
    )
    return image_of(obj), complete


def ready_version(obj: Mapping[str, Any]) -> str | None:
    """The version an AppRelease is Ready at, for its current generation; None when it is not Ready."""
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    fresh = ready.get("observedGeneration") == obj["metadata"]["generation"]
    return str(status.get("version")) if fresh and ready.get("status") == "True" else None


def create_all(api: client.ApiClient, groups: list[list[dict[str, Any]]], threads: int = 16) -> None:
    """Create every manifest (Deployments and AppReleases) through the API, `threads` groups at a time, each
    group in its order (a Deployment before the AppRelease that lists it). Not `kubectl create`: its client
    sends 5 requests a second, which would make the apply, not what follows it, the subject of the bench."""
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)

    def create(group: list[dict[str, Any]]) -> None:
        for manifest in group:
            namespace = manifest["metadata"]["namespace"]
            if manifest["kind"] == "Deployment":
                apps.create_namespaced_deployment(namespace, cast(Any, manifest))  # plain dicts are taken too
            else:
                group_, version = manifest["apiVersion"].split("/")
                custom.create_namespaced_custom_object(group_, version, namespace, PLURAL, manifest)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, groups))


def in_parallel(fn: Callable[[str], object], names: list[str], threads: int = 16) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, names))


def kubectl_patch(kubectl: list[str], namespace: str, kind: str, name: str, patch: dict[str, Any]) -> None:
    subprocess.run(
        [*kubectl, "-n", namespace, "patch", kind, name, "--type=merge", "-p", json.dumps(patch)],
        check=True,
        capture_output=True,
    )


UPGRADE, ROLLBACK = "AppRelease upgrade (registry)", "AppRelease rollback (history)"
RAW = "raw kubectl patch of a Deployment"


def edit_latencies(
    kubectl: list[str],
    apps: client.AppsV1Api,
    namespace: str,
    deployments: Watcher[str],
    names: list[str],
    pinned: Callable[[str], str],
    versions: tuple[str, str],
    edits: int,
) -> dict[str, list[float]]:
    """ms from the start of `kubectl patch` to the watch showing the Deployment changed: `edits` upgrades of
    names[i] to versions[0] (resolved at the registry), `edits` roll-backs of names[edits + i] to versions[1]
    (recorded in history), and `edits` raw image patches of a Deployment no AppRelease manages."""
    upgrade, back = versions
    raw_name = "raw"
    body = deployment_manifest(namespace, raw_name, {"app": "bench.invalid/raw:0"}, replicas=0, release=None)
    apps.create_namespaced_deployment(namespace, cast(Any, body))  # the client takes plain dicts too
    timings: dict[str, list[float]] = {UPGRADE: [], ROLLBACK: [], RAW: []}
    for i in range(edits):
        for kind, name, version in ((UPGRADE, names[i], upgrade), (ROLLBACK, names[edits + i], back)):
            image = pinned(version)
            started = time.monotonic()
            kubectl_patch(kubectl, namespace, "apprelease", name, {"spec": {"version": version}})
            arrived = deployments.wait_for(name, equals(image), started)
            timings[kind].append((arrived - started) * 1000)
        want = f"bench.invalid/raw:{i + 1}"
        started = time.monotonic()
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": want}]}}}}
        kubectl_patch(kubectl, namespace, "deployment", raw_name, patch)
        timings[RAW].append((deployments.wait_for(raw_name, equals(want), started) - started) * 1000)
    return timings


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def passes(metrics_port: str) -> int:
    """Reconcile passes an operator has finished (the sum of apprelease_reconcile_duration_seconds_count)."""
    return int(_metric_sum(metrics_port, "apprelease_reconcile_duration_seconds_count"))


def events_dropped(metrics_port: str) -> int:
    """Events the operator dropped because its queue, or a namespace's share of it, was full."""
    return int(_metric_sum(metrics_port, "apprelease_events_dropped_total"))


def queue_depth(metrics_port: str) -> int:
    """AppReleases waiting for a worker (apprelease_workqueue_depth)."""
    return int(_metric_sum(metrics_port, "apprelease_workqueue_depth"))


def _metric_sum(metrics_port: str, prefix: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(prefix))


class RssSampler:
    """The peak VmRSS (KiB) of a process, sampled every `interval` seconds until `stop`."""

    def __init__(self, rss_kib: Callable[[], int], interval: float = 0.5) -> None:
        self._rss_kib = rss_kib
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.peak_kib = max(self.peak_kib, self._rss_kib())
            except (OSError, AssertionError):  # the process is gone
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib
