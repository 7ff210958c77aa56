"""`make demo`: the whole apprelease story on the local test bed, narrated.

Bake v1.0.0 and v1.1.0 of a sample app (busybox httpd answering /version) from git tags, run the operator,
release v1 on the test bed's real node, upgrade to v2, roll back by editing spec.version, and print the history.
Then promote from staging to production on the real node, and show the notification production sent
(e2e/demo_promotion.py).
After each step, the running app itself says which version and commit it is (curl to each pod's IP through the
node's CNI bridge), next to the digest the operator pinned and the one the kubelet reports it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from e2e.demo_promotion import Receiver, run_promotion, show_pods
from e2e.demo_promotion import operator_env as promotion_env
from e2e.narration import console, sh, step
from e2e.realnode import find_real_node, on_real_node
from e2e.releases import container_images, deployment_manifest, release_manifest, wait_ready
from e2e.support import ROOT, Operator, Testbed, load_testbed, wait_until

NAMESPACE = "demo"
APPRELEASE = str(Path(sys.executable).with_name("apprelease"))


def bake_sample(testbed: Testbed, workdir: Path) -> str:
    repo = workdir / "hello"
    shutil.copytree(ROOT / "examples" / "sample-app", repo)
    git = ["git", "-c", "user.email=demo@example.com", "-c", "user.name=demo"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    image = f"{testbed.registry}/demo/hello"
    for version in ("v1.0.0", "v1.1.0"):
        (repo / "VERSION").write_text(version + "\n")
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        # Fixed dates: the same sample gives the same commits on every run, and a version is built once
        # (`build --push` reuses an image of the same commit and refuses another commit's).
        dates = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
        subprocess.run(
            [*git, "commit", "-q", "-m", f"release {version}"], cwd=repo, check=True, env={**os.environ, **dates}
        )
        subprocess.run([*git, "tag", version], cwd=repo, check=True)
        commit = subprocess.run([*git, "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
        pinned = sh(
            APPRELEASE,
            "build",
            "--image",
            image,
            "--push",
            "--quiet",
            "--build-arg",
            f"BASE_IMAGE={testbed.base_image}",
            "--build-arg",
            f"REVISION={commit.stdout.strip()}",
            str(repo),
        ).strip()
        console.print(f"  [green]{version}[/] -> {pinned}", highlight=False)
    return image


def main() -> None:
    testbed = load_testbed()
    kubectl = ["kubectl", "--kubeconfig", testbed.kubeconfig]
    node = find_real_node(testbed)
    info = node["status"]["nodeInfo"]
    console.print(
        f"real node {node['metadata']['name']}: kubelet {info['kubeletVersion']}, {info['containerRuntimeVersion']}",
        highlight=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        step("1. Bake two releases of a sample app from git tags (apprelease build --push)")
        image = bake_sample(testbed, Path(tmp))

        step("2. Install the CRD and start the operator")
        sh(*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        sh(*kubectl, "wait", "--for=condition=Established", "crd/appreleases.apprelease.dev")
        receiver = Receiver()  # the webhook production notifies (step 8), on a free loopback port
        log = ROOT / ".testbed" / "logs" / "demo-operator.log"
        operator = Operator(testbed, log, extra_env=promotion_env(receiver))
        operator.start()
        try:
            run_story(testbed, kubectl, image)
            run_promotion(testbed, kubectl, image, receiver)
            console.print(f"\noperator memory (RSS): {operator.rss_kib() / 1024:.1f} MiB")
            console.print(
                f"The test bed keeps running: KUBECONFIG={testbed.kubeconfig} kubectl get ar -A; "
                "`make testbed-down` stops it."
            )
        finally:
            operator.stop()
            receiver.stop()


def run_story(testbed: Testbed, kubectl: list[str], image: str) -> None:
    subprocess.run(
        [*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true"], capture_output=True
    )
    sh(*kubectl, "create", "namespace", NAMESPACE)
    wait_until(
        lambda: (
            subprocess.run([*kubectl, "get", "sa", "default", "-n", NAMESPACE], capture_output=True).returncode == 0
        ),
        timeout=30,
        what="the namespace's default ServiceAccount",
    )
    deployment = on_real_node(
        deployment_manifest(NAMESPACE, "hello", {"hello": f"{image}:v1.0.0"}, release="hello"), "hello"
    )
    sh(*kubectl, "apply", "-f", "-", input=yaml.safe_dump(deployment))

    step("3. Release v1.0.0: kubectl apply an AppRelease")
    release = release_manifest(
        NAMESPACE, "hello", image, "v1.0.0", [{"kind": "Deployment", "name": "hello"}], provenance="Required"
    )
    console.print(yaml.safe_dump(release, sort_keys=False), highlight=False)
    converge(testbed, "v1.0.0", [*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(release))

    step("4. Upgrade to v1.1.0: change spec.version")
    converge(testbed, "v1.1.0", set_version(kubectl, "v1.1.0"))

    step("5. Roll back: set spec.version back to v1.0.0 (the recorded digest, no registry lookup)")
    converge(testbed, "v1.0.0", set_version(kubectl, "v1.0.0"))

    step("6. History")
    console.print(sh(APPRELEASE, "history", "hello", "-n", NAMESPACE, "--kubeconfig", testbed.kubeconfig))
    console.print(sh(*kubectl, "get", "apprelease", "-n", NAMESPACE))
    console.print(sh(*kubectl, "rollout", "history", "deployment/hello", "-n", NAMESPACE))


def set_version(kubectl: list[str], version: str) -> list[str]:
    patch = json.dumps({"spec": {"version": version}})
    return [*kubectl, "-n", NAMESPACE, "patch", "apprelease", "hello", "--type=merge", "-p", patch]


def converge(testbed: Testbed, version: str, command: list[str], input: str | None = None) -> None:
    """Run the command that changes the AppRelease, then wait until the operator reports it Ready."""
    started = time.monotonic()
    sh(*command, input=input)
    release = wait_ready(testbed, NAMESPACE, "hello", version, timeout=120)
    image = container_images(testbed, NAMESPACE, "hello")["hello"]
    console.print(f"  Ready in {time.monotonic() - started:.1f}s; Deployment runs {image}", highlight=False)
    digest = release["status"]["digest"]
    console.print(f"  pinned by the operator: {digest}", highlight=False)
    show_pods(testbed, NAMESPACE, digest, replicas=2)


if __name__ == "__main__":
    main()
