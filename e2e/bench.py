"""`make bench`: registry requests per AppRelease at scale, edit latency and memory, with numbers (never asserted).

First, without the test bed: the event intake (e2e/bench_intake.py), 10,000 AppRelease events through the kopf
handlers, time per event at the start and at the end and the size of the workload lookup, next to the map the
handlers kept before (issue 13). Then, against the real API server and registry of the test bed:
- registry requests through a counting proxy (the operator resolves images at the proxy's address): to create
  RELEASES AppReleases of one version, to upgrade them all, to roll them all back, next to their number;
- the edit-to-patch latency of one AppRelease (`spec.version` changed -> its Deployment's pod template carries
  the new digest) while RELEASES are resident, next to a raw `kubectl patch` of a Deployment in the same run
  (both timed from the start of the kubectl command to the watch event showing the change);
- the registry client's resolve time against the local registry, and the operator's resident memory;
- the registry client's memory with 20 ordinary vs 20 hostile images, and a healthy resolution's time while
  25 slow registries and 4 blackholed names are being resolved, next to the same alone (e2e/bench_registry.py);
- the metrics endpoint: scrape time, and the event loop's lag without scrapes, scraped every 5 s and under a
  scrape flood, as ratios (e2e/bench_metrics.py; `python -m e2e.bench_metrics` alone with 2,000 AppReleases);
- release safety: from the first failing pod of a bad release to the automatic rollback patched, and to Ready
  again (e2e/bench_safety.py; kwok chaos stages make the pods fail);
- the bake: from a crash inside the bake (real node, real containers) to the rollback patched, next to a
  `kubectl rollout undo` in the same run (e2e/bench_bake.py; `python -m e2e.bench_bake` runs it alone).

The Deployments have 0 replicas: the test bed's two kwok nodes hold 220 pods, fewer than RELEASES. Their
rollouts are still real (new ReplicaSets, observedGeneration), which is what the operator waits for; at 1,000
the time to all Ready is set by kube-controller-manager's client rate limit (QPS 20), not by the operator.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client

from apprelease.controller.kubeclient import connect
from apprelease.core.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from e2e import bench_bake, bench_ha, bench_intake, bench_metrics, bench_registry, bench_safety
from e2e.counting_proxy import CountingProxy
from e2e.fleet import GROUP, PLURAL, RAW, VERSION, Watcher, edit_latencies, equals, image_of, in_parallel, ready_version
from e2e.images import build_and_push, make_app_repo
from e2e.releases import deployment_manifest, release_manifest
from e2e.support import ROOT, Operator, load_testbed

NAMESPACE = "bench"
RELEASES = int(os.environ.get("BENCH_RELEASES", "1000"))
EDITS = 10


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float], unit: str = "ms") -> dict[str, object]:
    line = {
        "metric": name,
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p90": round(pct(values, 0.9), 1),
        "max": round(max(values), 1),
        "unit": unit,
    }
    print(f"  {name:<52} n={line['n']:<4} p50={line['p50']:>8} p90={line['p90']:>8} max={line['max']:>8} {unit}")
    return line


def main() -> None:  # noqa: C901 - one benchmark script read top to bottom (not product code)
    intake = bench_intake.measure()  # pure Python: a number even when the test bed below fails
    testbed = load_testbed()
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    api = connect(testbed.kubeconfig).api_client
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true"], check=False)
    testbed.create_namespace(NAMESPACE)
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    work = ROOT / ".testbed" / "bench"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    versions = ["v1.0.0", "v1.1.0", "v1.2.0"]
    make_app_repo(work / "app", testbed.base_image, versions)
    direct = f"{testbed.registry}/bench/app"
    digests = {v: build_and_push(work / "app", direct, v, git_ref=v).digest for v in versions}
    v1, v2, v3 = versions

    results: list[dict[str, object]] = list(intake)
    print("registry client (local registry, HEAD):")
    with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as registry:
        ref = parse(f"{direct}:{v1}")
        cold = []
        for _ in range(50):
            started = time.perf_counter()
            registry.resolve(ref, use_cache=False)
            cold.append((time.perf_counter() - started) * 1000)
        cached = []
        for _ in range(1000):
            started = time.perf_counter()
            registry.resolve(ref)
            cached.append((time.perf_counter() - started) * 1000)
    results.append(summary("resolve, uncached", cold))
    results.append(summary("resolve, cached", cached, "ms"))
    results += bench_registry.measure(testbed.registry, f"bench/app:{v1}")

    proxy = CountingProxy(testbed.registry)
    proxy.start()
    image = f"{proxy.netloc}/bench/app"  # the same repository, counted on its way
    operator = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "bench-operator.log",
        extra_env={
            "APPRELEASE_INSECURE_REGISTRIES": f"{testbed.registry},{proxy.netloc}",
            "APPRELEASE_ALLOWED_REGISTRIES": f"{testbed.registry},{proxy.netloc}",
            "APPRELEASE_WATCH_NAMESPACES": NAMESPACE,
            "APPRELEASE_ROLLOUT_POLL_SECONDS": "5",
            # The periodic tag-moved check (one per (repository, tag) per 0.9 x resync) stays out of the run.
            "APPRELEASE_RESYNC_SECONDS": "1800",
            "APPRELEASE_REGISTRY_CACHE_SECONDS": "60",
        },
    )
    names = [f"app-{i:04d}" for i in range(RELEASES)]
    deployments = Watcher(api, NAMESPACE, ("apps", "v1", "deployments"), image_of)
    releases = Watcher(api, NAMESPACE, (GROUP, VERSION, PLURAL), ready_version)
    operator.start()
    try:
        time.sleep(2)
        idle_rss = operator.rss_kib() / 1024
        proxy.take()

        print(f"registry requests through a counting proxy, {RELEASES} AppReleases of one version:")

        def create(name: str) -> None:
            body = deployment_manifest(NAMESPACE, name, {"app": f"{image}:v0"}, replicas=0, release=name)
            apps.create_namespaced_deployment(NAMESPACE, cast(Any, body))  # the client takes plain dicts too
            workloads = [{"kind": "Deployment", "name": name}]
            custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, release_manifest(NAMESPACE, name, image, v1, workloads)
            )

        def set_version(version: str) -> Callable[[str], object]:
            return lambda name: custom.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, name, {"spec": {"version": version}}
            )

        phases: list[tuple[str, Counter[str], float, float]] = []
        for phase, action, version in (
            ("create", create, v1),
            ("upgrade", set_version(v2), v2),
            ("roll back", set_version(v1), v1),
        ):
            started = time.monotonic()
            in_parallel(action, names)
            want = f"{image}@{digests[version]}"
            deployments.wait_all(names, equals(want), 600, f"Deployments at {want}")
            patched = time.monotonic() - started
            releases.wait_all(names, equals(version), 600, f"AppReleases Ready at {version}")
            phases.append((phase, proxy.take(), patched, time.monotonic() - started))
        for phase, counts, patched, elapsed in phases:
            total = sum(counts.values())
            detail = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"
            print(
                f"  {phase:<10} {RELEASES} AppReleases: {total} registry requests "
                f"({total / RELEASES:.4f} per AppRelease; {detail}); "
                f"all Deployments patched in {patched:.0f}s, all Ready in {elapsed:.0f}s"
            )
            results.append(
                {
                    "metric": f"registry requests to {phase} {RELEASES} AppReleases",
                    "value": total,
                    "per_apprelease": round(total / RELEASES, 4),
                    "detail": dict(counts),
                    "seconds_to_all_patched": round(patched, 1),
                    "seconds_to_all_ready": round(elapsed, 1),
                }
            )

        print(f"edit latency with {RELEASES} AppReleases resident (kubectl patch -> watch shows the change):")
        edits = edit_latencies(
            kubectl, apps, NAMESPACE, deployments, names, lambda v: f"{image}@{digests[v]}", (v3, v2), EDITS
        )
        raw = edits.pop(RAW)
        for kind, values in edits.items():
            results.append(summary(f"{kind}, Deployment patched", values))
        results.append(summary(RAW, raw))
        for kind, values in edits.items():
            ratio = statistics.median(values) / statistics.median(raw)
            print(f"  {kind}: {ratio:.2f}x a raw kubectl patch (p50)")
            results.append({"metric": f"{kind} / raw kubectl patch (p50)", "value": round(ratio, 2), "unit": "x"})

        busy_rss = operator.rss_kib() / 1024
        print(f"operator RSS: idle {idle_rss:.1f} MiB; with {RELEASES} AppReleases {busy_rss:.1f} MiB")
        results.append({"metric": "operator RSS idle", "value": round(idle_rss, 1), "unit": "MiB"})
        results.append(
            {"metric": f"operator RSS with {RELEASES} AppReleases", "value": round(busy_rss, 1), "unit": "MiB"}
        )
        # The metrics endpoint with the AppReleases above resident: scrape time and event-loop lag.
        env = testbed.operator_env()
        health_port, metrics_port = int(env["APPRELEASE_HEALTH_PORT"]), int(env["APPRELEASE_METRICS_PORT"])
        results += bench_metrics.measure(health_port, metrics_port, RELEASES, summary)
        # Release safety, with the AppReleases above still resident: a bad release's pods crash (kwok chaos).
        timings = bench_safety.measure(testbed, NAMESPACE, direct, v1, v2, digests)
        results += bench_safety.report(timings, summary)
        # The bake, on the real node: a release that serves, then crashes inside the bake (issue 14).
        results += bench_bake.report(bench_bake.measure(testbed, NAMESPACE, work), summary)
    finally:
        deployments.stop()
        releases.stop()
        operator.stop()
        proxy.stop()
        subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=false"], capture_output=True)
    # High availability: failover over BENCH_HA_KILLS leader kills, its own namespace and operators.
    results += bench_ha.report(bench_ha.measure(testbed), summary)
    out = ROOT / ".testbed" / "bench.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
