"""Health as GitOps tools compute it: kstatus (upstream and Flux's fork, the one Helm 4 uses too) and
`kubectl wait --for=condition=Ready`, on AppReleases the real operator drives through every state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.images import Pushed
from e2e.kstatus import Health, frozen, health, kstatus_tool, kubectl_wait_ready
from e2e.releases import (
    apply,
    condition,
    deployment_manifest,
    get_release,
    patch_release,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import Operator, Testbed, wait_until
from e2e.test_release_safety import _settled_rollback, _start_good_then_upgrade

NOWHERE = {"apprelease.dev/e2e": "no-such-node"}  # a nodeSelector no node matches: the rollout cannot finish
WRONG_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def tool() -> Path:
    return kstatus_tool()


def deployment(namespace: str, name: str, image: str, **pod: Any) -> dict[str, Any]:
    manifest = deployment_manifest(namespace, name, {name: image}, release=name, replicas=1)
    manifest["spec"]["template"]["spec"].update(pod)
    return manifest


def release(namespace: str, name: str, repository: str, version: str, **spec: Any) -> dict[str, Any]:
    return release_manifest(namespace, name, repository, version, [{"kind": "Deployment", "name": name}], **spec)


def eventually(tool: Path, testbed: Testbed, namespace: str, name: str, status: str, timeout: float = 60) -> Health:
    def check() -> Health | None:
        answer = health(tool, testbed, namespace, name)
        return answer if answer.status == status else None

    result: Health = wait_until(check, timeout=timeout, what=f"kstatus {status} for {name}")
    return result


@pytest.fixture
def app(testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]) -> Iterator[str]:
    yield web["v1.0.0"].repository


def test_before_the_operator_reports_a_new_release_is_in_progress_not_current(
    testbed: Testbed, operator: Operator, namespace: str, app: str, tool: Path
) -> None:
    apply(testbed, deployment(namespace, "web", f"{app}:v1.0.0"))
    with frozen(operator):
        apply(testbed, release(namespace, "web", app, "v1.0.0"))
        # Without the CRD's status default kstatus would say Current here, and Flux/Helm would move on.
        answer = health(tool, testbed, namespace, "web")
        assert answer == Health("InProgress", "InProgress", "waiting for the apprelease operator")
        assert not kubectl_wait_ready(testbed, namespace, "web", "2s")
    eventually(tool, testbed, namespace, "web", "Current")
    assert condition(get_release(testbed, namespace, "web"), "Ready")["status"] == "True"


def test_rolling_out_is_in_progress_and_kubectl_wait_returns_when_ready_and_only_then(
    testbed: Testbed, operator: Operator, namespace: str, app: str, web: dict[str, Pushed], tool: Path
) -> None:
    apply(testbed, deployment(namespace, "web", f"{app}:v1.0.0", nodeSelector=NOWHERE))
    apply(testbed, release(namespace, "web", app, "v1.0.0"))
    rolling = wait_condition(testbed, namespace, "web", "Reconciling", "True", "Progressing")
    assert condition(rolling, "Ready")["status"] == "False"
    assert health(tool, testbed, namespace, "web").status == "InProgress"
    assert not kubectl_wait_ready(testbed, namespace, "web", "3s")

    # The pods can run now: the rollout finishes, and `kubectl wait` returns with the release really Ready.
    testbed.kubectl(
        "patch", "deployment", "web", "-n", namespace, "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/spec/template/spec/nodeSelector"}]),
    )  # fmt: skip
    assert kubectl_wait_ready(testbed, namespace, "web", "90s")
    ready = get_release(testbed, namespace, "web")
    assert condition(ready, "Ready")["observedGeneration"] == ready["metadata"]["generation"]
    assert ready["status"]["version"] == "v1.0.0" and ready["status"]["digest"] == web["v1.0.0"].digest
    assert health(tool, testbed, namespace, "web").status == "Current"

    # A new generation: the Ready=True of the previous one must not satisfy anybody.
    with frozen(operator):
        patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
        stale = health(tool, testbed, namespace, "web")
        assert stale.status == "InProgress" and "latest observed generation is" in stale.message
        assert not kubectl_wait_ready(testbed, namespace, "web", "3s")
    assert kubectl_wait_ready(testbed, namespace, "web", "90s")
    assert get_release(testbed, namespace, "web")["status"]["version"] == "v1.1.0"
    assert health(tool, testbed, namespace, "web").status == "Current"


def test_waiting_on_the_registry_is_in_progress(
    testbed: Testbed, operator: Operator, namespace: str, app: str, tool: Path
) -> None:
    # The private registry answers 401 until a pull secret appears: trouble the world may fix.
    image = f"{testbed.registry_auth}/e2e/private"
    apply(testbed, deployment(namespace, "web", f"{image}:v1"))
    apply(testbed, release(namespace, "web", image, "v1"))
    waiting = wait_condition(testbed, namespace, "web", "Ready", "False", "Unauthorized", timeout=60)
    assert condition(waiting, "Reconciling")["status"] == "True"
    assert health(tool, testbed, namespace, "web").status == "InProgress"
    assert not kubectl_wait_ready(testbed, namespace, "web", "3s")


def test_a_stalled_release_is_failed(
    testbed: Testbed, operator: Operator, namespace: str, app: str, tool: Path
) -> None:
    apply(testbed, deployment(namespace, "web", f"{app}:v1.0.0"))
    apply(testbed, release(namespace, "web", app, "v1.0.0", digest=WRONG_DIGEST))
    stalled = wait_condition(testbed, namespace, "web", "Stalled", "True", "DigestMismatch")
    answer = eventually(tool, testbed, namespace, "web", "Failed")
    assert answer.message == condition(stalled, "Stalled")["message"]
    assert not kubectl_wait_ready(testbed, namespace, "web", "3s")


def test_suspended_is_current_while_the_pinned_version_runs_and_in_progress_before(
    testbed: Testbed, operator: Operator, namespace: str, app: str, tool: Path
) -> None:
    apply(testbed, deployment(namespace, "web", f"{app}:v1.0.0"))
    apply(testbed, release(namespace, "web", app, "v1.0.0"))
    wait_ready(testbed, namespace, "web", "v1.0.0")
    patch_release(testbed, namespace, "web", {"suspend": True})
    suspended = wait_condition(testbed, namespace, "web", "Ready", "True", "Suspended")
    assert suspended["status"]["version"] == "v1.0.0"
    assert health(tool, testbed, namespace, "web").status == "Current"
    assert kubectl_wait_ready(testbed, namespace, "web", "10s")

    # Suspended before anything was deployed: nothing runs, and nothing will until it is resumed.
    apply(testbed, deployment(namespace, "idle", f"{app}:v1.0.0"))
    apply(testbed, release(namespace, "idle", app, "v1.0.0", suspend=True))
    wait_condition(testbed, namespace, "idle", "Ready", "False", "Suspended")
    assert health(tool, testbed, namespace, "idle").status == "InProgress"
    assert not kubectl_wait_ready(testbed, namespace, "idle", "2s")


def test_an_automatic_rollback_is_failed_until_someone_acts(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], tool: Path
) -> None:
    # The new version's pods crash; the operator goes back to the recorded good one by itself and says so.
    _start_good_then_upgrade(testbed, namespace, web, {"Deployment": "web"}, "CrashLoopBackOff")
    rolled_back = _settled_rollback(testbed, namespace, "shop")
    assert condition(rolled_back, "Stalled")["reason"] == "RolledBack"
    answer = eventually(tool, testbed, namespace, "shop", "Failed")
    assert answer.message == condition(rolled_back, "Stalled")["message"]
    assert not kubectl_wait_ready(testbed, namespace, "shop", "3s")
