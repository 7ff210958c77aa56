"""Registries as they are in the field (issue 15), against the test bed's real registry behind a small proxy.

The proxy (e2e/counting_proxy.py) forwards to the real distribution registry, except what a field registry
does differently: HEAD for a manifest answered 404 while GET serves it (Sonatype Nexus and others), or a tag
whose only manifest is a Docker schema 1 document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings, TagNotFound, UnsupportedManifest
from e2e.counting_proxy import CountingProxy
from e2e.images import Pushed, bake, skopeo_digest
from e2e.support import Testbed

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _schema1_document() -> bytes:
    return json.dumps(
        {
            "schemaVersion": 1,
            "name": "e2e/field",
            "tag": "old",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
            "history": [{"v1Compatibility": "{}"}],
            "signatures": [{"header": {"alg": "ES256"}, "signature": "x", "protected": "e30"}],
        },
        indent=3,
    ).encode()


def _field(method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
    if "/manifests/old" in path:  # a tag whose only manifest is schema 1
        return 200, {"Content-Type": SCHEMA1}, _schema1_document()
    if method == "HEAD" and "/manifests/" in path:
        return 404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
    return None


@pytest.fixture
def proxy(testbed: Testbed) -> Iterator[CountingProxy]:
    started = CountingProxy(testbed.registry, answer=_field)
    started.start()
    yield started
    started.stop()


@pytest.fixture
def pushed(testbed: Testbed, app_repo: tuple[Path, dict[str, str]], namespace: str) -> tuple[str, Pushed]:
    path = f"e2e/field-{namespace}"
    return path, bake(app_repo, f"{testbed.registry}/{path}", "v1.0.0")


def test_a_head_404_falls_back_to_one_get_of_the_real_registry(
    testbed: Testbed, proxy: CountingProxy, pushed: tuple[str, Pushed]
) -> None:
    path, image = pushed
    assert skopeo_digest(f"{testbed.registry}/{path}:v1.0.0", tls_verify=False) == image.digest  # independent
    with RegistryClient(RegistrySettings(insecure_registries=[proxy.netloc])) as registry:
        ref = parse(f"{proxy.netloc}/{path}:v1.0.0")
        resolved = registry.resolve(ref, use_cache=False)
        assert resolved.digest == image.digest
        assert proxy.take() == {"HEAD manifests": 1, "GET manifests": 1}
        labels = registry.platform_labels(ref.with_digest(resolved.digest))
        assert [p.labels["org.opencontainers.image.version"] for p in labels] == ["v1.0.0"]
        assert proxy.take() == {"GET blobs": 1}  # the manifest read by GET was kept by its digest
        with pytest.raises(TagNotFound, match="not found"):
            registry.resolve(parse(f"{proxy.netloc}/{path}:v9.9.9"), use_cache=False)
        assert proxy.take() == {"HEAD manifests": 1, "GET manifests": 1}


def test_a_schema_1_tag_is_refused_naming_its_media_type(proxy: CountingProxy, pushed: tuple[str, Pushed]) -> None:
    path, _ = pushed
    with RegistryClient(RegistrySettings(insecure_registries=[proxy.netloc])) as registry:
        with pytest.raises(UnsupportedManifest) as refused:
            registry.resolve(parse(f"{proxy.netloc}/{path}:old"), use_cache=False)
    assert SCHEMA1 in str(refused.value) and "schema 1" in str(refused.value)
