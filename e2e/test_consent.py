"""Consent that survives names, against the real API server and an operator that requires the uid binding."""

from __future__ import annotations

import subprocess
import sys

from e2e.images import Pushed
from e2e.releases import (
    apply,
    condition,
    container_images,
    deployment_manifest,
    get_release,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import ROOT, Operator, Testbed

WORKLOADS = [{"kind": "Deployment", "name": "web"}]


def _cli(testbed: Testbed, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "apprelease", *args, "-n", namespace, "--kubeconfig", testbed.kubeconfig]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _not_opted_in(testbed: Testbed, namespace: str) -> str:
    release = wait_condition(testbed, namespace, "web", "Ready", "False", "WorkloadNotOptedIn")
    message: str = condition(release, "Ready")["message"]
    return message


def test_a_uid_binding_survives_a_namesake_when_the_operator_requires_it(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    operator.stop()  # the session operator does not require the binding; this one does, in this namespace only
    strict = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "operator-uid-binding.log",
        extra_env={"APPRELEASE_REQUIRE_UID_BINDING": "true", "APPRELEASE_WATCH_NAMESPACES": namespace},
    )
    strict.start()
    try:
        repository = web["v1.0.0"].repository
        original = {"web": f"{repository}:v0"}
        # GitOps order: the workload first, labelled by name, then the AppRelease.
        apply(testbed, deployment_manifest(namespace, "web", original, release="web"))
        apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", WORKLOADS))
        message = _not_opted_in(testbed, namespace)
        assert "by name only" in message and "requires the uid binding" in message
        assert f"apprelease optin deployment/web --release web -n {namespace}" in message
        assert container_images(testbed, namespace, "web") == original

        # The owner binds it to this AppRelease: pinned.
        bound = _cli(testbed, namespace, "optin", "deployment/web", "--release", "web")
        assert bound.returncode == 0, bound.stderr
        uid = get_release(testbed, namespace, "web")["metadata"]["uid"]
        assert f"bound to its uid {uid}" in bound.stdout
        deployment = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)
        assert deployment["metadata"]["annotations"]["apprelease.dev/release-uid"] == uid
        assert deployment["metadata"]["labels"]["apprelease.dev/release"] == "web"
        wait_ready(testbed, namespace, "web", "v1.0.0")
        pinned = {"web": web["v1.0.0"].pinned}
        assert container_images(testbed, namespace, "web") == pinned

        # The AppRelease is deleted and someone creates another one of the same name: not the owner's consent.
        testbed.kubectl("delete", "appreleases.apprelease.dev", "web", "-n", namespace, "--wait=true")
        apply(testbed, release_manifest(namespace, "web", repository, "v1.1.0", WORKLOADS))
        message = _not_opted_in(testbed, namespace)
        assert f"bound to the AppRelease with uid '{uid}'" in message
        assert "deleted and created again" in message
        assert f"apprelease optin deployment/web --release web -n {namespace}" in message  # how to re-bind
        assert container_images(testbed, namespace, "web") == pinned  # untouched
        assert get_release(testbed, namespace, "web")["status"].get("revision", 0) == 0
    finally:
        strict.stop()
        operator.start()
