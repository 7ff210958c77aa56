"""RSS of a fresh process: under each hostile-registry case, and resolving many distinct hostile images.

    .venv/bin/python tests/hostile_rss.py

Each case of tests/test_registry_hostile.py runs in its own interpreter, with tracemalloc off, and prints the
process's resident memory before the case and at its peak (ru_maxrss).

``images_rss`` runs the operator's registry client in a fresh interpreter (with the operator's modules
loaded, so its baseline is the operator's) against an ``ImageRegistry`` served from this process: distinct
images whose manifests or configs are as big as the client's limits allow, made of small JSON objects (the
shape that costs the most memory once parsed). tests/test_registry_memory.py and `make bench` use it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.hostile import OCI_MANIFEST, Request, Server, respond

MiB = 1024 * 1024
# The glibc allocator settings the operator's image sets (operator/Dockerfile, why there; e2e/test_image.py
# checks the built image has them): processes that measure the operator's memory run with the same.
IMAGE_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "262144"}
KINDS = ("ordinary", "fat-manifests", "fat-configs")

HERE = Path(__file__).resolve().parent

CASES: list[tuple[str, list[object]]] = [
    ("test_gzip_of_gzip_bomb_is_cut_at_the_limit_without_inflating_it", []),
    ("test_a_config_of_millions_of_empty_lists_is_refused_before_parsing", []),
    ("test_deeply_nested_json_is_a_registry_error_not_a_recursion_error", ["manifest"]),
    ("test_deeply_nested_json_is_a_registry_error_not_a_recursion_error", ["config"]),
    ("test_a_deeply_nested_token_reply_is_a_registry_error", []),
    ("test_a_registry_sending_one_byte_at_a_time_is_cut_at_the_deadline", ["status line"]),
    ("test_a_registry_sending_one_byte_at_a_time_is_cut_at_the_deadline", ["body"]),
    ("test_the_deadline_covers_the_token_round_trip", []),
    ("test_redirects_are_checked_hop_by_hop", ["http://169.254.169.254/latest/meta-data/"]),
    ("test_a_token_realm_redirected_to_a_metadata_address_is_refused", []),
    ("test_a_refresh_token_is_never_re_sent_to_another_host", []),
    ("test_no_cookie_earned_by_one_tenant_is_replayed_for_another", []),
    ("test_a_closed_port_an_open_one_and_a_non_registry_look_the_same", []),
]

_CHILD = """
import contextlib, json, resource, sys, time
sys.path[:0] = [{root!r}]
import tests.test_registry_hostile as cases
from tests.hostile import gzip_bomb
gzip_bomb(256 * 1024 * 1024)  # built before the baseline: it is the test's input, not the client's cost
@contextlib.contextmanager
def untraced():
    yield [0]
cases.peak_memory = untraced
servers = []
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    getattr(cases, {name!r})(servers, *{params!r})
    outcome = "passed"
except BaseException as exc:
    outcome = "failed: " + type(exc).__name__
elapsed = time.monotonic() - started
for server in servers:
    server.close()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"before_mib": before / 1024, "peak_mib": peak / 1024, "seconds": elapsed, "outcome": outcome}}))
"""


def _sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _filler(target_bytes: int, seed: int, key: str) -> list[dict[str, object]]:
    """Small objects (about 200 bytes each) up to ``target_bytes`` of JSON: under the client's item bound."""
    one = {"digest": "sha256:" + hashlib.sha256(f"{seed}".encode()).hexdigest(), "size": 1234, key: "x" * 100}
    per = len(json.dumps(one)) + 2
    return [{**one, "size": i} for i in range(target_bytes // per)]


@functools.lru_cache(maxsize=8)
def image(kind: str, number: int) -> tuple[bytes, bytes]:
    """(manifest, config) of image ``number``: distinct digests for every number."""
    labels = {"org.opencontainers.image.version": "v1", "org.opencontainers.image.revision": f"{number:040x}"}
    config_doc: dict[str, object] = {"architecture": "amd64", "os": "linux", "config": {"Labels": labels}}
    if kind == "fat-configs":
        config_doc["history"] = _filler(8 * MiB - 64 * 1024, number, "created_by")
    config = json.dumps(config_doc, separators=(",", ":")).encode()
    manifest_doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _sha(config),
            "size": len(config),
        },
        "layers": _filler(4 * MiB - 64 * 1024, number, "mediaType") if kind == "fat-manifests" else [],
        "annotations": {"number": str(number)},
    }
    return json.dumps(manifest_doc, separators=(",", ":")).encode(), config


@dataclass
class ImageRegistry:
    """A registry on loopback serving ``image(kind, n)`` as ``<kind>/img<n>:v1``; ``delay`` seconds before
    every answer (a slow registry)."""

    delay: float = 0.0

    def __post_init__(self) -> None:
        self.server = Server(self._handle)

    def _handle(self, conn: socket.socket, request: Request) -> None:
        if self.delay:
            time.sleep(self.delay)
        parts = request.path.split("/")  # /v2/<kind>/img<n>/<manifests|blobs>/<ref>
        try:
            kind, number, what, ref = parts[2], int(parts[3].removeprefix("img")), parts[4], parts[5]
        except (IndexError, ValueError):
            respond(conn, 404)
            return
        manifest, config = image(kind, number)
        if what == "manifests" and ref in ("v1", _sha(manifest)):
            headers = {
                "Content-Type": OCI_MANIFEST,
                "Docker-Content-Digest": _sha(manifest),
                "Content-Length": str(len(manifest)),
            }
            respond(conn, 200, headers, b"" if request.method == "HEAD" else manifest)
        elif what == "blobs" and ref == _sha(config):
            respond(conn, 200, {"Content-Type": "application/octet-stream"}, config)
        else:
            respond(conn, 404)

    def close(self) -> None:
        self.server.close()


_IMAGES_CHILD = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
sys.path[:0] = [{root!r}]
import apprelease.controller.runtime  # the operator's modules: its baseline, not a bare interpreter's
from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistryError, RegistrySettings

def status(field):  # VmRSS now, VmHWM the peak: unlike ru_maxrss, not inherited from the parent across exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))

def rss():
    return status("VmRSS")

before = rss()
client = RegistryClient(RegistrySettings(insecure_registries=[{netloc!r}]))
failures = []

def one(ref_text):
    ref = parse(ref_text)
    try:  # what the reconciler does for a new version: resolve the tag, read the image's labels
        resolved = client.resolve(ref)
        client.labels(ref.with_digest(resolved.digest))
    except RegistryError as exc:
        failures.append(str(exc))

with ThreadPoolExecutor({workers}) as pool:  # the operator's workers
    list(pool.map(one, {refs!r}))
print(json.dumps({{"before_mib": before, "after_mib": rss(),
                   "peak_mib": status("VmHWM"), "failures": failures}}))
"""


@dataclass(frozen=True)
class Rss:
    before_mib: float  # the operator's modules loaded, no image resolved
    after_mib: float  # after every image, caches full
    peak_mib: float  # at the worst moment (VmHWM)
    failures: list[str]


def images_rss(kind: str, count: int = 20, workers: int = 4) -> Rss:
    """RSS of a fresh process whose registry client resolved ``count`` distinct images of ``kind`` (and read
    their labels), ``workers`` at a time."""
    registry = ImageRegistry()
    try:
        netloc = registry.server.netloc
        refs = [f"{netloc}/{kind}/img{n}:v1" for n in range(count)]
        code = _IMAGES_CHILD.format(root=str(HERE.parent), netloc=netloc, refs=refs, workers=workers)
        # The allocator settings of the operator's image (IMAGE_MALLOC_ENV): without MALLOC_ARENA_MAX glibc
        # gives each of 32 threads an arena that keeps its own peak (330 MiB for 32 fat configs).
        env = {**os.environ, **IMAGE_MALLOC_ENV}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    finally:
        registry.close()
    try:
        line = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"the measuring process failed: {result.stderr.strip()[-2000:]}") from None
    return Rss(line["before_mib"], line["after_mib"], line["peak_mib"], line["failures"])


def main() -> None:
    print(f"{'case':<84} {'RSS before':>10} {'peak':>8} {'secs':>5}  outcome")
    for name, params in CASES:
        code = _CHILD.format(here=str(HERE), root=str(HERE.parent), name=name, params=params)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        with contextlib.suppress(ValueError, IndexError):
            line = json.loads(result.stdout.strip().splitlines()[-1])
            label = name.removeprefix("test_") + (f"[{params[0]}]" if params else "")
            print(
                f"{label[:84]:<84} {line['before_mib']:>8.1f}Mi {line['peak_mib']:>6.1f}Mi "
                f"{line['seconds']:>5.1f}  {line['outcome']}"
            )
            continue
        print(f"{name}: no result ({result.stderr.strip()[-300:]})")
    print(f"\n{'20 distinct images, 4 workers':<40} {'before':>8} {'after':>8} {'peak':>8}  failures")
    for kind in KINDS:
        rss = images_rss(kind)
        print(
            f"{kind:<40} {rss.before_mib:>6.1f}Mi {rss.after_mib:>6.1f}Mi {rss.peak_mib:>6.1f}Mi  {len(rss.failures)}"
        )


if __name__ == "__main__":
    main()
