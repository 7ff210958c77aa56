"""Manifests of every workload kind an AppRelease pins, and the test bed's chaos: pods that fail on purpose.

The chaos annotations are read by the kwok stage in e2e/testbed/kwok-chaos.yaml: pods running exactly the
named image are put in the named failing state, so one release (one digest) fails and the others run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from e2e.releases import LABEL_RELEASE
from e2e.support import Testbed

CHAOS_IMAGE = "chaos.testbed.apprelease.dev/image"
CHAOS_REASON = "chaos.testbed.apprelease.dev/reason"
CHAOS_EXIT_CODE = "chaos.testbed.apprelease.dev/exit-code"

RESOURCES = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset", "CronJob": "cronjob"}


@dataclass(frozen=True)
class Chaos:
    image: str  # the exact image (repo@digest) whose containers fail
    reason: str  # a kubelet waiting reason, or NeverReady
    exit_code: int = 1

    def annotations(self) -> dict[str, str]:
        return {CHAOS_IMAGE: self.image, CHAOS_REASON: self.reason, CHAOS_EXIT_CODE: str(self.exit_code)}


def workload_manifest(
    kind: str,
    namespace: str,
    name: str,
    containers: dict[str, str],
    *,
    release: str | None,
    replicas: int = 2,
    chaos: Chaos | None = None,
    min_ready_seconds: int = 0,
    progress_deadline_seconds: int | None = None,
) -> dict[str, Any]:
    """A workload of any kind, opted in to `release` (None: not opted in), its pods optionally chaotic."""
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": name}, "annotations": chaos.annotations() if chaos else {}},
        "spec": {
            "containers": [{"name": c, "image": image} for c, image in containers.items()],
            "terminationGracePeriodSeconds": 0,
        },
    }
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    if kind == "Deployment":
        spec.update(replicas=replicas, minReadySeconds=min_ready_seconds)
        if progress_deadline_seconds is not None:
            spec["progressDeadlineSeconds"] = progress_deadline_seconds
    elif kind == "StatefulSet":
        spec.update(replicas=replicas, serviceName=name, minReadySeconds=min_ready_seconds)
    elif kind == "DaemonSet":
        spec.update(minReadySeconds=min_ready_seconds)
    elif kind == "CronJob":
        template["spec"]["restartPolicy"] = "Never"
        # Suspended and yearly: the test checks the pinned template, not Jobs.
        spec = {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": template}}}
    else:
        raise ValueError(kind)
    return {
        "apiVersion": "batch/v1" if kind == "CronJob" else "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL_RELEASE: release} if release else {}},
        "spec": spec,
    }


def template_images(testbed: Testbed, kind: str, namespace: str, name: str) -> dict[str, str]:
    obj = testbed.kubectl_json("get", RESOURCES[kind], name, "-n", namespace)
    spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
    return {c["name"]: c["image"] for c in spec["template"]["spec"]["containers"]}
