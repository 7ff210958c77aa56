"""Release safety as workloads are really run (issue 14), against the real API server and controllers (kwok pods):
a paused Deployment is not a failed version, `kubectl rollout undo` is drift and is told, historyLimit 1 still
rolls back, pods that are not the workload's own neither fail it nor get deleted, init containers are pinned,
and every condition carries a CamelCase reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

from e2e.images import Pushed
from e2e.releases import (
    apply,
    condition,
    events,
    get_release,
    patch_release,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import Operator, Testbed, wait_until
from e2e.workloads import Chaos, template_images, workload_manifest

GOOD, NEXT = "v1.0.0", "v1.1.0"
CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apprelease", *args], capture_output=True, text=True)


def _history(testbed: Testbed, namespace: str, name: str = "shop") -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = get_release(testbed, namespace, name).get("status", {}).get("history") or []
    return history


def _deploy_good(
    testbed: Testbed,
    namespace: str,
    web: dict[str, Pushed],
    kind: str = "Deployment",
    name: str = "web",
    chaos: Chaos | None = None,
    **spec: Any,
) -> None:
    repository = web[GOOD].repository
    manifest = workload_manifest(kind, namespace, name, {"app": f"{repository}:v0"}, release="shop", chaos=chaos)
    apply(testbed, manifest)
    apply(testbed, release_manifest(namespace, "shop", repository, GOOD, [{"kind": kind, "name": name}], **spec))
    wait_ready(testbed, namespace, "shop", GOOD, timeout=120)


def _assert_camel_case_reasons(release: dict[str, Any]) -> None:
    for c in release["status"]["conditions"]:
        assert CAMEL_CASE.match(c.get("reason", "")) and c["reason"] not in ("True", "False", "Unknown"), c


# --- 2: a paused Deployment ------------------------------------------------------------------------------
def test_a_paused_deployment_is_paused_not_failed_and_resumes(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    _deploy_good(testbed, namespace, web, rollout={"timeoutSeconds": 30})
    testbed.kubectl("rollout", "pause", "deployment/web", "-n", namespace)
    patch_release(testbed, namespace, "shop", {"version": NEXT})

    release = wait_condition(testbed, namespace, "shop", "Ready", "False", "Paused", timeout=60)
    message = condition(release, "Ready")["message"]
    assert "Deployment web" in message and "paused" in message, message
    time.sleep(40)  # beyond timeoutSeconds (30): the clock does not run while a person holds the rollout
    release = get_release(testbed, namespace, "shop")
    assert condition(release, "Ready")["reason"] == "Paused", condition(release, "Ready")
    assert [h["outcome"] for h in release["status"]["history"]] == ["InProgress", "Succeeded"]
    assert release["status"]["history"][0].get("pausedAt")
    assert not events(testbed, namespace, "RolloutFailed") and not events(testbed, namespace, "RolledBack")

    testbed.kubectl("rollout", "resume", "deployment/web", "-n", namespace)
    release = wait_ready(testbed, namespace, "shop", NEXT, timeout=90)
    latest = release["status"]["history"][0]
    assert latest["outcome"] == "Succeeded" and latest["pausedSeconds"] >= 40 and "pausedAt" not in latest
    assert template_images(testbed, "Deployment", namespace, "web") == {"app": web[NEXT].pinned}
    _assert_camel_case_reasons(release)


# --- 4: kubectl rollout undo is drift, told with who did it ----------------------------------------------
def test_rollout_undo_is_put_back_and_told_with_who_changed_it(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    _deploy_good(testbed, namespace, web)
    patch_release(testbed, namespace, "shop", {"version": NEXT})
    wait_ready(testbed, namespace, "shop", NEXT, timeout=120)

    testbed.kubectl("rollout", "undo", "deployment/web", "-n", namespace)
    found = wait_until(lambda: events(testbed, namespace, "DriftCorrected"), timeout=60, what="DriftCorrected")
    message = found[0]["message"]
    assert found[0]["type"] == "Warning" and "Deployment web" in message and web[NEXT].pinned in message, message
    assert "kubectl" in message, message  # the field manager of the undo, from managedFields
    wait_until(
        lambda: template_images(testbed, "Deployment", namespace, "web") == {"app": web[NEXT].pinned},
        timeout=60,
        what="the pinned digest put back",
    )
    release = wait_ready(testbed, namespace, "shop", NEXT)
    assert release["status"]["revision"] == 2  # drift is put back, it is no new revision
    _assert_camel_case_reasons(release)

    shown = _cli("status", "shop", "--kubeconfig", testbed.kubeconfig, "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "DriftCorrected" in shown.stdout, shown.stdout


# --- 5: historyLimit 1 keeps the way back ----------------------------------------------------------------
def test_history_limit_one_still_rolls_back_a_crashing_version(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    chaos = Chaos(web[NEXT].pinned, "CrashLoopBackOff", 3)
    _deploy_good(testbed, namespace, web, chaos=chaos, historyLimit=1)
    assert [h["version"] for h in _history(testbed, namespace)] == [GOOD]
    patch_release(testbed, namespace, "shop", {"version": NEXT})

    def settled() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, "shop")
        history = release.get("status", {}).get("history") or []
        stalled = condition(release, "Stalled")
        if stalled.get("status") == "True" and history and history[0]["outcome"] != "InProgress":
            return release
        return None

    release: dict[str, Any] = wait_until(settled, timeout=120, what="the crashing version handled")
    assert condition(release, "Stalled")["reason"] == "RolledBack", condition(release, "Stalled")
    history = release["status"]["history"]
    assert history[0]["cause"] == "AutoRollback" and history[0]["digest"] == web[GOOD].digest, history
    assert template_images(testbed, "Deployment", namespace, "web") == {"app": web[GOOD].pinned}


# --- 6: only the workload's own pods -----------------------------------------------------------------------
def _bare_pod(
    namespace: str, name: str, labels: dict[str, str], image: str, reason: str, **meta: Any
) -> dict[str, Any]:
    """A pod nobody controls, carrying whatever labels and annotations its author likes; kwok's chaos stage puts
    it in `reason`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {**Chaos(image, reason).annotations(), **meta.get("annotations", {})},
        },
        "spec": {"containers": [{"name": "app", "image": image}], "terminationGracePeriodSeconds": 0},
    }


def test_a_spoofed_bare_pod_does_not_fail_a_healthy_release(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web[GOOD].repository
    manifest = workload_manifest(
        "Deployment", namespace, "web", {"app": f"{repository}:v0"}, release="shop", min_ready_seconds=10
    )
    apply(testbed, manifest)
    apply(testbed, release_manifest(namespace, "shop", repository, GOOD, [{"kind": "Deployment", "name": "web"}]))
    wait_ready(testbed, namespace, "shop", GOOD, timeout=120)
    # Anyone with `pods create`: the selector's labels, the next revision's annotation, an unpullable image.
    spoof = _bare_pod(
        namespace,
        "web-spoof",
        {"app": "web", "pod-template-hash": "spoof"},
        f"{repository}:does-not-exist",
        "ErrImagePull",
        annotations={"apprelease.dev/revision": "2"},
    )
    apply(testbed, spoof)
    wait_until(
        lambda: "ErrImagePull" in json.dumps(testbed.kubectl_json("get", "pod", "web-spoof", "-n", namespace)),
        timeout=60,
        what="the spoofed pod failing",
    )
    patch_release(testbed, namespace, "shop", {"version": NEXT})
    release = wait_ready(testbed, namespace, "shop", NEXT, timeout=120)
    assert [h["outcome"] for h in release["status"]["history"]] == ["Succeeded", "Succeeded"]
    assert not events(testbed, namespace, "RolloutFailed")
    assert template_images(testbed, "Deployment", namespace, "web") == {"app": web[NEXT].pinned}


def test_a_stateful_set_rollback_deletes_only_its_own_pods(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    chaos = Chaos(web[NEXT].pinned, "CrashLoopBackOff", 3)
    _deploy_good(testbed, namespace, web, kind="StatefulSet", name="db", chaos=chaos)
    # Another team's starting pod under an overlapping selector: not Ready, not of the StatefulSet.
    foreign = _bare_pod(namespace, "other-team", {"app": "db"}, web[GOOD].pinned, "NeverReady")
    apply(testbed, foreign)
    patch_release(testbed, namespace, "shop", {"version": NEXT})

    def settled() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, "shop")
        history = release.get("status", {}).get("history") or []
        if condition(release, "Stalled").get("reason") == "RolledBack" and history[0]["outcome"] == "Succeeded":
            return release
        return None

    wait_until(settled, timeout=180, what="rolled back and settled")
    pod = testbed.kubectl_json("get", "pod", "other-team", "-n", namespace)
    assert not pod["metadata"].get("deletionTimestamp"), "the foreign pod was deleted"
    assert template_images(testbed, "StatefulSet", namespace, "db") == {"app": web[GOOD].pinned}


# --- 3 on kwok: an init container may be named --------------------------------------------------------------
def test_an_init_container_can_be_named_and_is_pinned_alone(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web[GOOD].repository
    manifest = workload_manifest("Deployment", namespace, "web", {"app": "busybox:1"}, release="shop")
    pod = manifest["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "migrate", "image": f"{repository}:v0", "command": ["true"]}]
    apply(testbed, manifest)
    workloads = [{"kind": "Deployment", "name": "web", "containers": ["migrate"]}]
    apply(testbed, release_manifest(namespace, "shop", repository, GOOD, workloads))
    wait_ready(testbed, namespace, "shop", GOOD, timeout=120)
    obj = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)["spec"]["template"]["spec"]
    assert [(c["name"], c["image"]) for c in obj["initContainers"]] == [("migrate", web[GOOD].pinned)]
    assert [(c["name"], c["image"]) for c in obj["containers"]] == [("app", "busybox:1")]
