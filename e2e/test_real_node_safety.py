"""Release safety with real containers (the test bed's real node): a version that exits at start, and one whose
readiness probe never passes, roll back by themselves; the app then answers with the old version; the rollback
needs no registry (the old digest is still on the node, and the operator asks none)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from e2e.images import APP_PORT, bake, git, make_app_repo
from e2e.realnode import ask_version, live_pods, on_real_node, wait_running
from e2e.releases import (
    apply,
    condition,
    deployment_manifest,
    get_release,
    patch_release,
    release_manifest,
    wait_ready,
)
from e2e.support import ROOT, Operator, Testbed, wait_until

GOOD, CRASHING, SILENT = "v1.0.0", "v1.2.0", "v1.3.0"
# A version whose process runs but never serves: its readiness probe (GET /version) never passes.
SILENT_SCRIPT = """#!/bin/sh
echo "$(cat /app/VERSION): running, never serving :{port}"
trap 'exit 0' TERM INT
while true; do sleep 1; done
"""


@pytest.fixture(scope="module")
def app(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("real-safety-app")
    commits = make_app_repo(path, testbed.base_image, [GOOD, CRASHING], crashing=(CRASHING,))
    (path / "VERSION").write_text(SILENT + "\n")
    (path / "app.sh").write_text(SILENT_SCRIPT.format(port=APP_PORT))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"release {SILENT}")
    git(path, "tag", SILENT)
    commits[SILENT] = git(path, "rev-parse", "HEAD")
    return path, commits


def _settled_rollback(testbed: Testbed, namespace: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, name)
        history = release.get("status", {}).get("history") or []
        if condition(release, "Stalled").get("reason") == "RolledBack" and history[0]["outcome"] == "Succeeded":
            return release
        return None

    result: dict[str, Any] = wait_until(check, timeout=180, what=f"{name} rolled back and settled")
    return result


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(CRASHING, "CrashLoopBackOff"), (SILENT, "timeoutSeconds")],
    ids=["exits-at-start", "never-ready"],
)
def test_a_bad_version_rolls_back_by_itself_and_the_old_one_answers(
    testbed: Testbed,
    namespace: str,
    operator: Operator,
    real_node: str,
    app: tuple[Path, dict[str, str]],
    bad: str,
    reason: str,
) -> None:
    repository = f"{testbed.registry}/e2e/real-safety"
    good = bake(app, repository, GOOD)
    failing = bake(app, repository, bad)
    deployment = on_real_node(
        deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, replicas=1, release="web"), "web"
    )
    apply(testbed, deployment)
    apply(
        testbed,
        release_manifest(
            namespace,
            "web",
            repository,
            GOOD,
            [{"kind": "Deployment", "name": "web"}],
            rollout={"timeoutSeconds": 30},
        ),
    )
    wait_running(testbed, namespace, "web", good.digest, 1)
    wait_ready(testbed, namespace, "web", GOOD)  # Succeeded (baked): what a failure goes back to

    patch_release(testbed, namespace, "web", {"version": bad})
    release = _settled_rollback(testbed, namespace, "web")
    restored, failed = release["status"]["history"][:2]
    assert (failed["version"], failed["digest"], failed["outcome"]) == (bad, failing.digest, "Failed")
    assert reason in failed["failure"]
    assert (restored["cause"], restored["digest"]) == ("AutoRollback", good.digest)
    [pod] = wait_running(testbed, namespace, "web", good.digest, 1)
    assert pod["spec"]["nodeName"] == real_node
    assert ask_version(pod["status"]["podIP"]) == {"version": GOOD, "commit": app[1][GOOD]}


def test_the_automatic_rollback_works_with_the_registry_stopped(
    testbed: Testbed, namespace: str, operator: Operator, real_node: str, app: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/real-safety-offline"
    good = bake(app, repository, GOOD)
    bake(app, repository, CRASHING)
    deployment = on_real_node(
        deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, replicas=1, release="web"), "web"
    )
    apply(testbed, deployment)
    apply(testbed, release_manifest(namespace, "web", repository, GOOD, [{"kind": "Deployment", "name": "web"}]))
    wait_running(testbed, namespace, "web", good.digest, 1)
    wait_ready(testbed, namespace, "web", GOOD)  # Succeeded (baked): what a failure goes back to
    patch_release(testbed, namespace, "web", {"version": CRASHING})

    def crashing_pulled() -> bool:
        return any(
            (s.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            or (s.get("lastState") or {}).get("terminated")
            for p in live_pods(testbed, namespace, "web")
            for s in p["status"].get("containerStatuses") or []
        )

    wait_until(crashing_pulled, timeout=90, what=f"{CRASHING} pulled and exiting")
    subprocess.run([str(ROOT / "e2e/testbed/down.sh"), "--only", "registry"], check=True)
    try:
        release = _settled_rollback(testbed, namespace, "web")
        [pod] = wait_running(testbed, namespace, "web", good.digest, 1)
        assert ask_version(pod["status"]["podIP"])["version"] == GOOD
        assert release["status"]["history"][0]["cause"] == "AutoRollback"
    finally:
        subprocess.run([str(ROOT / "e2e/testbed/up.sh")], check=True, capture_output=True)
