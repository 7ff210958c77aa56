"""`make bench`, high availability: the Lease hand-over of rolling updates of the chart (see e2e/bench_ha.py).

Two replicas as real pods on the real node (the chart's defaults: RollingUpdate with maxSurge 1 and
maxUnavailable 0, the Lease released on SIGTERM), `helm upgrade` with a new pod annotation `rollouts` times.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from apprelease.controller.kubeclient import connect
from e2e.conftest import helm_env
from e2e.handover import CHART, POD_SELECTOR, Watcher, build_operator_image, chart_values, write_values
from e2e.realnode import find_real_node
from e2e.support import ROOT, Testbed, wait_until

RELEASE = "bench-ru"
LEASE = f"{RELEASE}-apprelease-operator"  # the chart's full name


def measure(
    testbed: Testbed, namespace: str, rollouts: int, from_sigterm: str, from_release: str
) -> dict[str, list[float]]:
    """Milliseconds of every hand-over seen, from the old leader's pod deletion and from the Lease's release."""
    find_real_node(testbed)
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")], check=True)
    image = build_operator_image(testbed)
    helm_bin = str(Path(testbed.bin_dir) / "helm") if testbed.bin_dir else "helm"
    with tempfile.TemporaryDirectory() as home:
        env = helm_env(testbed, Path(home))
        values = Path(home) / "values.yaml"

        def helm(verb: str, *args: str) -> None:
            command = [helm_bin, verb, RELEASE, *args, "-n", namespace]
            subprocess.run(command, check=True, capture_output=True, env=env, timeout=300)

        write_values(values, chart_values(testbed, image, namespace))
        helm("install", str(CHART), "--skip-crds", "-f", str(values), "--wait", "--timeout", "240s")
        watcher = Watcher(connect(testbed.kubeconfig).api_client, namespace, LEASE)
        try:
            pods: set[str] = wait_until(lambda: _pair(kubectl, namespace, set()), timeout=120, what="two pods")
            wait_until(lambda: watcher.holder() in pods, timeout=60, what="a leader")
            for rollout in range(1, rollouts + 1):
                write_values(values, chart_values(testbed, image, namespace, rollout))
                helm("upgrade", str(CHART), "--skip-crds", "-f", str(values), "--wait", "--timeout", "240s")
                pods = _replaced(kubectl, namespace, pods, watcher)
                print(f"  rolling update {rollout}: both pods replaced, leader {watcher.holder()}")
        finally:
            watcher.stop()
            helm("uninstall", "--wait")
    handovers = watcher.handovers()
    for handover in handovers:
        print(
            f"  hand-over {handover.old} -> {handover.new}: {handover.from_sigterm_ms()} ms from SIGTERM, "
            f"{handover.from_release_ms()} ms from release"
        )
    return {
        from_sigterm: [ms for h in handovers if (ms := h.from_sigterm_ms()) is not None],
        from_release: [ms for h in handovers if (ms := h.from_release_ms()) is not None],
    }


def _replaced(kubectl: list[str], namespace: str, old: set[str], watcher: Watcher) -> set[str]:
    """Wait until two new pods run and one of them leads; returns their names."""
    pods: set[str] = wait_until(lambda: _pair(kubectl, namespace, old), timeout=120, what="two new operator pods")
    wait_until(lambda: watcher.holder() in pods, timeout=60, what="a new pod leads")
    time.sleep(2)  # the last old pod's exit and release are recorded before the next update
    return pods


def _pair(kubectl: list[str], namespace: str, old: set[str]) -> set[str] | None:
    """The names of the two live operator pods when neither is in `old`."""
    listed = subprocess.run(
        [
            *kubectl,
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            POD_SELECTOR,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{'\\n'}{end}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    live = {line.split()[0] for line in listed.splitlines() if line.strip() and len(line.split()) == 1}
    return live if len(live) == 2 and not live & old else None
