"""`make bench`, a large fleet: N AppReleases (BENCH_SCALE_SIZES, default 1000,10000; one complete run per N),
each next to the direct baseline measured in the same run (issue 19).

For each N, on the test bed switched to its scale settings (`APPRELEASE_TESTBED_SCALE`, e2e/testbed/up.sh:
controller-manager and scheduler client rates, Deployment and ReplicaSet workers, kwok pod capacity):
- direct: the apply (16 client threads) of N Deployments already pinned to a digest, timed from the end of
  the apply until every rollout is complete (the controller-manager's work alone);
- operator: the same apply of N unpinned Deployments, each followed by its AppRelease, with the operator
  running (AppReleases with a 2 s bake); timed from the end of the apply until every Deployment is pinned
  (goal: under 60 s at 10,000) and until every AppRelease is Ready (from the start of the apply, next to the
  direct baseline, as a ratio);
- registry requests (through e2e/counting_proxy.py) to create N AppReleases of one version, to upgrade them
  all and to roll them all back, per version: the goal is the same count at any N;
- the operator's resident memory when idle and its peak over the run (goal: 300 MiB at 10,000);
- a single `spec.version` edit -> Deployment patched while N are resident, next to a raw `kubectl patch` of a
  Deployment in the same namespace (goal: at most 1.5x);
- a new operator process (a new leader) with N resident: from its start until it has passed over all N, and
  its registry requests (goal: none, history has recorded every digest).

Deployments have BENCH_SCALE_REPLICAS replicas (default 0: their rollouts are real, new ReplicaSets and
observedGeneration, without 2 x N pods on a machine that also runs the control plane; the scale settings give
the kwok nodes room for N one-replica Deployments).

The test bed is shared: the bench changes its settings, so hold the test bed's lock for the whole run (e.g.
`flock LOCKFILE python -m e2e.bench_scale`). Whatever happens (failure, SIGTERM, SIGINT), it deletes what it
made and restarts the test bed with its normal settings before it exits.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from kubernetes import client

from apprelease.controller.kubeclient import connect
from apprelease.controller.settings import OperatorSettings
from e2e.counting_proxy import CountingProxy
from e2e.fleet import (
    GROUP,
    PLURAL,
    RAW,
    VERSION,
    RssSampler,
    Watcher,
    cpu_seconds,
    create_all,
    edit_latencies,
    equals,
    image_of,
    in_parallel,
    passes,
    ready_version,
    rolled_out,
)
from e2e.images import build_and_push, make_app_repo
from e2e.releases import deployment_manifest, release_manifest
from e2e.support import ROOT, Operator, Testbed, load_testbed, wait_until

SIZES = [int(n) for n in os.environ.get("BENCH_SCALE_SIZES", "1000,10000").split(",") if n.strip()]
REPLICAS = int(os.environ.get("BENCH_SCALE_REPLICAS", "0"))
EDITS = 10
DIRECT, OPERATED = "bench-scale-direct", "bench-scale"
WAIT = 1800.0  # seconds: the longest wait for a whole fleet (a failure, never a number)
RESTART_WAIT = 600.0  # seconds: a new process that has not passed over N by then is reported as such


@dataclass
class Run:
    """One N's numbers, in seconds, MiB, counts and milliseconds."""

    size: int
    direct_apply: float = 0.0
    direct_ready: float = 0.0
    apply: float = 0.0
    pinned: float = 0.0
    ready: float = 0.0
    rss_idle: float = 0.0
    rss_peak: float = 0.0
    cpu: float = 0.0  # operator CPU seconds, start to the end of the edits
    restart: float = 0.0  # a new process with N resident: start -> N passes done
    restart_cpu: float = 0.0
    registry: dict[str, Counter[str]] = field(default_factory=dict)
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)  # upgrade/roll back: pinned, Ready
    edits: dict[str, list[float]] = field(default_factory=dict)


@contextmanager
def scaled_testbed(kubectl: list[str], size: int) -> Iterator[None]:
    """The test bed with the settings for `size` Deployments; afterwards, whatever happened, the bench's
    namespaces deleted and the normal settings back (SIGTERM and SIGHUP end the run through here too)."""

    def stop(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        _up({"APPRELEASE_TESTBED_SCALE": str(size)})
        yield
    finally:
        # Deleted first: the normal settings (110 pods per kwok node, client QPS 20) would take long with them.
        for namespace in (DIRECT, OPERATED):
            _delete_namespace(kubectl, namespace)
        _up({})
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _up(extra: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "APPRELEASE_TESTBED_SCALE"} | extra
    subprocess.run([str(ROOT / "e2e" / "testbed" / "up.sh")], env=env, check=True)


def _delete_namespace(kubectl: list[str], namespace: str) -> None:
    subprocess.run(
        [*kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=900s"],
        capture_output=True,
        check=False,
    )


def measure_direct(testbed: Testbed, api: client.ApiClient, run: Run, pinned: str) -> None:
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    names = [f"app-{i:05d}" for i in range(run.size)]
    testbed.create_namespace(DIRECT)
    rollouts = Watcher(api, DIRECT, ("apps", "v1", "deployments"), rolled_out)
    try:
        manifests = [
            [deployment_manifest(DIRECT, name, {"app": pinned}, replicas=REPLICAS, release=None)] for name in names
        ]
        started = time.monotonic()
        create_all(api, manifests)
        applied = time.monotonic()
        last = rollouts.wait_all(names, _complete, WAIT, "Deployments rolled out")
        run.direct_apply, run.direct_ready = applied - started, last - applied
    finally:
        rollouts.stop()
        _delete_namespace(kubectl, DIRECT)


def _complete(view: tuple[str, bool]) -> bool:
    return view[1]


def measure_operator(testbed: Testbed, api: client.ApiClient, run: Run, digests: dict[str, str]) -> None:
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    v1, v2, v3 = list(digests)
    names = [f"app-{i:05d}" for i in range(run.size)]
    testbed.create_namespace(OPERATED)
    proxy = CountingProxy(testbed.registry)
    proxy.start()
    image = f"{proxy.netloc}/bench/app"

    def pinned(version: str) -> str:
        return f"{image}@{digests[version]}"

    operator = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / f"bench-scale-operator-{run.size}.log",
        extra_env={
            "APPRELEASE_INSECURE_REGISTRIES": f"{testbed.registry},{proxy.netloc}",
            "APPRELEASE_ALLOWED_REGISTRIES": f"{testbed.registry},{proxy.netloc}",
            "APPRELEASE_WATCH_NAMESPACES": OPERATED,
            "APPRELEASE_ROLLOUT_POLL_SECONDS": "5",
            # As e2e/bench.py: the periodic tag-moved check stays out of the run.
            "APPRELEASE_RESYNC_SECONDS": "1800",
            # The operator's default (e2e's Operator turns the cache off for tests that move tags).
            "APPRELEASE_REGISTRY_CACHE_SECONDS": str(OperatorSettings.model_fields["registry_cache_seconds"].default),
            "MALLOC_ARENA_MAX": "2",  # as the operator image sets it (operator/Dockerfile)
            "APPRELEASE_HEALTH_PORT": "18380",
            "APPRELEASE_METRICS_PORT": "18381",
        },
    )
    deployments = Watcher(api, OPERATED, ("apps", "v1", "deployments"), image_of)
    releases = Watcher(api, OPERATED, (GROUP, VERSION, PLURAL), ready_version)
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    operator.start()
    profiler = _profile(operator, run.size)
    sampler = RssSampler(operator.rss_kib)
    try:
        time.sleep(2)
        run.rss_idle = operator.rss_kib() / 1024
        proxy.take()
        manifests = [  # each Deployment before the AppRelease that lists it
            [
                deployment_manifest(OPERATED, name, {"app": f"{image}:v0"}, replicas=REPLICAS, release=name),
                release_manifest(OPERATED, name, image, v1, [{"kind": "Deployment", "name": name}]),
            ]
            for name in names
        ]
        started = time.monotonic()
        create_all(api, manifests)
        applied = time.monotonic()
        run.apply = applied - started
        note(f"N={run.size}: applied in {run.apply:.1f} s")
        run.pinned = deployments.wait_all(names, equals(pinned(v1)), WAIT, "Deployments pinned") - applied
        note(f"N={run.size}: apply end -> all pinned {run.pinned:.1f} s")
        run.ready = releases.wait_all(names, equals(v1), WAIT, "AppReleases Ready") - applied
        run.registry["create"] = proxy.take()
        note(f"N={run.size}: apply end -> all Ready {run.ready:.1f} s; registry {dict(run.registry['create'])}")
        for phase, version in (("upgrade", v2), ("roll back", v1)):

            def set_version(name: str, version: str = version) -> object:
                return custom.patch_namespaced_custom_object(
                    GROUP, VERSION, OPERATED, PLURAL, name, {"spec": {"version": version}}
                )

            in_parallel(set_version, names)
            applied = time.monotonic()
            done = deployments.wait_all(names, equals(pinned(version)), WAIT, f"Deployments at {version}")
            ready = releases.wait_all(names, equals(version), WAIT, f"AppReleases Ready at {version}")
            run.phases[phase] = (done - applied, ready - applied)
            run.registry[phase] = proxy.take()
            note(f"N={run.size}: {phase}: all pinned / Ready {run.phases[phase]}; registry {dict(run.registry[phase])}")
        # With N resident and nothing queued: one edit at a time, next to a raw kubectl patch.
        run.edits = edit_latencies(kubectl, apps, OPERATED, deployments, names, pinned, (v3, v2), EDITS)
        note(f"N={run.size}: edits (ms) {run.edits}")
        assert operator.process is not None
        run.cpu = cpu_seconds(operator.process.pid)
        operator.stop()
        proxy.take()
        started = time.monotonic()
        operator.start()
        port = operator.extra_env["APPRELEASE_METRICS_PORT"]
        try:
            wait_until(lambda: passes(port) >= run.size, timeout=RESTART_WAIT, interval=1, what=f"{run.size} passes")
            run.restart = time.monotonic() - started
        except AssertionError:  # a number too (10,000: kopf's index readiness, see the README), not a lost run
            run.restart = float("inf")
        run.restart_cpu = cpu_seconds(operator.process.pid)
        run.registry["restart (first pass over all)"] = proxy.take()
        note(f"N={run.size}: new process: all passed once in {run.restart:.1f} s; registry {run.registry}")
    finally:
        run.rss_peak = sampler.stop() / 1024
        deployments.stop()
        releases.stop()
        operator.stop()
        if profiler is not None:
            profiler.wait(timeout=60)
        proxy.stop()
        _delete_namespace(kubectl, OPERATED)


def _profile(operator: Operator, size: int) -> subprocess.Popen[bytes] | None:
    """With BENCH_SCALE_PROFILE=DIR: py-spy samples the operator for the whole run (collapsed stacks in
    DIR/operator-N.txt, one line per stack with its sample count: `sort -t' ' -k2 -n` shows the top)."""
    out = os.environ.get("BENCH_SCALE_PROFILE")
    if not out or operator.process is None:
        return None
    Path(out).mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--format",
        "raw",
        "--rate",
        "50",
        "--subprocesses",
        "--nonblocking",
    ]
    command += ["-p", str(operator.process.pid), "-o", f"{out}/operator-{size}.txt"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def note(text: str) -> None:
    """A number as soon as it is measured (a run of 10,000 takes long; a failure later keeps what came before)."""
    print(f"  .. {text}", flush=True)


def report(run: Run, summary: Callable[[str, list[float], str], dict[str, object]]) -> list[dict[str, object]]:
    n = run.size
    # From the start of the apply: the direct Deployments roll out while they are being applied.
    ready, direct_ready = run.apply + run.ready, run.direct_apply + run.direct_ready
    ratio = ready / direct_ready
    raw = statistics.median(run.edits[RAW])
    rows: list[tuple[str, str, str, str]] = [
        ("apply (API, 16 threads)", f"{run.apply:.1f} s (2N objects)", f"{run.direct_apply:.1f} s (N)", ""),
        ("apply end -> all Deployments pinned", f"{run.pinned:.1f} s", "pinned when applied", ""),
        ("apply end -> all Ready", f"{run.ready:.1f} s", f"{run.direct_ready:.1f} s", ""),
        ("apply start -> all Ready", f"{ready:.1f} s", f"{direct_ready:.1f} s", f"{ratio:.2f}x"),
    ]
    for phase, (done, ready) in run.phases.items():
        rows.append((f"{phase}: edits end -> all pinned / Ready", f"{done:.1f} s / {ready:.1f} s", "", ""))
    for kind in (k for k in run.edits if k != RAW):
        p50 = statistics.median(run.edits[kind])
        rows.append((f"{kind}, p50", f"{p50:.0f} ms", f"raw kubectl patch {raw:.0f} ms", f"{p50 / raw:.2f}x"))
    for phase, counts in run.registry.items():
        detail = ", ".join(f"{k} {c}" for k, c in sorted(counts.items())) or "none"
        rows.append((f"registry requests to {phase}", f"{sum(counts.values())} ({detail})", "", ""))
    rows.append(("operator RSS idle / peak", f"{run.rss_idle:.0f} / {run.rss_peak:.0f} MiB", "", ""))
    rows.append(("operator CPU, start -> edits done", f"{run.cpu:.0f} s", "", ""))
    rows.append(("new process: start -> all passed once", f"{run.restart:.1f} s ({run.restart_cpu:.0f} s CPU)", "", ""))
    print(f"{n} AppReleases (Deployments with {REPLICAS} replicas):")
    print(f"  {'measured':<48} {'operator':<34} {'direct baseline':<30} ratio")
    for row in rows:
        print(f"  {row[0]:<48} {row[1]:<34} {row[2]:<30} {row[3]}")
    results: list[dict[str, object]] = [
        summary(f"N={n} {k}, Deployment patched", v, "ms") for k, v in run.edits.items()
    ]
    results.append({"metric": f"N={n} apply end -> all pinned", "value": round(run.pinned, 1), "unit": "s"})
    results.append({"metric": f"N={n} apply end -> all Ready", "value": round(run.ready, 1), "unit": "s"})
    results.append(
        {"metric": f"N={n} direct: apply end -> rolled out", "value": round(run.direct_ready, 1), "unit": "s"}
    )
    results.append({"metric": f"N={n} apply start -> all Ready / direct", "value": round(ratio, 2), "unit": "x"})
    results.append({"metric": f"N={n} operator CPU to the end of the edits", "value": round(run.cpu), "unit": "s"})
    results.append({"metric": f"N={n} new process: start -> all passed", "value": round(run.restart, 1), "unit": "s"})
    for kind in (k for k in run.edits if k != RAW):
        value = round(statistics.median(run.edits[kind]) / raw, 2)
        results.append({"metric": f"N={n} {kind} / raw kubectl patch (p50)", "value": value, "unit": "x"})
    for phase, counts in run.registry.items():
        results.append(
            {"metric": f"N={n} registry requests to {phase}", "value": sum(counts.values()), "detail": dict(counts)}
        )
    results.append({"metric": f"N={n} operator RSS idle", "value": round(run.rss_idle, 1), "unit": "MiB"})
    results.append({"metric": f"N={n} operator RSS peak", "value": round(run.rss_peak, 1), "unit": "MiB"})
    return results


def main() -> None:
    from e2e.bench import summary  # the one formatting of `make bench` lines

    testbed = load_testbed()
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    api = connect(testbed.kubeconfig).api_client
    work = ROOT / ".testbed" / "bench-scale"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    versions = ["v1.0.0", "v1.1.0", "v1.2.0"]
    make_app_repo(work / "app", testbed.base_image, versions)
    direct = f"{testbed.registry}/bench/app"
    digests = {v: build_and_push(work / "app", direct, v, git_ref=v).digest for v in versions}
    results: list[dict[str, object]] = []
    with scaled_testbed(kubectl, max(SIZES)):
        for size in SIZES:
            run = Run(size)
            measure_direct(testbed, api, run, f"{direct}@{digests[versions[0]]}")
            measure_operator(testbed, api, run, digests)
            results += report(run, summary)
    out = ROOT / ".testbed" / "bench-scale.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
