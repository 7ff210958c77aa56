"""Which recorded revision a rollback goes back to: a pure decision shared by the CLI and its tests."""

from __future__ import annotations

from apprelease.core.api import HistoryEntry, Outcome


class RollbackRefused(ValueError):
    """The requested rollback target is not in history; the message says what is."""


def choose_rollback(
    history: list[HistoryEntry],
    current_version: str | None,
    *,
    to_revision: int | None = None,
    to_version: str | None = None,
) -> HistoryEntry:
    """The entry to restore. Without a target: the newest succeeded revision of another version.

    Only recorded versions are accepted, so a rollback always redeploys a digest that was deployed before.
    """
    if to_revision is not None and to_version is not None:
        raise RollbackRefused("give --to-revision or --to-version, not both")
    known = ", ".join(f"{e.revision}:{e.version}" for e in history) or "none"
    if to_revision is not None:
        entry = next((e for e in history if e.revision == to_revision), None)
        if entry is None:
            raise RollbackRefused(f"revision {to_revision} is not in history (recorded: {known})")
        return entry
    if to_version is not None:
        entry = next((e for e in history if e.version == to_version), None)
        if entry is None:
            raise RollbackRefused(
                f"version {to_version} is not in history (recorded: {known}); a rollback only goes back to a "
                "version deployed before: to deploy a new version, set spec.version"
            )
        return entry
    for entry in history:
        if entry.version != current_version and entry.outcome == Outcome.SUCCEEDED:
            return entry
    raise RollbackRefused(f"no earlier version to roll back to (recorded: {known})")
