"""The operator verifies before pinning, on the test bed: cosign signs (offline, keyed), the operator reads the
signatures through a counting proxy (the registry has no referrers API: the sha256-<hex> tag), and a rollback
re-checks the recorded evidence without any registry request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apprelease.trust import load_public_key
from e2e.counting_proxy import CountingProxy
from e2e.releases import (
    apply,
    container_images,
    deployment_manifest,
    get_release,
    patch_release,
    posted_events,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.signing import Cosign, attach_bundle, bundles_of, push_image, rewrite_subject
from e2e.support import ROOT, Operator, Testbed

pytestmark = pytest.mark.e2e
COMMIT = "0f3c2e1" + "c" * 33


@pytest.fixture(scope="module")
def proxy(testbed: Testbed) -> Iterator[CountingProxy]:
    counting = CountingProxy(testbed.registry)
    counting.start()
    yield counting
    counting.stop()


@pytest.fixture(scope="module")
def trust_operator(testbed: Testbed, operator: Operator, proxy: CountingProxy) -> Iterator[Operator]:
    """The operator, reaching the registry through the counting proxy; no periodic tag check during a test."""
    operator.stop()
    own = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "operator-trust.log",
        extra_env={
            "APPRELEASE_INSECURE_REGISTRIES": f"{testbed.registry},{proxy.netloc}",
            "APPRELEASE_ALLOWED_REGISTRIES": f"{testbed.registry},{proxy.netloc}",
            "APPRELEASE_RESYNC_SECONDS": "1800",
        },
    )
    own.start()
    yield own
    own.stop()
    operator.start()


class Bed:
    """A namespace with a keys Secret, an opted-in Deployment and a repository (pushed direct, named via the proxy)."""

    def __init__(self, testbed: Testbed, proxy: CountingProxy, namespace: str, home: Path) -> None:
        self.testbed, self.namespace = testbed, namespace
        self.path = f"e2e/trust-op-{uuid.uuid4().hex[:8]}"
        self.direct = f"{testbed.registry}/{self.path}"
        self.image = f"{proxy.netloc}/{self.path}"
        home.mkdir(parents=True, exist_ok=True)
        self.cosign = Cosign.ready(testbed, home)
        apply(testbed, deployment_manifest(namespace, "web", {"web": f"{self.image}:v0"}, release="web", replicas=1))

    def push(self, version: str) -> str:
        return push_image(self.testbed.registry, self.path, version, {"org.opencontainers.image.version": version})

    def sign(self, digest: str, cosign: Cosign | None = None) -> None:
        (cosign or self.cosign).sign(f"{self.direct}@{digest}")

    def keys(self, *cosigns: Cosign) -> None:
        files = [f"--from-file=k{i}.pub={c.public_key}" for i, c in enumerate(cosigns)]
        self.testbed.kubectl("delete", "secret", "cosign-keys", "-n", self.namespace, "--ignore-not-found")
        self.testbed.kubectl("create", "secret", "generic", "cosign-keys", "-n", self.namespace, *files)

    def release(self, version: str, **verify: Any) -> None:
        spec = {"verify": {"keys": {"secretRef": {"name": "cosign-keys"}}, **verify}}
        workloads = [{"kind": "Deployment", "name": "web"}]
        apply(self.testbed, release_manifest(self.namespace, "web", self.image, version, workloads, **spec))

    def runs(self) -> str:
        return container_images(self.testbed, self.namespace, "web")["web"]


@pytest.fixture
def bed(testbed: Testbed, proxy: CountingProxy, trust_operator: Operator, namespace: str, tmp_path: Path) -> Bed:
    return Bed(testbed, proxy, namespace, tmp_path / "cosign")


def fingerprint(cosign: Cosign) -> str:
    return load_public_key("k", cosign.public_key.read_bytes()).fingerprint


def test_signed_is_ready_unsigned_waits_until_signed(bed: Bed, testbed: Testbed) -> None:
    v1, v2 = bed.push("v1.0.0"), bed.push("v1.1.0")
    bed.sign(v1)
    bed.keys(bed.cosign)
    bed.release("v1.0.0")
    release = wait_ready(testbed, bed.namespace, "web", "v1.0.0")
    assert release["status"]["history"][0]["verifiedBy"] == fingerprint(bed.cosign)
    assert bed.runs() == f"{bed.image}@{v1}"

    patch_release(testbed, bed.namespace, "web", {"version": "v1.1.0"})
    waiting = wait_condition(testbed, bed.namespace, "web", "Ready", "False", "SignatureMissing")
    assert v2 in next(c for c in waiting["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert bed.runs() == f"{bed.image}@{v1}"
    bed.sign(v2)  # CI signs a moment after pushing: the retry picks it up
    wait_ready(testbed, bed.namespace, "web", "v1.1.0")
    assert bed.runs() == f"{bed.image}@{v2}"


def test_replayed_and_tampered_signatures_are_refused(bed: Bed, testbed: Testbed) -> None:
    v1, v2, v3 = bed.push("v2.0.0"), bed.push("v2.1.0"), bed.push("v2.2.0")
    bed.sign(v1)
    (signature,) = bundles_of(testbed.registry, bed.path, v1)
    attach_bundle(testbed.registry, bed.path, v2, signature)  # v1's signature, replayed onto v2
    attach_bundle(testbed.registry, bed.path, v3, rewrite_subject(signature, v3))  # v1's, rewritten to name v3
    bed.keys(bed.cosign)

    bed.release("v2.1.0")
    stalled = wait_condition(testbed, bed.namespace, "web", "Stalled", "True", "SignatureInvalid")
    message = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")["message"]
    assert v2 in message and "not this digest" in message
    assert posted_events(testbed, bed.namespace, "SignatureInvalid")  # Events go out just after the status
    assert bed.runs() == f"{bed.image}:v0"

    bed.release("v2.2.0")
    stalled = wait_condition(testbed, bed.namespace, "web", "Stalled", "True", "SignatureInvalid")
    assert "content altered" in next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")["message"]
    assert bed.runs() == f"{bed.image}:v0"


def test_rollback_to_a_version_signed_by_a_removed_key_is_refused_without_registry_requests(
    bed: Bed, testbed: Testbed, proxy: CountingProxy, tmp_path: Path
) -> None:
    (tmp_path / "new").mkdir()
    rotated = Cosign.ready(testbed, tmp_path / "new")
    v1, v2 = bed.push("v3.0.0"), bed.push("v3.1.0")
    bed.sign(v1)
    bed.sign(v2, rotated)
    bed.keys(bed.cosign, rotated)
    bed.release("v3.0.0")
    wait_ready(testbed, bed.namespace, "web", "v3.0.0")
    patch_release(testbed, bed.namespace, "web", {"version": "v3.1.0"})
    wait_ready(testbed, bed.namespace, "web", "v3.1.0")

    bed.keys(rotated)  # the old key is rotated out
    proxy.take()
    patch_release(testbed, bed.namespace, "web", {"version": "v3.0.0"})
    stalled = wait_condition(testbed, bed.namespace, "web", "Stalled", "True", "SignatureUntrusted")
    message = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")["message"]
    assert fingerprint(bed.cosign) in message and "no longer trusts" in message
    assert sum(proxy.take().values()) == 0  # the rollback's re-check made no registry request
    assert bed.runs() == f"{bed.image}@{v2}"  # nothing patched
    assert get_release(testbed, bed.namespace, "web")["status"]["digest"] == v2


def slsa(tag: str) -> dict[str, object]:
    """An SLSA provenance v1 predicate as GitHub's workflow builder writes it, naming ``tag`` and COMMIT."""
    return {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": f"refs/tags/{tag}"}},
            "resolvedDependencies": [
                {"uri": f"git+https://git.example.com/shop/web@refs/tags/{tag}", "digest": {"gitCommit": COMMIT}}
            ],
        },
        "runDetails": {"builder": {"id": "https://ci.example.com"}},
    }


def test_provenance_required_must_name_the_version(bed: Bed, testbed: Testbed) -> None:
    v4, v5 = bed.push("v4.0.0"), bed.push("v5.0.0")
    bed.cosign.attest(f"{bed.direct}@{v4}", slsa("v3.9.9"))  # built from another tag
    bed.cosign.attest(f"{bed.direct}@{v5}", slsa("v5.0.0"))
    bed.keys(bed.cosign)
    bed.release("v4.0.0", provenance="Required")
    stalled = wait_condition(testbed, bed.namespace, "web", "Stalled", "True", "ProvenanceMismatch")
    message = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")["message"]
    assert "'v3.9.9', not 'v4.0.0'" in message
    assert bed.runs() == f"{bed.image}:v0"

    bed.release("v5.0.0", provenance="Required")
    release = wait_ready(testbed, bed.namespace, "web", "v5.0.0")
    assert release["status"]["gitCommit"] == COMMIT
    assert release["status"]["history"][0]["verifiedBy"] == fingerprint(bed.cosign)


def test_rollback_whose_provenance_was_signed_by_a_removed_key_is_refused_without_registry_requests(
    bed: Bed, testbed: Testbed, proxy: CountingProxy, tmp_path: Path
) -> None:
    (tmp_path / "new").mkdir()
    rotated = Cosign.ready(testbed, tmp_path / "new")
    v6, v7 = bed.push("v6.0.0"), bed.push("v7.0.0")
    bed.sign(v6, rotated)  # signed with the new key, its provenance attested with the old one
    bed.cosign.attest(f"{bed.direct}@{v6}", slsa("v6.0.0"))
    rotated.sign(f"{bed.direct}@{v7}")
    rotated.attest(f"{bed.direct}@{v7}", slsa("v7.0.0"))
    bed.keys(bed.cosign, rotated)
    bed.release("v6.0.0")
    entry = wait_ready(testbed, bed.namespace, "web", "v6.0.0")["status"]["history"][0]
    assert entry["verifiedBy"] == fingerprint(rotated)
    assert entry["provenance"] == {"signedBy": fingerprint(bed.cosign), "tag": "v6.0.0", "commit": COMMIT}
    bed.release("v7.0.0", provenance="Required")
    wait_ready(testbed, bed.namespace, "web", "v7.0.0")

    bed.keys(rotated)  # the old key is rotated out: v6's signature still verifies, its provenance does not
    proxy.take()
    bed.release("v6.0.0", provenance="Required")
    stalled = wait_condition(testbed, bed.namespace, "web", "Stalled", "True", "SignatureUntrusted")
    message = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")["message"]
    assert v6 in message and f"provenance attestation was signed by '{fingerprint(bed.cosign)}'" in message
    assert posted_events(testbed, bed.namespace, "SignatureUntrusted")
    assert sum(proxy.take().values()) == 0  # the rollback's re-check made no registry request
    assert bed.runs() == f"{bed.image}@{v7}"  # nothing patched
