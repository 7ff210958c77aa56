"""May spec.version be promoted from the upstream AppRelease now, and which digest (pure).

Rules (the README's "Promotion"):
- The source namespace must be the AppRelease's own or listed in the operator's promotion sources
  (`APPRELEASE_PROMOTION_SOURCES`, `*` for any), else Stalled `PromotionSourceNotAllowed`.
- Among upstream history entries of spec.version (of the same repository), the newest one with a final outcome
  decides: `Failed` -> Stalled `PromotionRevoked` (a failed bake, or rolled back automatically); `Succeeded` ->
  eligible once it has been Succeeded for `soakSeconds` (from `succeededAt`, which the upstream's operator writes
  when the bake ended; a Succeeded entry without it is never old enough for a soak above 0), else Ready False
  `AwaitingPromotion`, with the seconds left so the caller requeues at the soak's end. No final entry:
  `AwaitingPromotion`.
- A digest taken from upstream must satisfy spec.digest, if set (`DigestMismatch`).
- Revoked after the fact (`revoked`): the revision running here was promoted from the upstream, and the
  upstream's newest final entry of its version has since `Failed` with that digest -> Stalled
  `PromotionRevoked`. Nothing is rolled back: the design says a revoked promotion patches nothing, and going
  back is a person's decision (or a rollback within this AppRelease's own history, which needs no upstream).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from apprelease.core.api import AppReleaseStatus, HistoryEntry, Outcome, RecordedProvenance, Source
from apprelease.core.conditions import Problem, Reason
from apprelease.core.decisions import in_repository, record_revision
from apprelease.core.spec import PromotionRef, ReleaseSpec

__all__ = [
    "ANY_SOURCE",
    "Eligible",
    "Waiting",
    "judge",
    "newest_final",
    "promoted_head",
    "record",
    "revoked",
    "source_problem",
]

ANY_SOURCE = "*"


@dataclass(frozen=True)
class Eligible:
    entry: HistoryEntry  # the upstream entry whose digest is pinned
    promoted_from: str  # <namespace>/<name>#<revision>


@dataclass(frozen=True)
class Waiting:
    problem: Problem  # AwaitingPromotion
    seconds_left: float | None  # None: nothing known to wait for (woken by upstream changes, or the resync)


def source_problem(own_namespace: str, source: PromotionRef, allowed: list[str]) -> Problem | None:
    if source.namespace == own_namespace or ANY_SOURCE in allowed or source.namespace in allowed:
        return None
    return Problem(
        Reason.PROMOTION_SOURCE_NOT_ALLOWED,
        f"namespace {source.namespace} is not a promotion source of this operator (APPRELEASE_PROMOTION_SOURCES)",
    )


def newest_final(history: list[HistoryEntry], version: str, spec: ReleaseSpec | None = None) -> HistoryEntry | None:
    """The newest entry of `version` (of spec.image's repository, when given) that Succeeded or Failed: the one
    that decides whether the version may be promoted."""
    same = [h for h in history if h.version == version and (spec is None or _same_repository(h, spec))]
    finals = [h for h in same if h.outcome in (Outcome.SUCCEEDED, Outcome.FAILED)]
    return max(finals, key=lambda h: h.revision, default=None)


def _same_repository(entry: HistoryEntry, spec: ReleaseSpec) -> bool:
    return entry.image is None or in_repository(entry.image, spec)


def _since(entry: HistoryEntry) -> dt.datetime | None:
    return _time(entry.succeeded_at)


def _time(stamp: str | None) -> dt.datetime | None:
    """An RFC 3339 time as status writes it, or None."""
    if not stamp:
        return None
    try:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def judge(spec: ReleaseSpec, upstream: AppReleaseStatus | None, now: str) -> Eligible | Waiting | Problem:
    """Whether spec.version may be pinned at `now` (RFC 3339); `spec.promotion` must be set."""
    source = spec.promotion
    assert source is not None
    if upstream is None:
        return Waiting(Problem(Reason.AWAITING_PROMOTION, f"upstream AppRelease {source} does not exist (yet)"), None)
    entry = newest_final(upstream.history, spec.version, spec)
    if entry is None:
        message = f"{source} has not Succeeded with {spec.version} yet; promoted as soon as it has"
        return Waiting(Problem(Reason.AWAITING_PROMOTION, message), None)
    where = f"{source}#{entry.revision}"
    if entry.outcome == Outcome.FAILED:
        return Problem(
            Reason.PROMOTION_REVOKED,
            f"{spec.version} ({entry.digest}) failed upstream in {where}; it is not promoted. Promote another version",
        )
    if spec.digest and spec.digest != entry.digest:
        return Problem(
            Reason.DIGEST_MISMATCH,
            f"{where} succeeded with {spec.version} as {entry.digest}, but spec.digest is {spec.digest}",
        )
    since, current = _since(entry), _time(now)
    if since is None and source.soak_seconds > 0:
        message = f"{where} succeeded with {spec.version} but recorded no succeededAt; the soak cannot be counted"
        return Waiting(Problem(Reason.AWAITING_PROMOTION, message), None)
    left = source.soak_seconds - ((current - since).total_seconds() if since and current else 0.0)
    if left > 0:
        message = f"{where} succeeded with {spec.version}; promoted after a soak of {source.soak_seconds}s"
        return Waiting(Problem(Reason.AWAITING_PROMOTION, message), left)
    return Eligible(entry, where)


def promoted_head(status: AppReleaseStatus, source: PromotionRef) -> HistoryEntry | None:
    """The current revision when it was promoted from `source` (`promotedFrom` `<ns>/<name>#<rev>`), else None."""
    head = next((h for h in status.history if h.revision == status.revision), None)
    if head is None or not head.promoted_from or head.promoted_from.rpartition("#")[0] != str(source):
        return None
    return head


def revoked(spec: ReleaseSpec, head: HistoryEntry, upstream: AppReleaseStatus | None) -> Problem | None:
    """PromotionRevoked when the promoted `head` has Succeeded here and the upstream's newest final entry of its
    version Failed with its digest (after the promotion: it was Succeeded then); None otherwise, an upstream
    gone included. A head still rolling out or baking is judged by this AppRelease's own rollout first: a
    revocation must not pre-empt its failure detection and automatic rollback (the same bug may crash here)."""
    if head.outcome != Outcome.SUCCEEDED:
        return None
    entry = newest_final(upstream.history, head.version, spec) if upstream is not None else None
    if entry is None or entry.outcome != Outcome.FAILED or entry.digest != head.digest:
        return None
    return Problem(
        Reason.PROMOTION_REVOKED,
        f"{head.version} ({head.digest}), promoted from {head.promoted_from}, failed upstream since in "
        f"{spec.promotion}#{entry.revision}: {entry.failure or 'no detail recorded'}. It keeps running here "
        "(nothing is rolled back); roll back or promote another version",
    )


def record(
    status: AppReleaseStatus,
    spec: ReleaseSpec,
    eligible: Eligible,
    now: str,
    verified_by: str | None = None,
    provenance: RecordedProvenance | None = None,
) -> AppReleaseStatus:
    """A new revision pinning the upstream digest (and its gitCommit), with `promotedFrom` and the evidence this
    AppRelease's own verification found (`verifiedBy`, and `provenance` for a verified attestation)."""
    recorded = record_revision(
        status,
        image=spec.image,
        version=spec.version,
        digest=eligible.entry.digest,
        git_commit=eligible.entry.git_commit,
        source=Source.REGISTRY,
        restored_from=None,
        now=now,
        history_limit=spec.history_limit,
        verified_by=verified_by,
        provenance=provenance,
    )
    head, *rest = recorded.history
    return recorded.model_copy(
        update={"history": [head.model_copy(update={"promoted_from": eligible.promoted_from}), *rest]}
    )
