"""Keyless (Sigstore certificate) verification of a bundle, with the ``sigstore`` package (the optional extra
``apprelease[keyless]``), fully offline against a trusted root.

``sigstore`` is imported here, lazily, on the first keyless bundle (its import costs ~3 s and ~24 MB). It checks
the certificate chain to the trusted root's Fulcio CA at the log's integration time, the embedded SCT, the
Sigstore X.509 profile (digitalSignature, codeSigning), the transparency-log entry (inclusion proof, checkpoint,
signed entry timestamp) and the DSSE signature. We check the identity: the certificate's OIDC issuer (extension
1.3.6.1.4.1.57264.1.8, else the older .1.1) and a SAN (URI or email) against ``spec.verify.keyless``.

The default root is the public-good one the ``sigstore`` package ships (no TUF refresh: no network). Verifiers
are cached per trusted root text (a root is parsed once, not per digest).
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from ..core.limits import quoted
from .errors import SignatureInvalid, SignatureUntrusted
from .policy import TrustPolicy, keyless_evidence

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.verify import Verifier  # imported lazily at run time (see above)

__all__ = ["MAX_TRUSTED_ROOT_BYTES", "identity_of", "match_identity", "trusted_root_text", "verify_keyless"]

MAX_TRUSTED_ROOT_BYTES = 512 * 1024  # the public-good trusted_root.json is ~10 KiB
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String
_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw bytes
_PUBLIC_GOOD = "https://tuf-repo-cdn.sigstore.dev"
_MAX_VERIFIERS = 16
_NO_SIGSTORE = "keyless verification needs the 'sigstore' package (apprelease[keyless])"

_lock = threading.Lock()
_verifiers: dict[str, Verifier] = {}


def _utf8_string(der: bytes) -> str:
    """The text of a DER UTF8String (tag 0x0C, short or long length form)."""
    if len(der) < 2 or der[0] != 0x0C:
        raise ValueError("not a UTF8String")
    length, start = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or len(der) < 2 + count:
            raise ValueError("bad length")
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    if len(der) != start + length:
        raise ValueError("bad length")
    return der[start:].decode("utf-8")


def _extension(cert: Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def identity_of(cert: Certificate) -> tuple[str, list[str]]:
    """The OIDC issuer and the SAN identities (URIs, emails) of a Fulcio certificate; ValueError without issuer."""
    issuer: str | None = None
    v2 = _extension(cert, _ISSUER_V2)
    if v2 is not None:
        issuer = _utf8_string(v2)
    else:
        v1 = _extension(cert, _ISSUER_V1)
        issuer = v1.decode("utf-8") if v1 is not None else None
    if not issuer:
        raise ValueError("the certificate names no OIDC issuer")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return issuer, []
    subjects = [*san.get_values_for_type(x509.UniformResourceIdentifier), *san.get_values_for_type(x509.RFC822Name)]
    return issuer, subjects


def match_identity(cert: Certificate, policy: TrustPolicy) -> str:
    """The evidence ``keyless:<issuer>|<subject>`` of the first SAN that an identity of ``spec.verify.keyless``
    trusts with the certificate's issuer (cosign's CheckCertificatePolicy: exact subject or regular expression,
    issuer equal). SignatureUntrusted naming what the certificate holds when none matches."""
    try:
        issuer, subjects = identity_of(cert)
    except ValueError as exc:
        raise SignatureUntrusted(str(exc)) from None
    for subject in subjects:
        if policy.trusts_keyless(issuer, subject):
            return keyless_evidence(issuer, subject)
    shown = quoted(subjects[0] if subjects else "", 200)
    raise SignatureUntrusted(
        f"signed by {shown} (issuer {quoted(issuer, 200)}), an identity spec.verify does not trust"
    )


class _IdentityPolicy:
    """A ``sigstore.verify.policy.VerificationPolicy``: any identity of ``spec.verify.keyless`` matches."""

    def __init__(self, policy: TrustPolicy) -> None:
        self._policy = policy
        self.evidence: str | None = None
        self.refused: str | None = None

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError

        try:
            self.evidence = match_identity(cert, self._policy)
        except SignatureUntrusted as exc:
            self.refused = str(exc)
            raise VerificationError(self.refused) from None


def trusted_root_text(trusted_root: str | None) -> str:
    """The ``trusted_root.json`` text to verify against: ``trusted_root`` (a ConfigMap's), else the public-good
    one the ``sigstore`` package ships. SignatureUntrusted when over MAX_TRUSTED_ROOT_BYTES or without sigstore."""
    if trusted_root is None:
        try:
            from sigstore._utils import read_embedded
        except ImportError:
            raise SignatureUntrusted(_NO_SIGSTORE) from None
        trusted_root = read_embedded("trusted_root.json", _PUBLIC_GOOD).decode()
    if len(trusted_root) > MAX_TRUSTED_ROOT_BYTES:
        raise SignatureUntrusted(f"the trusted root is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    return trusted_root


def _verifier(trusted_root: str | None) -> Verifier:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot import v1 as trustroot_v1

    text = trusted_root_text(trusted_root)
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with _lock:
        found = _verifiers.get(key)
    if found is not None:
        return found
    try:
        verifier = Verifier(trusted_root=TrustedRoot(trustroot_v1.TrustedRoot.from_json(text)))
    except Exception as exc:  # sigstore raises several types (pydantic, its own Error) for a bad root
        raise SignatureUntrusted(f"the trusted root is not usable: {type(exc).__name__}") from None
    with _lock:
        if len(_verifiers) >= _MAX_VERIFIERS:
            _verifiers.pop(next(iter(_verifiers)))
        _verifiers[key] = verifier
    return verifier


def verify_keyless(content: bytes, policy: TrustPolicy) -> tuple[str, bytes, str]:
    """Verify a keyless bundle; (payload type, payload, ``keyless:<issuer>|<subject>``).

    SignatureUntrusted: the identity is not listed, or the certificate does not chain to the trusted root.
    SignatureInvalid: anything else (signature, log entry, SCT, malformed bundle)."""
    try:
        from sigstore.errors import CertValidationError, Error
        from sigstore.models import Bundle
    except ImportError:
        raise SignatureUntrusted(_NO_SIGSTORE) from None
    verifier = _verifier(policy.trusted_root)
    try:
        bundle = Bundle.from_json(content)
    except (Error, ValueError) as exc:
        raise SignatureInvalid(f"the keyless bundle is malformed: {type(exc).__name__}") from None
    identity = _IdentityPolicy(policy)
    try:
        payload_type, payload = verifier.verify_dsse(bundle, identity)
    except CertValidationError:
        raise SignatureUntrusted("the signing certificate does not chain to the trusted root") from None
    except Error as exc:
        if identity.refused is not None:
            raise SignatureUntrusted(identity.refused) from None
        raise SignatureInvalid(f"keyless verification failed: {quoted(exc, 300)}") from None
    assert identity.evidence is not None
    return payload_type, payload, identity.evidence
