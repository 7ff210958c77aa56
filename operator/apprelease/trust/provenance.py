"""What an SLSA provenance predicate says about the source: the git tag and the commit an image was built from.

Read from the fields the common builders write (SLSA v1 ``buildDefinition``; slsa.dev/spec/v1.0/provenance):
- ``resolvedDependencies[]``: the source checkout, ``{"uri": "git+<repo>@refs/tags/<tag>", "digest": {"gitCommit":
  "<sha>"}}`` (slsa-github-generator and GitHub's attest-build-provenance; ``sha1`` is accepted as the digest key
  too), the first ``git+`` entry being the source;
- ``externalParameters.workflow.ref`` (GitHub's workflow build type) or ``externalParameters.source.ref``
  (``apprelease build --sign``) as ``refs/tags/<tag>``, when the dependency's URI names no tag;
- SLSA v0.2: ``invocation.configSource`` with the same ``uri``/``digest`` shape.
``apprelease build --sign`` writes the v1 shape (see :func:`build_predicate`). Values are validated: a commit
must be 7-64 hex characters, a tag a valid OCI tag, or they are not taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.limits import git_commit

__all__ = ["BUILD_TYPE", "Source", "build_predicate", "read_source"]

BUILD_TYPE = "https://apprelease.dev/build/v1"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_TAG_REF = "refs/tags/"
_MAX_DEPENDENCIES = 256


@dataclass(frozen=True)
class Source:
    """The source a provenance predicate names; None where it says nothing (valid) about it."""

    repository: str | None
    tag: str | None
    commit: str | None


def _tag_of(ref: object) -> str | None:
    if not isinstance(ref, str) or not ref.startswith(_TAG_REF):
        return None
    tag = ref[len(_TAG_REF) :]
    return tag if _TAG.match(tag) else None


def _commit_of(digest: object) -> str | None:
    if not isinstance(digest, dict):
        return None
    for key in ("gitCommit", "sha1", "sha256"):
        value = digest.get(key)
        if isinstance(value, str) and (commit := git_commit(value)) is not None:
            return commit
    return None


def _split_git_uri(uri: str) -> tuple[str, str | None]:
    """``git+https://host/repo@refs/tags/v1`` -> (``https://host/repo``, ``v1``)."""
    body = uri[len("git+") :]
    repository, _, ref = body.rpartition("@") if "@refs/" in body else (body, "", "")
    return repository, _tag_of(ref)


def _dependency(entries: object) -> tuple[str | None, str | None, str | None]:
    if not isinstance(entries, list):
        return None, None, None
    for entry in entries[:_MAX_DEPENDENCIES]:
        if isinstance(entry, dict) and isinstance(uri := entry.get("uri"), str) and uri.startswith("git+"):
            repository, tag = _split_git_uri(uri)
            return repository, tag, _commit_of(entry.get("digest"))
    return None, None, None


def _get(document: object, *path: str) -> object:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def read_source(predicate_type: str, predicate: dict[str, object]) -> Source:
    """The source repository, tag and commit an SLSA provenance predicate (v1 or v0.2) names."""
    if predicate_type.endswith("/v0.2"):
        repository, tag, commit = _dependency([_get(predicate, "invocation", "configSource")])
        return Source(repository, tag, commit)
    definition = _get(predicate, "buildDefinition")
    repository, tag, commit = _dependency(_get(definition, "resolvedDependencies"))
    if tag is None:
        external = _get(definition, "externalParameters")
        tag = _tag_of(_get(external, "workflow", "ref")) or _tag_of(_get(external, "source", "ref"))
    return Source(repository, tag, commit)


def build_predicate(repository: str, tag: str, commit: str, builder: str) -> dict[str, object]:
    """The SLSA v1 provenance predicate ``apprelease build --sign`` attests (read back by :func:`read_source`)."""
    ref = f"{_TAG_REF}{tag}"
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"source": {"repository": repository, "ref": ref}},
            "internalParameters": {},
            "resolvedDependencies": [{"uri": f"git+{repository}@{ref}", "digest": {"gitCommit": commit}}],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {}},
    }
