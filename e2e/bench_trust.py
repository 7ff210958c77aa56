"""`make bench` (trust): what verifying a signature costs when a new version is pinned, with numbers (never
asserted), each next to the baseline of pinning without verification.

Against the test bed's registry (no referrers API, so the referrers tag schema), through a counting proxy:
- registry requests a new version costs: resolve + labels (the baseline), then what verification adds, for a
  cosign bundle signature, a signature plus an SLSA attestation with provenance Required (only the attestation's
  blob is fetched), and a legacy .sig signature (the bundle look-up finds nothing, then the .sig tag);
  the first digest of a registry also pays one referrers-API probe (404, remembered);
- registry requests a rollback's re-check costs (recorded evidence against the current keys: none by design);
- verification time per digest (finder + verify, warm connections), next to resolve + labels, and the pure
  verify() time of a keyed bundle, a legacy signature, a keyless bundle (sigstore, private chain) and a legacy
  keyless signature (the same chain; cosign v2's offline checks, trust.legacykeyless).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.legacy_chain import legacy_keyless
from tests.sigstore_chain import PrivateSigstore

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import BundleArtifact, Identity, Mode, TrustPolicy, load_public_key, recheck, verify
from apprelease.trust.keyless import verify_keyless
from apprelease.trust.legacykeyless import verify_legacy_keyless
from apprelease.trust.sign import statement
from apprelease.trust.statement import SLSA_PROVENANCE_PREDICATES
from e2e.counting_proxy import CountingProxy
from e2e.signing import Cosign, push_image
from e2e.support import ROOT, load_testbed

SLSA = {
    "buildDefinition": {
        "buildType": "https://apprelease.dev/build/v1",
        "externalParameters": {},
        "resolvedDependencies": [
            {"uri": "git+https://git.example.com/app@refs/tags/v1", "digest": {"gitCommit": "ab" * 20}}
        ],
    },
    "runDetails": {"builder": {"id": "bench"}},
}


def timed(action: Callable[[], object], n: int) -> list[float]:
    values = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        values.append((time.perf_counter() - started) * 1000)
    return values


def summary_ms(metric: str, values: list[float]) -> dict[str, object]:
    return {"metric": metric, "value": round(statistics.median(values), 2), "unit": "ms"}


def main() -> None:
    testbed = load_testbed()
    results: list[dict[str, object]] = []
    proxy = CountingProxy(testbed.registry)
    proxy.start()
    home = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    try:
        cosign = Cosign.ready(testbed, home)
        key = load_public_key("cosign.pub", cosign.public_key.read_bytes())
        path = f"bench/trust-{uuid.uuid4().hex[:6]}"
        images = {name: push_image(testbed.registry, path, name, {"n": name}) for name in ("a", "b", "c", "d")}
        direct = f"{testbed.registry}/{path}"
        cosign.sign(f"{direct}@{images['a']}")
        cosign.sign(f"{direct}@{images['b']}")
        cosign.sign(f"{direct}@{images['c']}")
        cosign.attest(f"{direct}@{images['c']}", SLSA)
        cosign.sign(f"{direct}@{images['d']}", legacy=True)
        counted = parse(f"{proxy.netloc}/{path}")
        client = RegistryClient(RegistrySettings(insecure_registries=[proxy.netloc], cache_ttl_seconds=0))
        finder = ReferrerFinder(client)
        keyed = TrustPolicy(mode=Mode.REQUIRED, keys=(key,))
        provenance = TrustPolicy(mode=Mode.REQUIRED, keys=(key,), provenance_required=True)

        def requests(action: Callable[[], object]) -> int:
            proxy.take()
            action()
            return sum(proxy.take().values())

        def pin(tag: str) -> None:
            resolved = client.resolve(counted.with_tag(tag), use_cache=False)
            client.labels(counted.with_digest(resolved.digest))

        def verified(tag: str, policy: TrustPolicy, *, legacy: bool = False) -> None:
            digest = images[tag]
            wanted = SLSA_PROVENANCE_PREDICATES if policy.provenance_required else None
            found: list[object] = list(finder.bundles(counted, digest, wanted=wanted))
            if legacy:
                found += finder.legacy(counted, digest)
            verify(digest, found, policy, version="v1")  # type: ignore[arg-type]

        baseline = requests(lambda: pin("a"))
        rows = [
            ("bundle signature, first digest of the registry (referrers API probe)", lambda: verified("a", keyed)),
            ("bundle signature", lambda: verified("b", keyed)),
            ("signature + SLSA attestation, provenance Required", lambda: verified("c", provenance)),
            ("legacy .sig signature (bundles looked up first)", lambda: verified("d", keyed, legacy=True)),
        ]
        print(f"registry requests per new version (baseline: resolve + labels = {baseline}):")
        results.append({"metric": "registry requests to pin a new version, unverified", "value": baseline})
        for name, action in rows:
            added = requests(action)
            print(f"  {name}: +{added} ({(baseline + added) / baseline:.2f}x the baseline)")
            results.append({"metric": f"registry requests added by verification: {name}", "value": added})
            results.append(
                {"metric": f"{name} / unverified pin", "value": round((baseline + added) / baseline, 2), "unit": "x"}
            )
        evidence = key.fingerprint
        rollback = requests(lambda: recheck(evidence, keyed, "revision 1"))
        print(f"  rollback re-check of recorded evidence: +{rollback}")
        results.append({"metric": "registry requests added by verification: rollback re-check", "value": rollback})

        # Timings straight to the registry (the counting proxy writes headers and body apart: Nagle's delay), each
        # round with a fresh client, so both sides pay their connection and nothing is served from a cache.
        plain = parse(direct)

        def pin_fresh() -> None:
            with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as fresh:
                resolved = fresh.resolve(plain.with_tag("b"), use_cache=False)
                fresh.labels(plain.with_digest(resolved.digest))

        def verify_fresh() -> None:
            with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as fresh:
                verify(images["b"], ReferrerFinder(fresh).bundles(plain, images["b"]), keyed)

        pin_ms = timed(pin_fresh, 30)
        verify_ms = timed(verify_fresh, 30)
        ratio = statistics.median(verify_ms) / statistics.median(pin_ms)
        print(
            f"verification per digest: p50 {statistics.median(verify_ms):.1f} ms, {ratio:.2f}x resolve + labels "
            f"({statistics.median(pin_ms):.1f} ms)"
        )
        results.append(summary_ms("verification per digest (finder + verify), p50", verify_ms))
        results.append(summary_ms("resolve + labels per digest, p50", pin_ms))
        results.append({"metric": "verification / resolve + labels (p50)", "value": round(ratio, 2), "unit": "x"})

        bundle = finder.bundles(counted, images["b"])
        legacy = finder.legacy(counted, images["d"])
        chain = PrivateSigstore()
        issuer, subject = "https://issuer.example", "https://git.example.com/app/.ci.yml@refs/tags/v1"
        keyless_bundle = [BundleArtifact(chain.bundle(statement(images["b"], direct), issuer, subject), "bench")]
        keyless = TrustPolicy(
            mode=Mode.REQUIRED, identities=(Identity(issuer, subject=subject),), trusted_root=chain.trusted_root()
        )
        verify(images["b"], keyless_bundle, keyless, keyless=verify_keyless)  # sigstore imported and root parsed once
        legacy_keyless_sig = [legacy_keyless(chain, images["d"], issuer, subject)]
        verify(images["d"], legacy_keyless_sig, keyless, legacy_keyless=verify_legacy_keyless)  # the same, once
        pure: list[tuple[str, Callable[[], object]]] = [
            ("keyed bundle", lambda: verify(images["b"], bundle, keyed)),
            ("legacy signature", lambda: verify(images["d"], legacy, keyed)),
            ("keyless bundle (sigstore)", lambda: verify(images["b"], keyless_bundle, keyless, keyless=verify_keyless)),
            (
                "legacy keyless signature",
                lambda: verify(images["d"], legacy_keyless_sig, keyless, legacy_keyless=verify_legacy_keyless),
            ),
        ]
        for label, run in pure:
            values = timed(run, 200 if "keyless" not in label else 50)
            print(f"verify() of a {label}: p50 {statistics.median(values):.3f} ms")
            results.append(
                {"metric": f"verify() of a {label}, p50", "value": round(statistics.median(values), 3), "unit": "ms"}
            )
        client.close()
    finally:
        proxy.stop()
    out = ROOT / ".testbed" / "bench-trust.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
