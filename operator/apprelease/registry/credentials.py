"""Registry credentials read from Docker config JSON (``.dockerconfigjson`` / ``~/.docker/config.json``).

Secret values are held in ``SecretStr`` so that reprs, logs and validation
errors show ``**********`` instead of the secret, and no error raised here
quotes the document it was given.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from . import jsonbounds

__all__ = ["Credential", "lookup", "normalize_registry_host", "parse_docker_config"]

# Every spelling Docker tooling has used as the config key for Docker Hub.
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DOCKER_HUB = "docker.io"
# A Secret holds at most 1 MiB; the bound also keeps hostile JSON (deep, or millions of items) cheap.
_MAX_CONFIG_BYTES = 1024 * 1024


class Credential(BaseModel):
    """Credentials for one registry. ``repr``/``str`` mask the secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str | None = None
    password: SecretStr | None = None
    identity_token: SecretStr | None = None


def normalize_registry_host(key: str) -> str:
    """Reduce a config key or image domain to a bare, lower-case ``host[:port]``.

    Config files use URLs (``https://index.docker.io/v1/``) as keys while image
    references use bare domains, so both sides go through this before comparing.
    """
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return _DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def _load(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    try:
        loaded = jsonbounds.load(data, max_bytes=_MAX_CONFIG_BYTES)
    except (ValueError, TypeError) as exc:
        # The messages name limits, never content: a pull Secret holds passwords.
        raise ValueError(f"invalid docker config: {exc}") from None
    if not isinstance(loaded, Mapping):
        raise ValueError("invalid docker config: top level must be a JSON object")
    return loaded


def _optional_str(entry: Mapping[str, Any], field: str, host: str) -> str | None:
    value = entry.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"invalid docker config: field {field!r} for registry {host!r} must be a string")
    return value


def _decode_auth(encoded: str, host: str) -> tuple[str, str]:
    compact = "".join(encoded.split())
    # Some tools drop the base64 padding; Docker itself always writes it.
    compact += "=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ValueError(
            f"invalid docker config: field 'auth' for registry {host!r} is not valid base64 of UTF-8 text"
        ) from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError(f"invalid docker config: field 'auth' for registry {host!r} must encode 'username:password'")
    return username, password


def _credential(entry: Mapping[str, Any], host: str) -> Credential | None:
    username = _optional_str(entry, "username", host)
    password = _optional_str(entry, "password", host)
    auth = _optional_str(entry, "auth", host)
    identity_token = _optional_str(entry, "identitytoken", host)
    if auth is not None:
        # Docker lets "auth" override explicit username/password when both are present.
        username, password = _decode_auth(auth, host)
    if username is None and password is None and identity_token is None:
        # Entries managed by a credential helper are empty here; nothing to use.
        return None
    return Credential(
        username=username or None,
        password=SecretStr(password) if password is not None else None,
        identity_token=SecretStr(identity_token) if identity_token is not None else None,
    )


def parse_docker_config(data: bytes | str | Mapping[str, Any]) -> dict[str, Credential]:
    """Credentials per bare registry host from Docker config JSON.

    Raises ValueError for malformed input; messages name the registry and field
    but never the secret material.
    """
    config = _load(data)
    auths = config.get("auths")
    if auths is None:
        return {}
    if not isinstance(auths, Mapping):
        raise ValueError("invalid docker config: 'auths' must be a JSON object")

    result: dict[str, Credential] = {}
    exact: set[str] = set()
    for raw_key, entry in auths.items():
        if not isinstance(raw_key, str):
            raise ValueError("invalid docker config: registry keys in 'auths' must be strings")
        host = normalize_registry_host(raw_key)
        if not host:
            raise ValueError(f"invalid docker config: registry key {raw_key!r} names no host")
        if not isinstance(entry, Mapping):
            raise ValueError(f"invalid docker config: entry for registry {raw_key!r} must be a JSON object")
        credential = _credential(entry, raw_key)
        if credential is None:
            continue
        # Several keys can collapse onto one host (e.g. "https://index.docker.io/v1/" and
        # "docker.io"); a key already written as the bare host is the most deliberate choice,
        # otherwise the first one wins.
        is_exact = raw_key.strip().lower() == host
        if host in result and (host in exact or not is_exact):
            continue
        result[host] = credential
        if is_exact:
            exact.add(host)
    return result


def lookup(credentials: Mapping[str, Credential], domain: str) -> Credential | None:
    """The credential for an image ``domain`` (as in ``Reference.domain``), if any."""
    host = normalize_registry_host(domain)
    found = credentials.get(host)
    if found is not None:
        return found
    # Tolerate mappings that were not produced by parse_docker_config (un-normalised keys).
    for key, credential in credentials.items():
        if normalize_registry_host(key) == host:
            return credential
    return None
