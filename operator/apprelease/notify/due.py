"""Which (revision, outcome) pairs each spec.notify entry is owed, from status alone (pure).

Rules (the README's "Notifications"):
- An outcome of a history entry: `Succeeded` and `Failed` from its `outcome`; `RolledBack` for an entry the
  operator recorded itself to undo a failure (`cause: AutoRollback`), as soon as it is recorded.
- Never replay old history: each entry's first revision (`status.notifySince[<type>/<secret>]`) is fixed when
  the entry is first seen: the current revision when its outcome is still to come, else the next one.
- Once: an outcome listed in the history entry's `notified` is never sent again.
- Before a revision: `AwaitingPromotion` (Ready's reason) and `PromotionRevoked` (Stalled's) are about the
  revision a promotion would record next; they are recorded in `status.notifiedAhead` for that revision.
  Except a revocation after the fact (the version running is spec.version: the operator only judges a
  version it has not recorded yet, so a PromotionRevoked then is about the running revision): it is about
  the current revision, and new to every receiver (a watermark is about history, not about today's news).
"""

from __future__ import annotations

from dataclasses import dataclass

from apprelease.core import conditions as cond
from apprelease.core.api import (
    AppReleaseStatus,
    Cause,
    HistoryEntry,
    NotifiedAhead,
    NotifyEntry,
    NotifyOutcome,
    Outcome,
)

__all__ = ["Due", "ahead", "due", "idempotency_key", "mark", "outcomes_of", "watermarks"]


@dataclass(frozen=True)
class Due:
    """One message owed to one receiver."""

    receiver: NotifyEntry
    entry: HistoryEntry  # for an outcome ahead of its revision: a stand-in whose `failure` holds the reason
    outcome: NotifyOutcome
    ahead: bool = False


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


# (condition type, reason) -> the outcome it tells, ahead of the revision a promotion would record.
_AHEAD = {
    (cond.READY, NotifyOutcome.AWAITING_PROMOTION.value): NotifyOutcome.AWAITING_PROMOTION,
    (cond.STALLED, NotifyOutcome.PROMOTION_REVOKED.value): NotifyOutcome.PROMOTION_REVOKED,
}


def ahead(status: AppReleaseStatus, version: str) -> tuple[HistoryEntry, NotifyOutcome] | None:
    """The promotion state of the revision not recorded yet (or, revoked after the fact, of the current one),
    from the conditions, or None."""
    for condition in status.conditions:
        outcome = _AHEAD.get((condition.type, condition.reason))
        if outcome is not None and condition.status == (cond.TRUE if condition.type == cond.STALLED else cond.FALSE):
            current = _revoked_current(status, version, outcome)
            if current is not None:
                return current.model_copy(update={"failure": condition.message}), outcome
            revision = max([status.revision, *(h.revision for h in status.history)]) + 1
            return HistoryEntry(revision=revision, version=version, digest="", failure=condition.message), outcome
    return None


def _revoked_current(status: AppReleaseStatus, version: str, outcome: NotifyOutcome) -> HistoryEntry | None:
    if outcome != NotifyOutcome.PROMOTION_REVOKED or not version or status.version != version:
        return None
    return next((h for h in status.history if h.revision == status.revision), None)


def due(receivers: list[NotifyEntry], status: AppReleaseStatus, version: str = "") -> list[Due]:
    """Every message owed now, oldest revision first; `status.notifySince` must already hold `watermarks`.
    `version`: spec.version, what a promotion not recorded yet is about."""
    owed: list[Due] = []
    for entry in reversed(status.history):
        sent = set(entry.notified or [])
        owed += _owed(receivers, status, entry, [o for o in outcomes_of(entry) if o.value not in sent], False)
    pending = ahead(status, version)
    if pending is not None:
        entry, outcome = pending
        told = status.notified_ahead
        if told is None or told.revision != entry.revision or outcome.value not in told.outcomes:
            owed += _owed(receivers, status, entry, [outcome], True)
    return owed


def _owed(
    receivers: list[NotifyEntry],
    status: AppReleaseStatus,
    entry: HistoryEntry,
    outcomes: list[NotifyOutcome],
    early: bool,
) -> list[Due]:
    since = status.notify_since or {}
    return [
        Due(receiver, entry, outcome, early)
        for outcome in outcomes
        for receiver in receivers
        if outcome.value in receiver.on and (early or entry.revision >= since.get(receiver.key, entry.revision + 1))
    ]


def mark(status: AppReleaseStatus, item: Due) -> AppReleaseStatus:
    """The status with the item's outcome recorded (`notified` of its entry, or `notifiedAhead`)."""
    revision, outcome = item.entry.revision, item.outcome
    if item.ahead:
        told = status.notified_ahead
        kept = told.outcomes if told is not None and told.revision == revision else []
        recorded = NotifiedAhead(revision=revision, outcomes=sorted({*kept, outcome.value}))
        return status.model_copy(update={"notified_ahead": recorded})
    history = [
        h.model_copy(update={"notified": sorted({*(h.notified or []), outcome.value})}) if h.revision == revision else h
        for h in status.history
    ]
    return status.model_copy(update={"history": history})
