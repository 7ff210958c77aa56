"""A registry failure as the condition it sets (shared by resolution, verification and promotion)."""

from __future__ import annotations

from apprelease.core.conditions import Problem, Reason
from apprelease.registry import RegistryError, TagNotFound, Unauthorized, UnsupportedManifest

__all__ = ["registry_problem"]


def registry_problem(err: RegistryError) -> Problem:
    """UnsupportedManifest is Stalled; TagNotFound, Unauthorized and anything else are retried."""
    if isinstance(err, UnsupportedManifest):
        return Problem(Reason.UNSUPPORTED_MANIFEST, f"{err}; nothing was deployed")
    if isinstance(err, TagNotFound):
        return Problem(Reason.TAG_NOT_FOUND, f"{err}; it is deployed as soon as it is pushed")
    if isinstance(err, Unauthorized):
        return Problem(Reason.UNAUTHORIZED, str(err))
    return Problem(Reason.REGISTRY_UNAVAILABLE, str(err))
