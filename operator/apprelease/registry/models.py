"""The registry client's settings and results (what its callers hand in and get back)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from ..reference import Reference

__all__ = ["PlatformLabels", "RegistrySettings", "Resolved"]


class RegistrySettings(BaseModel):
    insecure_registries: list[str] = Field(default_factory=list)
    ca_bundle: str | None = None
    # The deadline of one registry request, auth round trips, redirects and retries included ...
    timeout_seconds: float = Field(default=10.0, gt=0)
    # ... and of a whole resolution: every request it makes (HEAD, GET, token, config, index children).
    resolution_timeout_seconds: float = Field(default=30.0, gt=0)
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_config_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # Manifests and configs fetched and parsed at once, by all workers together (slots.py; the operator's
    # APPRELEASE_REGISTRY_CONCURRENT_FETCHES sets it).
    max_concurrent_fetches: int = Field(default=4, ge=1)
    cache_ttl_seconds: float = Field(default=60.0, ge=0)
    max_retry_after_seconds: float = Field(default=30.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    # What the facts kept by digest may cost in memory, in bytes (see oci.ManifestFacts.size).
    digest_cache_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    # Private, shared, ULA and NAT64 networks (CIDR) that token realms and redirects may lead to.
    allowed_private_networks: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    reference: Reference
    digest: str
    media_type: str

    @property
    def pinned(self) -> str:
        return f"{self.reference.repository}@{self.digest}"


@dataclass(frozen=True)
class PlatformLabels:
    """The config labels of one image: ``platform`` is ``os/architecture[/variant]`` for a child of an index
    ('' for a plain image manifest, or a child that names none); ``digest`` is that image manifest's."""

    platform: str
    digest: str
    labels: dict[str, str]
