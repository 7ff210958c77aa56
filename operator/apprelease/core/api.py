"""The AppRelease API (apprelease.dev/v1alpha1) as pydantic models: the edge between Kubernetes and our code.

Models are deliberately lenient about values (the CRD may be old or missing); the rules live in
`validation.py` so that a bad spec becomes a Stalled condition rather than a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

GROUP = "apprelease.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AppRelease"
PLURAL = "appreleases"
FIELD_MANAGER = "apprelease"

ANNOTATION_VERSION = "apprelease.dev/version"
ANNOTATION_REVISION = "apprelease.dev/revision"
ANNOTATION_RELEASE = "apprelease.dev/release"
# Set by a workload's owner: the one AppRelease allowed to pin it. Without it the workload is not touched.
LABEL_RELEASE = "apprelease.dev/release"
ANNOTATION_CHANGE_CAUSE = "kubernetes.io/change-cause"
# Set with spec.paused on a labelled Deployment created with an image by tag, by the chart's admission policy
# (holdUnpinned): no pod runs until its AppRelease pins it; the pin removes both (`apprelease.core.decisions`).
ANNOTATION_HELD = "apprelease.dev/held"
HELD_UNPINNED = "unpinned"
# Set by `apprelease retry`: each new value re-tries a failed version once (recorded in status.lastHandledRetry).
ANNOTATION_RETRY = "apprelease.dev/retry"
# OCI image config labels (OCI image spec, annotations.md) that `apprelease build` writes and provenance reads.
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_REVISION = "org.opencontainers.image.revision"


class Provenance(StrEnum):
    REQUIRED = "Required"
    IF_PRESENT = "IfPresent"
    DISABLED = "Disabled"


class Source(StrEnum):
    REGISTRY = "Registry"
    HISTORY = "History"


class Cause(StrEnum):
    SPEC = "Spec"  # spec.version (or the spec) asked for it
    AUTO_ROLLBACK = "AutoRollback"  # a failed rollout restored the last good revision


class OnFailure(StrEnum):
    ROLLBACK = "Rollback"
    HALT = "Halt"


class Outcome(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class _SpecModel(_Model):
    # Strict: a value of the wrong JSON type (a string for a number, a number for a boolean) is what the CRD
    # schema refuses, so without the schema it must become InvalidSpec, not be coerced.
    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=True)


class Workload(_SpecModel):
    kind: str = "Deployment"
    name: str = ""
    containers: list[str] | None = None


class RolloutPolicy(_SpecModel):
    timeout_seconds: int = Field(default=600, alias="timeoutSeconds")
    bake_seconds: int = Field(default=30, alias="bakeSeconds")
    on_failure: str = Field(default=OnFailure.ROLLBACK.value, alias="onFailure")


class LocalObjectReference(_SpecModel):
    name: str = ""


class NotifyType(StrEnum):
    SLACK = "slack"
    MSTEAMS = "msteams"
    WEBHOOK = "webhook"
    CLOUDEVENTS = "cloudevents"


class NotifyOutcome(StrEnum):
    """What a notification tells about one revision (the README's "Notifications")."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"
    AWAITING_PROMOTION = "AwaitingPromotion"
    PROMOTION_REVOKED = "PromotionRevoked"


class NotifyEntry(_SpecModel):
    """One entry of spec.notify: where to send (a Secret holding `url` and optionally `token`) and what."""

    type: str = NotifyType.WEBHOOK.value
    secret_ref: LocalObjectReference = Field(default_factory=LocalObjectReference, alias="secretRef")
    on: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """How status.notifySince names this entry: `<type>/<secret name>`."""
        return f"{self.type}/{self.secret_ref.name}"


class ObjectReference(_SpecModel):
    namespace: str = ""
    name: str = ""


class Promotion(_SpecModel):
    """spec.promotion: pin what the upstream AppRelease recorded Succeeded for spec.version, soaked."""

    from_: ObjectReference = Field(default_factory=ObjectReference, alias="from")
    soak_seconds: int = Field(default=0, alias="soakSeconds")


class KeylessIdentity(_SpecModel):
    issuer: str = ""
    subject: str | None = None
    subject_regex: str | None = Field(default=None, alias="subjectRegex")


class VerifyKeys(_SpecModel):
    secret_ref: LocalObjectReference = Field(default_factory=LocalObjectReference, alias="secretRef")


class VerifySpec(_SpecModel):
    """spec.verify (DESIGN "Trust"); the rules are in `core.verifyspec`."""

    mode: str = "Required"
    keys: VerifyKeys | None = None
    keyless: list[KeylessIdentity] | None = None
    trusted_root_ref: LocalObjectReference | None = Field(default=None, alias="trustedRootRef")
    provenance: str = "IfPresent"


class AppReleaseSpec(_SpecModel):
    image: str = ""
    version: str = ""
    digest: str | None = None
    workloads: list[Workload] = Field(default_factory=list)
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, alias="imagePullSecrets")
    provenance: str = Provenance.IF_PRESENT.value
    history_limit: int = Field(default=10, alias="historyLimit")
    suspend: bool = False
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    notify: list[NotifyEntry] = Field(default_factory=list)
    promotion: Promotion | None = None
    verify: VerifySpec | None = None
    # Fields whose value had the wrong type (possible only when the CRD schema is missing or old); "spec" when
    # the spec itself is not an object.
    _invalid_fields: list[str] = PrivateAttr(default_factory=list)

    @property
    def invalid_fields(self) -> list[str]:
        return list(self._invalid_fields)


class Condition(_Model):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")


class RecordedProvenance(_Model):
    """The SLSA provenance attestation that verified a revision: who signed it (evidence as ``verifiedBy``:
    ``SHA256:<key fingerprint>`` or ``keyless:<issuer>|<subject>``), and the tag and commit it names. A rollback
    re-checks it against the current ``spec.verify`` when ``provenance: Required`` (no registry request)."""

    signed_by: str = Field(alias="signedBy")
    tag: str | None = None
    commit: str | None = None


class HistoryEntry(_Model):
    revision: int
    image: str | None = None  # the repository; a rollback only restores a digest of the same repository
    version: str
    digest: str
    git_commit: str | None = Field(default=None, alias="gitCommit")
    source: Source = Source.REGISTRY
    restored_from: int | None = Field(default=None, alias="restoredFrom")
    cause: Cause = Cause.SPEC
    deployed_at: str | None = Field(default=None, alias="deployedAt")
    # When every workload's rollout was first seen complete: the bake starts here (persisted, so that an
    # operator restarted mid-bake goes on with the same clock).
    bake_started_at: str | None = Field(default=None, alias="bakeStartedAt")
    succeeded_at: str | None = Field(default=None, alias="succeededAt")  # when the bake ended
    # Pause accounting: the open pause's start, and the seconds of closed pauses; not counted by the timeout.
    paused_at: str | None = Field(default=None, alias="pausedAt")
    paused_seconds: int | None = Field(default=None, alias="pausedSeconds")
    promoted_from: str | None = Field(default=None, alias="promotedFrom")  # <namespace>/<name>#<revision>
    outcome: Outcome = Outcome.IN_PROGRESS
    failure: str | None = None  # only on Failed entries: workload, pod, reason, exit code
    # What verified the digest: "SHA256:<key fingerprint>" or "keyless:<issuer>|<subject>" (trust.policy).
    verified_by: str | None = Field(default=None, alias="verifiedBy")
    provenance: RecordedProvenance | None = None  # the verified provenance attestation, if any
    notified: list[str] | None = None  # NotifyOutcome values already sent to spec.notify


class NotifiedAhead(_Model):
    """Outcomes told about the revision a promotion would record next (AwaitingPromotion, PromotionRevoked):
    they come before its history entry exists."""

    revision: int
    outcomes: list[str] = Field(default_factory=list)


class AppReleaseStatus(_Model):
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    revision: int = 0
    version: str | None = None
    digest: str | None = None
    short_digest: str | None = Field(default=None, alias="shortDigest")
    image: str | None = None
    git_commit: str | None = Field(default=None, alias="gitCommit")
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    last_handled_retry: str | None = Field(default=None, alias="lastHandledRetry")
    # Per spec.notify entry (NotifyEntry.key): the first revision it may tell about, fixed when the entry is
    # first seen, so that a new entry (or an operator upgrade) never replays older history.
    notify_since: dict[str, int] | None = Field(default=None, alias="notifySince")
    notified_ahead: NotifiedAhead | None = Field(default=None, alias="notifiedAhead")

    def to_k8s(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(_Model):
    """The metadata an AppRelease is read with (the API server fills these in; values are lenient)."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int | None = None
    resource_version: str = Field(default="", alias="resourceVersion")
    annotations: dict[str, str] = Field(default_factory=dict)


class AppRelease(_Model):
    """An AppRelease as read from the API server."""

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    retry: str | None = None  # the apprelease.dev/retry annotation
    spec: AppReleaseSpec
    status: AppReleaseStatus

    @classmethod
    def from_k8s(cls, obj: Mapping[str, object]) -> AppRelease:
        """The object as the API server returns it (JSON); the spec is parsed leniently, never raising."""
        meta = ObjectMeta.model_validate(obj.get("metadata") or {})
        return cls(
            name=meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
            generation=meta.generation or 0,
            resource_version=meta.resource_version,
            retry=meta.annotations.get(ANNOTATION_RETRY),
            spec=_lenient_spec(obj.get("spec")),
            status=AppReleaseStatus.model_validate(obj.get("status") or {}),
        )

    def object_reference(self) -> dict[str, str]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
        }


SPEC_NOT_AN_OBJECT = "spec"


def _lenient_spec(raw: object) -> AppReleaseSpec:
    """Parse a spec that the API server may not have validated, without raising.

    A field of the wrong type is dropped and remembered, so that validation reports it as InvalidSpec instead
    of the operator silently using a default (a mistyped digest must not disable the digest guard). A spec that
    is not an object at all (a list, a string, null) is remembered as SPEC_NOT_AN_OBJECT.
    """
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        spec = AppReleaseSpec()
        spec._invalid_fields = [SPEC_NOT_AN_OBJECT]
        return spec
    try:
        return AppReleaseSpec.model_validate(raw)
    except ValueError:
        cleaned: dict[str, object] = {}
        invalid: list[str] = []
        for key, value in raw.items():
            try:
                AppReleaseSpec.model_validate({**cleaned, key: value})
                cleaned[key] = value
            except ValueError:
                invalid.append(key)
        spec = AppReleaseSpec.model_validate(cleaned)
        spec._invalid_fields = invalid
        return spec
