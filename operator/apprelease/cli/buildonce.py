"""Build once: a version tag that already holds an image is never pushed again with other content.

`apprelease build --push` asks the registry first (with the operator's registry client): a free tag is pushed;
a tag holding an image whose ``org.opencontainers.image.revision`` label is this commit is left as it is (the
build is idempotent: its digest is printed, nothing is pushed); anything else is refused, naming the digest and
the commit that hold the tag. There is no ``--force``: a release is a new version. (A push racing another
between the check and the push is not prevented: registries offer no conditional tag write.)
"""

from __future__ import annotations

from apprelease.core.api import LABEL_REVISION
from apprelease.core.limits import git_commit, quoted
from apprelease.reference import Reference
from apprelease.registry import Credential, RegistryClient, TagNotFound

__all__ = ["VersionTaken", "existing_release"]


class VersionTaken(RuntimeError):
    """The version tag holds other content; the message names its digest and commit."""


def existing_release(
    registry: RegistryClient, repository: Reference, version: str, commit: str, credential: Credential | None
) -> str | None:
    """None when ``repository:version`` does not exist; its digest when it holds an image built from
    ``commit``; VersionTaken otherwise. RegistryError when the registry cannot say."""
    try:
        resolved = registry.resolve(
            Reference(domain=repository.domain, path=repository.path, tag=version), credential, use_cache=False
        )
    except TagNotFound:
        return None
    pinned = Reference(domain=repository.domain, path=repository.path, digest=resolved.digest)
    labels = registry.labels(pinned, credential)
    label = labels.get(LABEL_REVISION)
    existing = git_commit(label)
    if existing is not None and existing == commit.lower():
        return resolved.digest
    built_from = f"commit {existing}" if existing else f"no known commit ({LABEL_REVISION} {quoted(label or '')})"
    raise VersionTaken(
        f"{repository.repository}:{version} already holds {resolved.digest}, built from {built_from}; "
        f"a version is built once: tag a new version for commit {commit[:12]}"
    )
