"""What a registry's reply means: its bytes checked against the digests asked for and claimed, its status
turned into the client's errors (DESIGN: on GET always verify the digest)."""

from __future__ import annotations

from ..reference import is_valid_digest
from . import oci
from .auth import Target
from .errors import RegistryError, RegistryUnavailable, TagNotFound
from .transport import Reply

__all__ = ["raise_for_status", "verify"]


def verify(reply: Reply, expected: str | None, target: Target, subject: str) -> str:
    """Check the body against the digest we asked for and the one the registry claims;
    return the content's digest."""
    header = reply.headers.get("docker-content-digest")
    if header is not None and not is_valid_digest(header):
        raise RegistryUnavailable(
            f"registry {target.domain} sent an invalid Docker-Content-Digest for {subject} in {target.repository}"
        )
    for claimed, source in ((expected, "requested"), (header, "Docker-Content-Digest")):
        if claimed is None:
            continue
        actual = oci.content_digest(claimed.split(":", 1)[0], reply.content)
        if actual != claimed:
            raise RegistryUnavailable(
                f"digest verification failed for {subject} in {target.repository}: "
                f"{source} digest is {claimed} but the content hashes to {actual}"
            )
    return expected or header or oci.content_digest("sha256", reply.content)


def raise_for_status(reply: Reply, target: Target, subject: str) -> None:
    codes = oci.error_codes(reply.content)
    if reply.status == 404:
        hint = " (the repository does not exist)" if "NAME_UNKNOWN" in codes else ""
        raise TagNotFound(f"{subject} not found in {target.repository}{hint}")
    detail = f" ({', '.join(codes)})" if codes else ""
    raise RegistryError(
        f"registry {target.domain} rejected the request for {subject} in {target.repository}: "
        f"HTTP {reply.status}{detail}"
    )
