"""spec.verify's vocabulary (modes, keyless identities, bounds), its rules (the CRD's, checked again: the CRD
may be old) and its typed value, `VerifySettings`.

What the trust wing does with it is in `apprelease.trust` (which re-exports `Mode` and `Identity`); the
operator-wide floor is applied by the controller with `effective_mode`: `VerifySettings` is the tenant's request.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import regex

from apprelease.core import limits
from apprelease.core.api import VerifySpec
from apprelease.core.limits import quoted

__all__ = ["MAX_IDENTITIES", "Identity", "Mode", "VerifySettings", "check_verify", "effective_mode"]

KEYLESS_PREFIX = "keyless:"
MAX_IDENTITY = 255  # an issuer URL or an exact subject (a GitHub workflow identity is ~100 characters)
MAX_PATTERN = 1024  # a subject pattern
# The longest evidence recorded in a history entry (status stays bounded: 100 entries): an exact identity fits.
MAX_EVIDENCE = len(KEYLESS_PREFIX) + 2 * MAX_IDENTITY + 1
# Tenants write the pattern and signers (any CI job's certificate) the subject: the `regex` module's timeout keeps
# a catastrophic pattern from holding the operator (Python's `re` has none).
_REGEX_TIMEOUT_SECONDS = 0.05


class Mode(StrEnum):
    """How strictly signatures are required; ordered: NONE < IF_PRESENT < REQUIRED."""

    NONE = "None"
    IF_PRESENT = "IfPresent"
    REQUIRED = "Required"

    @property
    def rank(self) -> int:
        return (Mode.NONE, Mode.IF_PRESENT, Mode.REQUIRED).index(self)


def effective_mode(requested: Mode, floor: Mode) -> Mode:
    """The stricter of what the tenant asks for and the operator's floor: a tenant can raise it, never lower it."""
    return requested if requested.rank >= floor.rank else floor


@dataclass(frozen=True)
class Identity:
    """A keyless signer: the certificate's OIDC issuer (exact), and its subject (SAN) exact or a full-match
    regular expression."""

    issuer: str
    subject: str | None = None
    subject_regex: str | None = None

    def __post_init__(self) -> None:
        if (self.subject is None) == (self.subject_regex is None):
            raise ValueError("an identity needs exactly one of subject and subjectRegex")
        if len(self.issuer) > MAX_IDENTITY or len(self.subject or "") > MAX_IDENTITY:
            raise ValueError(f"an issuer or subject longer than {MAX_IDENTITY} characters")
        if len(self.subject_regex or "") > MAX_PATTERN:
            raise ValueError(f"a subjectRegex longer than {MAX_PATTERN} characters")
        if self.subject_regex is not None:
            try:
                regex.compile(self.subject_regex)
            except regex.error as exc:
                pattern = quoted(self.subject_regex)
                raise ValueError(f"subjectRegex {pattern} is not a regular expression: {exc}") from None

    def matches(self, issuer: str, subject: str) -> bool:
        if issuer != self.issuer or len(subject) > MAX_IDENTITY:
            return False
        if self.subject is not None:
            return subject == self.subject
        assert self.subject_regex is not None
        try:
            return regex.fullmatch(self.subject_regex, subject, timeout=_REGEX_TIMEOUT_SECONDS) is not None
        except TimeoutError:
            return False


MAX_IDENTITIES = 16  # CRD: spec.verify.keyless maxItems
MAX_NAME = 253
_MODES = {Mode.REQUIRED.value: Mode.REQUIRED, Mode.IF_PRESENT.value: Mode.IF_PRESENT}
_PROVENANCE = ("Required", "IfPresent")


@dataclass(frozen=True)
class VerifySettings:
    """``spec.verify`` after validation; ``mode`` NONE when the spec has no ``verify``."""

    mode: Mode = Mode.NONE
    keys_secret: str | None = None
    identities: tuple[Identity, ...] = ()
    trusted_root_config_map: str | None = None
    provenance_required: bool = False


def _identities(spec: VerifySpec) -> tuple[Identity, ...] | str:
    entries = spec.keyless or []
    if len(entries) > MAX_IDENTITIES:
        return f"spec.verify.keyless may list at most {MAX_IDENTITIES} identities"
    identities: list[Identity] = []
    for index, entry in enumerate(entries):
        if not entry.issuer:
            return f"spec.verify.keyless[{index}].issuer is required"
        try:
            identities.append(Identity(entry.issuer, entry.subject, entry.subject_regex))
        except ValueError as err:
            return f"spec.verify.keyless[{index}]: {err}"
    return tuple(identities)


def _names(spec: VerifySpec) -> str | None:
    if spec.mode not in _MODES:
        return f"spec.verify.mode {limits.quoted(spec.mode)} must be Required or IfPresent"
    if spec.provenance not in _PROVENANCE:
        return f"spec.verify.provenance {limits.quoted(spec.provenance)} must be Required or IfPresent"
    if spec.keys is None and not spec.keyless:
        return "spec.verify needs keys (a Secret of *.pub public keys) or keyless identities"
    if spec.trusted_root_ref is not None and not spec.keyless:
        return "spec.verify.trustedRootRef is used for keyless identities only; add spec.verify.keyless"
    for field, ref in (
        ("keys.secretRef", spec.keys.secret_ref if spec.keys else None),
        ("trustedRootRef", spec.trusted_root_ref),
    ):
        if ref is not None and not 1 <= len(ref.name) <= MAX_NAME:
            return f"spec.verify.{field}.name has 1 to {MAX_NAME} characters"
    return None


def check_verify(spec: VerifySpec | None) -> VerifySettings | str:
    """The typed settings, or a message naming the first broken rule (the caller reports InvalidSpec)."""
    if spec is None:
        return VerifySettings()
    problem = _names(spec)
    if problem:
        return problem
    identities = _identities(spec)
    if isinstance(identities, str):
        return identities
    return VerifySettings(
        mode=_MODES[spec.mode],
        keys_secret=spec.keys.secret_ref.name if spec.keys else None,
        identities=identities,
        trusted_root_config_map=spec.trusted_root_ref.name if spec.trusted_root_ref else None,
        provenance_required=spec.provenance == "Required",
    )
