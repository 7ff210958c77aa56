"""The registry client's errors. Every failure the client reports is one of these; messages are safe to show."""

from __future__ import annotations

__all__ = [
    "RegistryBusy",
    "RegistryError",
    "RegistryUnavailable",
    "TagNotFound",
    "Unauthorized",
    "UnsupportedManifest",
    "unreachable",
]


class RegistryError(Exception):
    """Base class; the message is safe to show to users."""


class RegistryUnavailable(RegistryError):
    """The registry could not be used right now (network, TLS, 5xx, 429) or sent untrustworthy data."""


class RegistryBusy(RegistryUnavailable):
    """Not the registry's answer but the operator's own wait: no fetch slot came free (slots.py), or the same
    content fetched for another caller did not arrive, before the deadline. Retried; never taken for an
    unreadable image (a pass that tolerates one must not record a revision without its labels for this)."""


class Unauthorized(RegistryError):
    """The registry refused access (401/403) after any available credentials were tried."""


class TagNotFound(RegistryError):
    """The tag (or manifest) does not exist in the repository."""


class UnsupportedManifest(RegistryError):
    """The registry serves a document of a media type the operator did not ask for (Docker schema 1 included).

    Not retried: the content behind a tag or digest does not turn into a pullable image by waiting
    (current containerd refuses schema 1 since 2.0). The message names the media type.
    """


def unreachable(domain: str) -> RegistryUnavailable:
    """One message for every transport-level failure (refused, timed out, TLS, garbage, too large, too slow).

    Tenants choose the host an AppRelease names; distinct messages would tell a closed port from an open
    one and make the operator a port scanner. The details go to the debug log only.
    """
    return RegistryUnavailable(f"registry {domain} unreachable or not a registry")
