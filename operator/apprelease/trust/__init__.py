"""Trust: verify that a digest is signed (cosign's Sigstore bundle v0.3 or legacy format) by a trusted key or
keyless identity, and read SLSA provenance, before the operator pins it. Pure rules; the registry side that
finds signatures is ``apprelease.registry.referrers``."""

from .bundle import BundleArtifact, LegacyArtifact
from .errors import ProvenanceMismatch, SignatureInvalid, SignatureMissing, SignatureUntrusted, TrustError
from .keys import PublicKey, load_public_key, load_public_keys
from .policy import Identity, Mode, TrustPolicy, effective_mode, recheck, recheck_provenance
from .verify import Verified, verify

__all__ = [
    "BundleArtifact",
    "Identity",
    "LegacyArtifact",
    "Mode",
    "ProvenanceMismatch",
    "PublicKey",
    "SignatureInvalid",
    "SignatureMissing",
    "SignatureUntrusted",
    "TrustError",
    "TrustPolicy",
    "Verified",
    "effective_mode",
    "load_public_key",
    "load_public_keys",
    "recheck",
    "recheck_provenance",
    "verify",
]
