"""Helpers to drive AppReleases and Deployments on a real cluster and wait for what the operator does."""

from __future__ import annotations

import json
from typing import Any

import yaml

from e2e.support import Testbed, wait_until

LABEL_RELEASE = "apprelease.dev/release"


def apply(testbed: Testbed, manifest: dict[str, Any], *, check: bool = True) -> Any:
    return testbed.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=check)


# The bake of tests whose subject is not the bake (the default, 30 s, would add half a minute to every release).
FAST_BAKE_SECONDS = 2


def release_manifest(
    namespace: str, name: str, image: str, version: str, workloads: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    """An AppRelease; rollout.bakeSeconds is FAST_BAKE_SECONDS unless `rollout` sets it."""
    spec["rollout"] = {"bakeSeconds": FAST_BAKE_SECONDS, **spec.get("rollout", {})}
    return {
        "apiVersion": "apprelease.dev/v1alpha1",
        "kind": "AppRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": image, "version": version, "workloads": workloads, **spec},
    }


def deployment_manifest(
    namespace: str,
    name: str,
    containers: dict[str, str],
    *,
    release: str | None,
    replicas: int = 2,
    min_ready_seconds: int = 0,
    pull_secrets: list[str] | None = None,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": c, "image": image} for c, image in containers.items()]}
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    # The owner's consent: only a workload labelled for an AppRelease is managed by it (None: not opted in).
    labels = {LABEL_RELEASE: release} if release else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready_seconds,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def get_release(testbed: Testbed, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = testbed.kubectl_json("get", "appreleases.apprelease.dev", name, "-n", namespace)
    return result


def condition(release: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in release.get("status", {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def wait_condition(
    testbed: Testbed, namespace: str, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 60
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, name)
        c = condition(release, type_)
        fresh = c.get("observedGeneration") == release["metadata"]["generation"]
        if fresh and c.get("status") == status and (reason is None or c.get("reason") == reason):
            return release
        return None

    result: dict[str, Any] = wait_until(check, timeout=timeout, what=f"{name}: {type_}={status} {reason or ''}")
    return result


def wait_ready(testbed: Testbed, namespace: str, name: str, version: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, name)
        c = condition(release, "Ready")
        fresh = c.get("observedGeneration") == release["metadata"]["generation"]
        if fresh and c.get("status") == "True" and release["status"].get("version") == version:
            return release
        return None

    result: dict[str, Any] = wait_until(check, timeout=timeout, what=f"{name} Ready at {version}")
    return result


def container_images(testbed: Testbed, namespace: str, deployment: str) -> dict[str, str]:
    d = testbed.kubectl_json("get", "deployment", deployment, "-n", namespace)
    return {c["name"]: c["image"] for c in d["spec"]["template"]["spec"]["containers"]}


def events(testbed: Testbed, namespace: str, reason: str | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = testbed.kubectl_json("get", "events", "-n", namespace)["items"]
    return [e for e in items if reason is None or e.get("reason") == reason]


def posted_events(testbed: Testbed, namespace: str, reason: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The Events with a reason once at least one is there: the operator posts a pass's Events right after its
    status write, so a test that has just seen the condition may list Events a moment too early."""
    found: list[dict[str, Any]] = wait_until(lambda: events(testbed, namespace, reason), timeout=timeout, what=reason)
    return found


def patch_release(testbed: Testbed, namespace: str, name: str, spec: dict[str, Any]) -> None:
    testbed.kubectl(
        "patch", "appreleases.apprelease.dev", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )
