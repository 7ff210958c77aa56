"""Finding the signatures of a digest in a registry, for the trust wing: cosign's Sigstore bundles (OCI 1.1
referrers) and its legacy ``.sig`` tag. Bounded in count, bytes and time; every failure is a RegistryError.

Where cosign v3 puts them (measured with cosign v3.1.3; OCI distribution-spec 1.1 "Listing Referrers"):
1. ``GET /v2/<name>/referrers/<digest>``: an OCI index of referrer descriptors (``artifactType`` per entry);
2. a registry without that API (404; the Debian registry, distribution 2.8) gets the referrers tag schema
   instead: tag ``sha256-<hex>`` holds such an index (cosign appends an entry per signature);
3. each bundle referrer is an OCI manifest whose one layer is the bundle JSON
   (``application/vnd.dev.sigstore.bundle.v0.3+json``; annotation ``dev.sigstore.bundle.predicateType``);
4. legacy: tag ``sha256-<hex>.sig``, whose layers are simple-signing payloads with the base64 signature in the
   layer annotation ``dev.cosignproject.cosign/signature`` (keyless also: ``dev.sigstore.cosign/certificate``,
   ``/chain`` and ``/bundle``, bounded with the whole manifest by MAX_REFERRER_MANIFEST_BYTES).

Request economy: a registry that answered 404 to the referrers API is remembered (per domain) and not asked
again; referrer manifests whose predicate type annotation is not wanted are not followed to their blob; the
legacy tag is read only when asked (``legacy``), i.e. when the bundles did not verify.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..reference import Reference
from ..trust.bundle import BUNDLE_MEDIA_TYPES, MAX_BUNDLE_BYTES, BundleArtifact, LegacyArtifact
from . import jsonbounds, oci, replies
from .client import RegistryClient
from .credentials import Credential, effective
from .errors import RegistryUnavailable

__all__ = ["MAX_REFERRERS", "ReferrerFinder"]

MAX_REFERRERS = 16  # bundles followed per digest (the newest ones: cosign appends)
MAX_LEGACY_LAYERS = 8
MAX_INDEX_BYTES = 256 * 1024
MAX_REFERRER_MANIFEST_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
_INDEX_ACCEPT = oci.OCI_INDEX
_MANIFEST_ACCEPT = oci.OCI_MANIFEST


class _Descriptor(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    media_type: str = Field(default="", alias="mediaType", max_length=256)
    digest: str = Field(max_length=200)
    size: int = Field(default=0, ge=0)
    artifact_type: str = Field(default="", alias="artifactType", max_length=256)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)


class _Index(BaseModel):
    model_config = ConfigDict(extra="ignore")
    manifests: list[_Descriptor] = Field(default_factory=list)


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    artifact_type: str = Field(default="", alias="artifactType", max_length=256)
    layers: list[_Descriptor] = Field(default_factory=list, max_length=MAX_LEGACY_LAYERS * 4)
    subject: _Descriptor | None = None
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], content: bytes, limit: int, what: str) -> _Model:
    try:
        return model.model_validate(jsonbounds.load(content, max_bytes=limit))
    except (ValueError, ValidationError):
        raise RegistryUnavailable(f"the registry sent a malformed {what}") from None


class ReferrerFinder:
    """Fetches the signature artifacts of a digest through a RegistryClient, within ``budget_seconds`` overall."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        budget_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._budget = budget_seconds
        self._clock = clock
        self._no_referrers_api: set[str] = set()
        self._lock = threading.Lock()

    def bundles(
        self, ref: Reference, digest: str, credential: Credential | None = None, *, wanted: frozenset[str] | None = None
    ) -> list[BundleArtifact]:
        """The Sigstore bundles referring to ``digest`` in ``ref``'s repository, newest last; with ``wanted``,
        only those whose predicate type annotation is in it (or absent)."""
        until = self._clock() + self._budget
        repository = Reference(domain=ref.domain, path=ref.path)
        index = self._referrers(repository, digest, credential)
        entries = [e for e in index.manifests if e.artifact_type in BUNDLE_MEDIA_TYPES or not e.artifact_type]
        found: list[BundleArtifact] = []
        for entry in entries[-MAX_REFERRERS:]:
            self._check_time(until, ref)
            predicate = entry.annotations.get(PREDICATE_ANNOTATION)
            if wanted is not None and predicate is not None and predicate not in wanted:
                continue
            artifact = self._bundle(repository, entry.digest, digest, credential, wanted, until)
            if artifact is not None:
                found.append(artifact)
        return found

    def legacy(self, ref: Reference, digest: str, credential: Credential | None = None) -> list[LegacyArtifact]:
        """The simple-signing signatures in the ``sha256-<hex>.sig`` tag (empty when there is none)."""
        until = self._clock() + self._budget
        repository = Reference(domain=ref.domain, path=ref.path)
        content = fetch(
            self._client,
            repository,
            "manifests",
            _tag_for(digest) + ".sig",
            accept=_MANIFEST_ACCEPT,
            limit=MAX_REFERRER_MANIFEST_BYTES,
            credential=credential,
        )
        if content is None:
            return []
        manifest: _Manifest = _parse(_Manifest, content, MAX_REFERRER_MANIFEST_BYTES, "signature manifest")
        found: list[LegacyArtifact] = []
        for layer in manifest.layers[:MAX_LEGACY_LAYERS]:
            signature = layer.annotations.get(SIGNATURE_ANNOTATION)
            if layer.media_type != SIMPLE_SIGNING or signature is None or layer.size > MAX_PAYLOAD_BYTES:
                continue
            self._check_time(until, ref)
            payload = self._blob(repository, layer.digest, MAX_PAYLOAD_BYTES, credential)
            if payload is not None:
                origin = f"{_tag_for(digest)}.sig layer {layer.digest}"
                notes = layer.annotations
                found.append(
                    LegacyArtifact(
                        payload,
                        signature,
                        notes.get(CERTIFICATE_ANNOTATION),
                        origin,
                        chain=notes.get(CHAIN_ANNOTATION),
                        rekor_bundle=notes.get(REKOR_BUNDLE_ANNOTATION),
                    )
                )
        return found

    # -- parts ---------------------------------------------------------------------------------------

    def _referrers(self, repository: Reference, digest: str, credential: Credential | None) -> _Index:
        content: bytes | None = None
        with self._lock:
            ask_api = repository.domain not in self._no_referrers_api
        if ask_api:
            content = fetch(
                self._client,
                repository,
                "referrers",
                digest,
                accept=_INDEX_ACCEPT,
                limit=MAX_INDEX_BYTES,
                credential=credential,
            )
            if content is None:
                with self._lock:
                    self._no_referrers_api.add(repository.domain)
        if content is None:
            content = fetch(
                self._client,
                repository,
                "manifests",
                _tag_for(digest),
                accept=_INDEX_ACCEPT,
                limit=MAX_INDEX_BYTES,
                credential=credential,
            )
        if content is None:
            return _Index()
        index: _Index = _parse(_Index, content, MAX_INDEX_BYTES, "referrers index")
        return index

    def _bundle(
        self,
        repository: Reference,
        manifest_digest: str,
        digest: str,
        credential: Credential | None,
        wanted: frozenset[str] | None,
        until: float,
    ) -> BundleArtifact | None:
        content = fetch(
            self._client,
            repository,
            "manifests",
            manifest_digest,
            accept=_MANIFEST_ACCEPT,
            limit=MAX_REFERRER_MANIFEST_BYTES,
            credential=credential,
            digest=manifest_digest,
        )
        if content is None:
            return None
        manifest: _Manifest = _parse(_Manifest, content, MAX_REFERRER_MANIFEST_BYTES, "referrer manifest")
        if manifest.subject is None or manifest.subject.digest != digest:
            return None  # a referrers tag is writable by anyone who can push: only referrers of this digest count
        predicate = manifest.annotations.get(PREDICATE_ANNOTATION)
        if wanted is not None and predicate is not None and predicate not in wanted:
            return None
        layer = next((item for item in manifest.layers if item.media_type in BUNDLE_MEDIA_TYPES), None)
        if layer is None:
            return None
        if layer.size > MAX_BUNDLE_BYTES:
            # Not fetched; trust reports it as an invalid (oversized) bundle.
            return BundleArtifact(b"", f"referrer {manifest_digest}", too_large=True)
        self._check_time(until, repository)
        bundle = self._blob(repository, layer.digest, MAX_BUNDLE_BYTES, credential)
        return None if bundle is None else BundleArtifact(bundle, f"referrer {manifest_digest}")

    def _blob(self, repository: Reference, digest: str, limit: int, credential: Credential | None) -> bytes | None:
        return fetch(
            self._client, repository, "blobs", digest, accept=None, limit=limit, credential=credential, digest=digest
        )

    def _check_time(self, until: float, ref: Reference) -> None:
        if self._clock() > until:
            raise RegistryUnavailable(f"registry {ref.domain}: reading signatures took longer than {self._budget} s")


def fetch(
    client: RegistryClient,
    ref: Reference,
    kind: str,
    identifier: str,
    *,
    accept: str | None,
    limit: int,
    credential: Credential | None = None,
    digest: str | None = None,
) -> bytes | None:
    """GET ``/v2/<name>/<kind>/<identifier>`` (kind: manifests, blobs, referrers) within ``limit`` bytes, with
    the client's own request machinery (hop rules, auth, deadline, error mapping); None for 404. With ``digest``
    the bytes must hash to it. Registry-internal: kept beside its one user rather than in the client's face."""
    credential = effective(credential)
    with client._guarded(ref.domain):
        target = client._target(ref)
        reply = client._request(target, credential, "GET", target.url(kind, identifier), accept, limit)
        if reply.status == 404:
            return None
        if reply.status != 200:
            replies.raise_for_status(reply, target, f"{kind} {identifier}")
        if digest is not None:
            replies.verify(reply, digest, target, f"{kind} {identifier}")
        return bytes(reply.content)  # signature documents: small (bounded by ``limit``), read by sigstore


def _tag_for(digest: str) -> str:
    """cosign's tag for a digest: ``sha256:<hex>`` -> ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)
