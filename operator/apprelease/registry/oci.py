"""OCI image-spec and Docker v2 media types, and the manifest/config documents, validated at the edge.

Everything here is pure: bytes in, models or errors out. Documents are parsed with JSON bounds first
(``jsonbounds``) and validated leniently (unknown fields ignored), since registries add their own.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    "Descriptor",
    "ImageConfig",
    "Manifest",
    "content_digest",
    "error_codes",
    "parse_config",
    "parse_manifest",
    "pick_child",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

# Index types come first so that a multi-arch tag resolves to its index digest,
# which is what lets every node pull its own architecture from one pinned reference.
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_LENIENT = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Platform(BaseModel):
    model_config = _LENIENT
    os: str | None = None
    architecture: str | None = None


class Descriptor(BaseModel):
    model_config = _LENIENT
    media_type: str | None = Field(default=None, alias="mediaType")
    digest: str
    platform: Platform | None = None

    @field_validator("digest")
    @classmethod
    def _valid_digest(cls, value: str) -> str:
        if not is_valid_digest(value):
            raise ValueError("not a valid digest")
        return value

    def os_arch(self) -> tuple[str | None, str | None]:
        return (self.platform.os, self.platform.architecture) if self.platform else (None, None)


class Manifest(BaseModel):
    """An image manifest or an image index (manifest list); which one is decided by ``is_index``."""

    model_config = _LENIENT
    media_type: str | None = Field(default=None, alias="mediaType")
    config: Descriptor | None = None
    # Index entries are validated one by one (see pick_child): one odd child must not hide the others.
    manifests: list[dict[str, Any]] | None = None

    def is_index(self, content_type: str) -> bool:
        declared = self.media_type or content_type
        if declared in INDEX_MEDIA_TYPES:
            return True
        return self.manifests is not None and self.config is None


class _ContainerConfig(BaseModel):
    model_config = _LENIENT
    labels: dict[str, Any] | None = Field(default=None, alias="Labels")


class ImageConfig(BaseModel):
    model_config = _LENIENT
    config: _ContainerConfig | None = None

    def labels(self) -> dict[str, str]:
        raw = self.config.labels if self.config is not None else None
        return {k: v for k, v in (raw or {}).items() if isinstance(v, str)}


def content_digest(algorithm: str, content: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


def _document(content: bytes, max_bytes: int, what: str) -> dict[str, Any]:
    try:
        document = jsonbounds.load(content, max_bytes=max_bytes)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{what}: not a JSON object")
    return document


def parse_manifest(content: bytes, max_bytes: int) -> Manifest:
    """A manifest or index; ValueError (with a message naming no content) when it is not one."""
    try:
        return Manifest.model_validate(_document(content, max_bytes, "manifest"))
    except ValidationError:
        raise ValueError("manifest: unexpected structure") from None


def parse_config(content: bytes, max_bytes: int) -> ImageConfig:
    try:
        return ImageConfig.model_validate(_document(content, max_bytes, "image config"))
    except ValidationError:
        raise ValueError("image config: unexpected structure") from None


def pick_child(index: Manifest) -> str | None:
    """The child manifest whose config holds the labels: linux/amd64, else the first real image."""
    usable: list[Descriptor] = []
    for raw in index.manifests or []:
        try:
            usable.append(Descriptor.model_validate(raw))
        except ValidationError:
            continue
    for child in usable:
        if child.os_arch() == ("linux", "amd64"):
            return child.digest
    # Attestation manifests (buildx provenance/SBOM) are marked unknown/unknown; they
    # carry no image config worth reading.
    for child in usable:
        if child.os_arch() != ("unknown", "unknown"):
            return child.digest
    return usable[0].digest if usable else None


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
