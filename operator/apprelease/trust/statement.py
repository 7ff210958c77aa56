"""The signed documents: DSSE envelopes, in-toto statements, cosign's simple-signing payload.

Shapes (sources): DSSE v1 (secure-systems-lab/dsse, ``envelope.md`` and ``protocol.md``); in-toto Statement v1
(in-toto/attestation, ``spec/v1/statement.md``; v0.1 has the same fields); cosign's simple signing payload
(containers/image ``docs/containers-signature.5.md``, as cosign writes it). Pure: bytes in, typed values out,
``SignatureInvalid`` for anything malformed. The only own "crypto" is the DSSE pre-authentication encoding.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.limits import quoted
from ..registry import jsonbounds
from .errors import SignatureInvalid

__all__ = [
    "COSIGN_SIGN_PREDICATE",
    "INTOTO_PAYLOAD_TYPE",
    "SLSA_PROVENANCE_PREDICATES",
    "Envelope",
    "Statement",
    "pae",
    "parse_envelope",
    "parse_simple_signing",
    "parse_statement",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset({"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"})
# What `cosign sign` (v3, bundle format) states about an image: "this digest is signed", no predicate content.
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
SLSA_PROVENANCE_PREDICATES = frozenset({"https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"})
SIMPLE_SIGNING_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 192 * 1024
MAX_SUBJECTS = 64
MAX_SIGNATURES = 8


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 <len(type)> <type> <len(body)> <body>`` (lengths in
    ASCII decimal, byte counts of the UTF-8 type and of the body). This is what a DSSE signature signs."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:  # DSSE allows URL-safe base64 too
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise SignatureInvalid(f"{what} is not base64") from None


class _Signature(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sig: str = Field(max_length=4096)
    keyid: str = ""


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    payload: str = Field(max_length=MAX_PAYLOAD_BYTES * 4 // 3 + 4)
    payload_type: str = Field(alias="payloadType", max_length=256)
    signatures: list[_Signature] = Field(min_length=1, max_length=MAX_SIGNATURES)


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope, decoded: the payload bytes, its type, and the raw signatures."""

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    @property
    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)


def parse_envelope(document: object) -> Envelope:
    """A DSSE envelope from its JSON object (``dsseEnvelope`` of a bundle); SignatureInvalid when malformed."""
    try:
        model = _Envelope.model_validate(document)
    except ValidationError:
        raise SignatureInvalid("the DSSE envelope is malformed") from None
    payload = _b64(model.payload, "the DSSE payload")
    return Envelope(
        payload_type=model.payload_type,
        payload=payload,
        signatures=tuple(_b64(s.sig, "a DSSE signature") for s in model.signatures),
    )


class _Subject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(default="", max_length=1024)
    digest: dict[str, str] = Field(default_factory=dict, max_length=8)


class _Statement(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: str = Field(alias="_type", max_length=256)
    subject: list[_Subject] = Field(min_length=1, max_length=MAX_SUBJECTS)
    predicate_type: str = Field(alias="predicateType", max_length=256)
    predicate: dict[str, object] | None = None


@dataclass(frozen=True)
class Statement:
    """An in-toto statement: the digests it is about (``sha256:<hex>`` form), its predicate type and predicate."""

    digests: frozenset[str]
    predicate_type: str
    predicate: dict[str, object]

    def names(self, digest: str) -> bool:
        """True when one subject's digest is exactly ``digest`` (``<algorithm>:<hex>``, compared as written)."""
        return digest in self.digests


def parse_statement(payload_type: str, payload: bytes) -> Statement:
    """The in-toto statement inside a DSSE payload; SignatureInvalid for another payload type or a bad shape."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise SignatureInvalid(f"payload type {quoted(payload_type)} is not {INTOTO_PAYLOAD_TYPE}")
    try:
        document = jsonbounds.load(payload, max_bytes=MAX_PAYLOAD_BYTES)
        model = _Statement.model_validate(document)
    except (ValueError, ValidationError):
        raise SignatureInvalid("the signed payload is not an in-toto statement") from None
    if model.type not in STATEMENT_TYPES:
        raise SignatureInvalid(f"statement type {quoted(model.type)} is not an in-toto Statement v1")
    digests = frozenset(
        f"{algorithm}:{value}" for subject in model.subject for algorithm, value in subject.digest.items()
    )
    return Statement(digests=digests, predicate_type=model.predicate_type, predicate=model.predicate or {})


class _SimpleImage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    digest: str = Field(alias="docker-manifest-digest", max_length=200)


class _SimpleCritical(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image: _SimpleImage
    type: str = Field(max_length=256)


class _SimpleSigning(BaseModel):
    model_config = ConfigDict(extra="ignore")
    critical: _SimpleCritical


def parse_simple_signing(payload: bytes) -> str:
    """The digest a cosign simple-signing payload names (``critical.image.docker-manifest-digest``)."""
    try:
        document = jsonbounds.load(payload, max_bytes=MAX_PAYLOAD_BYTES)
        model = _SimpleSigning.model_validate(document)
    except (ValueError, ValidationError):
        raise SignatureInvalid("the signed payload is not a cosign simple-signing payload") from None
    if model.critical.type != SIMPLE_SIGNING_TYPE:
        raise SignatureInvalid(f"simple-signing type {quoted(model.critical.type)} is not {SIMPLE_SIGNING_TYPE!r}")
    return model.critical.image.digest
