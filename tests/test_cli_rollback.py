"""`apprelease rollback`: in a manifest under git (--file, --commit), or live with a warning under GitOps."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from apprelease.cli import app as shared
from apprelease.cli import main
from apprelease.core.fieldowners import spec_version_owners

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64

MANIFEST = """\
# shop/web: released by CI, rolled back by commits
apiVersion: apprelease.dev/v1alpha1
kind: AppRelease
metadata:
  name: web
  namespace: shop
spec:
  image: registry.example.com/shop/web
  version: v2   # bumped by CI
  digest: "{digest}"
  workloads: [{{kind: Deployment, name: web}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-settings}}
data: {{greeting: "hello"}}
"""


def kustomize_apply() -> dict[str, Any]:
    return {
        "manager": "kustomize-controller",
        "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:image": {}, "f:version": {}, "f:workloads": {}}},
    }


class FakeReleases:
    namespace = "shop"

    def __init__(self, managed_fields: list[dict[str, Any]] | None = None, digest: str | None = D2) -> None:
        self.patches: list[dict[str, Any]] = []
        self.managed_fields = managed_fields or []
        self.digest = digest

    def get_raw(self, name: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "shop", "generation": 3, "managedFields": self.managed_fields},
            "spec": {"image": "registry.example.com/shop/web", "version": "v2", "digest": self.digest},
            "status": {
                "revision": 2,
                "history": [
                    {"revision": 2, "version": "v2", "digest": D2, "outcome": "Succeeded"},
                    {
                        "revision": 1,
                        "version": "v1",
                        "digest": D1,
                        "outcome": "Succeeded",
                        "deployedAt": "2026-11-01T10:00:00Z",
                    },
                ],
            },
        }

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.patches.append(spec)


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch) -> FakeReleases:
    fake = FakeReleases()
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    return fake


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.name", "Release Bot")
    git(tmp_path, "config", "user.email", "bot@example.com")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "web.yaml").write_text(MANIFEST.format(digest=D2))
    (tmp_path / "other.txt").write_text("staged, not part of the rollback\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "release v2")
    return tmp_path


def run(*args: str) -> Any:
    return CliRunner().invoke(main.app, ["rollback", "web", *args])


def test_rollback_as_a_commit_changes_two_lines_and_names_the_revision(releases: FakeReleases, repo: Path) -> None:
    (repo / "other.txt").write_text("changed and staged\n")
    git(repo, "add", "other.txt")
    path = repo / "deploy" / "web.yaml"
    result = run("--to", "v1", "--file", str(path), "--commit")
    assert result.exit_code == 0, result.output
    assert path.read_text() == MANIFEST.format(digest=D1).replace("version: v2 ", "version: v1 ")
    assert f'-  digest: "{D2}"' in result.stdout and f'+  digest: "{D1}"' in result.stdout
    assert "+  version: v1   # bumped by CI" in result.stdout
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("Roll back AppRelease shop/web to v1 (revision 1)\n\n")
    assert f"spec.digest {D1}, recorded in revision 1 (deployed 2026-11-01T10:00:00Z)" in message
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["deploy/web.yaml"]
    assert git(repo, "status", "--porcelain").splitlines() == ["M  other.txt"]  # still staged, not committed
    assert releases.patches == []  # under GitOps the live object is left to the sync


def test_without_commit_the_file_is_edited_and_left_for_review(releases: FakeReleases, repo: Path) -> None:
    path = repo / "deploy" / "web.yaml"
    result = run("--to-revision", "1", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert f'digest: "{D1}"' in path.read_text()
    assert git(repo, "log", "--format=%s").splitlines() == ["release v2"]


def test_a_file_with_uncommitted_changes_is_refused_untouched(releases: FakeReleases, repo: Path) -> None:
    path = repo / "deploy" / "web.yaml"
    edited = MANIFEST.format(digest=D2) + "# local note\n"
    path.write_text(edited)
    result = run("--to", "v1", "--file", str(path), "--commit")
    assert result.exit_code == 1
    assert "has uncommitted changes" in result.stderr
    assert path.read_text() == edited


def test_commit_outside_git_and_commit_without_file_are_refused(releases: FakeReleases, tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST.format(digest=D2))
    result = run("--to", "v1", "--file", str(path), "--commit")
    assert result.exit_code == 1 and "is not in a git checkout" in result.stderr
    assert path.read_text() == MANIFEST.format(digest=D2)
    result = run("--to", "v1", "--commit")
    assert result.exit_code == 1 and "give --file PATH" in result.stderr


def test_an_unknown_version_is_refused_before_the_file_is_read(releases: FakeReleases, tmp_path: Path) -> None:
    result = run("--to", "v9", "--file", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1 and "version v9 is not in history" in result.stderr


def test_a_live_rollback_warns_when_a_gitops_tool_applies_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeReleases([kustomize_apply()])
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    result = run("--to", "v1")
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "spec.version of shop/web is applied by kustomize-controller: the next sync puts v2 back" in warning
    assert "apprelease rollback web --to v1 --file PATH/TO/MANIFEST --commit" in warning
    assert fake.patches == [{"version": "v1", "digest": D1}]


def test_a_live_rollback_without_gitops_owner_does_not_warn(releases: FakeReleases) -> None:
    result = run("--to", "v1")
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert releases.patches == [{"version": "v1", "digest": D1}]


def test_spec_version_owners() -> None:
    def entry(manager: str, operation: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"manager": manager, "operation": operation, "fieldsV1": {"f:spec": fields}}

    version: dict[str, Any] = {"f:version": {}}
    assert spec_version_owners(None) == []
    assert spec_version_owners(
        [
            entry("gitops", "Apply", version),
            entry("helm", "Update", version),
            entry("argocd-controller", "Update", version),
            entry("kubectl-edit", "Update", version),  # a hand edit: nobody re-applies it
            entry("apprelease-cli", "Update", version),
            entry("apprelease", "Update", version),
            entry("kustomize-controller", "Apply", {"f:image": {}}),  # does not own the version
        ]
    ) == ["gitops", "helm", "argocd-controller"]


def test_a_live_rollback_pins_the_digest_only_when_the_spec_pins_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeReleases(digest=None)
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    result = run("--to", "v1")
    assert result.exit_code == 0, result.output
    assert fake.patches == [{"version": "v1"}]  # a sync restoring v2 later must not meet v1's digest


def test_a_hostile_previous_version_adds_no_trailer_to_the_commit(releases: FakeReleases, repo: Path) -> None:
    path = repo / "deploy" / "web.yaml"
    hostile = MANIFEST.format(digest=D2).replace(
        "version: v2   # bumped by CI", 'version: "v2\\n\\nSigned-off-by: Boss <boss@example.com>"'
    )
    path.write_text(hostile)
    git(repo, "commit", "-q", "-am", "a hostile edit")
    result = run("--to", "v1", "--file", str(path), "--commit")
    assert result.exit_code == 1
    assert "spec.version in the file" in result.stderr and "is not a tag" in result.stderr
    assert path.read_text() == hostile  # nothing written
    assert git(repo, "log", "-1", "--format=%s") == "a hostile edit\n"


def test_values_from_the_cluster_in_the_commit_message_are_checked(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    fake = FakeReleases()
    raw = fake.get_raw("web")
    raw["status"]["history"][1]["deployedAt"] = "2026-11-01\n\nReviewed-by: Boss <boss@example.com>"
    monkeypatch.setattr(fake, "get_raw", lambda name: raw)
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    path = repo / "deploy" / "web.yaml"
    result = run("--to", "v1", "--file", str(path), "--commit")
    assert result.exit_code == 1 and "deployedAt" in result.stderr and "not a date" in result.stderr
    assert path.read_text() == MANIFEST.format(digest=D2)
    assert git(repo, "log", "--format=%s").splitlines() == ["release v2"]


def test_a_duplicated_spec_key_is_refused_not_a_silent_success(releases: FakeReleases, repo: Path) -> None:
    path = repo / "deploy" / "web.yaml"
    twice = MANIFEST.format(digest=D2).replace("  workloads:", "spec:\n  version: v2\n  workloads:", 1)
    path.write_text(twice)
    git(repo, "commit", "-q", "-am", "a second spec")
    result = run("--to", "v1", "--file", str(path), "--commit")
    assert result.exit_code == 1 and "duplicate key 'spec' on line 11" in result.stderr
    assert path.read_text() == twice
    assert git(repo, "log", "-1", "--format=%s") == "a second spec\n"


def test_a_path_that_resolves_outside_the_repository_is_refused(
    releases: FakeReleases, repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    target = outside / "web.yaml"
    target.write_text(MANIFEST.format(digest=D2))
    (repo / "deploy" / "linked.yaml").symlink_to(target)
    (repo / "elsewhere").symlink_to(outside, target_is_directory=True)
    for path in (repo / "deploy" / "linked.yaml", repo / "elsewhere" / "web.yaml"):
        result = run("--to", "v1", "--file", str(path))
        assert result.exit_code == 1, result.output
        assert "outside the git repository" in result.stderr
    assert target.read_text() == MANIFEST.format(digest=D2)


def test_a_symlink_inside_the_repository_edits_and_commits_its_target(releases: FakeReleases, repo: Path) -> None:
    (repo / "prod.yaml").symlink_to(Path("deploy") / "web.yaml")
    git(repo, "add", "prod.yaml")
    git(repo, "commit", "-q", "-m", "a link")
    result = run("--to", "v1", "--file", str(repo / "prod.yaml"), "--commit")
    assert result.exit_code == 0, result.output
    assert f'digest: "{D1}"' in (repo / "deploy" / "web.yaml").read_text()
    assert (repo / "prod.yaml").is_symlink()
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["deploy/web.yaml"]
