"""`apprelease promote`: refused unless upstream Succeeded with the version; live patch or a commit (--file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from apprelease.cli import app as shared
from apprelease.cli import main
from apprelease.core.api import AppRelease
from tests.test_cli_rollback import D2, MANIFEST, git

D3 = "sha256:" + "3" * 64


class FakeReleases:
    def __init__(self, namespace: str, raw: dict[str, Any]) -> None:
        self.namespace = namespace
        self.raw = raw
        self.patches: list[dict[str, Any]] = []

    def get_raw(self, name: str) -> dict[str, Any]:
        return self.raw

    def get(self, name: str) -> AppRelease:
        return AppRelease.from_k8s(self.raw)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.patches.append(spec)


def release(namespace: str, version: str, history: list[dict[str, Any]], digest: str | None = None) -> dict[str, Any]:
    spec = {"image": "registry.example.com/shop/web", "version": version, **({"digest": digest} if digest else {})}
    return {
        "metadata": {"name": "web", "namespace": namespace, "generation": 1},
        "spec": spec,
        "status": {"version": history[0]["version"] if history else None, "history": history},
    }


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeReleases]:
    fakes = {
        "staging": FakeReleases(
            "staging",
            release(
                "staging",
                "v3",
                [
                    {"revision": 7, "version": "v3", "digest": D3, "outcome": "Succeeded"},
                    {"revision": 6, "version": "v4", "digest": D2, "outcome": "Failed", "failure": "crash"},
                    {"revision": 5, "version": "v5", "digest": D2, "outcome": "InProgress"},
                ],
            ),
        ),
        "shop": FakeReleases("shop", release("shop", "v2", [], digest=D2)),
    }
    monkeypatch.setattr(shared, "releases", lambda _k, _c, namespace: fakes[namespace or "shop"])
    return fakes


def run(*args: str) -> Any:
    return CliRunner().invoke(main.app, ["promote", "web", "--from", "staging/web", *args])


def test_promote_patches_version_source_and_digest(world: dict[str, FakeReleases]) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert world["shop"].patches == [
        {"version": "v3", "promotion": {"from": {"namespace": "staging", "name": "web"}}, "digest": D3}
    ]
    assert "promoted from staging/web#7" in result.stdout


@pytest.mark.parametrize(
    ("version", "message"),
    [("v5", "has not Succeeded with v5"), ("v4", "v4 failed in staging/web#6 (crash)"), ("v9", "v9 (yet)")],
)
def test_a_version_upstream_has_not_succeeded_with_is_refused_unchanged(
    world: dict[str, FakeReleases], version: str, message: str
) -> None:
    result = run("--version", version)
    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())
    assert world["shop"].patches == []


def test_promote_as_a_commit(world: dict[str, FakeReleases], tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.name", "Release Bot")
    git(tmp_path, "config", "user.email", "bot@example.com")
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST.format(digest=D2))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "release v2")
    result = run("--file", str(path), "--commit")
    assert result.exit_code == 0, result.output
    assert path.read_text() == MANIFEST.format(digest=D3).replace("version: v2 ", "version: v3 ")
    message = git(tmp_path, "log", "-1", "--format=%B")
    assert message.startswith("Promote AppRelease shop/web to v3 from staging/web\n\n")
    assert f"spec.digest {D3}, Succeeded in staging/web#7" in message
    assert world["shop"].patches == []


def test_history_shows_where_a_revision_was_promoted_from(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = release(
        "shop",
        "v3",
        [{"revision": 1, "version": "v3", "digest": D3, "outcome": "Succeeded", "promotedFrom": "staging/web#7"}],
    )
    monkeypatch.setattr(shared, "read_release", lambda *_: (None, raw))
    result = CliRunner().invoke(main.app, ["history", "web"])
    assert result.exit_code == 0, result.output
    assert "Promotion (from staging/web#7)" in " ".join(result.stdout.split())
