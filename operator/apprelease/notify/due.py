"""Which (revision, outcome) pairs each spec.notify entry is owed, from status alone (pure).

Rules (DESIGN.md "Notifications"):
- An outcome of a history entry: `Succeeded` and `Failed` from its `outcome`; `RolledBack` for an entry the
  operator recorded itself to undo a failure (`cause: AutoRollback`), as soon as it is recorded.
- Never replay old history: each entry's first revision (`status.notifySince[<type>/<secret>]`) is fixed when
  the entry is first seen: the current revision when its outcome is still to come, else the next one.
- Once: an outcome listed in the history entry's `notified` is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass

from apprelease.core.api import AppReleaseStatus, Cause, HistoryEntry, NotifyEntry, NotifyOutcome, Outcome

__all__ = ["Due", "due", "idempotency_key", "outcomes_of", "watermarks"]


@dataclass(frozen=True)
class Due:
    """One message owed to one receiver."""

    receiver: NotifyEntry
    entry: HistoryEntry
    outcome: NotifyOutcome


def idempotency_key(uid: str, revision: int, outcome: NotifyOutcome) -> str:
    """`<uid>/<revision>/<outcome>`: the CloudEvent id and the webhook header; the same for a re-send."""
    return f"{uid}/{revision}/{outcome.value}"


def outcomes_of(entry: HistoryEntry) -> list[NotifyOutcome]:
    found: list[NotifyOutcome] = []
    if entry.cause == Cause.AUTO_ROLLBACK:
        found.append(NotifyOutcome.ROLLED_BACK)
    if entry.outcome == Outcome.SUCCEEDED:
        found.append(NotifyOutcome.SUCCEEDED)
    elif entry.outcome == Outcome.FAILED:
        found.append(NotifyOutcome.FAILED)
    return found


def watermarks(receivers: list[NotifyEntry], status: AppReleaseStatus) -> dict[str, int]:
    """status.notifySince for these receivers: kept for known ones, fixed now for new ones, dropped for gone
    ones (an entry removed and added again is new again)."""
    known = status.notify_since or {}
    current = status.history[0] if status.history else None
    if current is None:
        first_new = 1
    elif current.outcome == Outcome.IN_PROGRESS:
        first_new = current.revision
    else:
        first_new = current.revision + 1
    return {r.key: known.get(r.key, first_new) for r in receivers}


def due(receivers: list[NotifyEntry], status: AppReleaseStatus) -> list[Due]:
    """Every message owed now, oldest revision first; `status.notifySince` must already hold `watermarks`."""
    since = status.notify_since or {}
    owed: list[Due] = []
    for entry in reversed(status.history):
        sent = set(entry.notified or [])
        for outcome in outcomes_of(entry):
            if outcome.value in sent:
                continue
            for receiver in receivers:
                if outcome.value in receiver.on and entry.revision >= since.get(receiver.key, entry.revision + 1):
                    owed.append(Due(receiver, entry, outcome))
    return owed


def mark(status: AppReleaseStatus, revision: int, outcome: NotifyOutcome) -> AppReleaseStatus:
    """The status with `outcome` recorded in the `notified` of the entry for `revision`."""
    history = [
        h.model_copy(update={"notified": sorted({*(h.notified or []), outcome.value})}) if h.revision == revision else h
        for h in status.history
    ]
    return status.model_copy(update={"history": history})
