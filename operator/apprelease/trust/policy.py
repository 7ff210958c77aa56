"""What an AppRelease trusts (``spec.verify``, raised to the operator's floor), and the registry-free re-check of
recorded evidence that a rollback needs.

Evidence strings (``status.history[].verifiedBy``): ``SHA256:<unpadded base64>`` for a key (see ``keys``), or
``keyless:<issuer>|<subject>`` for a certificate identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import regex

from ..core.limits import quoted
from .errors import SignatureUntrusted
from .keys import PublicKey

__all__ = ["KEYLESS_PREFIX", "Identity", "Mode", "TrustPolicy", "effective_mode", "recheck"]

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


@dataclass(frozen=True)
class TrustPolicy:
    """The verification rules for one AppRelease. ``trusted_root`` is the text of a Sigstore ``trusted_root.json``
    (None: the public-good root the ``sigstore`` package ships)."""

    mode: Mode = Mode.NONE
    keys: tuple[PublicKey, ...] = ()
    identities: tuple[Identity, ...] = ()
    trusted_root: str | None = None
    provenance_required: bool = False
    fingerprints: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprints", frozenset(k.fingerprint for k in self.keys))

    @property
    def active(self) -> bool:
        return self.mode is not Mode.NONE or self.provenance_required

    def trusts_keyless(self, issuer: str, subject: str) -> bool:
        return any(identity.matches(issuer, subject) for identity in self.identities)


def keyless_evidence(issuer: str, subject: str) -> str:
    return f"{KEYLESS_PREFIX}{issuer}|{subject}"


def recheck(evidence: str | None, policy: TrustPolicy, what: str) -> None:
    """Does the recorded evidence of ``what`` (e.g. "revision 5 (sha256:…)") still satisfy ``policy``?

    No registry request: a key removed from ``spec.verify`` since, or an identity no longer listed, makes the
    evidence untrusted (SignatureUntrusted). Evidence None (deployed unverified) passes only when signatures are
    not required.
    """
    if not policy.active:
        return
    if evidence is None:
        if policy.mode is Mode.REQUIRED or policy.provenance_required:
            raise SignatureUntrusted(f"{what} was deployed without verified signature; spec.verify requires one")
        return
    if evidence.startswith(KEYLESS_PREFIX):
        issuer, _, subject = evidence[len(KEYLESS_PREFIX) :].partition("|")
        if policy.trusts_keyless(issuer, subject):
            return
        raise SignatureUntrusted(
            f"{what} was verified by {quoted(evidence, 200)}, an identity spec.verify no longer trusts"
        )
    if evidence in policy.fingerprints:
        return
    raise SignatureUntrusted(f"{what} was verified by key {quoted(evidence)}, which spec.verify no longer trusts")
