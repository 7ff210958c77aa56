"""Why a digest could not be verified: three outcomes the operator turns into conditions.

``SignatureMissing`` is retried (CI may sign a moment after it pushes); ``SignatureInvalid`` and
``SignatureUntrusted`` are Stalled until the spec (or the image's signatures) change. Messages are safe to show:
foreign values are quoted and bounded by :func:`apprelease.core.limits.quoted`.
"""

from __future__ import annotations

__all__ = ["ProvenanceMismatch", "SignatureInvalid", "SignatureMissing", "SignatureUntrusted", "TrustError"]


class TrustError(Exception):
    """Base class; ``reason`` is the condition reason (CamelCase), ``retry`` says whether to try again later."""

    reason = "TrustError"
    retry = False


class SignatureMissing(TrustError):
    """No signature (or no provenance attestation, when required) names the digest. Retried."""

    reason = "SignatureMissing"
    retry = True


class SignatureInvalid(TrustError):
    """Something claims to sign the digest but does not hold: a bad signature, a statement about another
    digest, a wrong payload or predicate type, a malformed or oversized bundle. Stalled."""

    reason = "SignatureInvalid"


class SignatureUntrusted(TrustError):
    """A valid signature by a key or identity that ``spec.verify`` does not trust (or no longer trusts). Stalled."""

    reason = "SignatureUntrusted"


class ProvenanceMismatch(TrustError):
    """A trusted provenance attestation names another tag than ``spec.version``. Stalled (the image was built
    from another tag; the same reason as a version label that does not match)."""

    reason = "ProvenanceMismatch"
