"""Hostile text from clusters, registries and git reaches the terminal inert."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from apprelease.cli import app as shared
from apprelease.cli import main, render
from apprelease.cli.gitinfo import strip_credentials
from apprelease.cli.kube import KubeError
from apprelease.cli.text import plain, safe


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False, color_system=None), buffer


HOSTILE = "v1[/]\x1b]0;owned\x07\x1b[2J[link=https://evil.example]x[/link]\x9b31m"


def test_plain_makes_control_characters_visible() -> None:
    assert plain("a\x1b[2Jb\x07\x9bc") == "a\\x1b[2Jb\\x07\\x9bc"
    assert plain("tab\tand\nnewline") == "tab\\tand\\nnewline"  # one line per field
    assert plain(None) == ""


def test_safe_escapes_markup() -> None:
    console, buffer = _console()
    console.print(f"[bold]{safe('[/] [red]x')}[/]")
    assert buffer.getvalue().strip() == "[/] [red]x"


def _release(value: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"image": "r.example/web", "version": value},
        "status": {
            "version": value,
            "revision": 1,
            "image": "r.example/web@sha256:" + "a" * 64,
            "gitCommit": value,
            "conditions": [{"type": "Ready", "status": "False", "reason": value, "message": value}],
            "history": [
                {
                    "revision": 1,
                    "version": value,
                    "digest": "sha256:" + "a" * 64,
                    "gitCommit": value,
                    "source": value,
                    "outcome": value,
                    "deployedAt": value,
                }
            ],
        },
    }


def test_status_and_history_survive_markup_and_escapes() -> None:
    console, buffer = _console()
    render.status(console, _release(HOSTILE))
    render.history(console, _release(HOSTILE))
    out = buffer.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "[/]" in out and "\\x1b" in out  # shown, not interpreted


def test_credentials_are_stripped_whatever_the_scheme_case() -> None:
    assert strip_credentials("HTTPS://user:pw@git.example/a.git") == "HTTPS://git.example/a.git"
    assert strip_credentials("https://user:p@ss@git.example/a.git") == "https://git.example/a.git"
    assert strip_credentials("Ssh://tok@git.example/a.git") == "Ssh://git.example/a.git"
    assert strip_credentials("git@git.example:a.git") == "git@git.example:a.git"
    assert strip_credentials("https://git.example/a@b.git") == "https://git.example/a@b.git"


FORGED_LINE = "done\n  12m    Normal   Deployed   v9 is Ready and signed off\u202e"


class HostileReleases:
    """A cluster where anyone who may create Events or edit status writes the text."""

    namespace = "shop"

    def __init__(self, fail_with: str | None = None) -> None:
        self.fail_with = fail_with

    def get_raw(self, name: str) -> dict[str, Any]:
        release = _release("v2")
        release["metadata"]["uid"] = "u1"
        release["spec"]["workloads"] = [{"kind": "Deployment", "name": "web"}]
        release["status"]["conditions"][0].update(reason="Failed\u200b", message="rolled back\nReady True  fine")
        release["status"]["history"][0].update(outcome="Failed", failure="pod web-1: CrashLoop\n*9  v9  Succeeded")
        return release

    def workload(self, kind: str, name: str) -> dict[str, Any] | None:
        if self.fail_with is not None:
            raise KubeError(self.fail_with)
        return None

    def events(self, name: str, uid: str | None) -> list[dict[str, Any]]:
        return [
            {
                "type": "Normal",
                "reason": "Deploying",
                "message": FORGED_LINE,
                "lastTimestamp": "2026-11-27T10:00:00Z",
                "involvedObject": {"uid": "u1"},
            }
        ]


def _invoke(monkeypatch: pytest.MonkeyPatch, fake: HostileReleases, *args: str) -> Any:
    monkeypatch.setattr(shared, "releases", lambda *_: fake)
    return CliRunner().invoke(main.app, list(args))


def test_status_shows_each_hostile_field_on_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke(monkeypatch, HostileReleases(), "status", "web")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "v9 is Ready" in out  # shown, inside the one Events row (asserted below: no line of its own)
    assert "done\\n  12m" in out and "\\u202e" in out and "\u202e" not in out
    assert "rolled back\\nReady True  fine" in out and "Failed\\u200b" in out
    assert not any(line.lstrip().startswith(("12m", "Ready True")) for line in out.splitlines())


def test_history_shows_a_failure_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke(monkeypatch, HostileReleases(), "history", "web")
    assert result.exit_code == 0, result.output
    assert "CrashLoop\\n*9  v9  Succeeded" in result.stdout
    assert not any(line.startswith("*9") for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "problem",
    [
        "forbidden [/] by RBAC",  # used to raise MarkupError: status crashed
        "see [link=https://evil.example/login]the docs[/link]",  # used to print a forged hyperlink
        "denied :warning: [bold red]ALERT[/]\nsecond line",
    ],
)
def test_a_kube_error_is_printed_as_text(monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    result = _invoke(monkeypatch, HostileReleases(fail_with=problem), "status", "web")
    assert result.exit_code == 0, result.output
    assert safe_shown(problem) in " ".join(result.stderr.split("\n"))


def safe_shown(problem: str) -> str:
    return problem.replace("\n", "\\n")
