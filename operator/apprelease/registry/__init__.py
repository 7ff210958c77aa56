"""Container registry access: credentials from Docker config JSON and an OCI distribution API client."""

from .client import MANIFEST_MEDIA_TYPES, PlatformLabels, RegistryClient, RegistrySettings, Resolved
from .credentials import Credential, lookup, normalize_registry_host, parse_docker_config
from .errors import RegistryBusy, RegistryError, RegistryUnavailable, TagNotFound, Unauthorized, UnsupportedManifest
from .network import Resolver

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "Credential",
    "PlatformLabels",
    "RegistryClient",
    "RegistryBusy",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnavailable",
    "Resolved",
    "Resolver",
    "TagNotFound",
    "Unauthorized",
    "UnsupportedManifest",
    "lookup",
    "normalize_registry_host",
    "parse_docker_config",
]
