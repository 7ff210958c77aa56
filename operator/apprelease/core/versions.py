"""Which version a commit's tags name, and whether a version can be an image tag: pure rules for `apprelease
build` (semantic versioning 2.0.0, https://semver.org; the OCI distribution spec's tag grammar)."""

from __future__ import annotations

from collections.abc import Sequence

import semver

from apprelease.core import reference

__all__ = ["choose_tag", "image_tag_problem"]


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
    ValueError (one line) listing the tags and pointing to ``--version``.
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
    raise ValueError(
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
