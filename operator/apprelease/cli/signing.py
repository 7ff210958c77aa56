"""`apprelease build --sign`: sign the pushed digest and attest its SLSA provenance, in cosign's bundle format.

Two referrers of the image, as cosign v3 writes them (``cosign sign`` and ``cosign attest``): a Sigstore bundle
v0.3 whose DSSE envelope holds an in-toto statement with cosign's signature predicate, and one holding the SLSA
provenance predicate (git repository, tag, commit, builder; ``trust.provenance.build_predicate``). Keyed, with
no transparency log (as ``cosign sign --key`` with a signing config that has none): ``cosign verify --key
--insecure-ignore-tlog`` and ``cosign verify-attestation`` accept them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apprelease import __version__
from apprelease.registry.push import Attached, Descriptor, Pusher
from apprelease.trust import sign
from apprelease.trust.cosignkey import is_cosign_key
from apprelease.trust.keys import MAX_KEY_PEM_BYTES
from apprelease.trust.provenance import build_predicate
from apprelease.trust.statement import COSIGN_SIGN_PREDICATE

__all__ = ["BUILDER_ID", "SLSA_PROVENANCE_V1", "SignedRelease", "load_key", "sign_release"]

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILDER_ID = f"https://apprelease.dev/cli/build@{__version__}"
_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"


@dataclass(frozen=True)
class SignedRelease:
    signature: Attached
    provenance: Attached
    fingerprint: str


def load_key(path: Path, password: str | None, cosign_password: Callable[[], str] | None = None) -> sign.PrivateKey:
    """The signing key from a PEM file, or cosign's encrypted key file (then opened with ``cosign_password()``,
    asked only for such a file). ValueError with a message for the user (WrongPassword for a wrong password)."""
    try:
        with path.open("rb") as file:
            pem = file.read(MAX_KEY_PEM_BYTES + 1)  # bounded: a key file is small, whatever the path names
    except OSError as exc:
        raise ValueError(f"cannot read the key file {path}: {exc.strerror}") from None
    if is_cosign_key(pem) and cosign_password is not None:
        return sign.load_private_key(pem, cosign_password().encode())
    return sign.load_private_key(pem, password.encode() if password else None)


def _attach(pusher: Pusher, subject: Descriptor, bundle: bytes, predicate_type: str) -> Attached:
    annotations = {_CONTENT_ANNOTATION: "dsse-envelope", _PREDICATE_ANNOTATION: predicate_type}
    return pusher.attach(subject, sign.BUNDLE_MEDIA_TYPE, bundle, annotations)


def sign_release(
    pusher: Pusher,
    key: sign.PrivateKey,
    *,
    repository: str,
    digest: str,
    source: str,
    tag: str,
    commit: str,
) -> SignedRelease:
    """Sign ``repository@digest`` and attest that it was built from ``source`` at ``tag`` (``commit``)."""
    from apprelease.trust.keys import fingerprint_of

    subject = pusher.descriptor(digest)
    signature = sign.bundle(key, sign.statement(digest, repository, COSIGN_SIGN_PREDICATE))
    predicate = build_predicate(source, tag, commit, BUILDER_ID)
    provenance = sign.bundle(key, sign.statement(digest, repository, SLSA_PROVENANCE_V1, predicate))
    return SignedRelease(
        signature=_attach(pusher, subject, signature, COSIGN_SIGN_PREDICATE),
        provenance=_attach(pusher, subject, provenance, SLSA_PROVENANCE_V1),
        fingerprint=fingerprint_of(key.public_key()),
    )
