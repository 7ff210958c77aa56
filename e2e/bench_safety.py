"""`make bench`, release safety: from the first failing pod of a bad release to the rollback being patched
into the workload, and to Ready again (the restored revision rolled out), on the test bed with kwok chaos."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import yaml

from e2e.releases import get_release, release_manifest, wait_ready
from e2e.support import Testbed, wait_until
from e2e.workloads import Chaos, workload_manifest

CYCLES = 5
NAME = "safety"


def measure(
    testbed: Testbed, namespace: str, image: str, good: str, bad: str, digests: dict[str, str]
) -> dict[str, list[float]]:
    """Release `bad` CYCLES times (its pods crash), each time from `good`; milliseconds per phase."""
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig, "-n", namespace]
    chaos = Chaos(f"{image}@{digests[bad]}", "CrashLoopBackOff")
    _apply(kubectl, workload_manifest("Deployment", namespace, NAME, {"app": f"{image}:v0"}, release=NAME, chaos=chaos))
    _apply(kubectl, release_manifest(namespace, NAME, image, good, [{"kind": "Deployment", "name": NAME}]))
    wait_ready(testbed, namespace, NAME, good, timeout=120)
    timings: dict[str, list[float]] = {"first failing pod -> rollback patched": [], "first failing pod -> Ready": []}
    for _ in range(CYCLES):
        _patch_version(kubectl, bad)
        failing = wait_until(lambda: _first_failing_pod(kubectl), timeout=60, interval=0.01, what="a failing pod")
        wait_until(
            lambda: _template_image(kubectl) == f"{image}@{digests[good]}",
            timeout=60,
            interval=0.01,
            what="the rollback patched",
        )
        timings["first failing pod -> rollback patched"].append((time.monotonic() - failing) * 1000)
        wait_until(lambda: _rolled_back(testbed, namespace), timeout=120, interval=0.05, what="Ready again")
        timings["first failing pod -> Ready"].append((time.monotonic() - failing) * 1000)
        _patch_version(kubectl, good)  # accept the rollback: Ready on the good version, ready for the next cycle
        wait_ready(testbed, namespace, NAME, good, timeout=60)
    return timings


def _first_failing_pod(kubectl: list[str]) -> float | None:
    """The moment a pod of the release is seen in CrashLoopBackOff (polled as fast as kubectl answers)."""
    pods = json.loads(_run([*kubectl, "get", "pods", "-l", f"app={NAME}", "-o", "json"]))["items"]
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses") or []:
            if (container.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                return time.monotonic()
    return None


def _template_image(kubectl: list[str]) -> str:
    deployment = json.loads(_run([*kubectl, "get", "deployment", NAME, "-o", "json"]))
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def _rolled_back(testbed: Testbed, namespace: str) -> bool:
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
    print("release safety (a bad release's pods crash; automatic rollback):")
    return [summary(name, values) for name, values in timings.items()]
