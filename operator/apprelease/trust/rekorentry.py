"""cosign's legacy Rekor bundle (the ``dev.sigstore.cosign/bundle`` annotation) checked offline: the signed entry
timestamp (SET) with the trusted log's key, and the logged entry against the signature it should log.

Shapes and rules from cosign v2 (``pkg/cosign/bundle/rekor.go`` RekorBundle; ``pkg/cosign/verify.go`` VerifyBundle,
VerifySET, compareSigs, comparePublicKey, bundleHash) and Rekor's ``hashedrekord`` v0.0.1 entry (the kind ``cosign
sign`` logs). The SET signs the RFC 8785 JSON of the payload's four members, encoded with ``rfc8785`` (the library
sigstore-python uses for the same); the signature itself is checked with ``cryptography`` (``keys``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..registry import jsonbounds
from .errors import SignatureInvalid, SignatureUntrusted
from .rootmaterial import RootMaterial

__all__ = ["MAX_REKOR_BUNDLE", "MAX_SIGNATURE", "RekorBundle", "check_entry", "check_set", "decode", "parse"]

MAX_REKOR_BUNDLE = 32 * 1024  # the body holds the certificate, base64 twice over: ~4-8 KiB
MAX_SIGNATURE = 1024  # base64 of a DER ECDSA P-384 signature is under 140 characters
_MAX_JSON_INT = 2**53 - 1  # beyond it a JSON number is not exact (RFC 8785 section 3.2.2.3)
# 9999-12-31T23:59:59Z: the last second a datetime holds. An unsigned bundle is read before its SET is checked,
# so a larger time must be refused here, not overflow in fromtimestamp (a ValueError would escape the verifier).
_MAX_INTEGRATED_TIME = 253402300799


class _RekorPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown member would be signed but not checked
    body: str = Field(max_length=MAX_REKOR_BUNDLE)
    integratedTime: int = Field(ge=0, le=_MAX_INTEGRATED_TIME)  # the JSON names, as signed
    logIndex: int = Field(ge=0, le=_MAX_JSON_INT)
    logID: str = Field(pattern=r"^[0-9a-f]{64}$")


class RekorBundle(BaseModel):
    """cosign's ``bundle.RekorBundle`` as Go's encoding/json writes it (``SignedEntryTimestamp``: base64)."""

    model_config = ConfigDict(extra="ignore")
    SignedEntryTimestamp: str = Field(max_length=MAX_SIGNATURE)
    Payload: _RekorPayload


class _Content(BaseModel):
    content: str = Field(max_length=MAX_REKOR_BUNDLE)


class _Signature(BaseModel):
    content: str = Field(max_length=MAX_SIGNATURE)
    publicKey: _Content


class _Hash(BaseModel):
    algorithm: str = Field(max_length=32)
    value: str = Field(max_length=128)


class _Data(BaseModel):
    hash: _Hash


class _Spec(BaseModel):
    data: _Data
    signature: _Signature


class _HashedRekord(BaseModel):
    apiVersion: str = Field(max_length=32)
    kind: str = Field(max_length=64)
    spec: _Spec


def decode(value: str, what: str) -> bytes:
    """Standard base64 (what Go's encoding/json and cosign write); SignatureInvalid naming ``what`` otherwise."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid(f"{what} is not base64") from None


def parse(text: str) -> RekorBundle:
    """The annotation's bundle, bounded (bytes, depth, items) before it is parsed; SignatureInvalid otherwise."""
    if len(text) > MAX_REKOR_BUNDLE:
        raise SignatureInvalid(f"the Rekor bundle annotation is larger than {MAX_REKOR_BUNDLE} bytes")
    try:
        return RekorBundle.model_validate(jsonbounds.load(text, max_bytes=MAX_REKOR_BUNDLE))
    except (ValueError, ValidationError):
        raise SignatureInvalid("the Rekor bundle annotation is not cosign's bundle") from None


def check_set(bundle: RekorBundle, root: RootMaterial) -> dt.datetime:
    """Verify the SET with the trusted log whose id the payload names (valid then); the integration time it
    vouches for. SignatureUntrusted: a log the root does not hold (or not at that time); SignatureInvalid: a SET
    that does not verify (another key, or any member changed since it was signed)."""
    import rfc8785  # with sigstore (apprelease[keyless]), imported with the first legacy keyless signature

    payload = bundle.Payload
    log = root.logs.get(payload.logID)
    if log is None:
        raise SignatureUntrusted(f"the Rekor entry is from log {payload.logID[:16]}…, not one of the trusted root")
    integrated = dt.datetime.fromtimestamp(payload.integratedTime, dt.UTC)
    if not log.valid_at(integrated):
        raise SignatureUntrusted("the Rekor entry's integration time is outside its log key's validity")
    # RFC 8785: members sorted, no whitespace, integers in shortest form. The members are exactly what cosign's
    # VerifySET marshals (json.Marshal of RekorPayload, then jsoncanonicalizer).
    canonical = rfc8785.dumps(
        {
            "body": payload.body,
            "integratedTime": payload.integratedTime,
            "logID": payload.logID,
            "logIndex": payload.logIndex,
        }
    )
    if not log.key.verifies(decode(bundle.SignedEntryTimestamp, "the signed entry timestamp"), canonical):
        raise SignatureInvalid("the Rekor entry's signed entry timestamp does not verify with its log's key")
    return integrated


def _body(bundle: RekorBundle) -> _HashedRekord:
    try:
        raw = jsonbounds.load(decode(bundle.Payload.body, "the entry body"), max_bytes=MAX_REKOR_BUNDLE)
        body = _HashedRekord.model_validate(raw)
    except (ValueError, ValidationError):
        raise SignatureInvalid("the Rekor entry body is not a hashedrekord entry") from None
    if body.kind != "hashedrekord" or body.apiVersion != "0.0.1":
        raise SignatureInvalid(f"the Rekor entry is a {body.kind} {body.apiVersion} entry, not hashedrekord 0.0.1")
    return body


def check_entry(bundle: RekorBundle, payload: bytes, signature: bytes, leaf: x509.Certificate) -> None:
    """The logged entry is this signature: a hashedrekord of sha256(``payload``) with ``signature`` and the
    certificate ``leaf`` (a valid SET over another entry proves nothing about this one). SignatureInvalid."""
    body = _body(bundle)
    hashed = body.spec.data.hash
    if hashed.algorithm != "sha256" or hashed.value != hashlib.sha256(payload).hexdigest():
        raise SignatureInvalid("the Rekor entry logs another payload than this signature's")
    if decode(body.spec.signature.content, "the entry's signature") != signature:
        raise SignatureInvalid("the Rekor entry logs another signature than this one")
    pem = decode(body.spec.signature.publicKey.content, "the entry's certificate")
    try:
        logged = x509.load_pem_x509_certificates(pem)  # bounded with the body by MAX_REKOR_BUNDLE
    except ValueError:
        raise SignatureInvalid("the Rekor entry logs no certificate") from None
    der = leaf.public_bytes(serialization.Encoding.DER)
    if [c.public_bytes(serialization.Encoding.DER) for c in logged] != [der]:
        raise SignatureInvalid("the Rekor entry logs another certificate than this signature's")
