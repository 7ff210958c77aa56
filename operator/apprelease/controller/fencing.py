"""Fencing of status writes (the README's "High availability"): a status write is conditional on the
resourceVersion of the AppRelease the pass decided from, so a replica that lost the lease (frozen, partitioned)
cannot record a revision over what its successor wrote.

A JSON merge patch that carries `metadata.resourceVersion` is a precondition: the API server answers
409 Conflict when the object changed since (controller-runtime's `MergeFromWithOptimisticLock` does the same).
A conflict is not an error: the key is requeued and the next pass reads the AppRelease afresh.
"""

from __future__ import annotations

from collections.abc import Mapping


class Conflict(Exception):
    """The AppRelease changed since this pass read it (HTTP 409 on a conditional write); requeue, do not retry
    the write."""


def conditional(body: Mapping[str, object], resource_version: str) -> dict[str, object]:
    """`body` (a merge patch) made conditional on `resource_version`; a copy, unchanged when that is empty."""
    if not resource_version:
        return dict(body)
    given = body.get("metadata")
    metadata: dict[str, object] = dict(given) if isinstance(given, Mapping) else {}
    metadata["resourceVersion"] = resource_version
    return {**body, "metadata": metadata}
