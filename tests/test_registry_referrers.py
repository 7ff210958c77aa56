"""Finding cosign's signatures in a registry: referrers API, the referrers tag, the legacy .sig tag; bounded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import httpx
import pytest

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.referrers import MAX_REFERRERS, ReferrerFinder
from apprelease.trust.bundle import MAX_BUNDLE_BYTES

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE = parse("registry.example.com/shop/web")
DIGEST = "sha256:" + "c" * 64


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@dataclass
class Registry:
    """Serves manifests and blobs by digest or tag; with ``referrers_api`` the OCI 1.1 listing too."""

    referrers_api: bool = False
    content: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    listing: list[dict[str, object]] = field(default_factory=list)

    def put(self, content: bytes, media_type: str) -> str:
        self.content[sha(content)] = (content, media_type)
        return sha(content)

    def sign(
        self,
        bundle: bytes,
        subject: str = DIGEST,
        predicate: str = "https://sigstore.dev/cosign/sign/v1",
        declared: int | None = None,
    ) -> str:
        layer = self.put(bundle, BUNDLE)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "artifactType": BUNDLE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
                "layers": [{"mediaType": BUNDLE, "digest": layer, "size": declared or len(bundle)}],
                "subject": {"mediaType": MANIFEST, "digest": subject, "size": 100},
                "annotations": {"dev.sigstore.bundle.predicateType": predicate},
            }
        ).encode()
        digest = self.put(manifest, MANIFEST)
        self.listing.append({"mediaType": MANIFEST, "digest": digest, "size": len(manifest), "artifactType": BUNDLE})
        index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": self.listing}).encode()
        self.tags[DIGEST.replace(":", "-")] = self.put(index, INDEX)
        return digest

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        kind, _, ident = path.removeprefix("/v2/shop/web/").partition("/")
        if kind == "referrers":
            if not self.referrers_api:
                return httpx.Response(404)
            body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": self.listing}).encode()
            return httpx.Response(200, headers={"Content-Type": INDEX}, content=body)
        found = self.content.get(self.tags.get(ident, ident))
        if found is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        return httpx.Response(200, headers={"Content-Type": found[1]}, content=found[0])


def finder(registry: Registry) -> ReferrerFinder:
    client = RegistryClient(
        RegistrySettings(max_attempts=1), transport=httpx.MockTransport(registry), sleep=lambda _: None
    )
    return ReferrerFinder(client)


def test_referrers_tag_is_used_where_the_api_is_missing_and_the_404_is_remembered() -> None:
    registry = Registry()
    registry.sign(b'{"bundle": 1}')
    find = finder(registry)
    assert [a.content for a in find.bundles(IMAGE, DIGEST)] == [b'{"bundle": 1}']
    assert len(registry.paths) == 4  # referrers API (404), referrers tag, referrer manifest, bundle blob
    registry.paths.clear()
    find.bundles(IMAGE, DIGEST)
    assert not any("/referrers/" in p for p in registry.paths) and len(registry.paths) == 3


def test_the_referrers_api_is_used_where_it_exists() -> None:
    registry = Registry(referrers_api=True)
    registry.sign(b'{"bundle": 2}')
    assert [a.content for a in finder(registry).bundles(IMAGE, DIGEST)] == [b'{"bundle": 2}']
    assert len(registry.paths) == 3 and "/referrers/" in registry.paths[0]


def test_no_signature_at_all_is_an_empty_list() -> None:
    registry = Registry()
    assert finder(registry).bundles(IMAGE, DIGEST) == []
    assert finder(registry).legacy(IMAGE, DIGEST) == []


def test_a_referrer_of_another_subject_and_unwanted_predicates_are_not_followed() -> None:
    registry = Registry()
    registry.sign(b'{"other": 1}', subject="sha256:" + "d" * 64)
    registry.sign(b'{"sbom": 1}', predicate="https://spdx.dev/Document")
    registry.sign(b'{"slsa": 1}', predicate="https://slsa.dev/provenance/v1")
    found = finder(registry).bundles(IMAGE, DIGEST, wanted=frozenset({"https://slsa.dev/provenance/v1"}))
    assert [a.content for a in found] == [b'{"slsa": 1}']
    assert sum(1 for p in registry.paths if "/blobs/" in p) == 1


def test_referrers_are_bounded_in_count_newest_first_kept() -> None:
    registry = Registry()
    for n in range(MAX_REFERRERS + 5):
        registry.sign(json.dumps({"n": n}).encode())
    found = finder(registry).bundles(IMAGE, DIGEST)
    assert len(found) == MAX_REFERRERS
    assert json.loads(found[-1].content) == {"n": MAX_REFERRERS + 4}


def test_an_oversized_bundle_is_not_fetched() -> None:
    registry = Registry()
    registry.sign(b"{}", declared=MAX_BUNDLE_BYTES + 1)
    (artifact,) = finder(registry).bundles(IMAGE, DIGEST)
    assert artifact.too_large
    assert not any("/blobs/" in p for p in registry.paths)


def test_a_bundle_blob_that_does_not_hash_to_its_digest_is_refused() -> None:
    registry = Registry()
    registry.sign(b'{"bundle": 1}')
    layer = sha(b'{"bundle": 1}')
    registry.content[layer] = (b'{"bundle": 2}', BUNDLE)
    with pytest.raises(Exception, match="digest verification failed"):
        finder(registry).bundles(IMAGE, DIGEST)


def test_legacy_sig_tag_layers_with_signatures() -> None:
    registry = Registry()
    payload = b'{"critical": {}}'
    layer = registry.put(payload, "application/vnd.dev.cosign.simplesigning.v1+json")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(b"{}"), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": layer,
                    "size": len(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": "MEUC"},
                },
                {"mediaType": "application/octet-stream", "digest": layer, "size": 1},
            ],
        }
    ).encode()
    registry.tags[DIGEST.replace(":", "-") + ".sig"] = registry.put(manifest, MANIFEST)
    (found,) = finder(registry).legacy(IMAGE, DIGEST)
    assert (found.payload, found.signature, found.certificate) == (payload, "MEUC", None)


def test_legacy_keyless_annotations_are_passed_on() -> None:
    registry = Registry()
    payload = b'{"critical": {}}'
    layer = registry.put(payload, "application/vnd.dev.cosign.simplesigning.v1+json")
    notes = {
        "dev.cosignproject.cosign/signature": "MEUC",
        "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----leaf",
        "dev.sigstore.cosign/chain": "-----BEGIN CERTIFICATE-----root",
        "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp": "MEUC"}',
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(b"{}"), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": layer,
                    "size": len(payload),
                    "annotations": notes,
                }
            ],
        }
    ).encode()
    registry.tags[DIGEST.replace(":", "-") + ".sig"] = registry.put(manifest, MANIFEST)
    (found,) = finder(registry).legacy(IMAGE, DIGEST)
    assert (found.certificate, found.chain, found.rekor_bundle) == (
        notes["dev.sigstore.cosign/certificate"],
        notes["dev.sigstore.cosign/chain"],
        notes["dev.sigstore.cosign/bundle"],
    )
