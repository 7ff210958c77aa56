"""spec.verify's rules (the CRD's, checked again: the CRD may be old) and its typed value, `VerifySettings`.

What the trust wing does with it is in `apprelease.trust`; the operator-wide floor is applied there
(`trust.effective_mode`), never here: this is the tenant's request only.
"""

from __future__ import annotations

from dataclasses import dataclass

from apprelease.core import limits
from apprelease.core.api import VerifySpec
from apprelease.trust.policy import Identity, Mode

__all__ = ["MAX_IDENTITIES", "VerifySettings", "check_verify"]

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
