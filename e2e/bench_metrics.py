"""`make bench`, the metrics endpoint: scrape time and the operator's event-loop lag with many AppReleases
resident, without scrapes, scraped every 5 s (as Prometheus does, gzip), and under a scrape flood.

The lag is the round trip of kopf's liveness endpoint (GET /healthz, served by aiohttp on the operator's event
loop; it runs no probe handlers), polled every 100 ms: what a loop busy elsewhere delays. Numbers are reported
next to the run without scrapes as a ratio, never asserted.

`measure` runs against an operator that already holds the AppReleases (bench.py calls it); run alone,
`python -m e2e.bench_metrics` creates BENCH_METRICS_RELEASES (default 2,000) AppReleases first.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from kubernetes import client

from apprelease.controller.kubeclient import connect
from e2e.images import build_and_push, make_app_repo
from e2e.releases import deployment_manifest, release_manifest
from e2e.support import ROOT, Operator, load_testbed, wait_until

WINDOW = float(os.environ.get("BENCH_METRICS_SECONDS", "30"))
SCRAPE_EVERY = 5.0
FLOOD_CLIENTS = 8
Summary = Callable[..., dict[str, object]]


def _get(url: str, timeout: float = 30, gzip: bool = False) -> tuple[float, int]:
    """Seconds for one whole GET (body read), and the body's size."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip else {})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


class _Lag:
    """Round trips of GET /healthz every 100 ms, in ms, until stopped."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(_get(self.url, timeout=10)[0] * 1000)
            except OSError:
                self.samples.append(10_000.0)
            self._stop.wait(0.1)

    def __enter__(self) -> _Lag:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)


def _window(health_port: int, load: Callable[[threading.Event], None]) -> list[float]:
    stop = threading.Event()
    worker = threading.Thread(target=load, args=(stop,), daemon=True)
    with _Lag(health_port) as lag:
        worker.start()
        time.sleep(WINDOW)
        stop.set()
        worker.join(60)
    return lag.samples


def measure(health_port: int, metrics_port: int, releases: int, summary: Summary) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    _, plain_size = _get(url)
    _, gzip_size = _get(url, gzip=True)
    print(f"metrics endpoint, {releases} AppReleases: page {plain_size / 1024:.0f} KiB, {gzip_size / 1024:.0f} gzip")
    scrapes: list[float] = []
    flood: list[float] = []

    def idle(stop: threading.Event) -> None:
        stop.wait()

    def every_5s(stop: threading.Event) -> None:
        while not stop.is_set():
            scrapes.append(_get(url, gzip=True)[0] * 1000)
            stop.wait(SCRAPE_EVERY)

    def flooded(stop: threading.Event) -> None:
        def one() -> None:
            while not stop.is_set():
                flood.append(_get(url, gzip=True)[0] * 1000)

        with ThreadPoolExecutor(FLOOD_CLIENTS) as pool:
            for _ in range(FLOOD_CLIENTS):
                pool.submit(one)

    lags = {name: _window(health_port, load) for name, load in
            (("no scrapes", idle), (f"scraped every {SCRAPE_EVERY:.0f}s", every_5s),
             (f"scrape flood, {FLOOD_CLIENTS} clients", flooded))}  # fmt: skip
    results = [
        summary(f"scrape (gzip, whole page), {releases} AppReleases, every 5s", scrapes),
        summary(f"scrape under a flood of {FLOOD_CLIENTS} clients", flood),
    ]
    results += _lag_report(lags, summary)
    results.append({"metric": f"scrapes answered in the flood ({WINDOW:.0f}s)", "value": len(flood), "unit": "n"})
    return results


def _lag_report(lags: dict[str, list[float]], summary: Summary) -> list[dict[str, object]]:
    """Each window's lag, and each loaded window next to the one without scrapes (p50, p99) as a ratio."""
    results = [summary(f"event-loop lag (/healthz round trip), {name}", samples) for name, samples in lags.items()]
    base = lags["no scrapes"]
    for name, samples in list(lags.items())[1:]:
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            ratio = _pct(samples, q) / max(_pct(base, q), 0.001)
            print(f"  loop lag {label}, {name} / no scrapes: {ratio:.2f}x")
            results.append({"metric": f"loop lag {label}, {name} / no scrapes", "value": round(ratio, 2), "unit": "x"})
    return results


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(name: str, values: list[float], unit: str = "ms") -> dict[str, object]:
    line: dict[str, object] = {"metric": name, "n": len(values), "unit": unit}
    line.update(p50=round(statistics.median(values), 1), p99=round(_pct(values, 0.99), 1), max=round(max(values), 1))
    print(f"  {name:<64} n={len(values):<5} p50={line['p50']:>8} p99={line['p99']:>8} max={line['max']:>8} {unit}")
    return line


def main() -> None:
    """Create BENCH_METRICS_RELEASES AppReleases (Deployments of 0 replicas), let them deploy, then measure."""
    namespace, releases = "bench-metrics", int(os.environ.get("BENCH_METRICS_RELEASES", "2000"))
    testbed = load_testbed()
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    api = connect(testbed.kubeconfig).api_client
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    subprocess.run([*kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true"], check=False)
    testbed.create_namespace(namespace)
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")], check=True)
    work = ROOT / ".testbed" / "bench-metrics"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    make_app_repo(work / "app", testbed.base_image, ["v1.0.0"])
    image = f"{testbed.registry}/bench/metrics"
    build_and_push(work / "app", image, "v1.0.0", git_ref="v1.0.0")
    ports = {"APPRELEASE_HEALTH_PORT": "18180", "APPRELEASE_METRICS_PORT": "18190"}
    operator = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "bench-metrics-operator.log",
        extra_env={**ports, "APPRELEASE_WATCH_NAMESPACES": namespace, "APPRELEASE_RESYNC_SECONDS": "1800",
                   "APPRELEASE_ROLLOUT_POLL_SECONDS": "5", "APPRELEASE_REGISTRY_CACHE_SECONDS": "600"},
    )  # fmt: skip
    operator.start()
    try:
        names = [f"app-{i:04d}" for i in range(releases)]

        def create(name: str) -> None:
            body = deployment_manifest(namespace, name, {"app": f"{image}:v0"}, replicas=0, release=name)
            apps.create_namespaced_deployment(namespace, cast(Any, body))
            manifest = release_manifest(namespace, name, image, "v1.0.0", [{"kind": "Deployment", "name": name}])
            custom.create_namespaced_custom_object("apprelease.dev", "v1alpha1", namespace, "appreleases", manifest)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, names))
        url = f"http://127.0.0.1:{ports['APPRELEASE_METRICS_PORT']}/metrics"

        def all_deployed() -> bool:
            with urllib.request.urlopen(url, timeout=30) as response:
                page = response.read().decode()
            return bool(page.count("apprelease_info{") >= releases)

        wait_until(all_deployed, timeout=1200, interval=5, what=f"{releases} AppReleases deployed")
        rss = operator.rss_kib() / 1024
        print(f"operator RSS with {releases} AppReleases: {rss:.1f} MiB")
        measure(int(ports["APPRELEASE_HEALTH_PORT"]), int(ports["APPRELEASE_METRICS_PORT"]), releases, _summary)
    finally:
        operator.stop()
        subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"], capture_output=True)


if __name__ == "__main__":
    main()
