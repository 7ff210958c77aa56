"""`make bench`, a large fleet: N AppReleases (BENCH_SCALE_SIZES, default 1000,10000; one complete run per N),
each next to the direct baseline measured in the same run (issue 19).

For each N, on the test bed switched to its scale settings (`APPRELEASE_TESTBED_SCALE`, e2e/testbed/up.sh:
controller-manager and scheduler client rates, Deployment and ReplicaSet workers, kwok pod capacity):
- direct: the apply (16 client threads) of N Deployments already pinned to a digest, timed from the end of
  the apply until every rollout is complete (the controller-manager's work alone);
- bare patcher (e2e/barepatcher.py): the same apply of N unpinned Deployments, with a bare controller that
  only PATCHes each one to the digest as soon as its watch shows it, with the operator's worker count: the
  floor of "apply end -> all pinned" on this machine, next to which the operator's number is a ratio;
- recording patcher (e2e/recordingpatcher.py): the operator's apply (each Deployment, then its AppRelease)
  with a controller that does only the operator's first pass: the revision recorded in the AppRelease's
  status by a conditional write, then the Deployment's PATCH: the floor for any controller that keeps
  the design's record-before-pin rule;
- operator: the same apply of N unpinned Deployments, each followed by its AppRelease, with the operator
  running (AppReleases with a 2 s bake; BENCH_SCALE_HOLD=1: with the chart's hold-unpinned admission
  policy); timed from the end of the apply until every Deployment is pinned (goal: under 60 s at 10,000)
  and until every AppRelease is Ready (from the start of the apply, next to the direct baseline, as a ratio);
- registry requests (through e2e/counting_proxy.py) to create N AppReleases of one version, to upgrade them
  all and to roll them all back, per version: the goal is the same count at any N;
- what creating the fleet cost the control plane (e2e/apirequests.py): the requests the API server served,
  watches aside, and the CPU seconds of the API server, etcd and the controller-manager, next to the bare
  patcher's;
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
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client

from apprelease.controller.kubeclient import connect
from apprelease.controller.settings import OperatorSettings
from e2e.apirequests import control_plane_cpu, served, since
from e2e.barepatcher import BarePatcher
from e2e.counting_proxy import CountingProxy
from e2e.fleet import (
    GROUP,
    PLURAL,
    VERSION,
    RssSampler,
    Watcher,
    cpu_seconds,
    create_all,
    edit_latencies,
    equals,
    events_dropped,
    image_of,
    in_parallel,
    passes,
    queue_depth,
    ready_version,
    rolled_out,
)
from e2e.holdpolicy import hold_unpinned
from e2e.images import build_and_push, make_app_repo
from e2e.recordingpatcher import RecordingPatcher
from e2e.releases import deployment_manifest, release_manifest
from e2e.scale_report import Run, report
from e2e.support import ROOT, Operator, Testbed, load_testbed, wait_until

SIZES = [int(n) for n in os.environ.get("BENCH_SCALE_SIZES", "1000,10000").split(",") if n.strip()]
REPLICAS = int(os.environ.get("BENCH_SCALE_REPLICAS", "0"))
# BENCH_SCALE_HOLD=1: the chart's hold-unpinned admission policy (off by default, as in the chart) in the
# operator's namespace.
HOLD = os.environ.get("BENCH_SCALE_HOLD", "0") == "1"
EDITS = 20
SETTLE = 30.0  # seconds of a quiet queue before the single edits: what the last phase left behind is done
DIRECT, OPERATED, BARE, FLOOR = "bench-scale-direct", "bench-scale", "bench-scale-bare", "bench-scale-floor"
WAIT = 1800.0  # seconds: the longest wait for a whole fleet (a failure, never a number)
RESTART_WAIT = 600.0  # seconds: a new process that has not passed over N by then is reported as such


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
        for namespace in (DIRECT, OPERATED, BARE, FLOOR):
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


def measure_bare_patcher(testbed: Testbed, api: client.ApiClient, run: Run, pinned: str) -> None:
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    names = [f"app-{i:05d}" for i in range(run.size)]
    testbed.create_namespace(BARE)
    patcher = BarePatcher(api, BARE, "app", pinned, threads=_workers())
    try:
        manifests = [
            [deployment_manifest(BARE, name, {"app": f"{pinned.split('@')[0]}:v0"}, replicas=REPLICAS, release=name)]
            for name in names
        ]
        before, cpu = served(kubectl), control_plane_cpu()
        started = time.monotonic()
        create_all(api, manifests)
        applied = time.monotonic()
        last = patcher.deployments.wait_all(names, equals(pinned), WAIT, "Deployments pinned by the bare patcher")
        run.bare_apply, run.bare_pinned = applied - started, last - applied
        run.api["bare patcher"] = since(kubectl, before)
        run.control_plane_cpu["bare patcher"] = control_plane_cpu() - cpu
        note(f"N={run.size}: bare patcher: API requests {api_summary(run.api['bare patcher'])}")
        note(f"N={run.size}: bare patcher: applied in {run.bare_apply:.1f} s, all pinned {run.bare_pinned:.1f} s after")
    finally:
        patcher.stop()
        _delete_namespace(kubectl, BARE)


def measure_recording_patcher(testbed: Testbed, api: client.ApiClient, run: Run, pinned: str, version: str) -> None:
    """The operator's apply (each Deployment, then its AppRelease) with the recording patcher instead: what the
    design's one write before a pin costs on this machine (see e2e/recordingpatcher.py)."""
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    names = [f"app-{i:05d}" for i in range(run.size)]
    testbed.create_namespace(FLOOR)
    repository = pinned.split("@")[0]
    patcher = RecordingPatcher(api, FLOOR, "app", pinned, version, threads=_workers())
    try:
        manifests = _fleet(FLOOR, repository, version, names)
        before, cpu = served(kubectl), control_plane_cpu()
        started = time.monotonic()
        create_all(api, manifests)
        applied = time.monotonic()
        pinned_by = "Deployments pinned by the recording patcher"
        wait_until(lambda: patcher.failures or _all(patcher, names, pinned), timeout=WAIT, interval=0.5, what=pinned_by)
        assert not patcher.failures, patcher.failures[:5]
        last = patcher.deployments.wait_all(names, equals(pinned), WAIT, pinned_by)
        run.floor_apply, run.floor_pinned = applied - started, last - applied
        run.floor_conflicts = patcher.conflicts
        run.api["recording patcher"] = since(kubectl, before)
        run.control_plane_cpu["recording patcher"] = control_plane_cpu() - cpu
        note(f"N={run.size}: recording patcher: API requests {api_summary(run.api['recording patcher'])}")
        note(
            f"N={run.size}: recording patcher: applied in {run.floor_apply:.1f} s, all pinned "
            f"{run.floor_pinned:.1f} s after; {run.floor_conflicts} status writes refused (409)"
        )
    finally:
        patcher.stop()
        _delete_namespace(kubectl, FLOOR)


def _fleet(namespace: str, image: str, version: str, names: list[str]) -> list[list[dict[str, Any]]]:
    """Per name, a Deployment of `image:v0` (a tag: unpinned), then the AppRelease of `version` that lists it."""
    return [
        [
            deployment_manifest(namespace, name, {"app": f"{image}:v0"}, replicas=REPLICAS, release=name),
            release_manifest(namespace, name, image, version, [{"kind": "Deployment", "name": name}]),
        ]
        for name in names
    ]


def _all(patcher: RecordingPatcher, names: list[str], pinned: str) -> bool:
    seen = patcher.deployments.seen
    return all(name in seen and seen[name][1] == pinned for name in names)


def _workers() -> int:
    """The operator's worker count in this run: each patcher baseline gets as many threads."""
    return int(os.environ.get("APPRELEASE_WORKERS") or OperatorSettings.model_fields["workers"].default)


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
    hold = ExitStack()
    try:
        if HOLD:
            hold.enter_context(hold_unpinned(testbed, [OPERATED], release="bench-scale"))
        note(f"N={run.size}: the chart's hold-unpinned policy is {'on' if HOLD else 'off'}")
        time.sleep(2)
        run.rss_idle = operator.rss_kib() / 1024
        proxy.take()
        manifests = _fleet(OPERATED, image, v1, names)
        before, cpu = served(kubectl), control_plane_cpu()
        started = time.monotonic()
        create_all(api, manifests)
        applied = time.monotonic()
        run.apply = applied - started
        note(f"N={run.size}: applied in {run.apply:.1f} s")
        run.pinned = deployments.wait_all(names, equals(pinned(v1)), WAIT, "Deployments pinned") - applied
        note(f"N={run.size}: apply end -> all pinned {run.pinned:.1f} s")
        run.ready = releases.wait_all(names, equals(v1), WAIT, "AppReleases Ready") - applied
        run.registry["create"] = proxy.take()
        run.events_dropped = events_dropped(operator.extra_env["APPRELEASE_METRICS_PORT"])
        run.api["operator"] = since(kubectl, before)
        run.control_plane_cpu["operator"] = control_plane_cpu() - cpu
        note(f"N={run.size}: operator: API requests {api_summary(run.api['operator'])}")
        note(f"N={run.size}: control-plane CPU s {run.control_plane_cpu}")
        note(f"N={run.size}: apply end -> all Ready {run.ready:.1f} s; registry {dict(run.registry['create'])}")
        note(
            f"N={run.size}: Events dropped in the create phase (a full queue or namespace share): {run.events_dropped}"
        )
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
        # With N resident and nothing queued (the last phase's follow-ups and the controller-manager's clean-up
        # done): one edit at a time, next to a raw kubectl patch.
        port = operator.extra_env["APPRELEASE_METRICS_PORT"]
        wait_until(lambda: queue_depth(port) == 0, timeout=WAIT, interval=1, what="an empty work queue")
        time.sleep(SETTLE)
        run.edits = edit_latencies(kubectl, apps, OPERATED, deployments, names, pinned, (v3, v2), EDITS)
        note(f"N={run.size}: edits (ms) {run.edits}")
        assert operator.process is not None
        run.cpu = cpu_seconds(operator.process.pid)
        operator.stop()
        run.rss_peak = sampler.stop() / 1024
        proxy.take()
        started = time.monotonic()
        operator.start()
        sampler = RssSampler(operator.rss_kib)
        try:
            wait_until(lambda: passes(port) >= run.size, timeout=RESTART_WAIT, interval=1, what=f"{run.size} passes")
            run.restart = time.monotonic() - started
        except AssertionError:  # a number too (a process that has not passed over all by then), not a lost run
            run.restart = float("inf")
        run.restart_cpu = cpu_seconds(operator.process.pid)
        run.registry["restart (first pass over all)"] = proxy.take()
        note(f"N={run.size}: new process: all passed once in {run.restart:.1f} s; registry {run.registry}")
    finally:
        peak = sampler.stop() / 1024
        if run.rss_peak:
            run.rss_restart_peak = peak
        else:  # stopped before the restart
            run.rss_peak = peak
        deployments.stop()
        releases.stop()
        operator.stop()
        if profiler is not None:
            profiler.wait(timeout=60)
        proxy.stop()
        hold.close()
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


def api_summary(counts: Counter[str]) -> str:
    """The API server's requests of a phase, most first (watches left out: each is one long request)."""
    return ", ".join(f"{key} {count}" for key, count in counts.most_common() if not key.startswith("WATCH"))


def note(text: str) -> None:
    """A number as soon as it is measured (a run of 10,000 takes long; a failure later keeps what came before)."""
    print(f"  .. {text}", flush=True)


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
            measure_bare_patcher(testbed, api, run, f"{direct}@{digests[versions[0]]}")
            measure_recording_patcher(testbed, api, run, f"{direct}@{digests[versions[0]]}", versions[0])
            measure_operator(testbed, api, run, digests)
            results += report(run, REPLICAS, summary)
    out = ROOT / ".testbed" / "bench-scale.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
