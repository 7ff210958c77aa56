"""Keyless verification against a private Sigstore chain built in the test, with the `sigstore` package."""

from __future__ import annotations

import pytest

from apprelease.trust import (
    BundleArtifact,
    Identity,
    Mode,
    SignatureInvalid,
    SignatureUntrusted,
    TrustPolicy,
    verify,
)
from apprelease.trust.keyless import verify_keyless
from apprelease.trust.sign import statement

from .sigstore_chain import PrivateSigstore
from .trustkit import DIGEST, OTHER, REPO

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2"


@pytest.fixture(scope="module")
def sigstore_instance() -> PrivateSigstore:
    return PrivateSigstore()


def keyless_policy(instance: PrivateSigstore, *identities: Identity) -> TrustPolicy:
    return TrustPolicy(
        mode=Mode.REQUIRED,
        identities=identities or (Identity(ISSUER, subject=SUBJECT),),
        trusted_root=instance.trusted_root(),
    )


def test_a_keyless_bundle_from_a_trusted_identity_verifies(sigstore_instance: PrivateSigstore) -> None:
    bundle = BundleArtifact(sigstore_instance.bundle(statement(DIGEST, REPO), ISSUER, SUBJECT), "referrer r")
    result = verify(DIGEST, [bundle], keyless_policy(sigstore_instance), keyless=verify_keyless)
    assert result.evidence == f"keyless:{ISSUER}|{SUBJECT}"


def test_a_subject_regex_identity_verifies(sigstore_instance: PrivateSigstore) -> None:
    bundle = BundleArtifact(sigstore_instance.bundle(statement(DIGEST, REPO), ISSUER, SUBJECT), "r")
    policy = keyless_policy(sigstore_instance, Identity(ISSUER, subject_regex=r"https://github\.com/shop/.*"))
    assert verify(DIGEST, [bundle], policy, keyless=verify_keyless).evidence == f"keyless:{ISSUER}|{SUBJECT}"


def test_a_wrong_identity_is_untrusted(sigstore_instance: PrivateSigstore) -> None:
    bundle = BundleArtifact(
        sigstore_instance.bundle(statement(DIGEST, REPO), ISSUER, "https://github.com/evil/web/x.yml@refs/heads/main"),
        "r",
    )
    with pytest.raises(SignatureUntrusted, match="evil"):
        verify(DIGEST, [bundle], keyless_policy(sigstore_instance), keyless=verify_keyless)


def test_a_wrong_issuer_is_untrusted(sigstore_instance: PrivateSigstore) -> None:
    bundle = BundleArtifact(sigstore_instance.bundle(statement(DIGEST, REPO), "https://accounts.example", SUBJECT), "r")
    with pytest.raises(SignatureUntrusted, match="does not trust"):
        verify(DIGEST, [bundle], keyless_policy(sigstore_instance), keyless=verify_keyless)


def test_a_certificate_from_another_ca_is_untrusted(sigstore_instance: PrivateSigstore) -> None:
    stranger = PrivateSigstore(name="Stranger Fulcio")
    bundle = BundleArtifact(stranger.bundle(statement(DIGEST, REPO), ISSUER, SUBJECT), "r")
    with pytest.raises(SignatureUntrusted, match="chain"):
        verify(DIGEST, [bundle], keyless_policy(sigstore_instance), keyless=verify_keyless)


def test_a_keyless_signature_of_another_digest_is_invalid(sigstore_instance: PrivateSigstore) -> None:
    bundle = BundleArtifact(sigstore_instance.bundle(statement(OTHER, REPO), ISSUER, SUBJECT), "r")
    with pytest.raises(SignatureInvalid, match="not this digest"):
        verify(DIGEST, [bundle], keyless_policy(sigstore_instance), keyless=verify_keyless)


def test_a_tampered_keyless_payload_is_invalid(sigstore_instance: PrivateSigstore) -> None:
    import base64
    import json

    document = json.loads(sigstore_instance.bundle(statement(OTHER, REPO), ISSUER, SUBJECT))
    document["dsseEnvelope"]["payload"] = base64.b64encode(statement(DIGEST, REPO)).decode()
    with pytest.raises(SignatureInvalid):
        verify(
            DIGEST,
            [BundleArtifact(json.dumps(document).encode(), "r")],
            keyless_policy(sigstore_instance),
            keyless=verify_keyless,
        )


@pytest.mark.parametrize("field", ["signedEntryTimestamp", "rootHash"])
def test_a_forged_log_entry_is_invalid(sigstore_instance: PrivateSigstore, field: str) -> None:
    import base64
    import json

    document = json.loads(sigstore_instance.bundle(statement(DIGEST, REPO), ISSUER, SUBJECT))
    entry = document["verificationMaterial"]["tlogEntries"][0]
    if field == "rootHash":
        entry["inclusionProof"]["rootHash"] = base64.b64encode(b"\x01" * 32).decode()
    else:
        entry["inclusionPromise"]["signedEntryTimestamp"] = base64.b64encode(
            b"\x30\x06\x02\x01\x01\x02\x01\x01"
        ).decode()
    with pytest.raises(SignatureInvalid, match="log entry"):
        verify(
            DIGEST,
            [BundleArtifact(json.dumps(document).encode(), "r")],
            keyless_policy(sigstore_instance),
            keyless=verify_keyless,
        )


def test_the_public_good_root_is_the_default_and_refuses_a_private_chain(sigstore_instance: PrivateSigstore) -> None:
    bundle = BundleArtifact(sigstore_instance.bundle(statement(DIGEST, REPO), ISSUER, SUBJECT), "r")
    policy = TrustPolicy(mode=Mode.REQUIRED, identities=(Identity(ISSUER, subject=SUBJECT),))
    with pytest.raises(SignatureUntrusted, match="chain"):
        verify(DIGEST, [bundle], policy, keyless=verify_keyless)
