"""`make bench`: reconcile latency and operator memory on the test bed, with numbers (never asserted in tests).

Measures, against the real API server and registry:
- edit-to-patch latency: `spec.version` changed -> the Deployment's pod template carries the new digest,
  for upgrades (registry resolution) and rollbacks (recorded digest, no registry);
- edit-to-Ready latency for the same edits;
- the registry client's resolve time (HEAD) against the local registry;
- the operator's resident memory idle, and with many AppReleases and Deployments.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import yaml

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from e2e.images import build_and_push, make_app_repo
from e2e.releases import container_images, deployment_manifest, release_manifest, wait_ready
from e2e.support import ROOT, Operator, load_testbed, wait_until

NAMESPACE = "bench"
UPGRADES = 5
ROLLBACKS = 10
MANY = 50


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
    print(f"  {name:<44} n={line['n']:<4} p50={line['p50']:>8} p90={line['p90']:>8} max={line['max']:>8} {unit}")
    return line


def main() -> None:
    testbed = load_testbed()
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    subprocess.run(
        [*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true"], capture_output=True
    )
    testbed.create_namespace(NAMESPACE)
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    work = ROOT / ".testbed" / "bench"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    versions = [f"v1.{minor}.0" for minor in range(UPGRADES + 1)]
    make_app_repo(work / "app", testbed.base_image, versions)
    image = f"{testbed.registry}/bench/app"
    digests = {v: build_and_push(work / "app", image, v, git_ref=v).digest for v in versions}

    results: list[dict[str, object]] = []
    print("registry client (local registry, HEAD):")
    with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as registry:
        ref = parse(f"{image}:v1.0.0")
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
    results.append(summary("resolve, cached", cached))

    operator = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "bench-operator.log",
        extra_env={"APPRELEASE_ROLLOUT_POLL_SECONDS": "5", "APPRELEASE_RESYNC_SECONDS": "300"},
    )
    operator.start()
    try:
        time.sleep(2)
        idle_rss = operator.rss_kib() / 1024
        apply_yaml(kubectl, deployment_manifest(NAMESPACE, "app", {"app": f"{image}:v0"}))
        apply_yaml(
            kubectl, release_manifest(NAMESPACE, "app", image, versions[0], [{"kind": "Deployment", "name": "app"}])
        )
        wait_ready(testbed, NAMESPACE, "app", versions[0])
        patched: dict[str, list[float]] = {"upgrade (registry)": [], "rollback (history)": []}
        ready: dict[str, list[float]] = {"upgrade (registry)": [], "rollback (history)": []}
        # Upgrades through new versions resolve in the registry; then rollbacks restore recorded digests.
        plan = [(v, "upgrade (registry)") for v in versions[1:]]
        plan += [(versions[i % UPGRADES], "rollback (history)") for i in range(ROLLBACKS)]
        for version, kind in plan:
            want = f"{image}@{digests[version]}"
            started = time.monotonic()
            subprocess.run(
                [
                    *kubectl,
                    "-n",
                    NAMESPACE,
                    "patch",
                    "apprelease",
                    "app",
                    "--type=merge",
                    "-p",
                    json.dumps({"spec": {"version": version}}),
                ],
                check=True,
                capture_output=True,
            )
            wait_until(
                lambda want=want: container_images(testbed, NAMESPACE, "app")["app"] == want,  # type: ignore[misc]
                timeout=60,
                interval=0.02,
                what="patched",
            )
            patched[kind].append((time.monotonic() - started) * 1000)
            wait_ready(testbed, NAMESPACE, "app", version)
            ready[kind].append((time.monotonic() - started) * 1000)
        print("reconcile latency (kubectl patch of spec.version -> ...):")
        for kind in patched:
            if patched[kind]:
                results.append(summary(f"Deployment patched, {kind}", patched[kind]))
                results.append(summary(f"Ready, {kind}", ready[kind]))

        print(f"operator memory with {MANY} more AppReleases and Deployments:")
        for i in range(MANY):
            apply_yaml(kubectl, deployment_manifest(NAMESPACE, f"many-{i}", {"app": f"{image}:v0"}, replicas=1))
            apply_yaml(
                kubectl,
                release_manifest(
                    NAMESPACE, f"many-{i}", image, "v1.0.0", [{"kind": "Deployment", "name": f"many-{i}"}]
                ),
            )
        started = time.monotonic()
        for i in range(MANY):
            wait_ready(testbed, NAMESPACE, f"many-{i}", "v1.0.0", timeout=300)
        converge = time.monotonic() - started
        busy_rss = operator.rss_kib() / 1024
        print(
            f"  idle RSS {idle_rss:.1f} MiB; with {MANY + 1} AppReleases {busy_rss:.1f} MiB; "
            f"{MANY} new AppReleases Ready {converge:.1f}s after the last apply"
        )
        results.append({"metric": "operator RSS idle", "value": round(idle_rss, 1), "unit": "MiB"})
        results.append(
            {"metric": f"operator RSS with {MANY + 1} AppReleases", "value": round(busy_rss, 1), "unit": "MiB"}
        )
        results.append(
            {"metric": f"{MANY} AppReleases Ready after last apply", "value": round(converge, 1), "unit": "s"}
        )
    finally:
        operator.stop()
        subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=false"], capture_output=True)
    out = ROOT / ".testbed" / "bench.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


def apply_yaml(kubectl: list[str], manifest: dict[str, object]) -> None:
    result = subprocess.run(
        [*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(manifest), capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(result.stderr)


if __name__ == "__main__":
    main()
