"""What a git checkout says about the release it holds: tag, commit, cleanliness, source URL."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from apprelease.core.versions import choose_tag


class GitError(RuntimeError):
    """The checkout cannot be baked as a release; the message says why and what to do."""


@dataclass(frozen=True)
class GitState:
    commit: str
    short_commit: str
    tags: tuple[str, ...]  # every tag HEAD is exactly at, sorted
    dirty: bool
    source: str | None  # remote URL without credentials


def _git(path: Path, *args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise GitError("git is not installed") from err
    if result.returncode != 0:
        raise GitError(result.stderr.strip() or f"git {' '.join(args)} failed")
    return result.stdout.strip()


def read_git_state(path: Path) -> GitState:
    try:
        _git(path, "rev-parse", "--is-inside-work-tree")
    except GitError as err:
        raise GitError(f"{path} is not a git checkout: an image is baked from a git tag") from err
    commit = _git(path, "rev-parse", "HEAD")
    short = _git(path, "rev-parse", "--short=12", "HEAD")
    dirty = bool(_git(path, "status", "--porcelain", "--untracked-files=normal"))
    try:
        tags = _git(path, "tag", "--points-at", "HEAD").splitlines()
    except GitError:
        tags = []
    try:
        remote = _git(path, "remote", "get-url", "origin")
    except GitError:
        remote = None
    return GitState(
        commit=commit, short_commit=short, tags=tuple(sorted(tags)), dirty=dirty, source=strip_credentials(remote)
    )


def strip_credentials(url: str | None) -> str | None:
    """https://user:token@host/repo -> https://host/repo: a label must never carry a secret.

    Schemes are case-insensitive (`HTTPS://` is as valid as `https://`), and the userinfo ends at the LAST
    `@` before the path: a password may itself contain `@`. scp-like remotes (git@host:repo) carry no secret.
    """
    if not url:
        return None
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1", url.strip())


def release_version(state: GitState, override: str | None) -> str:
    """The version to bake: the tag HEAD is at; --version only as a documented escape hatch."""
    if state.dirty:
        raise GitError("the working tree has uncommitted changes: commit or stash them, then tag the release")
    if override:
        return override
    if not state.tags:
        raise GitError(
            f"HEAD ({state.short_commit}) is not at a tag: tag the release (git tag v1.2.3) "
            "or pass --version (the image then does not match a tag)"
        )
    try:
        return choose_tag(state.tags, state.short_commit)
    except ValueError as err:
        raise GitError(str(err)) from None


def prepare_commit(path: Path) -> None:
    """Refuse before anything is written when `path` could not be committed on its own, cleanly."""
    folder = path.resolve().parent
    try:
        _git(folder, "rev-parse", "--is-inside-work-tree")
    except GitError as err:
        raise GitError(f"{path} is not in a git checkout: --commit needs one") from err
    try:
        _git(folder, "var", "GIT_COMMITTER_IDENT")
    except GitError as err:
        raise GitError(f"git cannot commit: {err}") from err
    if _git(folder, "status", "--porcelain", "--", path.name):
        raise GitError(
            f"{path} has uncommitted changes or is not tracked: commit it first, so that the rollback commit "
            "holds only the rollback"
        )


def commit_file(path: Path, message: str) -> str:
    """Commit only `path` (other staged changes stay staged); returns the new commit."""
    folder = path.resolve().parent
    _git(folder, "add", "--", path.name)
    _git(folder, "commit", "--quiet", "--message", message, "--", path.name)
    return _git(folder, "rev-parse", "HEAD")
