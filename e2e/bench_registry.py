"""`make bench`, registry part: the registry client's memory with hostile images, and its time under slow ones.

- RSS of a fresh process with the operator's modules whose registry client resolved 20 distinct ordinary
  images, next to 20 with 4 MB manifests of small objects and 20 with 8 MB configs (tests/hostile_rss.py),
  4 at a time as the operator's workers do; as ratios to the ordinary ones.
- Time of a healthy resolution (the test bed's registry, named by host name) while 25 slow registries (each
  answer after SLOW_SECONDS) and 4 names whose lookup never answers are being resolved by the same client,
  next to the same resolution without them.

Numbers only, never asserted (tests/test_registry_memory.py and tests/test_registry_time.py hold the rules).
    .venv/bin/python -m e2e.bench_registry
"""

from __future__ import annotations

import ipaddress
import statistics
import threading
import time
from collections.abc import Callable

from tests.hostile_rss import KINDS, ImageRegistry, images_rss

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistryError, RegistrySettings, Resolver
from apprelease.registry.network import system_lookup

SLOW_REGISTRIES = 25
SLOW_SECONDS = 1.0
BLACKHOLED = [f"blackhole-{i}.invalid:5000" for i in range(4)]
SAMPLES = 20

Result = dict[str, object]


def memory() -> list[Result]:
    results: list[Result] = []
    print("registry client RSS, 20 distinct images, 4 at a time (fresh process with the operator's modules):")
    measured = {kind: images_rss(kind, count=20, workers=4) for kind in KINDS}
    ordinary = measured["ordinary"]
    for kind, rss in measured.items():
        ratio = rss.peak_mib / ordinary.peak_mib
        print(
            f"  {kind:<14} before {rss.before_mib:6.1f} MiB  peak {rss.peak_mib:6.1f} MiB  "
            f"after {rss.after_mib:6.1f} MiB  {ratio:4.2f}x ordinary  failures {len(rss.failures)}"
        )
        results.append(
            {
                "metric": f"registry client peak RSS, 20 {kind} images",
                "value": round(rss.peak_mib, 1),
                "unit": "MiB",
                "ratio_to_ordinary": round(ratio, 2),
            }
        )
    return results


def _lookup(never: threading.Event) -> Callable[[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    def lookup(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if host.startswith("blackhole-"):
            never.wait()
            raise OSError("blackholed")
        return system_lookup(host)

    return lookup


def _healthy_ms(client: RegistryClient, reference: str) -> list[float]:
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        client.resolve(parse(reference), use_cache=False)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def time_under_slow_registries(registry: str, reference_path: str) -> list[Result]:
    """``registry`` is host:port of a healthy registry on loopback; it is named as localhost:port."""
    port = registry.rsplit(":", 1)[1]
    healthy = f"localhost:{port}/{reference_path}"
    slow = [ImageRegistry(delay=SLOW_SECONDS) for _ in range(SLOW_REGISTRIES)]
    never, stop = threading.Event(), threading.Event()
    settings = RegistrySettings(
        insecure_registries=[f"localhost:{port}", *BLACKHOLED, *(s.server.netloc for s in slow)]
    )
    client = RegistryClient(settings, resolver=Resolver(_lookup(never)))
    try:
        _healthy_ms(client, healthy)  # warm: connections, lookups
        quiet = _healthy_ms(client, healthy)

        def keep_resolving(name: str) -> None:
            number = 0
            while not stop.is_set():
                ref = parse(f"{name}/ordinary/img{number % 20}:v1")
                number += 1
                try:
                    resolved = client.resolve(ref, use_cache=False)
                    client.platform_labels(ref.with_digest(resolved.digest))
                except RegistryError:
                    pass

        names = [s.server.netloc for s in slow] + BLACKHOLED
        threads = [threading.Thread(target=keep_resolving, args=(name,), daemon=True) for name in names]
        for thread in threads:
            thread.start()
        time.sleep(2 * SLOW_SECONDS)  # every slow registry has a request in flight, every lookup hangs
        loaded = _healthy_ms(client, healthy)
    finally:
        stop.set()
        never.set()
        for server in slow:
            server.close()
        client.close()
    quiet_p50, loaded_p50 = statistics.median(quiet), statistics.median(loaded)
    ratio = loaded_p50 / quiet_p50
    print(f"healthy resolution (HEAD, uncached) with {SLOW_REGISTRIES} slow registries and 4 blackholed names:")
    print(
        f"  alone p50 {quiet_p50:7.1f} ms   under load p50 {loaded_p50:7.1f} ms (max {max(loaded):.1f})  {ratio:5.2f}x"
    )
    return [
        {"metric": "healthy resolution, alone", "p50": round(quiet_p50, 1), "max": round(max(quiet), 1), "unit": "ms"},
        {
            "metric": f"healthy resolution, {SLOW_REGISTRIES} slow registries + 4 blackholed names",
            "p50": round(loaded_p50, 1),
            "max": round(max(loaded), 1),
            "unit": "ms",
            "ratio_to_alone": round(ratio, 2),
        },
    ]


def measure(registry: str, reference_path: str) -> list[Result]:
    return memory() + time_under_slow_registries(registry, reference_path)


def main() -> None:
    """Standalone: the healthy registry is an ordinary image registry on loopback (no test bed needed)."""
    healthy = ImageRegistry()
    try:
        measure(healthy.server.netloc, "ordinary/img1:v1")
    finally:
        healthy.close()


if __name__ == "__main__":
    main()
