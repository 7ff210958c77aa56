"""OCI image-spec and Docker v2 media types, and the few facts the operator reads from manifests and configs.

Everything here is pure: bytes in, facts or errors out. Documents are decoded by msgspec into structs that
name only the members read; every other member is skipped without becoming an object (so a 4 MB manifest
of small layer objects costs kilobytes while read, and its depth and item count cost nothing).
What is kept (``ManifestFacts``, ``ConfigFacts``) is only what later steps read: digests, the media type,
the platform children of an index, the string labels of a config; ``size()`` is what it costs in memory.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from ..reference import is_valid_digest
from . import jsonbounds

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SCHEMA1_MEDIA_TYPES",
    "Child",
    "ConfigFacts",
    "ManifestFacts",
    "Unsupported",
    "content_digest",
    "error_codes",
    "parse_config",
    "parse_manifest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    }
)

# Index types come first so that a multi-arch tag resolves to its index digest,
# which is what lets every node pull its own architecture from one pinned reference.
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
# Content types that say nothing: an OCI document without its optional mediaType field, served as JSON.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})
# Buildx marks attestation manifests (provenance, SBOM) in an index this way; they are not platforms.
_REFERENCE_TYPE = "vnd.docker.reference.type"
_ATTESTATION = "attestation-manifest"
_MAX_PLATFORM_PART = 64

_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


class Unsupported(ValueError):
    """A well-formed document of a kind the operator did not ask for; ``media_type`` names it."""

    def __init__(self, media_type: str, what: str) -> None:
        super().__init__(what)
        self.media_type = media_type
        self.what = what


# -- what is kept -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Child:
    """One platform child of an index: its digest and ``os/architecture[/variant]`` ('' when not given)."""

    digest: str
    platform: str


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    """An image manifest (``config`` set) or an index (``children``: platform children, attestations
    skipped, at most the limit asked for; ``platforms``: how many the index lists in all)."""

    media_type: str
    config: str | None = None
    children: tuple[Child, ...] = ()
    platforms: int = 0

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    def size(self) -> int:
        """Bytes this costs in memory (CPython object sizes; strings are ASCII here)."""
        strings = [self.media_type, self.config or ""] + [s for c in self.children for s in (c.digest, c.platform)]
        return 56 + 8 * len(self.children) + 56 * len(self.children) + sum(49 + len(s) for s in strings)

    def preferred(self) -> Child | None:
        """The child whose labels stand for the image: linux/amd64, else the first platform."""
        first = self.children[0] if self.children else None
        return next((c for c in self.children if c.platform == "linux/amd64"), first)


@dataclass(frozen=True, slots=True)
class ConfigFacts:
    """The string labels of an image config (``config.Labels``); nothing else of it is kept."""

    labels: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def size(self) -> int:
        return 56 + 64 * len(self.labels) + sum(98 + len(k) + len(v) for k, v in self.labels)


# -- what is read (and then dropped) ----------------------------------------------------------------------
# msgspec decodes straight from the bytes into these structs and skips every member they do not name (a
# manifest's layers, a config's history) without creating an object for it, in C: a 4 MB manifest of small
# objects costs kilobytes and milliseconds, not the hundreds of MB that json.loads builds. Nesting too deep
# for the decoder is a RecursionError, which callers see as ValueError.
# Scalar members are `object` (any JSON value): one of another type must not fail the whole document, so
# readers narrow them with isinstance.


class _Descriptor(msgspec.Struct):
    digest: object = None


class _Platform(msgspec.Struct):
    os: object = None
    architecture: object = None
    variant: object = None


class _Annotations(msgspec.Struct, rename={"reference_type": _REFERENCE_TYPE}):
    reference_type: object = None


class _Child(msgspec.Struct):
    digest: object = None
    platform: _Platform | None = None
    annotations: _Annotations | None = None


class _Manifest(msgspec.Struct, rename={"schema_version": "schemaVersion", "media_type": "mediaType"}):
    schema_version: object = None
    media_type: object = None
    config: _Descriptor | None = None
    # Each entry decoded on its own (``_child``): one odd entry must not hide the others.
    manifests: list[msgspec.Raw] | None = None


class _Container(msgspec.Struct, rename={"labels": "Labels"}):
    labels: dict[str, msgspec.Raw] | None = None


class _Config(msgspec.Struct):
    config: _Container | None = None


def content_digest(algorithm: str, content: bytes | bytearray) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


_T = TypeVar("_T")


def _decode(content: bytes | bytearray | msgspec.Raw, model: type[_T], what: str) -> _T:
    try:
        return msgspec.json.decode(content, type=model)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        # Their messages may quote the input: never chain them.
        raise ValueError(f"{what}: not JSON of the expected structure") from None


def _media_type(document: _Manifest, content_type: str) -> str:
    """The document's media type, or ``Unsupported`` naming what it is instead."""
    declared = document.media_type if isinstance(document.media_type, str) and document.media_type else content_type
    if document.schema_version == 1 or declared in SCHEMA1_MEDIA_TYPES:
        shown = declared if declared in SCHEMA1_MEDIA_TYPES else f"{declared or 'no media type'}, schemaVersion 1"
        raise Unsupported(shown, "a Docker schema 1 manifest, which current container runtimes cannot pull")
    if declared in MANIFEST_MEDIA_TYPES:
        return declared
    if declared in _GENERIC_TYPES:
        # OCI made mediaType optional before image-spec 1.1: the structure tells an index from a manifest.
        if document.manifests is not None and document.config is None:
            return OCI_INDEX
        if document.config is not None and document.manifests is None:
            return OCI_MANIFEST
    raise Unsupported(declared or "no media type", "not a media type the operator asked for")


def _platform(platform: _Platform | None) -> str:
    if platform is None:
        return ""
    parts = (platform.os, platform.architecture, platform.variant)
    return "/".join(p[:_MAX_PLATFORM_PART] for p in parts if isinstance(p, str) and p)


def _child(raw: msgspec.Raw) -> Child | None:
    """An index entry's facts; None for an attestation manifest or an entry that is not a descriptor."""
    try:
        entry = _decode(raw, _Child, "index entry")
    except ValueError:
        return None
    if not isinstance(entry.digest, str) or not is_valid_digest(entry.digest):
        return None
    platform = _platform(entry.platform)
    attestation = entry.annotations is not None and entry.annotations.reference_type == _ATTESTATION
    if platform == "unknown/unknown" or attestation:
        return None
    return Child(entry.digest, sys.intern(platform))


def parse_manifest(content: bytes | bytearray, content_type: str, max_bytes: int, max_children: int) -> ManifestFacts:
    """The facts of a manifest or index. ``Unsupported`` for a media type not asked for, ValueError (naming
    no content) for anything that is not a manifest. At most ``max_children`` children are kept."""
    if len(content) > max_bytes:
        raise ValueError(f"manifest: larger than {max_bytes} bytes")
    document = _decode(content, _Manifest, "manifest")
    media_type = sys.intern(_media_type(document, content_type))
    if media_type not in INDEX_MEDIA_TYPES:
        if document.config is None:
            return ManifestFacts(media_type=media_type)
        digest = document.config.digest
        if not isinstance(digest, str) or not is_valid_digest(digest):
            raise ValueError("manifest: invalid config descriptor")
        return ManifestFacts(media_type=media_type, config=digest)
    if document.manifests is None:
        raise ValueError("image index: no manifests list")
    children: list[Child] = []
    platforms = 0
    for raw in document.manifests:
        found = _child(raw)
        if found is None:
            continue
        platforms += 1
        if len(children) < max_children:
            children.append(found)
    return ManifestFacts(media_type=media_type, children=tuple(children), platforms=platforms)


def parse_config(content: bytes | bytearray, max_bytes: int) -> ConfigFacts:
    """The string labels of an image config (``config.Labels``); ValueError when it is not one."""
    if len(content) > max_bytes:
        raise ValueError(f"image config: larger than {max_bytes} bytes")
    document = _decode(content, _Config, "image config")
    raw = document.config.labels if document.config is not None else None
    labels: list[tuple[str, str]] = []
    for key, value in (raw or {}).items():
        if bytes(value).lstrip()[:1] == b'"':  # only string labels; others are never decoded
            labels.append((key, _decode(value, str, "label")))
    return ConfigFacts(tuple(labels))


def error_codes(content: bytes | bytearray) -> list[str]:
    """Registry error codes (e.g. MANIFEST_UNKNOWN) from an error body; only codes, since
    free-text messages are echoed to users and are not under our control."""
    try:
        document = jsonbounds.load(content, max_bytes=len(content) or 1)
    except ValueError:
        return []
    if not isinstance(document, dict) or not isinstance(document.get("errors"), list):
        return []
    codes: list[str] = []
    for error in document["errors"]:
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
            codes.append(code)
    return codes[:8]
