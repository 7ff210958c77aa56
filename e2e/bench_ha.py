"""`make bench`, high availability: failover time over BENCH_HA_KILLS (default 10) leader kills, and the
Lease hand-over of BENCH_HA_ROLLOUTS (default 5) rolling updates of the chart, each next to a single replica's
restart as the baseline, as a ratio (issue 19).

- failover: two operator processes with leader election on (e2e/ha.py); SIGKILL the Lease holder, then time
  until the other holds the Lease (the Lease read every 50 ms). The killed one is started again as the new
  follower before the next kill.
- baseline: one operator without leader election; SIGKILL it and start a new process at once (what a
  restarting pod does at best: no scheduling, no image pull, no kubelet back-off), timed until its liveness
  endpoint answers.
- rolling update: the chart installed with two replicas as real pods on the real node (e2e/handover.py), then
  `helm upgrade` with a new pod annotation BENCH_HA_ROLLOUTS times; each hand-over timed from the old leader's
  pod deletion (the kubelet sends SIGTERM) and from the Lease's release to another replica holding the Lease,
  both as watch events arrive. A rolling update hands over once or twice (the old follower may lead until it
  is replaced in turn).
Run alone: `python -m e2e.bench_ha` (test bed up).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from functools import partial

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apprelease.controller.kubeclient import connect
from e2e import bench_rolling
from e2e.ha import LOGS, Replicas
from e2e.support import Operator, Testbed, load_testbed, wait_until

NAMESPACE = "bench-ha"
KILLS = int(os.environ.get("BENCH_HA_KILLS", "10"))
ROLLOUTS = int(os.environ.get("BENCH_HA_ROLLOUTS", "5"))
SETTLE = 4.0  # seconds: two renewals
FAILOVER = "leader SIGKILL -> other replica holds the Lease"
BASELINE = "single replica SIGKILL -> restarted process healthy"
ROLLING = "rolling update: old leader's pod deleted (SIGTERM) -> new leader holds the Lease"
ROLLING_RELEASE = "rolling update: Lease released -> new leader holds the Lease"

Summary = Callable[[str, list[float], str], dict[str, object]]


def measure(testbed: Testbed, kills: int = KILLS) -> dict[str, list[float]]:
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true"], check=False)
    testbed.create_namespace(NAMESPACE)
    leases = client.CoordinationV1Api(connect(testbed.kubeconfig).api_client)
    try:
        timings = {FAILOVER: _failovers(testbed, leases, kills), BASELINE: _restarts(testbed, kills)}
        return {**timings, **bench_rolling.measure(testbed, NAMESPACE, ROLLOUTS, ROLLING, ROLLING_RELEASE)}
    finally:
        subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=false"], capture_output=True)


def _failovers(testbed: Testbed, leases: client.CoordinationV1Api, kills: int) -> list[float]:
    replicas = Replicas(testbed, NAMESPACE, prefix="bench-ha", base_port=18280)
    slots: dict[str, int] = {}
    times: list[float] = []

    def holder() -> str:
        try:
            lease = leases.read_namespaced_lease(replicas.lease, NAMESPACE, _request_timeout=5)
        except ApiException:
            return ""
        return str((lease.spec and lease.spec.holder_identity) or "")

    try:
        for slot in (0, 1):
            slots[replicas.start(slot)] = slot
            if slot == 0:
                replicas.wait_holder(next(iter(slots)))
        for _ in range(kills):
            leader = holder()
            survivor = next(i for i in slots if i != leader)
            started = time.monotonic()
            replicas.signal(leader, signal.SIGKILL)
            wait_until(partial(_holds, holder, survivor), timeout=60, interval=0.05, what=f"{survivor} leads")
            times.append((time.monotonic() - started) * 1000)
            replicas.started[leader].process.wait(timeout=10)  # type: ignore[union-attr]
            slot = slots.pop(leader)
            slots[replicas.start(slot)] = slot  # the new follower, in the killed one's ports
            time.sleep(SETTLE)  # the new follower has seen the Lease renewed before the next kill
            print(f"  failover {len(times)}: {times[-1]:.0f} ms")
    finally:
        replicas.stop_all()
    return times


def _holds(holder: Callable[[], str], identity: str) -> bool:
    return holder() == identity


def _restarts(testbed: Testbed, kills: int) -> list[float]:
    env = {
        "APPRELEASE_WATCH_NAMESPACES": NAMESPACE,
        "APPRELEASE_HEALTH_PORT": "18290",
        "APPRELEASE_METRICS_PORT": "18291",
    }
    times: list[float] = []
    operator = Operator(testbed, LOGS / "operator-bench-single.log", extra_env=env)
    operator.start()
    try:
        for _ in range(kills):
            started = time.monotonic()
            operator.kill()
            operator.start()  # returns when the liveness endpoint answers
            times.append((time.monotonic() - started) * 1000)
    finally:
        operator.stop()
    return times


def report(timings: dict[str, list[float]], summary: Summary) -> list[dict[str, object]]:
    print("high availability (two replicas, Lease 8 s / renew 6 s / retry 2 s):")
    results = [summary(name, values, "ms") for name, values in timings.items()]
    for name, label in ((FAILOVER, "failover"), (ROLLING, "rolling update hand-over")):
        ratio = statistics.median(timings[name]) / statistics.median(timings[BASELINE])
        print(f"  {label}: {ratio:.2f}x a single replica's immediate restart (p50)")
        results.append({"metric": f"{label} / single replica restart (p50)", "value": round(ratio, 2), "unit": "x"})
    return results


def main() -> None:
    from e2e.bench import summary

    results = report(measure(load_testbed()), summary)
    print(results)


if __name__ == "__main__":
    main()
