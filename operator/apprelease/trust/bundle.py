"""Sigstore bundles (v0.3, the format cosign v3 writes) and cosign's legacy signatures, as found in a registry.

Bundle shape (sigstore/protobuf-specs ``sigstore_bundle.proto``, JSON form): ``mediaType``,
``verificationMaterial`` (``publicKey.hint`` for a key; ``certificate`` or ``x509CertificateChain`` for keyless;
``tlogEntries``), and a ``dsseEnvelope``. A bundle is bounded in bytes, depth and items before it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.limits import quoted
from ..registry import jsonbounds
from .errors import SignatureInvalid

__all__ = ["BUNDLE_MEDIA_TYPES", "MAX_BUNDLE_BYTES", "Bundle", "BundleArtifact", "LegacyArtifact", "parse_bundle"]

BUNDLE_MEDIA_TYPES = frozenset(
    {"application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)
MAX_BUNDLE_BYTES = 256 * 1024  # a keyless bundle with a certificate chain and a provenance statement: ~10-40 KiB


@dataclass(frozen=True)
class BundleArtifact:
    """A bundle's bytes and where they were found (for messages: a referrer manifest digest). ``too_large``: the
    registry declared a bundle over MAX_BUNDLE_BYTES, which was not fetched (``content`` is then empty)."""

    content: bytes
    origin: str
    too_large: bool = False


@dataclass(frozen=True)
class LegacyArtifact:
    """A cosign legacy signature: the simple-signing payload, its base64 signature (the layer annotation
    ``dev.cosignproject.cosign/signature``) and, if keyless, the annotations ``dev.sigstore.cosign/certificate``
    (the signer's PEM certificate), ``dev.sigstore.cosign/chain`` (PEM intermediates and root) and
    ``dev.sigstore.cosign/bundle`` (the Rekor entry's signed timestamp and payload, JSON), as found (unchecked)."""

    payload: bytes
    signature: str
    certificate: str | None
    origin: str
    chain: str | None = None
    rekor_bundle: str | None = None


class _Hint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hint: str = Field(default="", max_length=512)


class _Material(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    public_key: _Hint | None = Field(default=None, alias="publicKey")
    certificate: dict[str, object] | None = None
    chain: dict[str, object] | None = Field(default=None, alias="x509CertificateChain")


class _Bundle(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    media_type: str = Field(alias="mediaType", max_length=256)
    material: _Material = Field(alias="verificationMaterial")
    envelope: dict[str, object] | None = Field(default=None, alias="dsseEnvelope")


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle: its DSSE envelope (JSON object), key hint (keyed), whether it carries a certificate."""

    envelope: dict[str, object]
    hint: str | None
    keyless: bool


def parse_bundle(content: bytes, *, too_large: bool = False) -> Bundle:
    """Parse and bound a bundle; SignatureInvalid when it is too large, malformed, not v0.3 or not DSSE."""
    if too_large or len(content) > MAX_BUNDLE_BYTES:
        raise SignatureInvalid(f"the signature bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        model = _Bundle.model_validate(jsonbounds.load(content, max_bytes=MAX_BUNDLE_BYTES))
    except (ValueError, ValidationError):
        raise SignatureInvalid("the signature bundle is not a Sigstore bundle") from None
    if model.media_type not in BUNDLE_MEDIA_TYPES:
        raise SignatureInvalid(f"bundle media type {quoted(model.media_type)} is not a Sigstore bundle v0.3")
    if model.envelope is None:
        raise SignatureInvalid("the signature bundle holds no DSSE envelope (a message signature names no digest)")
    keyless = model.material.certificate is not None or model.material.chain is not None
    hint = model.material.public_key.hint if model.material.public_key is not None else None
    return Bundle(envelope=model.envelope, hint=hint or None, keyless=keyless)
