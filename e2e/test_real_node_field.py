"""Release safety with real containers on the test bed's real node (issue 14): the bake catches a version that
crashes after it started (no readiness probe, as most Deployments have none), a crash after the bake is an
incident and not a failed release, and init containers (native sidecars included) are pinned like the app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.images import APP_PORT, CRASH_SCRIPT, bake, git, make_app_repo
from e2e.realnode import ask_version, live_pods, on_real_node, wait_running
from e2e.releases import (
    apply,
    condition,
    deployment_manifest,
    events,
    get_release,
    patch_release,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import Testbed, wait_until

GOOD, AT_START, AFTER_10S, AFTER_25S = "v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"
# A version that serves like the good one, then its process exits with code 4 after a while.
EXIT_LATER_SCRIPT = """#!/bin/sh
echo "$(cat /app/VERSION): serving :{port} for {seconds}s, then exit 4"
httpd -f -p {port} -h /app/www &
trap 'kill $!; exit 0' TERM INT
sleep {seconds}
kill $!
exit 4
"""


@pytest.fixture(scope="module")
def app(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("real-field-app")
    commits = make_app_repo(path, testbed.base_image, [GOOD, AT_START], crashing=(AT_START,))
    assert "exit 3" in CRASH_SCRIPT  # AT_START exits within a second of starting
    for version, seconds in ((AFTER_10S, 10), (AFTER_25S, 25)):
        (path / "VERSION").write_text(version + "\n")
        (path / "app.sh").write_text(EXIT_LATER_SCRIPT.format(port=APP_PORT, seconds=seconds))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"release {version}")
        git(path, "tag", version)
        commits[version] = git(path, "rev-parse", "HEAD")
    return path, commits


def _start(testbed: Testbed, namespace: str, repository: str, bake_seconds: int, **manifest: Any) -> None:
    """A Deployment on the real node without a readiness probe, on GOOD, Ready."""
    deployment = deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, replicas=1, release="web")
    apply(testbed, on_real_node(deployment, "web", probe=False))
    workloads = [{"kind": "Deployment", "name": "web"}]
    rollout = {"timeoutSeconds": 120, "bakeSeconds": bake_seconds}
    apply(testbed, release_manifest(namespace, "web", repository, GOOD, workloads, rollout=rollout))
    wait_ready(testbed, namespace, "web", GOOD, timeout=180)


def _rolled_back(testbed: Testbed, namespace: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, "web")
        history = release.get("status", {}).get("history") or []
        if condition(release, "Stalled").get("reason") == "RolledBack" and history[0]["outcome"] == "Succeeded":
            return release
        return None

    result: dict[str, Any] = wait_until(check, timeout=180, what="rolled back and settled")
    return result


@pytest.mark.parametrize(
    ("bad", "facts"),
    [(AT_START, ("container web", "exit code 3")), (AFTER_10S, ("container web", "exit code 4", "during the bake"))],
    ids=["exits-within-a-second", "exits-after-10s-inside-the-bake"],
)
def test_a_version_that_crashes_after_it_started_fails_and_rolls_back(
    testbed: Testbed,
    namespace: str,
    operator: object,
    real_node: str,
    app: tuple[Path, dict[str, str]],
    bad: str,
    facts: tuple[str, ...],
) -> None:
    repository = f"{testbed.registry}/e2e/real-field"
    good = bake(app, repository, GOOD)
    failing = bake(app, repository, bad)
    _start(testbed, namespace, repository, bake_seconds=30)

    patch_release(testbed, namespace, "web", {"version": bad})
    if bad == AFTER_10S:  # it runs: the rollout completes and the bake starts, the AppRelease says how long
        baking = wait_condition(testbed, namespace, "web", "Reconciling", "True", "Baking", timeout=90)
        assert "left" in condition(baking, "Reconciling")["message"]
        assert condition(baking, "Ready")["status"] == "False"
    release = _rolled_back(testbed, namespace)
    restored, failed = release["status"]["history"][:2]
    assert (failed["version"], failed["digest"], failed["outcome"]) == (bad, failing.digest, "Failed")
    for fact in facts:
        assert fact in failed["failure"], failed["failure"]
    assert (restored["cause"], restored["digest"]) == ("AutoRollback", good.digest)
    assert restored.get("succeededAt") and restored.get("bakeStartedAt")
    [pod] = wait_running(testbed, namespace, "web", good.digest, 1)
    assert pod["spec"]["nodeName"] == real_node
    assert ask_version(pod["status"]["podIP"])["version"] == GOOD


def test_a_crash_after_the_bake_is_an_incident_not_a_failed_release(
    testbed: Testbed, namespace: str, operator: object, real_node: str, app: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/real-field-late"
    bake(app, repository, GOOD)
    late = bake(app, repository, AFTER_25S)
    _start(testbed, namespace, repository, bake_seconds=5)

    patch_release(testbed, namespace, "web", {"version": AFTER_25S})
    release = wait_ready(testbed, namespace, "web", AFTER_25S, timeout=120)
    entry = release["status"]["history"][0]
    assert entry["outcome"] == "Succeeded" and entry["digest"] == late.digest
    assert entry["succeededAt"] >= entry["bakeStartedAt"]

    def restarted() -> bool:
        return any(
            s.get("restartCount", 0) > 0
            for p in live_pods(testbed, namespace, "web")
            for s in p["status"].get("containerStatuses") or []
        )

    wait_until(restarted, timeout=90, what=f"{AFTER_25S} exited after the bake")
    time.sleep(5)
    release = get_release(testbed, namespace, "web")
    assert [(h["version"], h["outcome"]) for h in release["status"]["history"]][0] == (AFTER_25S, "Succeeded")
    assert not events(testbed, namespace, "RolloutFailed") and not events(testbed, namespace, "RolledBack")


def test_init_containers_and_native_sidecars_are_pinned_with_the_app(
    testbed: Testbed, namespace: str, operator: object, real_node: str, app: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/real-field-init"
    good = bake(app, repository, GOOD)
    deployment = on_real_node(
        deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, replicas=1, release="web"), "web"
    )
    pod = deployment["spec"]["template"]["spec"]
    pod["initContainers"] = [
        # a migration step from the same repository, and a native sidecar (restartPolicy Always)
        {"name": "migrate", "image": f"{repository}:v0", "command": ["sh", "-c", "cat /app/VERSION"]},
        {
            "name": "agent",
            "image": f"{repository}:v0",
            "restartPolicy": "Always",
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
        },
    ]
    apply(testbed, deployment)
    workloads = [{"kind": "Deployment", "name": "web"}]
    apply(testbed, release_manifest(namespace, "web", repository, GOOD, workloads))
    wait_ready(testbed, namespace, "web", GOOD, timeout=180)

    template = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in [*template["initContainers"], *template["containers"]]}
    assert images == {"migrate": good.pinned, "agent": good.pinned, "web": good.pinned}
    assert template["initContainers"][1]["restartPolicy"] == "Always"  # the patch touched only the images
    [running] = wait_running(testbed, namespace, "web", good.digest, 1)
    inits = running["status"].get("initContainerStatuses") or []
    assert {s["name"]: s.get("imageID", "").rpartition("@")[2] for s in inits} == {
        "migrate": good.digest,
        "agent": good.digest,
    }
    assert ask_version(running["status"]["podIP"])["version"] == GOOD
