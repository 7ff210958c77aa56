"""Which registries the operator may reach for a tenant: decided before any network request.

Whoever may create an AppRelease must not borrow the operator's network position (a port scanner, a path to
internal hosts) nor run images from anywhere: the platform team lists the registries it trusts.
"""

from __future__ import annotations

from apprelease.core import reference
from apprelease.core.conditions import Problem, Reason
from apprelease.core.reference import Reference


def host_allowed(domain: str, patterns: list[str]) -> bool:
    """`domain` (host[:port], as in an image reference) matches one pattern; an empty list allows any.

    A pattern is `host`, `host:port` or `*.suffix` (any depth of subdomain of suffix, not suffix itself).
    Ports are part of the identity: `registry.example.com` does not allow `registry.example.com:5000`,
    because another port on the same host is another service.
    """
    if not patterns:
        return True
    candidate = domain.lower()
    for raw in patterns:
        pattern = raw.strip().lower()
        if not pattern:
            continue
        if pattern.startswith("*."):
            host, _, port = candidate.partition(":")
            want_host, _, want_port = pattern[2:].partition(":")
            if host.endswith("." + want_host) and port == want_port:
                return True
        elif candidate == pattern:
            return True
    return False


def check_registry(image: Reference | str, patterns: list[str]) -> Problem | None:
    """Stalled `RegistryNotAllowed` when spec.image (parsed, or as text) lives outside the allowed registries."""
    if not patterns:
        return None
    try:
        domain = image.domain if isinstance(image, Reference) else reference.parse_repository(image).domain
    except ValueError:
        return None  # an invalid image is reported by validation as InvalidSpec
    if host_allowed(domain, patterns):
        return None
    return Problem(
        Reason.REGISTRY_NOT_ALLOWED,
        f"registry {domain} is not in the operator's allowedRegistries ({', '.join(patterns)}); "
        "push the image to an allowed registry or ask the platform team to allow this one",
    )
