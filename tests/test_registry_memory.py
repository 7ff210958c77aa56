"""Memory behind the byte limits (issue 15): what the registry client keeps, and what it costs to get it.

Before issue 15 the digest cache counted raw bytes but kept parsed documents about 6.5 times bigger, and
parsing a manifest of small objects built them all: a process resolving 20 distinct images with 4 MB
manifests stayed at 574 MiB. Here a fresh interpreter with the operator's modules loaded resolves 32
distinct hostile images of each kind from a registry on loopback (tests/hostile_rss.py), as many at once as
the operator has workers, with the allocator settings of the operator's image, and must stay under 128 MiB.

The budget: about 71 MiB is the operator's modules, and the fetch slots let 4 bodies of up to 8 MiB be read
at once. With each body read into one buffer and glibc's mmap threshold fixed, 32 fat configs peaked at
100-110 MiB (20 runs, also with both CPUs busy); bodies joined from pieces under the dynamic threshold peaked at
134-150 MiB (over this budget), and with either fix alone at 116-146 MiB. The figures are glibc's (the
image's Debian base; the settings are IMAGE_MALLOC_ENV).
"""

from __future__ import annotations

import httpx
import pytest

from apprelease.controller.settings import OperatorSettings
from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.caches import Cache
from tests.hostile import sha
from tests.hostile_rss import image, images_rss

BUDGET_MIB = 128


@pytest.mark.parametrize("kind", ["fat-manifests", "fat-configs"])
def test_distinct_hostile_images_at_the_workers_concurrency_keep_the_operator_under_its_budget(kind: str) -> None:
    # As many at once as the operator has workers (32 by default): the fetch slots, not the workers, bound
    # how many such documents are in memory together (registry/slots.py).
    workers = OperatorSettings.model_fields["workers"].default
    rss = images_rss(kind, count=workers, workers=workers)
    assert rss.failures == []  # every image is under every limit: resolved and read, not refused
    assert rss.peak_mib < BUDGET_MIB, rss


def test_what_the_digest_cache_holds_is_what_later_steps_read() -> None:
    manifest, config = image("fat-configs", 7)
    fat_manifest, small_config = image("fat-manifests", 7)
    blobs = {sha(config): config, sha(small_config): small_config}

    def registry(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            return httpx.Response(200, content=blobs[request.url.path.rsplit("/", 1)[-1]])
        body = fat_manifest if "/fat/" in request.url.path else manifest
        oci = "application/vnd.oci.image.manifest.v1+json"
        return httpx.Response(200, headers={"Content-Type": oci}, content=b"" if request.method == "HEAD" else body)

    client = RegistryClient(RegistrySettings(), transport=httpx.MockTransport(registry))
    for path in ("shop/web", "shop/fat"):
        assert client.labels(parse(f"registry.example.com/{path}:v1"))["org.opencontainers.image.version"] == "v1"
    held = client._content.size  # noqa: SLF001 - the cache's own accounting is what is under test
    assert 0 < held < 4096, held  # digests, a media type and two labels: not 4 MB manifests, not 8 MB configs


def test_the_cache_is_bounded_by_what_entries_cost() -> None:
    cache: Cache[str, bytes] = Cache(1000, getsizeof=len)
    for name in "abcdef":
        cache.put(name, b"x" * 300)
    assert len(cache) == 3 and cache.size == 900
    assert cache.get("a") is None and cache.get("f") == b"x" * 300  # least recently used went first
    cache.put("huge", b"x" * 1001)  # bigger than the whole cache: not kept, nothing else evicted
    assert cache.get("huge") is None and len(cache) == 3
