"""Provenance over every platform child of an index, and manifests of media types not asked for (issue 15).

On the client before issue 15, provenance read linux/amd64's labels only (the other platforms ran children
never checked), and a schema 1 tag was pinned. The client-level tests use a hostile registry on loopback;
the reconciler-level ones the reconciler's in-memory world.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from apprelease.core.conditions import Reason
from apprelease.core.limits import MAX_PLATFORMS
from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings, UnsupportedManifest
from tests.conftest import OCI_MANIFEST, World, assert_stalled
from tests.hostile import Request, Server, respond, sha

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
VERSION = "org.opencontainers.image.version"
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": "sha256:" + "0" * 64}


class Store:
    """Manifests and blobs by digest, tags by name: what both the loopback server and the world serve."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}

    def put(self, content: bytes, media_type: str) -> str:
        self.blobs[sha(content)] = (content, media_type)
        return sha(content)

    def image(self, labels: dict[str, str] | None) -> str:
        config = json.dumps({"architecture": "x", "os": "linux", "config": {"Labels": labels}}).encode()
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": self.put(config, "")}}
        return self.put(json.dumps(manifest).encode(), OCI_MANIFEST)

    def index(self, tag: str, children: list[dict[str, Any]]) -> str:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        self.tags[tag] = self.put(json.dumps(document, indent=1).encode(), OCI_INDEX)
        return self.tags[tag]


def child(digest: str, platform: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    os, arch = platform.split("/")
    entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "platform": {"os": os, "architecture": arch}}
    if annotations:
        entry["annotations"] = annotations
    return entry


def hostile_index(store: Store, arm64_version: str | None, tag: str = "v1") -> str:
    """amd64 says v1; arm64 says ``arm64_version``; attestation manifests first, in the middle and last
    (their configs carry no labels: were they read as platforms, Required would fail)."""
    attest = store.image(None)
    return store.index(
        tag,
        [
            child(attest, "unknown/unknown", ATTESTATION),
            child(store.image({VERSION: "v1"}), "linux/amd64"),
            child(attest, "unknown/unknown"),
            child(store.image({VERSION: arm64_version} if arm64_version else {}), "linux/arm64"),
            child(attest, "linux/amd64", ATTESTATION),  # marked by annotation only
        ],
    )


# -- the client, against a hostile registry on loopback --------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[Store, Server]]:
    store = Store()

    def handler(conn: socket.socket, request: Request) -> None:
        ident = request.path.rsplit("/", 1)[-1]
        digest = store.tags.get(ident, ident)
        if digest not in store.blobs:
            respond(conn, 404)
            return
        content, media_type = store.blobs[digest]
        headers = {"Content-Type": media_type or "application/octet-stream", "Docker-Content-Digest": digest}
        respond(conn, 200, headers, b"" if request.method == "HEAD" else content)

    server = Server(handler)
    yield store, server
    server.close()


def test_every_platform_child_is_read_and_attestations_are_skipped(served: tuple[Store, Server]) -> None:
    store, server = served
    digest = hostile_index(store, "v0.9")
    with RegistryClient(RegistrySettings(insecure_registries=[server.netloc])) as client:
        found = client.platform_labels(parse(f"{server.netloc}/shop/web@{digest}"))
        assert client.labels(parse(f"{server.netloc}/shop/web@{digest}")) == {VERSION: "v1"}  # amd64, as before
    assert [(p.platform, p.labels) for p in found] == [
        ("linux/amd64", {VERSION: "v1"}),
        ("linux/arm64", {VERSION: "v0.9"}),
    ]


def test_an_index_with_more_platforms_than_the_limit_is_refused_before_reading_them(
    served: tuple[Store, Server],
) -> None:
    store, server = served
    image = store.image({VERSION: "v1"})
    digest = store.index("v1", [child(image, f"linux/arch{i}") for i in range(MAX_PLATFORMS + 1)])
    with RegistryClient(RegistrySettings(insecure_registries=[server.netloc])) as client:
        with pytest.raises(UnsupportedManifest, match=f"lists {MAX_PLATFORMS + 1} platforms"):
            client.platform_labels(parse(f"{server.netloc}/shop/web@{digest}"))
    assert [r.path.rsplit("/", 1)[-1] for r in server.requests] == [digest]


# -- the reconciler ----------------------------------------------------------------------------------------


def serve_from(world: World, store: Store) -> None:
    world.registry.blobs.update(store.blobs)
    world.registry.tags.update(store.tags)


@pytest.mark.parametrize(
    ("provenance", "arm64_version", "deploys"),
    [
        ("Required", "v0.9", False),  # only the arm64 child disagrees
        ("IfPresent", "v0.9", False),
        ("Required", None, False),  # the arm64 child carries no version label
        ("IfPresent", None, True),
        ("Required", "v1", True),  # every platform agrees; the attestations are not platforms
        ("Disabled", "v0.9", True),
    ],
)
def test_provenance_is_checked_on_every_platform_child(
    world: World, provenance: str, arm64_version: str | None, deploys: bool
) -> None:
    store = Store()
    hostile_index(store, arm64_version)
    serve_from(world, store)
    world.create("v1", provenance=provenance)
    world.reconcile()
    assert (world.cluster.patched() != []) == deploys
    if not deploys:
        assert_stalled(world, Reason.PROVENANCE_MISMATCH)
        [condition] = [c for c in world.status().conditions if c.type == "Stalled"]
        assert "linux/arm64" in condition.message


def _schema1() -> bytes:
    return json.dumps({"schemaVersion": 1, "name": "shop/web", "tag": "v1", "fsLayers": [], "history": []}).encode()


@pytest.mark.parametrize("provenance", ["Disabled", "IfPresent", "Required"])
def test_a_schema_1_tag_is_stalled_unsupported_manifest_and_nothing_is_deployed(world: World, provenance: str) -> None:
    store = Store()
    store.tags["v1"] = store.put(_schema1(), SCHEMA1)
    serve_from(world, store)
    world.create("v1", provenance=provenance)
    world.reconcile()
    assert_stalled(world, Reason.UNSUPPORTED_MANIFEST)
    [condition] = [c for c in world.status().conditions if c.type == "Stalled"]
    assert SCHEMA1 in condition.message and "schema 1" in condition.message
    assert world.cluster.patched() == []
    assert world.status().revision == 0
    assert [e.reason for e in world.events()] == [Reason.UNSUPPORTED_MANIFEST]
