"""Hostile text from clusters, registries and git reaches the terminal inert."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from apprelease.cli import render
from apprelease.cli.gitinfo import strip_credentials
from apprelease.cli.text import plain, safe


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False, color_system=None), buffer


HOSTILE = "v1[/]\x1b]0;owned\x07\x1b[2J[link=https://evil.example]x[/link]\x9b31m"


def test_plain_makes_control_characters_visible() -> None:
    assert plain("a\x1b[2Jb\x07\x9bc") == "a\\x1b[2Jb\\x07\\x9bc"
    assert plain("tab\tand\nnewline") == "tab\tand\nnewline"
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
