"""Container registry access: credentials from Docker config JSON and an OCI distribution API client."""

from .client import MANIFEST_MEDIA_TYPES, RegistryClient, RegistrySettings, Resolved
from .credentials import Credential, lookup, normalize_registry_host, parse_docker_config
from .errors import RegistryError, RegistryUnavailable, TagNotFound, Unauthorized

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "Credential",
    "RegistryClient",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnavailable",
    "Resolved",
    "TagNotFound",
    "Unauthorized",
    "lookup",
    "normalize_registry_host",
    "parse_docker_config",
]
