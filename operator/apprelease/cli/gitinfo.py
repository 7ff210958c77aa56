"""What a git checkout says about the release it holds: tag, commit, cleanliness, source URL."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import semver

from apprelease.core import reference


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
    return choose_tag(state.tags, state.short_commit)


def _semver(tag: str) -> semver.Version | None:
    """A semantic version 2.0.0 (https://semver.org), with or without the customary ``v`` prefix."""
    try:
        return semver.Version.parse(tag[1:] if tag.startswith("v") else tag)
    except ValueError:
        return None


def choose_tag(tags: Sequence[str], commit: str = "HEAD") -> str:
    """The release a commit with these tags is: the one tag, or the final version among its own prereleases.

    A commit promoted from ``v1.2.3-rc.1`` to ``v1.2.3`` carries both; semver 2.0.0 gives the final version
    precedence over its prereleases, so ``v1.2.3`` is baked (and the rc tag is never moved to new content).
    Anything else (two versions such as v1.2.3 and v2.0.0, two spellings of one, two prereleases without
    their final, a tag that is no semantic version next to another) is a choice only the user can make:
    GitError listing the tags and pointing to ``--version``.
    """
    unique = sorted(set(tags))
    if len(unique) == 1:
        return unique[0]
    versions = {tag: _semver(tag) for tag in unique}
    parsed = [v for v in versions.values() if v is not None]
    finals = [tag for tag, v in versions.items() if v is not None and not v.prerelease]
    cores = {(v.major, v.minor, v.patch) for v in parsed}
    if len(parsed) == len(unique) and len(cores) == 1 and len(finals) == 1:
        return finals[0]
    raise GitError(
        f"{commit} carries several tags and no rule picks one: {', '.join(unique)} "
        "(only a final version wins over its own prereleases, as v1.2.3 over v1.2.3-rc.1); "
        "pass --version with the one to bake, or delete the tag that is wrong"
    )


def image_tag_problem(version: str) -> str | None:
    """Why a version cannot be the image tag of a release (an OCI tag, ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``,
    and never ``latest``), with what to do instead; None when it can."""
    if "+" in version:
        core = version.split("+", 1)[0]
        return (
            f"version {version!r} cannot be an image tag: '+' (semver build metadata) is not allowed in an OCI tag; "
            f"tag the release without it (git tag {core}) or pass --version {core} "
            f"(or --version {version.replace('+', '_')}, the form Helm uses for OCI tags)"
        )
    if version.lower() == "latest" or not reference.is_valid_tag(version):
        return f"version {version!r} cannot be an image tag for a release (never 'latest'; letters, digits, ._-)"
    return None


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
