"""Condition types and reasons (kstatus-compatible), and the pure function that sets a condition."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from apprelease.core import limits
from apprelease.core.api import Condition

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"

# The reason of Stalled when it is False: CamelCase like every reason (API conventions), never "False".
NOT_STALLED = "NotStalled"


class ReasonClass(StrEnum):
    """What the operator does after reporting a reason (kstatus: Stalled, Reconciling, Current)."""

    STALLED = "Stalled"  # the spec cannot be satisfied; nothing is retried until the spec changes
    FAILED = "Failed"  # a failed rollout: Stalled until the spec changes or a retry is asked for
    RETRIED = "Retried"  # Ready False, retried with backoff: the world may fix it
    READY = "Ready"  # progress and success


class Reason(StrEnum):
    """Every condition reason the operator reports (CamelCase, Kubernetes API conventions), knowing its class."""

    # Stalled: the spec cannot be satisfied; nothing is retried until the spec changes.
    INVALID_SPEC = "InvalidSpec"
    MUTABLE_REFERENCE = "MutableReference"
    PROVENANCE_MISMATCH = "ProvenanceMismatch"
    DIGEST_MISMATCH = "DigestMismatch"
    REGISTRY_NOT_ALLOWED = "RegistryNotAllowed"  # spec.image is outside the operator's allowedRegistries
    UNSUPPORTED_MANIFEST = "UnsupportedManifest"  # a media type not asked for (Docker schema 1 included)
    PROMOTION_REVOKED = "PromotionRevoked"  # the upstream revision of the digest to promote later failed
    PROMOTION_SOURCE_NOT_ALLOWED = "PromotionSourceNotAllowed"  # upstream namespace outside promotion sources
    SIGNATURE_INVALID = "SignatureInvalid"  # a signature that does not hold, or names another digest
    SIGNATURE_UNTRUSTED = "SignatureUntrusted"  # signed by a key or identity spec.verify does not trust
    # Ready=False and retried with backoff: the world may fix these.
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    UNAUTHORIZED = "Unauthorized"
    TAG_NOT_FOUND = "TagNotFound"
    WORKLOAD_NOT_FOUND = "WorkloadNotFound"
    WORKLOAD_NOT_OPTED_IN = "WorkloadNotOptedIn"  # the workload lacks the apprelease.dev/release label
    CONTAINER_NOT_FOUND = "ContainerNotFound"
    AWAITING_PROMOTION = "AwaitingPromotion"  # upstream has not (long enough) Succeeded with spec.version
    PAUSED = "Paused"  # a person paused a workload's rollout (Deployment spec.paused); no clock runs meanwhile
    SIGNATURE_MISSING = "SignatureMissing"  # no signature yet (CI may sign a moment after pushing)
    # Stalled after a failed rollout, until the spec changes or a retry is asked for (apprelease.dev/retry).
    ROLLOUT_FAILED = "RolloutFailed"  # onFailure Halt, or nothing to go back to
    ROLLED_BACK = "RolledBack"  # the last good revision was restored automatically
    # Progress and success.
    PROGRESSING = "Progressing"
    BAKING = "Baking"  # the rollout is complete; the new pods must stay up for rollout.bakeSeconds
    SUCCEEDED = "Succeeded"
    SUSPENDED = "Suspended"

    @property
    def reason_class(self) -> ReasonClass:
        return _CLASSES[self]

    @property
    def stalled(self) -> bool:
        """Stalled until the spec changes: a Problem with this reason is not retried."""
        return self.reason_class == ReasonClass.STALLED

    @property
    def failed_rollout(self) -> bool:
        """Stalled after a failed rollout: also lifted by a new apprelease.dev/retry value."""
        return self.reason_class == ReasonClass.FAILED


_CLASSES: dict[Reason, ReasonClass] = {
    **dict.fromkeys(
        (
            Reason.INVALID_SPEC,
            Reason.MUTABLE_REFERENCE,
            Reason.PROVENANCE_MISMATCH,
            Reason.DIGEST_MISMATCH,
            Reason.REGISTRY_NOT_ALLOWED,
            Reason.UNSUPPORTED_MANIFEST,
            Reason.PROMOTION_REVOKED,
            Reason.PROMOTION_SOURCE_NOT_ALLOWED,
            Reason.SIGNATURE_INVALID,
            Reason.SIGNATURE_UNTRUSTED,
        ),
        ReasonClass.STALLED,
    ),
    **dict.fromkeys(
        (
            Reason.REGISTRY_UNAVAILABLE,
            Reason.UNAUTHORIZED,
            Reason.TAG_NOT_FOUND,
            Reason.WORKLOAD_NOT_FOUND,
            Reason.WORKLOAD_NOT_OPTED_IN,
            Reason.CONTAINER_NOT_FOUND,
            Reason.AWAITING_PROMOTION,
            Reason.PAUSED,
            Reason.SIGNATURE_MISSING,
        ),
        ReasonClass.RETRIED,
    ),
    **dict.fromkeys((Reason.ROLLOUT_FAILED, Reason.ROLLED_BACK), ReasonClass.FAILED),
    **dict.fromkeys((Reason.PROGRESSING, Reason.BAKING, Reason.SUCCEEDED, Reason.SUSPENDED), ReasonClass.READY),
}


def reason_of(condition: Condition) -> Reason | None:
    """The condition's reason as a Reason, or None for one we never write (an older operator, a hand edit)."""
    try:
        return Reason(condition.reason)
    except ValueError:
        return None


class EventReason:
    """Event reasons; the Warning ones match the condition reasons where they report the same thing."""

    DEPLOYING = "Deploying"
    ROLLING_BACK = "RollingBack"
    RETRYING = "Retrying"  # a failed version deployed again: new generation or apprelease.dev/retry
    DEPLOYED = "Deployed"
    DRIFT_CORRECTED = "DriftCorrected"
    TAG_MOVED = "TagMoved"
    PROMOTING = "Promoting"  # a new revision pins the digest upstream recorded Succeeded
    LABEL_REJECTED = "LabelRejected"  # an image label is not what it claims to be; it is not copied
    ROLLOUT_FAILED = Reason.ROLLOUT_FAILED.value
    ROLLED_BACK = Reason.ROLLED_BACK.value


@dataclass(frozen=True)
class Problem:
    """Why a reconcile cannot go on: a condition reason and a message for humans."""

    reason: Reason
    message: str

    @property
    def stalled(self) -> bool:
        return self.reason.stalled


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> list[Condition]:
    """Return conditions with one set; lastTransitionTime moves only when the status itself changes."""
    previous = next((c for c in conditions if c.type == type_), None)
    transition = now if previous is None or previous.status != status else previous.last_transition_time or now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=limits.message(message),  # inert, one line, bounded: parts quoted before stay as they are
        observedGeneration=generation,
        lastTransitionTime=transition,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: _ORDER.get(c.type, 99))


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


_ORDER = {READY: 0, RECONCILING: 1, STALLED: 2}
