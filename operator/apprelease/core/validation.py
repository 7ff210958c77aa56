"""The spec rules, checked again by the operator because the CRD in the cluster may be older than we are.

Each rule is a small function returning a message or None; `check_spec` applies them in order (mutable
references first) and, when none is broken, returns the spec as a typed `ReleaseSpec`. Rules and limits follow
the CRD schema (charts/…/crds) so that a spec the schema would refuse is refused here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from apprelease.core import limits, reference
from apprelease.core.api import SPEC_NOT_AN_OBJECT, AppReleaseSpec, OnFailure, Provenance
from apprelease.core.conditions import Problem, Reason
from apprelease.core.reference import Reference
from apprelease.core.spec import PromotionRef, ReleaseSpec, WorkloadRef
from apprelease.core.verifyspec import VerifySettings, check_verify
from apprelease.core.workloads import Kind

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SUPPORTED_KINDS = tuple(kind.value for kind in Kind)
MAX_WORKLOADS = 20  # CRD: spec.workloads maxItems
MAX_NAME = 253  # CRD: an object name (workloads[].name, imagePullSecrets[].name)
MAX_CONTAINERS = 50  # CRD: spec.workloads[].containers maxItems
MAX_CONTAINER_NAME = 63  # CRD: a container name (a DNS label)
MAX_PULL_SECRETS = 20  # CRD: spec.imagePullSecrets maxItems; each is one Secret read per resolution

Rule = Callable[[AppReleaseSpec], str | None]


def validate_spec(spec: AppReleaseSpec) -> Problem | None:
    """The first rule the spec breaks, or None. Mutable references are reported before other mistakes."""
    checked = check_spec(spec)
    return checked if isinstance(checked, Problem) else None


def check_spec(spec: AppReleaseSpec) -> ReleaseSpec | Problem:
    """The spec as a typed value, or the first rule it breaks (MutableReference, else InvalidSpec)."""
    image = _parse_image(spec)
    mutable = _mutable_version(spec) or (_mutable_image(image) if isinstance(image, Reference) else None)
    if mutable:
        return Problem(Reason.MUTABLE_REFERENCE, mutable)
    invalid = _wrong_types(spec) or (image if isinstance(image, str) else None)
    invalid = invalid or next((message for rule in _RULES if (message := rule(spec))), None)
    verify = check_verify(spec.verify)
    if isinstance(verify, str):
        invalid = invalid or verify
    if invalid or isinstance(image, str) or isinstance(verify, str):
        return Problem(Reason.INVALID_SPEC, invalid or str(image))
    return _typed(spec, image, verify)


def _typed(spec: AppReleaseSpec, image: Reference, verify: VerifySettings) -> ReleaseSpec:
    return ReleaseSpec(
        image=spec.image,
        repository=image,
        version=spec.version,
        digest=spec.digest,
        workloads=tuple(
            WorkloadRef(Kind(w.kind), w.name, tuple(w.containers) if w.containers is not None else None)
            for w in spec.workloads
        ),
        image_pull_secrets=tuple(ref.name for ref in spec.image_pull_secrets),
        provenance=Provenance(spec.provenance),
        history_limit=spec.history_limit,
        suspend=spec.suspend,
        timeout_seconds=spec.rollout.timeout_seconds,
        bake_seconds=spec.rollout.bake_seconds,
        on_failure=OnFailure(spec.rollout.on_failure),
        promotion=_promotion(spec),
        verify=verify,
    )


def _promotion(spec: AppReleaseSpec) -> PromotionRef | None:
    if spec.promotion is None:
        return None
    source = spec.promotion.from_
    return PromotionRef(source.namespace, source.name, spec.promotion.soak_seconds)


# --- spec.image: parsed once; a message (str) when it does not parse --------------------------------
def _parse_image(spec: AppReleaseSpec) -> Reference | str:
    if not spec.image:
        return "spec.image is required: the image repository, e.g. registry.example.com/shop/web"
    if len(spec.image) > limits.MAX_IMAGE:
        return f"spec.image is longer than {limits.MAX_IMAGE} characters"
    try:
        return reference.parse(spec.image)
    except ValueError as err:
        return f"spec.image: {err}"


def _mutable_version(spec: AppReleaseSpec) -> str | None:
    if spec.version.lower() == "latest":
        return f"spec.version {spec.version!r} is a mutable tag; use the git tag of the release (e.g. v1.4.2)"
    return None


def _mutable_image(image: Reference) -> str | None:
    if image.digest:
        return "spec.image must be a repository without a digest; put the digest in spec.digest"
    if image.tag:
        return (
            f"spec.image carries the tag {image.tag!r}; spec.image must be a repository without a tag, "
            "put the version in spec.version"
        )
    return None


# --- InvalidSpec rules, in the order they are reported ------------------------------------------------
def _wrong_types(spec: AppReleaseSpec) -> str | None:
    if SPEC_NOT_AN_OBJECT in spec.invalid_fields:
        return "spec must be an object (is the AppRelease CRD installed and current?)"
    if spec.invalid_fields:
        fields = ", ".join(f"spec.{name}" for name in spec.invalid_fields)
        return f"{fields}: wrong type (is the AppRelease CRD installed and current?)"
    return None


def _version(spec: AppReleaseSpec) -> str | None:
    if not spec.version:
        return "spec.version is required: the git tag the image was built from"
    if not reference.is_valid_tag(spec.version):
        return (
            f"spec.version {spec.version!r} is not a valid image tag: letters, digits, '_', '.', '-', "
            "at most 128 characters, not starting with '.' or '-'"
        )
    return None


def _digest(spec: AppReleaseSpec) -> str | None:
    if spec.digest is not None and not _DIGEST.match(spec.digest):
        return f"spec.digest {spec.digest!r} must look like sha256:<64 lowercase hex characters>"
    return None


def _workload_count(spec: AppReleaseSpec) -> str | None:
    if not spec.workloads:
        return "spec.workloads must name at least one Deployment"
    if len(spec.workloads) > MAX_WORKLOADS:
        return f"spec.workloads may name at most {MAX_WORKLOADS} workloads"
    return None


def _workload_entries(spec: AppReleaseSpec) -> str | None:
    seen: set[tuple[str, str]] = set()
    for index, workload in enumerate(spec.workloads):
        if workload.kind not in SUPPORTED_KINDS:
            return (
                f"spec.workloads[{index}].kind {limits.quoted(workload.kind)} is not supported; use one of "
                f"{', '.join(SUPPORTED_KINDS)}"
            )
        if len(workload.name) > MAX_NAME or not _DNS_SUBDOMAIN.match(workload.name):
            return f"spec.workloads[{index}].name {limits.quoted(workload.name)} is not a valid object name"
        key = (workload.kind, workload.name)
        if key in seen:
            return f"spec.workloads names {workload.kind}/{workload.name} twice; list each workload once"
        seen.add(key)
        containers = _containers(index, workload.containers)
        if containers:
            return containers
    return None


def _containers(index: int, containers: list[str] | None) -> str | None:
    if containers is None:
        return None
    if len(containers) > MAX_CONTAINERS:
        return f"spec.workloads[{index}].containers may name at most {MAX_CONTAINERS} containers"
    if any(not 1 <= len(name) <= MAX_CONTAINER_NAME for name in containers):
        return f"spec.workloads[{index}].containers: a container name has 1 to {MAX_CONTAINER_NAME} characters"
    if len(set(containers)) != len(containers):
        return f"spec.workloads[{index}].containers lists a container twice"
    return None


def _pull_secrets(spec: AppReleaseSpec) -> str | None:
    if len(spec.image_pull_secrets) > MAX_PULL_SECRETS:
        return f"spec.imagePullSecrets may name at most {MAX_PULL_SECRETS} Secrets"
    if any(not 1 <= len(ref.name) <= MAX_NAME for ref in spec.image_pull_secrets):
        return f"spec.imagePullSecrets: a Secret name has 1 to {MAX_NAME} characters"
    return None


def _provenance(spec: AppReleaseSpec) -> str | None:
    if spec.provenance not in {p.value for p in Provenance}:
        return f"spec.provenance {spec.provenance!r} must be one of Required, IfPresent, Disabled"
    return None


def _history_limit(spec: AppReleaseSpec) -> str | None:
    if not 1 <= spec.history_limit <= limits.MAX_HISTORY:
        return f"spec.historyLimit {spec.history_limit} must be between 1 and {limits.MAX_HISTORY}"
    return None


def _rollout(spec: AppReleaseSpec) -> str | None:
    if not 30 <= spec.rollout.timeout_seconds <= 86400:
        return f"spec.rollout.timeoutSeconds {spec.rollout.timeout_seconds} must be between 30 and 86400"
    if not 0 <= spec.rollout.bake_seconds <= 3600:
        return f"spec.rollout.bakeSeconds {spec.rollout.bake_seconds} must be between 0 and 3600"
    if spec.rollout.on_failure not in {o.value for o in OnFailure}:
        return f"spec.rollout.onFailure {limits.quoted(spec.rollout.on_failure)} must be Rollback or Halt"
    return None


MAX_SOAK_SECONDS = 30 * 86400  # CRD: spec.promotion.soakSeconds maximum


def _promotion_rule(spec: AppReleaseSpec) -> str | None:
    if spec.promotion is None:
        return None
    source = spec.promotion.from_
    namespace = source.namespace
    if not namespace or len(namespace) > limits.MAX_NAMESPACE or not _DNS_LABEL.match(namespace):
        return f"spec.promotion.from.namespace {limits.quoted(namespace)} must name a namespace (a DNS label)"
    if not source.name or len(source.name) > MAX_NAME or not _DNS_SUBDOMAIN.match(source.name):
        return f"spec.promotion.from.name {limits.quoted(source.name)} must name an object (a DNS subdomain)"
    if not 0 <= spec.promotion.soak_seconds <= MAX_SOAK_SECONDS:
        return f"spec.promotion.soakSeconds {spec.promotion.soak_seconds} must be between 0 and {MAX_SOAK_SECONDS}"
    return None


_RULES: tuple[Rule, ...] = (
    _version,
    _digest,
    _workload_count,
    _workload_entries,
    _pull_secrets,
    _provenance,
    _history_limit,
    _rollout,
    _promotion_rule,
)
