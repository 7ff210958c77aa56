"""Two field managers on one AppRelease, as under GitOps: a tool applying Git with server-side apply ("gitops",
as Flux and Argo CD do) and `apprelease rollback`. A live rollback warns, and the next sync either conflicts
(plain apply) or undoes it (forced apply, what GitOps tools do); a rollback committed to Git sticks."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from e2e.images import Pushed
from e2e.releases import apply, container_images, deployment_manifest, get_release, release_manifest, wait_ready
from e2e.support import Operator, Testbed
from e2e.test_cli import cli

GITOPS = "gitops"


def with_managed_fields(testbed: Testbed, namespace: str) -> dict[str, Any]:
    release: dict[str, Any] = testbed.kubectl_json(
        "get", "appreleases.apprelease.dev", "web", "-n", namespace, "--show-managed-fields"
    )
    return release


def owners_of_spec_version(release: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (entry["manager"], entry["operation"])
        for entry in release["metadata"].get("managedFields") or []
        if "f:version" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    ]


def sync(testbed: Testbed, path: Path, *, force: bool = False) -> subprocess.CompletedProcess[str]:
    """What a GitOps tool does with the manifests in Git: server-side apply under its own field manager."""
    args = ["apply", "--server-side", f"--field-manager={GITOPS}", "-f", str(path)]
    return testbed.kubectl(*args, *(["--force-conflicts"] if force else []), check=False)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_live_rollback_under_gitops_warns_conflicts_and_is_undone_while_a_git_rollback_sticks(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], tmp_path: Path
) -> None:
    repository = web["v1.0.0"].repository
    deployment = deployment_manifest(namespace, "web", {"web": f"{repository}:v1.0.0"}, release="web", replicas=1)
    # The Deployment is applied once; what the sync keeps applying is the release. (A GitOps tool that also
    # re-applies the Deployment must leave its pinned image alone: see examples/flux-kustomization.yaml.)
    apply(testbed, deployment)
    release = release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}])
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-settings", "namespace": namespace}}
    repo = tmp_path / "deploy"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Platform Bot")
    git(repo, "config", "user.email", "bot@example.com")
    manifest = repo / "web.yaml"
    header = "# shop/web, synced by the GitOps tool\n"

    def commit_version(version: str) -> None:
        release["spec"]["version"] = version
        manifest.write_text(header + yaml.safe_dump_all([release, settings], sort_keys=False))
        git(repo, "add", "web.yaml")
        git(repo, "commit", "-q", "-m", f"release {version}")

    def synced(force: bool = False) -> None:
        result = sync(testbed, manifest, force=force)
        assert result.returncode == 0, result.stderr

    commit_version("v1.0.0")
    synced()
    wait_ready(testbed, namespace, "web", "v1.0.0")
    commit_version("v1.1.0")
    synced()
    wait_ready(testbed, namespace, "web", "v1.1.0")
    assert owners_of_spec_version(with_managed_fields(testbed, namespace)) == [(GITOPS, "Apply")]

    # A live rollback: it works, and says that the next sync will undo it.
    kube = ["--kubeconfig", testbed.kubeconfig, "-n", namespace]
    live = cli("rollback", "web", "--to", "v1.0.0", *kube)
    assert live.returncode == 0, live.stderr
    warning = " ".join(live.stderr.split())
    assert f"spec.version of {namespace}/web is applied by {GITOPS}: the next sync puts v1.1.0 back" in warning
    assert "--file PATH/TO/MANIFEST --commit" in warning
    wait_ready(testbed, namespace, "web", "v1.0.0")
    assert ("apprelease-cli", "Update") in owners_of_spec_version(with_managed_fields(testbed, namespace))

    # The next sync of the unchanged Git: a plain server-side apply stops at the conflict, changing nothing ...
    plain = sync(testbed, manifest)
    assert plain.returncode != 0, plain.stdout
    assert "conflict" in plain.stderr.lower() and "apprelease-cli" in plain.stderr and ".spec.version" in plain.stderr
    assert get_release(testbed, namespace, "web")["spec"]["version"] == "v1.0.0"
    # ... and a forced one (what Flux and Argo CD do) takes the field back: the rollback is undone.
    synced(force=True)
    undone = wait_ready(testbed, namespace, "web", "v1.1.0")
    assert undone["status"]["history"][0]["source"] == "History"  # redeployed from history, no registry
    assert owners_of_spec_version(with_managed_fields(testbed, namespace)) == [(GITOPS, "Apply")]

    # The GitOps rollback: a commit with the recorded version and digest, then the sync deploys it.
    history = get_release(testbed, namespace, "web")["status"]["history"]
    recorded = next(h["revision"] for h in history if h["version"] == "v1.0.0")  # the newest that ran v1.0.0
    committed = cli("rollback", "web", "--to", "v1.0.0", "--file", str(manifest), "--commit", *kube)
    assert committed.returncode == 0, committed.stderr
    assert f"+  digest: {web['v1.0.0'].digest}" in committed.stdout
    log = git(repo, "log", "-1", "--format=%s%n%b")
    assert log.startswith(f"Roll back AppRelease {namespace}/web to v1.0.0 (revision {recorded})")
    assert git(repo, "status", "--porcelain") == ""
    assert manifest.read_text().startswith(header)  # the file is edited, not re-dumped
    synced()  # no conflict: Git and the cluster agree on who owns what
    rolled_back = wait_ready(testbed, namespace, "web", "v1.0.0")
    assert rolled_back["spec"]["digest"] == web["v1.0.0"].digest
    assert container_images(testbed, namespace, "web") == {"web": web["v1.0.0"].pinned}
    assert owners_of_spec_version(with_managed_fields(testbed, namespace)) == [(GITOPS, "Apply")]
    # The next sync changes nothing: the rollback sticks.
    synced()
    assert get_release(testbed, namespace, "web")["spec"]["version"] == "v1.0.0"

    # `apprelease status` tells the story: the rollout and the operator's Events, newest last.
    status = cli("status", "web", *kube)
    assert status.returncode == 0, status.stderr
    lines = [" ".join(line.split()) for line in status.stdout.splitlines()]
    assert any(line.startswith("Deployment/web Complete 1/1 available web=") for line in lines), status.stdout
    assert any(line.startswith("Events (last ") for line in lines), status.stdout
    assert "RollingBack" in status.stdout and "Deployed" in status.stdout
