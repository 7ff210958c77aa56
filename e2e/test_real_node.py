"""Real containers on the real node (kubelet + containerd + runc), pulled by digest from the test bed's registries.

The node is found by its label (apprelease.dev/testbed-node=real, taint apprelease.dev/real-node), so these tests
run unchanged against another cluster that has such a node. A missing, NotReady or kwok node fails them. The app
is busybox httpd answering GET /version with the version and git commit it was built from; each answer is read
from this host at the pod's IP, through the node's CNI bridge.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.conftest import Helm
from e2e.handover import CHART, chart_values
from e2e.images import Pushed, bake, make_app_repo
from e2e.realnode import (
    ask_version,
    image_ids,
    live_pods,
    on_real_node,
    wait_running,
    waiting_reasons,
)
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

VERSIONS = ("v1.0.0", "v1.1.0")
CRASHING = "v1.2.0"


@pytest.fixture(scope="module")
def app(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("real-app")
    return path, make_app_repo(path, testbed.base_image, [*VERSIONS, CRASHING], crashing=(CRASHING,))


def _deployment(namespace: str, name: str, image: str, replicas: int, **spec: Any) -> dict[str, Any]:
    manifest = on_real_node(deployment_manifest(namespace, name, {name: image}, replicas=replicas, release=name), name)
    manifest["spec"].update(spec)
    return manifest


def _check_runs(
    testbed: Testbed, namespace: str, name: str, repository: str, node: str, version: str, commit: str, replicas: int
) -> str:
    """The AppRelease is Ready at `version`; every pod runs its digest on the real node and answers `version`."""
    release = wait_ready(testbed, namespace, name, version, timeout=120)
    digest: str = release["status"]["digest"]
    pods = wait_running(testbed, namespace, name, digest, replicas)
    for pod in pods:
        assert pod["spec"]["nodeName"] == node
        assert [c["image"] for c in pod["spec"]["containers"]] == [f"{repository}@{digest}"]
        # What the runtime reports it runs: exactly the pinned digest (the repository part is the first name
        # containerd pulled that content under, which may be another repository with the same bytes).
        assert [i.rpartition("@")[2] for i in image_ids(pod)] == [digest], image_ids(pod)
        assert ask_version(pod["status"]["podIP"]) == {"version": version, "commit": commit}
    return digest


def test_release_upgrade_and_rollback_run_the_pinned_digest(
    testbed: Testbed, namespace: str, operator: Operator, real_node: str, app: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/real-web"
    pushed = {v: bake(app, repository, v) for v in VERSIONS}
    commits = app[1]
    apply(testbed, _deployment(namespace, "web", f"{repository}:v1.0.0", replicas=2))
    apply(
        testbed,
        release_manifest(
            namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}], provenance="Required"
        ),
    )
    steps = [("v1.0.0", "Registry"), ("v1.1.0", "Registry"), ("v1.0.0", "History")]
    for i, (version, source) in enumerate(steps):
        if i:
            patch_release(testbed, namespace, "web", {"version": version})
        digest = _check_runs(testbed, namespace, "web", repository, real_node, version, commits[version], 2)
        assert digest == pushed[version].digest
        release = get_release(testbed, namespace, "web")
        assert release["status"]["history"][0]["source"] == source
        assert release["status"]["gitCommit"] == commits[version]


def test_private_image_is_pulled_only_with_the_pull_secret(
    testbed: Testbed, namespace: str, operator: Operator, real_node: str, app: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry_auth}/e2e/private"
    auth = {"username": testbed.registry_auth_user, "password": testbed.registry_auth_password}
    # A digest of its own: no node can have it cached from an earlier run or another test.
    pushed = bake(app, repository, "v1.0.0", auth=auth, extra_labels={"dev.apprelease.test-run": uuid.uuid4().hex})
    testbed.kubectl(
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        namespace,
        f"--docker-server={testbed.registry_auth}",
        f"--docker-username={testbed.registry_auth_user}",
        f"--docker-password={testbed.registry_auth_password}",
    )
    # The operator resolves with the AppRelease's secret; the pods carry none: the kubelet cannot pull.
    apply(testbed, _deployment(namespace, "private", f"{repository}:v1.0.0", replicas=1, progressDeadlineSeconds=15))
    apply(
        testbed,
        release_manifest(
            namespace,
            "private",
            repository,
            "v1.0.0",
            [{"kind": "Deployment", "name": "private"}],
            imagePullSecrets=[{"name": "regcred"}],
        ),
    )

    def pull_refused() -> set[str] | None:
        pods = [p for p in live_pods(testbed, namespace, "private") if f"@{pushed.digest}" in json.dumps(p["spec"])]
        reasons = set().union(*(waiting_reasons(p) for p in pods)) if pods else set()
        return reasons if reasons and reasons <= {"ErrImagePull", "ImagePullBackOff"} else None

    wait_until(pull_refused, timeout=90, what="the pinned pod failing to pull without a secret")
    # A first release has nothing to go back to: it stays, Stalled, and says why.
    failed = wait_condition(testbed, namespace, "private", "Stalled", "True", "RolloutFailed", timeout=120)
    message = condition(failed, "Ready")["message"]
    assert "ErrImagePull" in message or "ImagePullBackOff" in message, message
    assert failed["status"]["digest"] == pushed.digest
    pull_events = testbed.kubectl_json("get", "events", "-n", namespace, "--field-selector", "reason=Failed")["items"]
    # containerd found no credentials for the registry: the node has none of its own.
    refused = [e["message"] for e in pull_events if pushed.digest in e["message"]]
    assert any("no basic auth credentials" in m for m in refused), [e["message"] for e in pull_events]

    # The same pods with the pull secret: pulled with its credentials, running, answering.
    patch = {"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "regcred"}]}}}}
    testbed.kubectl("patch", "deployment", "private", "-n", namespace, "-p", json.dumps(patch))
    # The cause is fixed: ask the operator to try the failed version again.
    testbed.kubectl("annotate", "appreleases.apprelease.dev", "private", "-n", namespace, "apprelease.dev/retry=1")
    _check_runs(testbed, namespace, "private", repository, real_node, "v1.0.0", app[1]["v1.0.0"], 1)


def test_a_version_that_exits_at_start_goes_into_crash_loop_and_fails_the_release(
    testbed: Testbed, namespace: str, operator: Operator, real_node: str, app: tuple[Path, dict[str, str]]
) -> None:
    repository = f"{testbed.registry}/e2e/real-crash"
    good, bad = bake(app, repository, "v1.0.0"), bake(app, repository, CRASHING)
    apply(testbed, _deployment(namespace, "crash", f"{repository}:v1.0.0", replicas=1, progressDeadlineSeconds=15))
    # onFailure Halt: the failed release stays as it is (the automatic rollback is test_real_node_safety.py's).
    apply(
        testbed,
        release_manifest(
            namespace,
            "crash",
            repository,
            "v1.0.0",
            [{"kind": "Deployment", "name": "crash"}],
            rollout={"onFailure": "Halt"},
        ),
    )
    _check_runs(testbed, namespace, "crash", repository, real_node, "v1.0.0", app[1]["v1.0.0"], 1)

    patch_release(testbed, namespace, "crash", {"version": CRASHING})

    def crash_looping() -> dict[str, Any] | None:
        for pod in live_pods(testbed, namespace, "crash"):
            if f"{repository}@{bad.digest}" not in image_ids(pod) and bad.digest not in json.dumps(pod["spec"]):
                continue
            status = (pod["status"].get("containerStatuses") or [{}])[0]
            terminated = (status.get("lastState") or {}).get("terminated") or {}
            if "CrashLoopBackOff" in waiting_reasons(pod) and terminated.get("exitCode") == 3:
                return pod
        return None

    crashing = wait_until(crash_looping, timeout=90, what=f"{CRASHING} in CrashLoopBackOff with exit code 3")
    assert crashing["spec"]["nodeName"] == real_node
    failed = wait_condition(testbed, namespace, "crash", "Stalled", "True", "RolloutFailed", timeout=120)
    assert failed["status"]["version"] == CRASHING and failed["status"]["digest"] == bad.digest
    assert failed["status"]["history"][0]["outcome"] == "Failed"
    # The Deployment keeps the old pod while the new one crashes: the app still answers, from the old digest.
    serving = [p for p in live_pods(testbed, namespace, "crash") if image_ids(p) == [f"{repository}@{good.digest}"]]
    assert serving and ask_version(serving[0]["status"]["podIP"])["version"] == "v1.0.0"


# --- the operator itself as a pod on the real node, installed with the Helm chart -------------------------
@pytest.fixture
def chart_release(helm: Helm, namespace: str) -> Iterator[str]:
    """A release name of its own (the chart makes a cluster-scoped ClusterRole), uninstalled afterwards."""
    name = f"ar-{namespace[-5:]}"
    yield name
    try:
        helm("uninstall", name, "-n", namespace, "--wait")
    except AssertionError:
        pass  # not installed: the test failed before


@pytest.fixture
def host_operator_paused(operator: Operator) -> Iterator[None]:
    """The session's operator process watches every namespace: paused, so only the pod reconciles here."""
    operator.stop()
    yield
    operator.start()


def test_operator_from_the_chart_runs_as_a_pod_on_the_real_node(
    testbed: Testbed,
    namespace: str,
    real_node: str,
    app: tuple[Path, dict[str, str]],
    helm: Helm,
    operator_image: Pushed,
    chart_release: str,
    crd_installed: None,
    host_operator_paused: None,
    tmp_path: Path,
) -> None:
    # One pod to follow through a deletion; two replicas and failover are e2e/test_ha.py's.
    values: dict[str, Any] = {**chart_values(testbed, operator_image, namespace), "replicaCount": 1}
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    helm(
        "install",
        chart_release,
        str(CHART),
        "-n",
        namespace,
        "--skip-crds",
        "-f",
        str(tmp_path / "values.yaml"),
        "--wait",
        "--timeout",
        "240s",
    )

    def operator_pod() -> dict[str, Any] | None:
        pods = testbed.kubectl_json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=apprelease-operator")
        live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        ready = [
            p
            for p in live
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        ]
        return ready[0] if len(live) == 1 and ready else None

    first = wait_until(operator_pod, timeout=120, what="the operator pod Ready (its readiness probe passes)")
    assert first["spec"]["nodeName"] == real_node
    assert [i.rpartition("@")[2] for i in image_ids(first)] == [operator_image.digest]
    status = first["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0 and "running" in status["state"]
    # Non-root and read-only, as the process sees it (not only as the spec asks).
    who = testbed.kubectl(
        "exec",
        "-n",
        namespace,
        first["metadata"]["name"],
        "--",
        "python3",
        "-c",
        "import os; print(os.getuid(), os.getgid())",
    ).stdout.split()
    assert who == ["65532", "65532"]
    write = testbed.kubectl(
        "exec", "-n", namespace, first["metadata"]["name"], "--", "python3", "-c", "open('/probe', 'w')", check=False
    )
    assert write.returncode != 0 and "Read-only file system" in write.stderr

    # It reconciles end to end: resolves at the registry as pods reach it, pins, and the app runs the digest.
    pushed_at = f"{testbed.registry}/e2e/op-web"
    repository = f"{testbed.pod_registry}/e2e/op-web"
    for version in VERSIONS:
        bake(app, pushed_at, version)
    apply(testbed, _deployment(namespace, "web", f"{repository}:v1.0.0", replicas=1))
    apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))
    _check_runs(testbed, namespace, "web", repository, real_node, "v1.0.0", app[1]["v1.0.0"], 1)

    # Its pod deleted, the Deployment makes another that picks up where it left off.
    testbed.kubectl("delete", "pod", "-n", namespace, first["metadata"]["name"], "--wait=true")
    second = wait_until(
        lambda: (p := operator_pod()) and p["metadata"]["uid"] != first["metadata"]["uid"] and p,
        timeout=120,
        what="a new operator pod Ready",
    )
    assert second["spec"]["nodeName"] == real_node
    patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
    _check_runs(testbed, namespace, "web", repository, real_node, "v1.1.0", app[1]["v1.1.0"], 1)
