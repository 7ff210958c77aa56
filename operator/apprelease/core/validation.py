"""The spec rules, checked again by the operator because the CRD in the cluster may be older than we are."""

from __future__ import annotations

import re

from apprelease.core import limits, reference
from apprelease.core.api import AppReleaseSpec, OnFailure, Provenance
from apprelease.core.conditions import Problem, Reason
from apprelease.core.workloads import Kind

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SUPPORTED_KINDS = tuple(kind.value for kind in Kind)


def validate_spec(spec: AppReleaseSpec) -> Problem | None:
    """The first rule the spec breaks, or None. Mutable references are reported before other mistakes."""
    mutable = _mutable_reference(spec)
    if mutable:
        return Problem(Reason.MUTABLE_REFERENCE, mutable)
    invalid = _invalid(spec)
    if invalid:
        return Problem(Reason.INVALID_SPEC, invalid)
    return None


def _mutable_reference(spec: AppReleaseSpec) -> str | None:
    if spec.version.lower() == "latest":
        return f"spec.version {spec.version!r} is a mutable tag; use the git tag of the release (e.g. v1.4.2)"
    if spec.image:
        try:
            parsed = reference.parse(spec.image)
        except ValueError:
            return None  # reported as InvalidSpec
        if parsed.digest:
            return "spec.image must be a repository without a digest; put the digest in spec.digest"
        if parsed.tag:
            return (
                f"spec.image carries the tag {parsed.tag!r}; spec.image must be a repository without a tag, "
                "put the version in spec.version"
            )
    return None


def _invalid(spec: AppReleaseSpec) -> str | None:
    if spec.invalid_fields:
        fields = ", ".join(f"spec.{name}" for name in spec.invalid_fields)
        return f"{fields}: wrong type (is the AppRelease CRD installed and current?)"
    if not spec.image:
        return "spec.image is required: the image repository, e.g. registry.example.com/shop/web"
    try:
        reference.parse_repository(spec.image)
    except ValueError as err:
        return f"spec.image: {err}"
    if not spec.version:
        return "spec.version is required: the git tag the image was built from"
    if not reference.is_valid_tag(spec.version):
        return (
            f"spec.version {spec.version!r} is not a valid image tag: letters, digits, '_', '.', '-', "
            "at most 128 characters, not starting with '.' or '-'"
        )
    if spec.digest is not None and not _DIGEST.match(spec.digest):
        return f"spec.digest {spec.digest!r} must look like sha256:<64 lowercase hex characters>"
    if not spec.workloads:
        return "spec.workloads must name at least one Deployment"
    if len(spec.workloads) > 20:
        return "spec.workloads may name at most 20 workloads"
    seen: set[tuple[str, str]] = set()
    for index, workload in enumerate(spec.workloads):
        if workload.kind not in SUPPORTED_KINDS:
            return (
                f"spec.workloads[{index}].kind {limits.quoted(workload.kind)} is not supported; use one of "
                f"{', '.join(SUPPORTED_KINDS)}"
            )
        if not _DNS_SUBDOMAIN.match(workload.name or ""):
            return f"spec.workloads[{index}].name {workload.name!r} is not a valid object name"
        key = (workload.kind, workload.name)
        if key in seen:
            return f"spec.workloads names {workload.kind}/{workload.name} twice; list each workload once"
        seen.add(key)
        if workload.containers is not None and len(set(workload.containers)) != len(workload.containers):
            return f"spec.workloads[{index}].containers lists a container twice"
    if spec.provenance not in {p.value for p in Provenance}:
        return f"spec.provenance {spec.provenance!r} must be one of Required, IfPresent, Disabled"
    if not 1 <= spec.history_limit <= 100:
        return f"spec.historyLimit {spec.history_limit} must be between 1 and 100"
    if not 30 <= spec.rollout.timeout_seconds <= 86400:
        return f"spec.rollout.timeoutSeconds {spec.rollout.timeout_seconds} must be between 30 and 86400"
    if spec.rollout.on_failure not in {o.value for o in OnFailure}:
        return f"spec.rollout.onFailure {limits.quoted(spec.rollout.on_failure)} must be Rollback or Halt"
    return None
