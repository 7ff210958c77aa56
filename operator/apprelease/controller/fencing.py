"""Fencing of status writes (the README's "High availability"): a status write is conditional on the
resourceVersion of the AppRelease the pass decided from, so a replica that lost the lease (frozen, partitioned)
cannot record a revision over what its successor wrote.

A JSON merge patch that carries `metadata.resourceVersion` is a precondition: the API server answers
409 Conflict when the object changed since (controller-runtime's `MergeFromWithOptimisticLock` does the same).
A conflict is not an error: the key is requeued and the next pass reads the AppRelease afresh.
"""

from __future__ import annotations

from typing import Any


class Conflict(Exception):
    """The AppRelease changed since this pass read it (HTTP 409 on a conditional write); requeue, do not retry
    the write."""


def conditional(body: dict[str, Any], resource_version: str) -> dict[str, Any]:
    """`body` (a merge patch) made conditional on `resource_version`; unchanged when that is empty."""
    if not resource_version:
        return body
    metadata = dict(body.get("metadata") or {})
    metadata["resourceVersion"] = resource_version
    return {**body, "metadata": metadata}
