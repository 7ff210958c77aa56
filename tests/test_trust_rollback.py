"""Rollbacks re-check recorded evidence, registry-free: the signature's ``verifiedBy`` and, when
``spec.verify.provenance`` is Required, the provenance attestation's signer and tag; for a rollback asked for in
the spec and for the automatic rollback after a failed rollout (the reconciler with the fake cluster and registry)."""

from __future__ import annotations

from typing import Any

from apprelease.controller.reconciler import Result
from apprelease.core.api import Outcome, RecordedProvenance
from apprelease.core.conditions import STALLED, Reason
from apprelease.trust import Mode
from apprelease.trust.provenance import build_predicate
from apprelease.trust.sign import PrivateKey, bundle, statement

from .conftest import IMAGE, POLL, World, assert_stalled, commit_of, pinned
from .test_release_safety import add_pod, mid_rollout
from .test_trust_reconciler import VERIFY, sign, trust
from .trustkit import new_key, trusted

SLSA = "https://slsa.dev/provenance/v1"
REQUIRED = {**VERIFY, "provenance": "Required"}


def attest(world: World, digest: str, key: PrivateKey, tag: str) -> None:
    """What `cosign attest --type slsaprovenance1` leaves: a provenance statement naming ``tag``."""
    predicate = build_predicate("https://git.example.com/shop/web", tag, commit_of(tag), "https://ci.example.com")
    sign(world, digest, key, layer=bundle(key, statement(digest, IMAGE, SLSA, predicate)))


def release(world: World, version: str, key: PrivateKey, attested_by: PrivateKey | None = None) -> str:
    digest = world.registry.release(version)
    sign(world, digest, key)
    if attested_by is not None:
        attest(world, digest, attested_by, version)
    return digest


def stalled_message(world: World) -> str:
    return next(c.message for c in world.status().conditions if c.type == STALLED)


def crash(world: World, **spec: Any) -> None:
    """Upgrade to v2 (already released) and let a pod of it crash: the next pass fails the revision."""
    world.update(version="v2", **spec)
    world.reconcile()
    mid_rollout(world)
    add_pod(world)


def test_history_records_the_provenance_attestation_and_a_restore_keeps_it(world: World) -> None:
    key = new_key()
    trust(world, key)
    v1 = release(world, "v1", key, attested_by=key)
    release(world, "v2", key, attested_by=key)
    world.create(verify=REQUIRED)
    world.deploy("v1")
    recorded = RecordedProvenance(signedBy=trusted(key).fingerprint, tag="v1", commit=commit_of("v1"))
    assert world.status().history[0].provenance == recorded
    assert world.raw_status()["history"][0]["provenance"]["signedBy"] == trusted(key).fingerprint
    world.deploy("v2")
    world.reset_records()
    world.update(version="v1")
    world.reconcile()
    assert world.registry.requests == []
    head = world.status().history[0]
    assert (head.digest, head.restored_from, head.provenance) == (v1, 1, recorded)


def test_a_rollback_to_an_entry_without_provenance_is_refused_once_provenance_is_required(world: World) -> None:
    key = new_key()
    trust(world, key)
    v1 = release(world, "v1", key)  # signed, no provenance attestation: fine while provenance is IfPresent
    v2 = release(world, "v2", key, attested_by=key)
    world.create(verify=VERIFY)
    world.deploy("v1")
    assert world.status().history[0].provenance is None
    world.update(verify=REQUIRED)
    world.deploy("v2")
    world.reset_records()
    world.update(version="v1")
    world.reconcile()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    message = stalled_message(world)
    assert v1 in message and "no verified provenance attestation" in message
    assert world.registry.requests == []
    assert "deployment/web" not in world.cluster.calls and world.cluster.images()["web"] == pinned(v2)
    assert [e.type for e in world.events(Reason.SIGNATURE_UNTRUSTED)] == ["Warning"]


def test_a_rollback_whose_provenance_was_signed_by_a_removed_key_is_refused(world: World) -> None:
    old, new = new_key(), new_key()
    trust(world, old, new)
    v1 = release(world, "v1", new, attested_by=old)  # verifiedBy: the new key; the attestation: the old one
    v2 = release(world, "v2", new, attested_by=new)
    world.create(verify=VERIFY)
    world.deploy("v1")
    assert world.status().history[0].verified_by == trusted(new).fingerprint
    world.deploy("v2")
    trust(world, new)  # the old key is rotated out, and provenance becomes required
    world.reset_records()
    world.update(version="v1", verify=REQUIRED)
    world.reconcile()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    message = stalled_message(world)
    assert v1 in message and f"provenance attestation was signed by '{trusted(old).fingerprint}'" in message
    assert world.registry.requests == [] and "deployment/web" not in world.cluster.calls
    assert world.cluster.images()["web"] == pinned(v2)


def test_an_automatic_rollback_to_a_version_signed_by_a_removed_key_is_refused(world: World) -> None:
    old, new = new_key(), new_key()
    trust(world, old, new)
    release(world, "v1", old)
    v2 = release(world, "v2", new)
    world.create(verify=VERIFY)
    world.deploy("v1")
    trust(world, new)
    crash(world)
    world.reset_records()
    assert world.reconcile() == Result()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    failed = world.status().history[0]
    assert (failed.version, failed.outcome, world.status().revision) == ("v2", Outcome.FAILED, 2)
    message = stalled_message(world)
    assert "v2 (revision 2) failed" in message and "automatic rollback is refused" in message
    assert trusted(old).fingerprint in message and "no longer trusts" in message
    assert [(e.type, e.reason) for e in world.events()] == [
        ("Warning", "RolloutFailed"),
        ("Warning", Reason.SIGNATURE_UNTRUSTED),
    ]
    assert world.registry.requests == [] and "deployment/web" not in world.cluster.calls
    assert world.cluster.images()["web"] == pinned(v2)
    world.reset_records()
    world.reconcile()  # Stalled until the spec changes: still nothing patched
    assert "deployment/web" not in world.cluster.calls and world.cluster.images()["web"] == pinned(v2)


def test_an_automatic_rollback_without_recorded_provenance_is_refused_when_provenance_is_required(
    world: World,
) -> None:
    key = new_key()
    trust(world, key)
    release(world, "v1", key)
    release(world, "v2", key, attested_by=key)
    world.create(verify=VERIFY)
    world.deploy("v1")
    crash(world, verify=REQUIRED)
    world.reconcile()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    assert "no verified provenance attestation" in stalled_message(world)
    assert world.status().history[0].outcome == Outcome.FAILED


def test_an_automatic_rollback_to_an_unverified_version_is_refused_under_the_operator_floor(world: World) -> None:
    world.deploy("v1")  # before the floor: recorded without evidence
    world.reconciler.gate = type(world.reconciler.gate)(world.cluster, world.reconciler.registry, Mode.REQUIRED)
    key = new_key()
    trust(world, key)
    release(world, "v2", key)
    crash(world, verify=VERIFY)
    world.reconcile()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    assert "without verified signature" in stalled_message(world)


def test_an_automatic_rollback_to_a_still_trusted_version_goes_ahead(world: World) -> None:
    key = new_key()
    trust(world, key)
    v1 = release(world, "v1", key, attested_by=key)
    release(world, "v2", key, attested_by=key)
    world.create(verify=REQUIRED)
    world.deploy("v1")
    crash(world)
    world.reset_records()
    assert world.reconcile() == Result(requeue_after=POLL)
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)
    head = world.status().history[0]
    assert (head.digest, head.verified_by) == (v1, trusted(key).fingerprint)
    assert head.provenance is not None and head.provenance.tag == "v1"
    assert world.registry.requests == [] and world.cluster.images()["web"] == pinned(v1)


def test_an_automatic_rollback_whose_keys_cannot_be_read_is_refused_as_untrusted(world: World) -> None:
    key = new_key()
    trust(world, key)
    release(world, "v1", key)
    v2 = release(world, "v2", key)
    world.create(verify=VERIFY)
    world.deploy("v1")
    crash(world)
    del world.cluster.secret_data["cosign-keys"]  # deleted while v2 rolls out
    world.reset_records()
    assert world.reconcile() == Result()
    assert_stalled(world, Reason.SIGNATURE_UNTRUSTED)
    assert "cosign-keys does not exist" in stalled_message(world)
    assert "deployment/web" not in world.cluster.calls and world.cluster.images()["web"] == pinned(v2)
