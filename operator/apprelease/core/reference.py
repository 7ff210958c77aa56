"""Container image references, normalised the way Docker normalises them.

The grammar itself lives in ``docker_image.reference`` (a port of
github.com/distribution/reference); this module only turns its loosely typed
results and assorted exception types into a frozen dataclass and ``ValueError``
messages a user can act on.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from docker_image import digest as _digest
from docker_image import reference as _reference

__all__ = [
    "TAG_PATTERN",
    "Reference",
    "is_valid_digest",
    "is_valid_tag",
    "parse",
    "parse_repository",
    "registry_api_host",
    "same_repository",
]

TAG_PATTERN: str = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
_TAG_RE = re.compile(TAG_PATTERN)

# Hex lengths of the algorithms the OCI image spec registers (and the library accepts).
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[0-9a-f]+")

_DOCKER_HUB = "docker.io"
# Docker Hub's canonical name is not where its registry API is served.
_DOCKER_HUB_API = "registry-1.docker.io"


def is_valid_tag(tag: str) -> bool:
    """True when ``tag`` is a syntactically valid image tag (at most 128 characters)."""
    return isinstance(tag, str) and _TAG_RE.fullmatch(tag) is not None


def _digest_problem(digest: str) -> str | None:
    """Why ``digest`` is not a usable content digest, or None when it is."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not algorithm or not encoded:
        return "digest must look like 'sha256:<64 hex characters>'"
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        return f"unsupported digest algorithm {algorithm!r} (use one of {', '.join(_DIGEST_HEX_LENGTHS)})"
    if len(encoded) != expected or _LOWER_HEX_RE.fullmatch(encoded) is None:
        return f"{algorithm} digest must be {expected} lowercase hexadecimal characters"
    return None


def is_valid_digest(digest: str) -> bool:
    """True when ``digest`` is ``<algorithm>:<hex>`` for a supported algorithm."""
    return isinstance(digest, str) and _digest_problem(digest) is None


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to ``digest``; the tag is dropped because a
        digest alone is what a pinned reference should mean."""
        problem = _digest_problem(digest)
        if problem is not None:
            raise ValueError(f"invalid digest {digest!r}: {problem}")
        return replace(self, tag=None, digest=digest)

    def with_tag(self, tag: str) -> Reference:
        if not is_valid_tag(tag):
            raise ValueError(f"invalid tag {tag!r}: must match {TAG_PATTERN}")
        return replace(self, tag=tag)

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _explain(text: str, library_message: str) -> str:
    """Best human explanation of why ``text`` failed to parse.

    The library reports most failures as a bare "invalid reference format", so
    the obvious culprits (tag, digest, case) are checked here to say which part
    is wrong.
    """
    name, problem = _explain_suffixes(text)
    if problem is not None:
        return problem
    if "must be lowercase" in library_message:
        return "repository name must be lowercase"
    if "64-byte hexadecimal" in library_message:
        return "repository name cannot be a 64-character hexadecimal string"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "repository name has an empty path component"
    if library_message in ("", "invalid reference format", "invalid reference"):
        return (
            "not a valid image reference; expected [registry/]repository[:tag][@digest] "
            "with a lowercase repository name"
        )
    return library_message


def _explain_suffixes(text: str) -> tuple[str, str | None]:
    """The name without its tag and digest, and what is wrong with those (None when nothing is)."""
    name, at, digest = text.partition("@")
    if at:
        if not digest:
            return name, "digest is empty after '@'"
        problem = _digest_problem(digest)
        if problem is not None:
            return name, f"invalid digest {digest!r}: {problem}"
    last_component_start = name.rfind("/") + 1
    colon = name.find(":", last_component_start)
    if colon >= 0:
        tag = name[colon + 1 :]
        if not tag:
            return name, "tag is empty after ':'"
        if not is_valid_tag(tag):
            return name, f"invalid tag {tag!r}: must match {TAG_PATTERN}"
        name = name[:colon]
    return name, None


# Parsed references by their text. A pass parses spec.image and every container image of its workloads, and
# docker_image's regular expressions were a tenth of a pass's CPU with 1,000 AppReleases (issue 19); the same
# few texts come back on every pass. References are immutable, so sharing one is safe. Bounded: at most
# PARSED_CACHE entries (a reference is a few hundred bytes; the CRD caps image texts), least recently used out.
PARSED_CACHE = 4096


def parse(text: str) -> Reference:
    """Parse and normalise an image reference (``nginx`` -> ``docker.io/library/nginx``).

    Raises ValueError (and nothing else) naming the problem and the input.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid image reference {text!r}: must be a string")
    return _parse(text)


@functools.lru_cache(maxsize=PARSED_CACHE)
def _parse(text: str) -> Reference:
    """`parse` of a str; raises ValueError, which lru_cache does not keep (an invalid text is parsed again)."""
    if not text:
        raise ValueError("invalid image reference '': must not be empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"invalid image reference {text!r}: must not contain whitespace")
    try:
        parsed = _reference.Reference.parse_normalized_named(text)
    except (_reference.InvalidReference, _digest.InvalidDigest) as exc:
        message = str(exc.args[0]) if exc.args else ""
        raise ValueError(f"invalid image reference {text!r}: {_explain(text, message)}") from None
    except Exception as exc:  # the library is untyped; callers were promised ValueError only
        raise ValueError(f"invalid image reference {text!r}: {exc}") from None

    name = str(parsed["name"])
    # A normalised name always starts with its domain (the library prepends it), so
    # splitting at the first slash is exact and avoids re-running the regex.
    domain, _, path = name.partition("/")
    tag = parsed["tag"] or None
    digest = parsed["digest"] or None
    if digest is not None:
        # The library lets through algorithms whose hex it cannot check; be strict here
        # because the digest ends up in pod specs and registry URLs.
        problem = _digest_problem(digest)
        if problem is not None:
            raise ValueError(f"invalid image reference {text!r}: invalid digest {digest!r}: {problem}")
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def parse_repository(text: str) -> Reference:
    """Parse a bare repository (no tag, no digest), e.g. for ``spec.image``."""
    ref = parse(text)
    if ref.tag is not None:
        raise ValueError(
            f"invalid image repository {text!r}: must be a repository without a tag; put the version in spec.version"
        )
    if ref.digest is not None:
        raise ValueError(
            f"invalid image repository {text!r}: must be a repository without a digest; put it in spec.digest"
        )
    return ref


def same_repository(a: str, b: str) -> bool:
    """True when both parse and name the same normalised repository (tag/digest ignored)."""
    try:
        return parse(a).repository == parse(b).repository
    except ValueError:
        return False


def registry_api_host(domain: str) -> str:
    """Host serving the registry API for ``domain`` (Docker Hub is the only special case)."""
    return _DOCKER_HUB_API if domain == _DOCKER_HUB else domain
