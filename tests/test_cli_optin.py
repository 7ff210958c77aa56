"""`apprelease optin`: the owner's consent, as the label and (once the AppRelease exists) the uid annotation."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from apprelease.cli import app as shared
from apprelease.cli import main
from apprelease.cli.kube import KubeError

UID = "6f1c2a4e-0000-4000-8000-000000000001"


class FakeReleases:
    namespace = "shop"

    def __init__(self, uid: str | None = UID, workloads: tuple[str, ...] = ("Deployment/web",)) -> None:
        self.release_uid = uid
        self.workloads = workloads
        self.patches: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []

    def workload(self, kind: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if f"{kind}/{name}" in self.workloads else None

    def uid(self, name: str) -> str | None:
        if name == "forbidden":
            raise KubeError("not allowed to access AppRelease shop/forbidden")
        return self.release_uid

    def patch_workload_metadata(
        self, kind: str, name: str, labels: dict[str, Any], annotations: dict[str, Any]
    ) -> None:
        self.patches.append((kind, name, labels, annotations))


def run(monkeypatch: pytest.MonkeyPatch, fake: FakeReleases, *args: str) -> Any:
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    return CliRunner().invoke(main.app, ["optin", *args])


def test_an_existing_release_is_bound_by_name_and_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeReleases()
    result = run(monkeypatch, fake, "deploy/web", "--release", "web")
    assert result.exit_code == 0, result.output
    assert fake.patches == [
        ("Deployment", "web", {"apprelease.dev/release": "web"}, {"apprelease.dev/release-uid": UID})
    ]
    assert f"shop/deployment/web: opted in to AppRelease web, bound to its uid {UID}" in result.stdout
    assert "warning" not in result.stderr


def test_before_the_release_exists_the_name_is_bound_and_an_old_uid_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeReleases(uid=None, workloads=("StatefulSet/db",))
    result = run(monkeypatch, fake, "statefulsets/db", "-r", "db")
    assert result.exit_code == 0, result.output
    assert fake.patches == [
        ("StatefulSet", "db", {"apprelease.dev/release": "db"}, {"apprelease.dev/release-uid": None})
    ]
    assert "by name only" in result.stdout
    assert "does not exist yet" in " ".join(result.stderr.split())


def test_name_only_drops_the_uid_even_when_the_release_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeReleases()
    result = run(monkeypatch, fake, "deployment/web", "--release", "web", "--name-only")
    assert result.exit_code == 0, result.output
    assert fake.patches[0][3] == {"apprelease.dev/release-uid": None}
    assert "warning" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("web", "--release", "web"), "name the workload as KIND/NAME"),
        (("pod/web", "--release", "web"), "name the workload as KIND/NAME"),
        (("cronjob/report", "--release", "web"), "CronJob shop/report not found"),
        (("deploy/web", "--release", "forbidden"), "not allowed to access AppRelease shop/forbidden"),
    ],
)
def test_refusals_change_nothing(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str) -> None:
    fake = FakeReleases()
    result = run(monkeypatch, fake, *args)
    assert result.exit_code == 1 and message in " ".join(result.stderr.split())
    assert fake.patches == []
