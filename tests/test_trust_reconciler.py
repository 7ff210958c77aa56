"""The operator verifies before pinning (spec.verify, the operator's floor) and re-checks recorded evidence on
rollback without any registry request: the reconciler with the fake cluster and registry."""

from __future__ import annotations

import json

import pytest

from apprelease.core.conditions import READY, Reason
from apprelease.trust import LegacyArtifact, Mode
from apprelease.trust.sign import PrivateKey, bundle, statement

from .conftest import IMAGE, NS, World, assert_stalled, assert_waiting, pinned, sha
from .legacy_chain import legacy_keyless
from .sigstore_chain import PrivateSigstore
from .test_promotion import SOURCE, UPSTREAM, entry, upstream
from .test_trust_legacy_keyless import ISSUER, SUBJECT
from .trustkit import new_key, public_pem, trusted

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
VERIFY = {"keys": {"secretRef": {"name": "cosign-keys"}}}


def sign(world: World, digest: str, key: PrivateKey, about: str | None = None, layer: bytes | None = None) -> None:
    """What `cosign sign` (or `cosign attest`, given its bundle as ``layer``) leaves in a registry without the
    referrers API: a referrer and the referrers tag."""
    layer = layer or bundle(key, statement(about or digest, IMAGE))
    world.registry.blobs[sha(layer)] = (layer, BUNDLE)
    referrer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": BUNDLE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
            "layers": [{"mediaType": BUNDLE, "digest": sha(layer), "size": len(layer)}],
            "subject": {"mediaType": MANIFEST, "digest": digest, "size": 1},
        }
    ).encode()
    world.registry.blobs[sha(referrer)] = (referrer, MANIFEST)
    tag = digest.replace(":", "-")
    listed = (
        json.loads(world.registry.blobs[world.registry.tags[tag]][0])["manifests"] if tag in world.registry.tags else []
    )
    entry = {"mediaType": MANIFEST, "digest": sha(referrer), "size": len(referrer), "artifactType": BUNDLE}
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [*listed, entry]}).encode()
    world.registry.blobs[sha(index)] = (index, INDEX)
    world.registry.tags[tag] = sha(index)


def trust(world: World, *keys: PrivateKey) -> None:
    world.cluster.secret_data["cosign-keys"] = {f"k{i}.pub": public_pem(k) for i, k in enumerate(keys)}


def test_a_signed_version_is_pinned_with_its_evidence(world: World) -> None:
    key = new_key()
    trust(world, key)
    digest = world.registry.release("v1")
    sign(world, digest, key)
    world.create("v1", verify=VERIFY)
    world.reconcile()
    assert world.cluster.deployments["web"]["spec"]["template"]["spec"]["containers"][0]["image"] == pinned(digest)
    assert world.status().history[0].verified_by == trusted(key).fingerprint


def test_an_unsigned_version_waits_then_is_pinned_once_signed(world: World) -> None:
    key = new_key()
    trust(world, key)
    digest = world.registry.release("v1")
    world.create("v1", verify=VERIFY)
    world.reconcile()
    assert_waiting(world, Reason.SIGNATURE_MISSING)
    assert "deployment/web" not in world.cluster.calls
    sign(world, digest, key)
    world.reconcile()
    assert world.status().digest == digest


def test_a_replayed_signature_is_refused_and_nothing_is_patched(world: World) -> None:
    key = new_key()
    trust(world, key)
    other = world.registry.release("v0")
    digest = world.registry.release("v1")
    sign(world, digest, key, about=other)
    world.create("v1", verify=VERIFY)
    world.reconcile()
    assert_stalled(world, Reason.SIGNATURE_INVALID)
    assert "deployment/web" not in world.cluster.calls
    assert world.events(Reason.SIGNATURE_INVALID) and digest in world.events(Reason.SIGNATURE_INVALID)[0].message


def test_a_rollback_to_a_version_signed_by_a_removed_key_is_refused_without_registry_requests(world: World) -> None:
    old, new = new_key(), new_key()
    trust(world, old, new)
    v1 = world.registry.release("v1")
    sign(world, v1, old)
    v2 = world.registry.release("v2")
    sign(world, v2, new)
    world.create(verify=VERIFY)
    world.deploy("v1")
    world.deploy("v2")
    trust(world, new)  # the old key is rotated out
    world.reset_records()
    world.update(version="v1")
    world.reconcile()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    assert world.registry.requests == []
    assert "deployment/web" not in world.cluster.calls
    assert world.cluster.deployments["web"]["spec"]["template"]["spec"]["containers"][0]["image"] == pinned(v2)
    trust(world, old, new)
    world.update(version="v1", historyLimit=10)
    world.reconcile()
    assert world.status().digest == v1 and world.status().history[0].verified_by == trusted(old).fingerprint
    assert world.registry.requests == []


def test_the_operator_floor_applies_without_spec_verify(world: World) -> None:
    world.reconciler.gate = type(world.reconciler.gate)(world.cluster, world.reconciler.registry, Mode.REQUIRED)
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    assert_waiting(world, Reason.SIGNATURE_MISSING)


@pytest.mark.parametrize(
    ("verify", "message"),
    [
        ({"mode": "Required"}, "needs keys"),
        ({"keyless": [{"issuer": "https://i", "subjectRegex": "("}]}, "not a regular expression"),
        ({"keyless": [{"issuer": "https://i", "subject": "a", "subjectRegex": "a"}]}, "exactly one"),
        ({"keys": {"secretRef": {"name": "k"}}, "mode": "Sometimes"}, "Required or IfPresent"),
        ("Required", "wrong type"),
    ],
)
def test_a_bad_spec_verify_is_invalid_spec(world: World, verify: object, message: str) -> None:
    world.registry.release("v1")
    world.create("v1", verify=verify)
    world.reconcile()
    assert_stalled(world, Reason.INVALID_SPEC)
    assert message in world.events(Reason.INVALID_SPEC)[0].message
    assert world.condition(READY)[0] == "False"


def test_a_missing_keys_secret_is_retried(world: World) -> None:
    world.registry.release("v1")
    world.create("v1", verify=VERIFY)
    world.reconcile()
    assert_waiting(world, Reason.SIGNATURE_MISSING)
    assert "cosign-keys" in world.events(Reason.SIGNATURE_MISSING)[0].message


def test_a_promoted_digest_is_verified_under_this_releases_own_policy(world: World) -> None:
    key = new_key()
    trust(world, key)
    digest = world.registry.release("v2")
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", digest=digest))
    world.create("v2", verify=VERIFY, promotion=SOURCE)
    world.reconcile()
    assert_waiting(world, Reason.SIGNATURE_MISSING)  # upstream's Succeeded is no signature
    assert "deployment/web" not in world.cluster.calls and world.status().revision == 0
    sign(world, digest, key)
    world.reconcile()
    head = world.status().history[0]
    assert world.cluster.images()["web"] == pinned(digest)
    assert (head.promoted_from, head.verified_by) == (f"{NS}/{UPSTREAM}#4", trusted(key).fingerprint)


def test_the_operator_floor_applies_to_a_promotion(world: World) -> None:
    world.reconciler.gate = type(world.reconciler.gate)(world.cluster, world.reconciler.registry, Mode.REQUIRED)
    digest = world.registry.release("v2")
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", digest=digest))
    world.create("v2", promotion=SOURCE)
    world.reconcile()
    assert_waiting(world, Reason.SIGNATURE_MISSING)
    assert "deployment/web" not in world.cluster.calls


def test_a_promotion_whose_keys_secret_is_missing_is_retried(world: World) -> None:
    digest = world.registry.release("v2")
    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z", digest=digest))
    world.create("v2", verify=VERIFY, promotion=SOURCE)
    world.reconcile()
    assert_waiting(world, Reason.SIGNATURE_MISSING)
    assert "deployment/web" not in world.cluster.calls


def sign_legacy(world: World, digest: str, artifact: LegacyArtifact) -> None:
    """What cosign v2 keyless (`cosign sign`, legacy format) leaves: the ``sha256-<hex>.sig`` tag."""
    world.registry.blobs[sha(artifact.payload)] = (artifact.payload, SIMPLE_SIGNING)
    notes = {
        "dev.cosignproject.cosign/signature": artifact.signature,
        "dev.sigstore.cosign/certificate": artifact.certificate,
        "dev.sigstore.cosign/chain": artifact.chain,
        "dev.sigstore.cosign/bundle": artifact.rekor_bundle,
    }
    layer = {"mediaType": SIMPLE_SIGNING, "digest": sha(artifact.payload), "size": len(artifact.payload)}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(b"{}"), "size": 2},
            "layers": [{**layer, "annotations": notes}],
        }
    ).encode()
    world.registry.blobs[sha(manifest)] = (manifest, MANIFEST)
    world.registry.tags[digest.replace(":", "-") + ".sig"] = sha(manifest)


@pytest.mark.parametrize("signer", [SUBJECT, "https://github.com/evil/web/x.yml@refs/heads/main"])
def test_a_legacy_keyless_signature_is_verified_before_pinning(world: World, signer: str) -> None:
    instance = PrivateSigstore()
    world.cluster.config_maps["sigstore-root"] = {"trusted_root.json": instance.trusted_root()}
    digest = world.registry.release("v1")
    sign_legacy(world, digest, legacy_keyless(instance, digest, ISSUER, signer))
    keyless = {"keyless": [{"issuer": ISSUER, "subject": SUBJECT}], "trustedRootRef": {"name": "sigstore-root"}}
    world.create("v1", verify=keyless)
    world.reconcile()
    if signer == SUBJECT:
        image = world.cluster.deployments["web"]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == pinned(digest)
        assert world.status().history[0].verified_by == f"keyless:{ISSUER}|{SUBJECT}"
    else:
        assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
        assert "deployment/web" not in world.cluster.calls
        assert "evil" in world.events(Reason.SIGNATURE_UNTRUSTED)[0].message
