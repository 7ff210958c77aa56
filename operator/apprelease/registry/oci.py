"""OCI image-spec and Docker v2 media types, and the few facts the operator reads from manifests and configs.

Everything here is pure: bytes in, facts or errors out. Documents are checked with JSON bounds first
(``jsonbounds``) and then validated by pydantic straight from the JSON text, leniently (unknown fields are
skipped without ever becoming Python objects, so a 4 MB manifest of small layer objects costs little).
What is kept (``ManifestFacts``, ``ConfigFacts``) is only what later steps read: digests, the media type,
the platform children of an index, the string labels of a config; ``size()`` is what it costs in memory.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
_LENIENT = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


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


class _WireDescriptor(BaseModel):
    model_config = _LENIENT
    digest: Any = None


class _WireChild(BaseModel):
    """An index entry, typed loosely: one odd child must not hide the others."""

    model_config = _LENIENT
    digest: Any = None
    platform: Any = None
    annotations: Any = None


class _WireManifest(BaseModel):
    model_config = _LENIENT
    schema_version: Any = Field(default=None, alias="schemaVersion")
    media_type: Any = Field(default=None, alias="mediaType")
    config: _WireDescriptor | None = None
    manifests: list[_WireChild] | None = None


class _WireContainer(BaseModel):
    model_config = _LENIENT
    labels: dict[str, Any] | None = Field(default=None, alias="Labels")


class _WireConfig(BaseModel):
    model_config = _LENIENT
    config: _WireContainer | None = None


def content_digest(algorithm: str, content: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


_Model = TypeVar("_Model", bound=BaseModel)


def _validated(model: type[_Model], content: bytes, max_bytes: int, what: str) -> _Model:
    try:
        jsonbounds.check(content, max_bytes=max_bytes)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    try:
        return model.model_validate_json(content)
    except ValidationError:
        # Its errors quote the input: never chain them.
        raise ValueError(f"{what}: not a JSON object of the expected structure") from None
    except RecursionError:  # pragma: no cover - jsonbounds bounds the depth first
        raise ValueError(f"{what}: nested too deep") from None


def _media_type(wire: _WireManifest, content_type: str) -> str:
    """The document's media type, or ``Unsupported`` naming what it is instead."""
    declared = wire.media_type if isinstance(wire.media_type, str) and wire.media_type else content_type
    if wire.schema_version == 1 or declared in SCHEMA1_MEDIA_TYPES:
        shown = declared if declared in SCHEMA1_MEDIA_TYPES else f"{declared or 'no media type'}, schemaVersion 1"
        raise Unsupported(shown, "a Docker schema 1 manifest, which current container runtimes cannot pull")
    if declared in MANIFEST_MEDIA_TYPES:
        return declared
    if declared in _GENERIC_TYPES:
        # OCI made mediaType optional before image-spec 1.1: the structure tells an index from a manifest.
        if wire.manifests is not None and wire.config is None:
            return OCI_INDEX
        if wire.config is not None and wire.manifests is None:
            return OCI_MANIFEST
    raise Unsupported(declared or "no media type", "not a media type the operator asked for")


def _platform(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    parts = [raw.get(k) for k in ("os", "architecture", "variant")]
    text = [p[:_MAX_PLATFORM_PART] for p in parts if isinstance(p, str) and p]
    return "/".join(text)


def _is_attestation(child: _WireChild, platform: str) -> bool:
    annotations = child.annotations if isinstance(child.annotations, dict) else {}
    return platform == "unknown/unknown" or annotations.get(_REFERENCE_TYPE) == _ATTESTATION


def parse_manifest(content: bytes, content_type: str, max_bytes: int, max_children: int) -> ManifestFacts:
    """The facts of a manifest or index. ``Unsupported`` for a media type not asked for, ValueError (naming
    no content) for anything that is not a manifest. At most ``max_children`` children are kept."""
    wire = _validated(_WireManifest, content, max_bytes, "manifest")
    media_type = _media_type(wire, content_type)
    if media_type not in INDEX_MEDIA_TYPES:
        digest = wire.config.digest if wire.config is not None else None
        if wire.config is not None and (not isinstance(digest, str) or not is_valid_digest(digest)):
            raise ValueError("manifest: invalid config descriptor")
        return ManifestFacts(media_type=sys.intern(media_type), config=digest)
    if wire.manifests is None:
        raise ValueError("image index: no manifests list")
    children: list[Child] = []
    platforms = 0
    for raw in wire.manifests:
        if not isinstance(raw.digest, str) or not is_valid_digest(raw.digest):
            continue
        platform = _platform(raw.platform)
        if _is_attestation(raw, platform):
            continue
        platforms += 1
        if len(children) < max_children:
            children.append(Child(raw.digest, sys.intern(platform)))
    return ManifestFacts(media_type=sys.intern(media_type), children=tuple(children), platforms=platforms)


def parse_config(content: bytes, max_bytes: int) -> ConfigFacts:
    """The string labels of an image config; ValueError when it is not one."""
    wire = _validated(_WireConfig, content, max_bytes, "image config")
    raw = wire.config.labels if wire.config is not None else None
    return ConfigFacts(tuple((k, v) for k, v in (raw or {}).items() if isinstance(v, str)))


def error_codes(content: bytes) -> list[str]:
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
