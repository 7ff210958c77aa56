"""The apprelease CLI end to end: bake from git tags with the real Docker engine, apply, status, history, rollback."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from e2e.images import Pushed, git, make_app_repo, skopeo_digest, skopeo_labels
from e2e.releases import apply, container_images, deployment_manifest, release_manifest, wait_ready
from e2e.support import Operator, Testbed
from e2e.workloads import workload_manifest

APPRELEASE = str(Path(sys.executable).with_name("apprelease"))
KUBECTL_PLUGIN = str(Path(sys.executable).with_name("kubectl-apprelease"))


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([APPRELEASE, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_build_bakes_the_tag_with_provenance_labels_and_writes_a_pinned_manifest(
    testbed: Testbed, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    repo = tmp_path / "svc"
    commits = make_app_repo(repo, testbed.base_image, ["v3.0.0", "v3.1.0"])
    image = f"{testbed.registry}/cli/svc-{namespace}"

    pinned = {}
    for version in ("v3.0.0", "v3.1.0"):
        git(repo, "checkout", "-q", version)
        manifest = tmp_path / f"{version}.yaml"
        result = cli(
            "build",
            "--image",
            image,
            "--push",
            "--manifest",
            str(manifest),
            "--name",
            "svc",
            "--namespace",
            namespace,
            str(repo),
        )
        assert result.returncode == 0, result.stderr
        pinned[version] = result.stdout.strip()
        assert pinned[version] == f"{image}@{skopeo_digest(f'{image}:{version}', tls_verify=False)}"
        labels = skopeo_labels(f"{image}:{version}")
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.revision"] == commits[version]
        assert labels["org.opencontainers.image.created"]
        short = git(repo, "rev-parse", "--short=12", "HEAD")
        assert skopeo_digest(f"{image}:{short}", tls_verify=False) == pinned[version].split("@")[1]
        document = yaml.safe_load(manifest.read_text())
        assert document["spec"]["digest"] == pinned[version].split("@")[1]
        assert document["spec"]["version"] == version
        assert f"kubectl label deployment svc -n {namespace} apprelease.dev/release=svc" in manifest.read_text()

    apply(testbed, deployment_manifest(namespace, "svc", {"svc": f"{image}:v0"}, release="svc"))
    testbed.kubectl("apply", "-f", str(tmp_path / "v3.0.0.yaml"))
    wait_ready(testbed, namespace, "svc", "v3.0.0")
    testbed.kubectl("apply", "-f", str(tmp_path / "v3.1.0.yaml"))
    wait_ready(testbed, namespace, "svc", "v3.1.0")
    assert container_images(testbed, namespace, "svc") == {"svc": pinned["v3.1.0"]}

    kube = ["--kubeconfig", testbed.kubeconfig, "-n", namespace]
    table = cli("history", "svc", *kube)
    assert table.returncode == 0, table.stderr
    assert "v3.1.0" in table.stdout and "v3.0.0" in table.stdout and "Registry" in table.stdout
    entries = json.loads(cli("history", "svc", *kube, "-o", "json").stdout)
    assert [(e["revision"], e["version"]) for e in entries] == [(2, "v3.1.0"), (1, "v3.0.0")]

    refused = cli("rollback", "svc", "--to-version", "v9.9.9", *kube)
    assert refused.returncode != 0 and "not in history" in refused.stderr
    back = cli("rollback", "svc", *kube)
    assert back.returncode == 0, back.stderr
    release = wait_ready(testbed, namespace, "svc", "v3.0.0")
    assert release["status"]["history"][0]["source"] == "History"
    assert container_images(testbed, namespace, "svc") == {"svc": pinned["v3.0.0"]}

    # The same binary works as a kubectl plugin.
    status = subprocess.run(
        ["kubectl", "apprelease", "status", "svc", "-n", namespace, "-o", "json"],
        capture_output=True,
        text=True,
        env={"PATH": f"{Path(KUBECTL_PLUGIN).parent}:/usr/bin:/bin", "KUBECONFIG": testbed.kubeconfig},
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["version"] == "v3.0.0"


def test_build_refuses_a_dirty_tree_and_an_untagged_head(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "svc"
    make_app_repo(repo, testbed.base_image, ["v1.0.0"])
    image = f"{testbed.registry}/cli/refused"

    (repo / "app.sh").write_text("echo changed\n")
    dirty = cli("build", "--image", image, str(repo))
    assert dirty.returncode != 0
    assert "uncommitted changes" in dirty.stderr
    assert len(dirty.stderr.strip().splitlines()) == 1

    git(repo, "commit", "-qam", "after the tag")
    untagged = cli("build", "--image", image, str(repo))
    assert untagged.returncode != 0 and "not at a tag" in untagged.stderr

    latest = cli("build", "--image", image, "--version", "latest", str(repo))
    assert latest.returncode != 0 and "latest" in latest.stderr
    tagged_image = cli("build", "--image", f"{image}:v1", str(repo))
    assert tagged_image.returncode != 0 and "without a tag" in tagged_image.stderr

    hatch = cli("build", "--image", image, "--version", "v1.0.1-rc.1", "--quiet", str(repo))
    assert hatch.returncode == 0, hatch.stderr
    assert hatch.stdout.strip() == f"{image}:v1.0.1-rc.1"


def test_build_passes_build_args_and_target(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "multi"
    repo.mkdir()
    (repo / "Dockerfile").write_text(
        'ARG BASE\nFROM ${BASE} AS build\nARG GREETING\nRUN echo "$GREETING" > /greeting\n'
        "FROM ${BASE} AS runtime\nCOPY --from=build /greeting /greeting\n"
        "FROM runtime AS debug\nRUN echo debug > /debug\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "multi-stage")
    git(repo, "tag", "v0.5.0")
    image = f"{testbed.registry}/cli/multi-{uuid.uuid4().hex[:8]}"  # a version is built once: a repository per run
    result = cli(
        "build",
        "--image",
        image,
        "--build-arg",
        f"BASE={testbed.base_image}",
        "--build-arg",
        "GREETING=hi there",
        "--target",
        "runtime",
        "--push",
        str(repo),
    )
    assert result.returncode == 0, result.stderr
    run = subprocess.run(
        ["docker", "run", "--rm", f"{image}:v0.5.0", "cat", "/greeting"], capture_output=True, text=True
    )
    assert run.stdout.strip() == "hi there"
    no_debug = subprocess.run(["docker", "run", "--rm", f"{image}:v0.5.0", "ls", "/debug"], capture_output=True)
    assert no_debug.returncode != 0  # --target runtime stopped before the debug stage

    bad = cli("build", "--image", image, "--build-arg", "NOEQUALS", str(repo))
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_resolve_prints_the_pinned_reference(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "res"
    make_app_repo(repo, testbed.base_image, ["v0.1.0"])
    # A repository of its own per run: a version is built once, and each run's commit is new.
    image = f"{testbed.registry}/cli/res-{uuid.uuid4().hex[:8]}"
    built = cli("build", "--image", image, "--push", "--quiet", str(repo))
    assert built.returncode == 0, built.stderr
    resolved = cli("resolve", f"{image}:v0.1.0", "--insecure-registry", testbed.registry)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip() == built.stdout.strip()
    missing = cli("resolve", f"{image}:v9", "--insecure-registry", testbed.registry)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_status_judges_on_delete_workloads_as_the_operator_does(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    """A StatefulSet and a DaemonSet with updateStrategy OnDelete: the operator is Ready once their templates are
    pinned (pods change only when deleted), and `apprelease status` says Complete for both. When the CLI judged
    rollouts apart it said Untracked for the StatefulSet and waited on the DaemonSet's pods."""
    version = "v1.0.0"
    pinned = web[version]
    workloads = {"StatefulSet": "db", "DaemonSet": "agent"}
    for kind, name in workloads.items():
        manifest = workload_manifest(kind, namespace, name, {"app": f"{pinned.repository}:v0"}, release="shop")
        manifest["spec"]["updateStrategy"] = {"type": "OnDelete"}
        apply(testbed, manifest)
    listed = [{"kind": kind, "name": name} for kind, name in workloads.items()]
    apply(testbed, release_manifest(namespace, "shop", pinned.repository, version, listed))
    wait_ready(testbed, namespace, "shop", version, timeout=120)

    status = cli("status", "shop", "--kubeconfig", testbed.kubeconfig, "-n", namespace)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines() if "/" in line.split(" ", 1)[0]}
    for kind, name in workloads.items():
        assert rows[f"{kind}/{name}"][1] == "Complete", status.stdout
        assert "OnDelete" in status.stdout and pinned.digest.split(":")[1][:12] in status.stdout
