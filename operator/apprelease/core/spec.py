"""The AppRelease spec after validation: a typed, immutable value that every step of a reconcile takes.

`validation.check_spec` builds it once per pass from the lenient API model (`api.AppReleaseSpec`), so the
image is parsed once, enums are enums, defaults are applied, and no later step reads the raw spec again.
"""

from __future__ import annotations

from dataclasses import dataclass

from apprelease.core.api import OnFailure, Provenance
from apprelease.core.reference import Reference
from apprelease.core.verifyspec import VerifySettings
from apprelease.core.workloads import Kind


@dataclass(frozen=True)
class WorkloadRef:
    """One entry of spec.workloads: the workload to pin and, optionally, which of its containers."""

    kind: Kind
    name: str
    containers: tuple[str, ...] | None = None  # None: every container that runs spec.image


@dataclass(frozen=True)
class PromotionRef:
    """spec.promotion: the upstream AppRelease and how long its Succeeded must have lasted (seconds)."""

    namespace: str
    name: str
    soak_seconds: int = 0

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ReleaseSpec:
    """A valid spec. `repository` is spec.image parsed and normalised (no tag, no digest)."""

    image: str  # spec.image as written; the text put in front of "@digest" in pod templates
    repository: Reference
    version: str  # a valid image tag, never "latest"
    digest: str | None  # sha256:<64 hex> or sha512:<128 hex>: the digest guard
    workloads: tuple[WorkloadRef, ...]  # 1 to 20, each named once
    image_pull_secrets: tuple[str, ...] = ()
    provenance: Provenance = Provenance.IF_PRESENT
    history_limit: int = 10  # 1..100
    suspend: bool = False
    timeout_seconds: int = 600  # 30..86400
    bake_seconds: int = 30  # 0..3600: new pods must stay up this long after the rollout completed
    on_failure: OnFailure = OnFailure.ROLLBACK
    promotion: PromotionRef | None = None
    verify: VerifySettings = VerifySettings()  # spec.verify as asked; the operator's floor is applied later

    @property
    def tagged(self) -> Reference:
        """spec.image at spec.version: what the registry is asked to resolve."""
        return self.repository.with_tag(self.version)

    def pinned(self, digest: str) -> str:
        """The image text a pinned container runs: spec.image@digest."""
        return f"{self.image}@{digest}"
