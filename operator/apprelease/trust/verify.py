"""Verify one digest against a trust policy, from the signatures found for it. Pure: no I/O (keyless
verification is handed in, see ``keyless`` and ``legacykeyless``).

Rules (DESIGN "Trust"; cosign's and Sigstore's verification steps):
- a signature counts when it verifies with a trusted key (or a trusted keyless identity) AND its signed content
  names exactly the digest being pinned (a statement subject, or the simple-signing manifest digest): a valid
  signature of another digest, replayed here, is ``SignatureInvalid``;
- a bundle's payload must be an in-toto statement; statements with predicate types other than cosign's signature
  and SLSA provenance are ignored (an SBOM attestation is no signature);
- no signature at all is ``SignatureMissing`` (retried) when signatures are required; otherwise nothing is checked;
- ``provenance_required``: a trusted SLSA provenance statement must name ``version`` as its tag;
- any valid trusted signature wins over invalid ones (a stranger able to push cannot block a signed release);
  failing that, invalid ones are reported before untrusted ones.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.limits import MAX_MESSAGE, quoted, truncate
from .bundle import BundleArtifact, LegacyArtifact, parse_bundle
from .errors import ProvenanceMismatch, SignatureInvalid, SignatureMissing, SignatureUntrusted
from .policy import Mode, TrustPolicy
from .provenance import Source, read_source
from .statement import (
    COSIGN_SIGN_PREDICATE,
    SLSA_PROVENANCE_PREDICATES,
    Statement,
    parse_envelope,
    parse_simple_signing,
    parse_statement,
)

__all__ = ["MAX_ARTIFACTS", "Artifact", "KeylessVerifier", "LegacyKeylessVerifier", "Verified", "verify"]

MAX_ARTIFACTS = 32
Artifact = BundleArtifact | LegacyArtifact
_KNOWN_PREDICATES = SLSA_PROVENANCE_PREDICATES | {COSIGN_SIGN_PREDICATE}


class KeylessVerifier(Protocol):
    def __call__(self, content: bytes, policy: TrustPolicy) -> tuple[str, bytes, str]:
        """Verify a keyless bundle (chain, SCT, log entry, DSSE signature, identity against ``policy``); return
        (payload type, payload, evidence). Raises SignatureInvalid or SignatureUntrusted."""
        ...


class LegacyKeylessVerifier(Protocol):
    def __call__(self, artifact: LegacyArtifact, policy: TrustPolicy) -> str:
        """Verify a legacy keyless signature (certificate, chain, Rekor SET and entry, signature, identity against
        ``policy``); return its evidence. Raises SignatureInvalid or SignatureUntrusted."""
        ...


@dataclass(frozen=True)
class Verified:
    """The outcome for a digest: the evidence that verified it (None when nothing was required and nothing
    found), and the tag and commit a trusted provenance attestation names with the evidence of its signer
    (``provenance_by``; all None without one). A rollback re-checks ``evidence`` and ``provenance_by``."""

    digest: str
    evidence: str | None
    commit: str | None = None
    tag: str | None = None
    provenance_by: str | None = None


@dataclass(frozen=True)
class _Finding:
    evidence: str
    statement: Statement | None  # None for a legacy simple-signing signature


def _check_keyed(bundle_hint: str | None, envelope: dict[str, object], policy: TrustPolicy) -> tuple[str, Statement]:
    parsed = parse_envelope(envelope)
    candidates = policy.keys if bundle_hint is None else tuple(k for k in policy.keys if k.hint == bundle_hint)
    if not candidates:
        hint = f" (hint {quoted(bundle_hint)})" if bundle_hint else ""
        raise SignatureUntrusted(f"signed by a key{hint} that spec.verify does not trust")
    for key in candidates:
        if any(key.verifies(signature, parsed.signed_bytes) for signature in parsed.signatures):
            return key.fingerprint, parse_statement(parsed.payload_type, parsed.payload)
    if bundle_hint is not None:
        raise SignatureInvalid(f"the signature does not verify with key {candidates[0].fingerprint}: content altered")
    raise SignatureUntrusted(f"the signature verifies with none of the {len(candidates)} trusted keys")


def _check_bundle(artifact: BundleArtifact, policy: TrustPolicy, keyless: KeylessVerifier | None) -> _Finding | None:
    bundle = parse_bundle(artifact.content, too_large=artifact.too_large)
    if bundle.keyless:
        if not policy.identities:
            raise SignatureUntrusted("signed keyless, and spec.verify lists no keyless identity")
        if keyless is None:
            raise SignatureUntrusted("signed keyless, and keyless verification is not available")
        payload_type, payload, evidence = keyless(artifact.content, policy)
        statement = parse_statement(payload_type, payload)
    else:
        evidence, statement = _check_keyed(bundle.hint, bundle.envelope, policy)
    if statement.predicate_type not in _KNOWN_PREDICATES:
        return None
    return _Finding(evidence, statement)


def _check_legacy(artifact: LegacyArtifact, policy: TrustPolicy, keyless: LegacyKeylessVerifier | None) -> _Finding:
    if artifact.certificate is not None:
        if not policy.identities:
            raise SignatureUntrusted("signed keyless (legacy format), and spec.verify lists no keyless identity")
        if keyless is None:
            raise SignatureUntrusted("signed keyless (legacy format), and keyless verification is not available")
        try:
            return _Finding(keyless(artifact, policy), None)
        except (ValueError, OverflowError, OSError) as exc:
            # A backstop: registry bytes that a parser could not hold are an invalid artifact, never a crash
            # that would hide the other artifacts of this digest (its own checks raise the two Signature errors).
            raise SignatureInvalid(f"the legacy keyless signature cannot be read: {type(exc).__name__}") from None
    try:
        signature = base64.b64decode(artifact.signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the legacy signature is not base64") from None
    for key in policy.keys:
        if key.verifies(signature, artifact.payload):
            return _Finding(key.fingerprint, None)
    raise SignatureUntrusted(f"the legacy signature verifies with none of the {len(policy.keys)} trusted keys")


def _names(finding: _Finding, artifact: Artifact, digest: str) -> None:
    if finding.statement is not None:
        if not finding.statement.names(digest):
            named = ", ".join(quoted(d) for d in sorted(finding.statement.digests)[:3])
            raise SignatureInvalid(f"the signed statement is about {named}, not this digest")
    elif isinstance(artifact, LegacyArtifact):
        named_digest = parse_simple_signing(artifact.payload)
        if named_digest != digest:
            raise SignatureInvalid(f"the signed payload is about {quoted(named_digest)}, not this digest")


def _summary(digest: str, problems: list[str]) -> str:
    return truncate(f"{digest}: " + "; ".join(problems), MAX_MESSAGE)


def _provenance(version: str | None, trusted: list[_Finding]) -> tuple[tuple[_Finding, Source] | None, Source | None]:
    """The trusted provenance attestation naming ``version`` (any, without a version), and the first one found."""
    attested = [
        (f, read_source(f.statement.predicate_type, f.statement.predicate))
        for f in trusted
        if f.statement is not None and f.statement.predicate_type in SLSA_PROVENANCE_PREDICATES
    ]
    matching = next((pair for pair in attested if version is None or pair[1].tag == version), None)
    return matching, attested[0][1] if attested else None


@dataclass
class _Sorted:
    """Each artifact's outcome: trusted findings, and why the others were refused."""

    trusted: list[_Finding]
    invalid: list[str]
    untrusted: list[str]


@dataclass(frozen=True)
class _Verifiers:
    """The keyless verifiers handed in (None: keyless signatures are untrusted)."""

    bundle: KeylessVerifier | None
    legacy: LegacyKeylessVerifier | None


def _sort(digest: str, artifacts: Sequence[Artifact], policy: TrustPolicy, keyless: _Verifiers) -> _Sorted:
    outcome = _Sorted([], [], [])
    for artifact in artifacts[:MAX_ARTIFACTS]:
        try:
            if isinstance(artifact, BundleArtifact):
                finding = _check_bundle(artifact, policy, keyless.bundle)
            else:
                finding = _check_legacy(artifact, policy, keyless.legacy)
            if finding is not None:
                _names(finding, artifact, digest)
                outcome.trusted.append(finding)
        except SignatureInvalid as exc:
            outcome.invalid.append(f"{artifact.origin}: {exc}")
        except SignatureUntrusted as exc:
            outcome.untrusted.append(f"{artifact.origin}: {exc}")
    return outcome


def _nothing_trusted(digest: str, outcome: _Sorted, policy: TrustPolicy, found: int) -> Verified:
    """Invalid before untrusted before missing; nothing at all passes only when nothing is required."""
    if outcome.invalid:
        raise SignatureInvalid(_summary(digest, outcome.invalid))
    if outcome.untrusted:
        raise SignatureUntrusted(_summary(digest, outcome.untrusted))
    if policy.mode is Mode.REQUIRED or policy.provenance_required:
        raise SignatureMissing(f"{digest}: no signature found ({found} signature artifacts)")
    return Verified(digest, None)


def _with_provenance(digest: str, trusted: list[_Finding], policy: TrustPolicy, version: str | None) -> Verified:
    matching, first = _provenance(version, trusted)
    if policy.provenance_required:
        if first is None:
            raise SignatureMissing(f"{digest}: no trusted SLSA provenance attestation found")
        if matching is None:
            raise ProvenanceMismatch(
                f"{digest}: the provenance attestation names tag {quoted(first.tag)}, not {quoted(version)}"
            )
        return Verified(digest, matching[0].evidence, matching[1].commit, matching[1].tag, matching[0].evidence)
    if matching is not None:
        return Verified(digest, _signer(trusted), matching[1].commit, matching[1].tag, matching[0].evidence)
    return Verified(digest, _signer(trusted))


def _signer(trusted: list[_Finding]) -> str:
    """``verifiedBy``: who signed a signature (cosign's sign predicate, or a legacy signature) before who signed
    an attestation, whatever order the registry lists them in (the attestation's signer is recorded apart)."""
    signatures = (f for f in trusted if f.statement is None or f.statement.predicate_type == COSIGN_SIGN_PREDICATE)
    return next((f.evidence for f in signatures), trusted[0].evidence)


def verify(
    digest: str,
    artifacts: Sequence[Artifact],
    policy: TrustPolicy,
    *,
    version: str | None = None,
    keyless: KeylessVerifier | None = None,
    legacy_keyless: LegacyKeylessVerifier | None = None,
) -> Verified:
    """Verify ``digest`` (``sha256:<hex>``, the index digest for a multi-arch image) from the ``artifacts`` found
    for it. Returns Verified or raises a TrustError (SignatureMissing, SignatureInvalid, SignatureUntrusted,
    ProvenanceMismatch) whose message names the digest and what was found. ``keyless`` verifies keyless bundles,
    ``legacy_keyless`` keyless signatures of cosign's legacy format (``trust.keyless``, ``trust.legacykeyless``)."""
    if not policy.active:
        return Verified(digest, None)
    outcome = _sort(digest, artifacts, policy, _Verifiers(keyless, legacy_keyless))
    if not outcome.trusted:
        return _nothing_trusted(digest, outcome, policy, len(artifacts))
    return _with_provenance(digest, outcome.trusted, policy, version)
