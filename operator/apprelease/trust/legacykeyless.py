"""Keyless verification of cosign's legacy signature format (tag ``sha256-<hex>.sig``), offline, against a
Sigstore trusted root.

The ``sigstore`` package cannot verify this format: its log entries must carry an inclusion proof and a
checkpoint, and the legacy ``dev.sigstore.cosign/bundle`` annotation holds only the Rekor entry's signed entry
timestamp (SET). So this follows what cosign v2 does for it (``pkg/cosign/verify.go``: ``verifyInternal``,
``VerifyBundle``, ``ValidateAndUnpackCertWithIntermediates``, ``CheckCertificatePolicy``, ``CheckExpiry``), with
``cryptography`` for every signature and the chain, ``rfc8785`` for the canonical JSON, and sigstore's own SCT
check:

1. bounds: each annotation's size, at most MAX_CHAIN_CERTIFICATES certificates, the bundle's depth and items;
2. the signature (``dev.cosignproject.cosign/signature``) verifies over the exact payload bytes with the leaf's key;
3. the SET verifies with the trusted root's log key whose ``logId`` is the bundle's ``logID`` (``rekorentry``);
4. the logged entry is a ``hashedrekord`` of sha256(payload) with this signature and this certificate;
5. the leaf was valid at the SET's ``integratedTime`` and chains, at that time, to the trusted root's Fulcio
   certificates (``cryptography.x509.verification``, as sigstore-python's ``_verify_chain_at_time``; the chain
   annotation's certificates are untrusted intermediates only), with digitalSignature and codeSigning, and its
   embedded SCT verifies with the root's CT log keys (``sigstore._internal.sct.verify_sct``, what sigstore runs
   for a bundle, and cosign for this format);
6. its identity (issuer extension, SAN) is one ``spec.verify.keyless`` lists (``keyless.match_identity``).

That the payload names the digest being pinned is checked by the caller (``verify``), as for a keyed signature.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import rekorentry
from .bundle import LegacyArtifact
from .errors import SignatureInvalid, SignatureUntrusted
from .keyless import match_identity, trusted_root_text
from .keys import PublicKey, load_public_key
from .policy import TrustPolicy
from .rootmaterial import RootMaterial, root_material

__all__ = [
    "MAX_CERTIFICATE_PEM",
    "MAX_CHAIN_CERTIFICATES",
    "MAX_CHAIN_PEM",
    "verify_legacy_keyless",
]

MAX_CERTIFICATE_PEM = 8 * 1024  # a Fulcio leaf is ~1-3 KiB of PEM
MAX_CHAIN_PEM = 16 * 1024  # public-good: one intermediate and the root, ~1.5 KiB
MAX_CHAIN_CERTIFICATES = 4  # public-good: leaf, intermediate, root


@dataclass(frozen=True)
class _Material:
    """The annotations of one legacy keyless signature, bounded and parsed (nothing verified yet)."""

    signature: bytes
    leaf: x509.Certificate
    chain: list[x509.Certificate]
    rekor: rekorentry.RekorBundle


def _certificates(pem: str, what: str, limit: int) -> list[x509.Certificate]:
    if len(pem) > limit:
        raise SignatureInvalid(f"the {what} annotation is larger than {limit} bytes")
    try:
        found = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError:
        raise SignatureInvalid(f"the {what} annotation holds no PEM certificate") from None
    if len(found) > MAX_CHAIN_CERTIFICATES:
        raise SignatureInvalid(f"the {what} annotation holds more than {MAX_CHAIN_CERTIFICATES} certificates")
    return found


def _material(artifact: LegacyArtifact) -> _Material:
    if len(artifact.signature) > rekorentry.MAX_SIGNATURE:
        raise SignatureInvalid(f"the signature annotation is larger than {rekorentry.MAX_SIGNATURE} bytes")
    signature = rekorentry.decode(artifact.signature, "the legacy signature")
    leaves = _certificates(artifact.certificate or "", "certificate", MAX_CERTIFICATE_PEM)
    if len(leaves) != 1:
        raise SignatureInvalid("the certificate annotation holds more than one certificate")
    chain = _certificates(artifact.chain, "chain", MAX_CHAIN_PEM) if artifact.chain else []
    if artifact.rekor_bundle is None:
        # cosign v2 then asks Rekor online (tlogValidateEntry); the operator verifies offline only.
        raise SignatureUntrusted("a legacy keyless signature without its Rekor bundle annotation (offline: refused)")
    return _Material(signature, leaves[0], chain, rekorentry.parse(artifact.rekor_bundle))


def _leaf_key(leaf: x509.Certificate) -> PublicKey:
    try:
        pem = leaf.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return load_public_key("certificate", pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureInvalid(f"the certificate's key: {exc}") from None


def _valid_when_logged(leaf: x509.Certificate, at: dt.datetime) -> None:
    """cosign's CheckExpiry with the bundle's integrated time: the log vouches the signature existed then."""
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        raise SignatureInvalid(
            f"the certificate (valid {leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}) was not valid when logged ({at:%Y-%m-%dT%H:%M:%SZ})"
        )


def _chain(material: _Material, root: RootMaterial, at: dt.datetime) -> list[x509.Certificate]:
    """The verified chain above the leaf, at ``at`` (sigstore-python's ``_verify_chain_at_time``)."""
    from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

    if not root.authorities:
        raise SignatureUntrusted("the trusted root lists no certificate authority")
    # Fulcio leaves carry codeSigning, not the clientAuth a client verifier wants by default: allow the EKU in
    # the extension policies (checked in _profile), keeping the other defaults, as sigstore-python does.
    ekus = (x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = (
        PolicyBuilder()
        .store(Store(list(root.authorities)))
        .time(at)
        .max_chain_depth(MAX_CHAIN_CERTIFICATES)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca().may_be_present(*ekus),
            ee_policy=ExtensionPolicy.webpki_defaults_ee().may_be_present(*ekus),
        )
        .build_client_verifier()
    )
    try:
        return verifier.verify(material.leaf, material.chain).chain[1:]
    except (VerificationError, x509.UnsupportedGeneralNameType):
        raise SignatureUntrusted("the signing certificate does not chain to the trusted root") from None


def _profile(leaf: x509.Certificate) -> None:
    """The Sigstore X.509 profile: digitalSignature and codeSigning."""
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise SignatureUntrusted("the signing certificate lacks key usage or extended key usage") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise SignatureUntrusted("the signing certificate is not for code signing (digitalSignature, codeSigning)")


def _sct(leaf: x509.Certificate, chain: list[x509.Certificate], root: RootMaterial) -> None:
    """The leaf's embedded SCT verifies with a CT log key of the root (sigstore's own check, steps and all)."""
    from sigstore._internal.sct import verify_sct
    from sigstore.errors import VerificationError

    if root.ct_keyring is None:
        raise SignatureUntrusted("the trusted root lists no CT log to check the certificate's SCT with")
    try:
        verify_sct(leaf, chain, root.ct_keyring)
    except VerificationError as exc:
        raise SignatureUntrusted(f"the certificate's SCT: {str(exc)[:200]}") from None


def verify_legacy_keyless(artifact: LegacyArtifact, policy: TrustPolicy) -> str:
    """Verify a legacy keyless signature (module docstring, steps 1-6); the evidence ``keyless:<issuer>|<subject>``.

    SignatureInvalid: malformed or oversize annotations, a signature, SET or log entry that does not hold, a leaf
    not valid when logged. SignatureUntrusted: a log, chain or CT log the trusted root does not hold, a leaf off
    the Sigstore profile, an identity ``spec.verify.keyless`` does not list."""
    material = _material(artifact)
    if not _leaf_key(material.leaf).verifies(material.signature, artifact.payload):
        raise SignatureInvalid("the legacy signature does not verify with its certificate's key: content altered")
    root = root_material(trusted_root_text(policy.trusted_root))
    integrated = rekorentry.check_set(material.rekor, root)
    rekorentry.check_entry(material.rekor, artifact.payload, material.signature, material.leaf)
    _valid_when_logged(material.leaf, integrated)
    chain = _chain(material, root, integrated)
    _profile(material.leaf)
    _sct(material.leaf, chain, root)
    return match_identity(material.leaf, policy)
