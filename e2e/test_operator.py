"""The operator as a real process against the real API server, registries and Docker-built images."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from e2e.images import Pushed, bake, skopeo_digest
from e2e.releases import (
    apply,
    condition,
    container_images,
    deployment_manifest,
    events,
    get_release,
    patch_release,
    posted_events,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import ROOT, Operator, Testbed, wait_until


def _stop_registry() -> None:
    subprocess.run([str(ROOT / "e2e/testbed/down.sh"), "--only", "registry"], check=True)


def _start_registry() -> None:
    subprocess.run([str(ROOT / "e2e/testbed/up.sh")], check=True, capture_output=True)


def test_release_upgrade_and_rollback_with_registry_stopped(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v1.0.0"}, release="web"))
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))

    release = wait_ready(testbed, namespace, "web", "v1.0.0")
    v1 = skopeo_digest(f"{repository}:v1.0.0", tls_verify=False)
    assert v1 == web["v1.0.0"].digest
    assert release["status"]["digest"] == v1
    assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{v1}"}
    assert release["status"]["revision"] == 1
    assert release["status"]["gitCommit"]

    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    release = wait_ready(testbed, namespace, "web", "v1.1.0")
    v2 = web["v1.1.0"].digest
    assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{v2}"}
    assert release["status"]["revision"] == 2

    _stop_registry()
    try:
        patch_release(testbed, namespace, "web", {"version": "v1.0.0"})
        release = wait_ready(testbed, namespace, "web", "v1.0.0")
    finally:
        _start_registry()
    assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{v1}"}
    history = release["status"]["history"]
    assert [h["revision"] for h in history] == [3, 2, 1]
    assert [h["version"] for h in history] == ["v1.0.0", "v1.1.0", "v1.0.0"]
    assert history[0]["source"] == "History" and history[0]["restoredFrom"] == 1
    assert history[0]["digest"] == v1 and history[0]["outcome"] == "Succeeded"
    assert {h["source"] for h in history[1:]} == {"Registry"}
    deployment = testbed.kubectl_json("get", "deployment", "web", "-n", namespace, "--show-managed-fields")
    assert deployment["spec"]["template"]["metadata"]["annotations"]["apprelease.dev/revision"] == "3"
    assert "v1.0.0" in deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]
    managers = {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert "apprelease" in managers
    printed = testbed.kubectl("get", "ar", "web", "-n", namespace).stdout
    assert "v1.0.0" in printed and v1.split(":")[1][:12] in printed


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"version": "latest"}, "must not be 'latest'"),
        ({"version": "LATEST"}, "must not be 'latest'"),
        ({"version": "-bad"}, "valid image tag"),
        ({"image": "127.0.0.1:5000/e2e/web:v1"}, "without a tag"),
        ({"image": "127.0.0.1:5000/e2e/web@sha256:" + "a" * 64}, "without a digest"),
        ({"workloads": []}, "spec.workloads"),
        ({"workloads": [{"kind": "Deployment", "name": "a"}, {"kind": "Deployment", "name": "a"}]}, "twice"),
        ({"digest": "sha256:short"}, "spec.digest"),
    ],
)
def test_api_server_refuses_mutable_and_invalid_specs(
    testbed: Testbed, crd_installed: None, namespace: str, patch: dict[str, object], message: str
) -> None:
    manifest = release_manifest(
        namespace, "bad", "127.0.0.1:5000/e2e/web", "v1.0.0", [{"kind": "Deployment", "name": "web"}]
    )
    manifest["spec"].update(patch)
    result = apply(testbed, manifest, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    listed = testbed.kubectl("get", "appreleases.apprelease.dev", "-n", namespace, "-o", "name").stdout
    assert listed.strip() == ""


def test_tag_not_found_waits_then_deploys_when_pushed(
    testbed: Testbed, operator: Operator, namespace: str, app_repo: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/late-{namespace}"
    original = {"web": f"{repository}:v0"}
    apply(testbed, deployment_manifest(namespace, "web", original, release="web"))
    apply(testbed, release_manifest(namespace, "web", repository, "v2.0.0", [{"kind": "Deployment", "name": "web"}]))
    release = wait_condition(testbed, namespace, "web", "Ready", "False", "TagNotFound")
    assert condition(release, "Stalled").get("status") != "True"
    assert container_images(testbed, namespace, "web") == original
    assert posted_events(testbed, namespace, "TagNotFound")

    pushed = bake(app_repo, repository, "v2.0.0")
    wait_ready(testbed, namespace, "web", "v2.0.0", timeout=60)
    assert container_images(testbed, namespace, "web") == {"web": pushed.pinned}


def _docker_secret(name: str, registry: str, user: str, password: str) -> dict[str, object]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = json.dumps({"auths": {registry: {"auth": auth}}})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name},
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }


def test_private_registry_through_image_pull_secret(
    testbed: Testbed, operator: Operator, namespace: str, app_repo: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry_auth}/e2e/private"
    auth = {"username": testbed.registry_auth_user, "password": testbed.registry_auth_password}
    pushed = bake(app_repo, repository, "v1.0.0", auth=auth)
    for name, password in [("regcred", testbed.registry_auth_password), ("wrongcred", "not-the-password")]:
        secret = _docker_secret(name, testbed.registry_auth, testbed.registry_auth_user, password)
        secret["metadata"] = {"name": name, "namespace": namespace}
        apply(testbed, secret)

    apply(testbed, deployment_manifest(namespace, "wrong", {"app": f"{repository}:v0"}, release="wrong"))
    apply(
        testbed,
        release_manifest(
            namespace,
            "wrong",
            repository,
            "v1.0.0",
            [{"kind": "Deployment", "name": "wrong"}],
            imagePullSecrets=[{"name": "wrongcred"}],
        ),
    )
    wait_condition(testbed, namespace, "wrong", "Ready", "False", "Unauthorized")
    assert container_images(testbed, namespace, "wrong") == {"app": f"{repository}:v0"}

    # The default: the Deployment's own pod imagePullSecrets.
    apply(
        testbed,
        deployment_manifest(namespace, "right", {"app": f"{repository}:v0"}, pull_secrets=["regcred"], release="right"),
    )
    apply(
        testbed, release_manifest(namespace, "right", repository, "v1.0.0", [{"kind": "Deployment", "name": "right"}])
    )
    wait_ready(testbed, namespace, "right", "v1.0.0")
    assert container_images(testbed, namespace, "right") == {"app": pushed.pinned}
    log = operator.log_path.read_text()
    assert testbed.registry_auth_password not in log and "not-the-password" not in log


def test_provenance_required_with_mismatching_label_stalls(
    testbed: Testbed, operator: Operator, namespace: str, app_repo: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/provenance"
    # Built from v1.0.0's sources with its label, but pushed under another tag.
    bake(app_repo, repository, "v1.0.0", tag="v1.0.1")
    original = {"web": f"{repository}:v0"}
    apply(testbed, deployment_manifest(namespace, "web", original, release="web"))
    apply(
        testbed,
        release_manifest(
            namespace, "web", repository, "v1.0.1", [{"kind": "Deployment", "name": "web"}], provenance="Required"
        ),
    )
    release = wait_condition(testbed, namespace, "web", "Stalled", "True", "ProvenanceMismatch")
    assert condition(release, "Ready")["status"] == "False"
    assert "v1.0.0" in condition(release, "Stalled")["message"]
    assert container_images(testbed, namespace, "web") == original
    assert release["status"].get("history", []) == []
    warnings = posted_events(testbed, namespace, "ProvenanceMismatch")
    assert warnings and warnings[0]["type"] == "Warning"


def test_digest_guard_mismatch_stalls(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    original = {"web": f"{repository}:v0"}
    apply(testbed, deployment_manifest(namespace, "web", original, release="web"))
    apply(
        testbed,
        release_manifest(
            namespace, "web", repository, "v1.1.0", [{"kind": "Deployment", "name": "web"}], digest=web["v1.0.0"].digest
        ),
    )
    release = wait_condition(testbed, namespace, "web", "Stalled", "True", "DigestMismatch")
    assert web["v1.1.0"].digest in condition(release, "Stalled")["message"]
    assert container_images(testbed, namespace, "web") == original

    patch_release(testbed, namespace, "web", {"digest": web["v1.1.0"].digest})
    wait_ready(testbed, namespace, "web", "v1.1.0")
    assert container_images(testbed, namespace, "web") == {"web": web["v1.1.0"].pinned}


def test_only_named_containers_change_and_deployments_move_together(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    apply(
        testbed,
        deployment_manifest(
            namespace, "front", {"web": f"{repository}:v0", "proxy": "example.org/proxy:1.2"}, release="shop"
        ),
    )
    apply(
        testbed,
        deployment_manifest(
            namespace, "worker", {"main": f"{repository}:v0", "copy": f"{repository}:v0"}, release="shop"
        ),
    )
    apply(
        testbed,
        release_manifest(
            namespace,
            "shop",
            repository,
            "v1.0.0",
            [
                {"kind": "Deployment", "name": "front"},
                {"kind": "Deployment", "name": "worker", "containers": ["main"]},
            ],
        ),
    )
    wait_ready(testbed, namespace, "shop", "v1.0.0")
    pinned = web["v1.0.0"].pinned
    assert container_images(testbed, namespace, "front") == {"web": pinned, "proxy": "example.org/proxy:1.2"}
    assert container_images(testbed, namespace, "worker") == {"main": pinned, "copy": f"{repository}:v0"}

    patch_release(testbed, namespace, "shop", {"version": "v1.1.0"})
    wait_ready(testbed, namespace, "shop", "v1.1.0")
    pinned = web["v1.1.0"].pinned
    assert container_images(testbed, namespace, "front")["web"] == pinned
    assert container_images(testbed, namespace, "worker")["main"] == pinned


def test_missing_workload_waits_and_is_picked_up_when_created(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    wait_condition(testbed, namespace, "web", "Ready", "False", "WorkloadNotFound")
    apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v1.0.0"}, release="web"))
    wait_ready(testbed, namespace, "web", "v1.0.0", timeout=30)


def test_manual_set_image_is_reverted_with_drift_event(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, release="web"))
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    wait_ready(testbed, namespace, "web", "v1.0.0")

    testbed.kubectl("set", "image", "deployment/web", f"web={repository}:hotfix", "-n", namespace)
    wait_until(
        lambda: container_images(testbed, namespace, "web")["web"] == web["v1.0.0"].pinned,
        timeout=30,
        what="the pinned digest put back",
    )
    drift = wait_until(lambda: events(testbed, namespace, "DriftCorrected"), timeout=30, what="DriftCorrected event")
    assert drift[0]["type"] == "Warning"
    assert get_release(testbed, namespace, "web")["status"]["revision"] == 1


def test_sigkill_during_rollout_converges_without_history_gaps(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    # minReadySeconds keeps the rollout in progress long enough to kill the operator in the middle of it.
    apply(
        testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, min_ready_seconds=8, release="web")
    )
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    wait_ready(testbed, namespace, "web", "v1.0.0")

    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})

    def in_progress() -> bool:
        history = get_release(testbed, namespace, "web")["status"].get("history") or []
        return bool(history) and history[0]["version"] == "v1.1.0" and history[0]["outcome"] == "InProgress"

    wait_until(in_progress, timeout=30, interval=0.2, what="v1.1.0 rollout in progress")
    operator.kill()
    operator.start()
    release = wait_ready(testbed, namespace, "web", "v1.1.0", timeout=90)
    history = release["status"]["history"]
    assert [h["revision"] for h in history] == [2, 1]
    assert [h["outcome"] for h in history] == ["Succeeded", "Succeeded"]
    assert container_images(testbed, namespace, "web") == {"web": web["v1.1.0"].pinned}


def test_a_moved_tag_is_reported_and_never_deployed(
    testbed: Testbed, operator: Operator, namespace: str, app_repo: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/moved-{namespace}"
    original = bake(app_repo, repository, "v1.0.0")
    upgrade = bake(app_repo, repository, "v1.1.0")
    apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, release="web"))
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    wait_ready(testbed, namespace, "web", "v1.0.0")

    # Someone pushes other content under the released tag (built from v2.0.0's sources, labelled v1.0.0).
    moved = bake(app_repo, repository, "v2.0.0", tag="v1.0.0", label_version="v1.0.0")
    assert moved.digest != original.digest
    # The operator re-checks recorded tags on its resync (30 s in these tests) and warns without acting.
    warning = wait_until(lambda: events(testbed, namespace, "TagMoved"), timeout=60, interval=1, what="TagMoved")
    assert warning[0]["type"] == "Warning" and moved.digest in warning[0]["message"]
    assert container_images(testbed, namespace, "web") == {"web": original.pinned}

    # Upgrade and roll back: the rollback deploys the digest recorded for v1.0.0, not what the tag says now.
    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    wait_ready(testbed, namespace, "web", "v1.1.0")
    assert container_images(testbed, namespace, "web") == {"web": upgrade.pinned}
    patch_release(testbed, namespace, "web", {"version": "v1.0.0"})
    release = wait_ready(testbed, namespace, "web", "v1.0.0")
    assert container_images(testbed, namespace, "web") == {"web": original.pinned}
    assert release["status"]["history"][0]["source"] == "History"


def test_an_apprelease_cannot_take_over_a_workload_its_owner_did_not_label(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    """The confused deputy: creating an AppRelease must not lend the operator's patch rights on any workload."""
    repository = web["v1.0.0"].repository
    original = {"app": "example.org/app:3.1", "sidecar": "example.org/sidecar:1.0"}
    apply(testbed, deployment_manifest(namespace, "victim", original, release=None))
    # Settled first: the Deployment controller's own status updates would change the resourceVersion too.
    testbed.kubectl("rollout", "status", "deployment/victim", "-n", namespace, "--timeout=60s")
    before = testbed.kubectl_json("get", "deployment", "victim", "-n", namespace)
    apply(
        testbed,
        release_manifest(
            namespace,
            "intruder",
            repository,
            "v1.0.0",
            [{"kind": "Deployment", "name": "victim", "containers": ["app", "sidecar"]}],
        ),
    )
    release = wait_condition(testbed, namespace, "intruder", "Ready", "False", "WorkloadNotOptedIn")
    assert "apprelease.dev/release=intruder" in condition(release, "Ready")["message"]
    assert condition(release, "Stalled").get("status") != "True"
    assert posted_events(testbed, namespace, "WorkloadNotOptedIn")
    after = testbed.kubectl_json("get", "deployment", "victim", "-n", namespace, "--show-managed-fields")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "apprelease" not in {m["manager"] for m in after["metadata"]["managedFields"]}
    assert container_images(testbed, namespace, "victim") == original

    # The owner consents: the label wakes the AppRelease, which pins both named containers.
    testbed.kubectl("label", "deployment", "victim", "-n", namespace, "apprelease.dev/release=intruder")
    wait_ready(testbed, namespace, "intruder", "v1.0.0", timeout=30)
    pinned = web["v1.0.0"].pinned
    assert container_images(testbed, namespace, "victim") == {"app": pinned, "sidecar": pinned}
