"""What an AppRelease trusts (``spec.verify``, raised to the operator's floor), and the registry-free re-check of
recorded evidence that a rollback needs.

Evidence strings (``status.history[].verifiedBy``): ``SHA256:<unpadded base64>`` for a key (see ``keys``), or
``keyless:<issuer>|<subject>`` for a certificate identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.limits import quoted
from ..core.verifyspec import (
    KEYLESS_PREFIX,
    MAX_EVIDENCE,
    MAX_IDENTITY,
    MAX_PATTERN,
    Identity,
    Mode,
    effective_mode,
)
from .errors import SignatureUntrusted
from .keys import PublicKey

__all__ = [
    "KEYLESS_PREFIX",
    "MAX_EVIDENCE",
    "MAX_IDENTITY",
    "MAX_PATTERN",
    "Identity",
    "Mode",
    "TrustPolicy",
    "effective_mode",
    "keyless_evidence",
    "recheck",
    "recheck_provenance",
]


# The modes, identities and bounds are the spec's vocabulary: they live in core (spec.verify's rules) and are
# re-exported here, where the trust rules use them.
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
        if _trusted(evidence, policy):
            return
        raise SignatureUntrusted(
            f"{what} was verified by {quoted(evidence, 200)}, an identity spec.verify no longer trusts"
        )
    if _trusted(evidence, policy):
        return
    raise SignatureUntrusted(f"{what} was verified by key {quoted(evidence)}, which spec.verify no longer trusts")


def _trusted(evidence: str, policy: TrustPolicy) -> bool:
    if evidence.startswith(KEYLESS_PREFIX):
        issuer, _, subject = evidence[len(KEYLESS_PREFIX) :].partition("|")
        return policy.trusts_keyless(issuer, subject)
    return evidence in policy.fingerprints


def recheck_provenance(signed_by: str | None, tag: str | None, version: str, policy: TrustPolicy, what: str) -> None:
    """Does the provenance evidence recorded for ``what`` still satisfy ``policy`` (``provenance: Required``)?

    ``signed_by``: the evidence (as ``recheck``'s) of whoever signed the SLSA provenance attestation, None when
    none was verified; ``tag``: the tag it named; ``version``: the version being restored. No registry request:
    no recorded attestation, a signer no longer trusted, or a tag other than ``version`` -> SignatureUntrusted.
    Nothing is checked when provenance is not required.
    """
    if not policy.provenance_required:
        return
    if signed_by is None:
        raise SignatureUntrusted(
            f"{what} records no verified provenance attestation; spec.verify.provenance is Required"
        )
    if not _trusted(signed_by, policy):
        raise SignatureUntrusted(
            f"{what}: its provenance attestation was signed by {quoted(signed_by, 200)}, "
            "which spec.verify no longer trusts"
        )
    if tag != version:
        raise SignatureUntrusted(
            f"{what}: its provenance attestation names tag {quoted(tag or '')}, not {quoted(version)}"
        )
