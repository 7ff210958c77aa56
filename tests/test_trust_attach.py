"""`apprelease build --sign` end to end against an in-memory registry: what it attaches, the operator's finder
reads and the trust wing verifies (signature and provenance); build once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import httpx
import pytest

from apprelease.cli.buildonce import VersionTaken, existing_release
from apprelease.cli.signing import sign_release
from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.push import Pusher
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import Mode, ProvenanceMismatch, TrustPolicy, verify

from .trustkit import new_key, trusted

REPO = parse("registry.example.com/shop/web")
COMMIT = "0f3c2e1" + "a" * 33
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@dataclass
class WritableRegistry:
    """Blobs, manifests and tags in memory; uploads are monolithic POST + PUT. No referrers API."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    def image(self, tag: str, commit: str) -> str:
        config = json.dumps({"config": {"Labels": {"org.opencontainers.image.revision": commit}}}).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": "x", "digest": sha(config), "size": 1},
                "layers": [],
            }
        ).encode()
        self.manifests[sha(manifest)] = (manifest, MANIFEST)
        self.tags[tag] = sha(manifest)
        return sha(manifest)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        kind, _, ident = request.url.path.removeprefix("/v2/shop/web/").partition("/")
        if request.method in ("PUT", "POST"):
            self.writes.append(f"{request.method} {kind}")
        if kind == "blobs" and ident == "uploads/" and request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/shop/web/blobs/uploads/1"})
        if kind == "blobs" and request.method == "PUT":
            self.blobs[request.url.params["digest"]] = request.content
            return httpx.Response(201)
        if kind == "blobs":
            content = self.blobs.get(ident)
            return httpx.Response(200, content=content) if content is not None else httpx.Response(404)
        if kind == "manifests" and request.method == "PUT":
            media_type = request.headers["content-type"]
            self.manifests[sha(request.content)] = (request.content, media_type)
            if not ident.startswith("sha256:"):
                self.tags[ident] = sha(request.content)
            return httpx.Response(201)
        if kind == "manifests":
            found = self.manifests.get(self.tags.get(ident, ident))
            if found is None:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            headers = {"Content-Type": found[1], "Docker-Content-Digest": sha(found[0])}
            return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else found[0])
        return httpx.Response(404)


def client(registry: WritableRegistry) -> RegistryClient:
    return RegistryClient(
        RegistrySettings(max_attempts=1), transport=httpx.MockTransport(registry), sleep=lambda _: None
    )


def test_what_build_sign_attaches_verifies_with_signature_and_provenance() -> None:
    registry = WritableRegistry()
    digest = registry.image("v1.4.2", COMMIT)
    key = new_key()
    with Pusher(REPO, None, transport=httpx.MockTransport(registry)) as pusher:
        signed = sign_release(
            pusher,
            key,
            repository=REPO.repository,
            digest=digest,
            source="https://git.example.com/shop/web",
            tag="v1.4.2",
            commit=COMMIT,
        )
    assert signed.signature.listed_by == signed.provenance.listed_by == "tag"
    assert signed.fingerprint == trusted(key).fingerprint
    artifacts = ReferrerFinder(client(registry)).bundles(REPO, digest)
    assert len(artifacts) == 2
    policy = TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(key),), provenance_required=True)
    result = verify(digest, artifacts, policy, version="v1.4.2")
    assert (result.evidence, result.tag, result.commit) == (signed.fingerprint, "v1.4.2", COMMIT)
    with pytest.raises(ProvenanceMismatch):
        verify(digest, artifacts, policy, version="v1.4.3")


def test_signing_twice_appends_to_the_referrers_tag() -> None:
    registry = WritableRegistry()
    digest = registry.image("v1", COMMIT)
    with Pusher(REPO, None, transport=httpx.MockTransport(registry)) as pusher:
        for _ in range(2):
            sign_release(
                pusher, new_key(), repository=REPO.repository, digest=digest, source="s", tag="v1", commit=COMMIT
            )
    index = json.loads(registry.manifests[registry.tags[digest.replace(":", "-")]][0])
    assert len(index["manifests"]) == 4


def test_build_once_free_tag_same_commit_and_other_content() -> None:
    registry = WritableRegistry()
    assert existing_release(client(registry), REPO, "v1.4.2", COMMIT, None) is None
    digest = registry.image("v1.4.2", COMMIT)
    assert existing_release(client(registry), REPO, "v1.4.2", COMMIT, None) == digest
    with pytest.raises(VersionTaken, match=f"already holds {digest}, built from commit {COMMIT}"):
        existing_release(client(registry), REPO, "v1.4.2", "b" * 40, None)
    registry.image("v2", "not-a-commit")
    with pytest.raises(VersionTaken, match="no known commit"):
        existing_release(client(registry), REPO, "v2", COMMIT, None)
