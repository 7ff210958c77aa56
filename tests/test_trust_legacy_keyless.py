"""Keyless signatures in cosign's legacy format (tag ``sha256-<hex>.sig``), verified offline the way cosign v2 does
(certificate chain at the log's integration time, the Rekor signed entry timestamp, the logged entry matching the
signature, the identity), against the test's private Sigstore instance. Each refusal has an honest counterpart."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apprelease.trust import Identity, LegacyArtifact, Mode, SignatureInvalid, SignatureUntrusted, TrustPolicy, verify
from apprelease.trust.legacykeyless import MAX_CERTIFICATE_PEM, MAX_CHAIN_CERTIFICATES, verify_legacy_keyless
from apprelease.trust.rekorentry import MAX_REKOR_BUNDLE, MAX_SIGNATURE

from .legacy_chain import Hostile, legacy_keyless
from .sigstore_chain import PrivateSigstore
from .trustkit import DIGEST, OTHER, simple_signing

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2"


@pytest.fixture(scope="module")
def instance() -> PrivateSigstore:
    return PrivateSigstore()


def policy(instance: PrivateSigstore, *identities: Identity) -> TrustPolicy:
    return TrustPolicy(
        mode=Mode.REQUIRED,
        identities=identities or (Identity(ISSUER, subject=SUBJECT),),
        trusted_root=instance.trusted_root(),
    )


def check(instance: PrivateSigstore, artifact: LegacyArtifact, *identities: Identity) -> str | None:
    return verify(DIGEST, [artifact], policy(instance, *identities), legacy_keyless=verify_legacy_keyless).evidence


def honest(instance: PrivateSigstore, **hostile: object) -> LegacyArtifact:
    return legacy_keyless(instance, DIGEST, ISSUER, SUBJECT, Hostile(**hostile))  # type: ignore[arg-type]


def test_a_legacy_keyless_signature_from_a_trusted_identity_verifies(instance: PrivateSigstore) -> None:
    assert check(instance, honest(instance)) == f"keyless:{ISSUER}|{SUBJECT}"


def test_a_subject_regex_identity_verifies(instance: PrivateSigstore) -> None:
    identity = Identity(ISSUER, subject_regex=r"https://github\.com/shop/.*")
    assert check(instance, honest(instance), identity) == f"keyless:{ISSUER}|{SUBJECT}"


def test_the_bundle_is_read_as_cosign_writes_it(instance: PrivateSigstore) -> None:
    artifact = honest(instance)
    assert artifact.rekor_bundle is not None and artifact.certificate is not None
    document = json.loads(artifact.rekor_bundle)
    assert set(document) == {"SignedEntryTimestamp", "Payload"}
    assert set(document["Payload"]) == {"body", "integratedTime", "logIndex", "logID"}
    assert artifact.certificate.startswith("-----BEGIN CERTIFICATE-----")


def test_a_wrong_identity_is_untrusted(instance: PrivateSigstore) -> None:
    evil = legacy_keyless(instance, DIGEST, ISSUER, "https://github.com/evil/web/x.yml@refs/heads/main")
    with pytest.raises(SignatureUntrusted, match="evil"):
        check(instance, evil)


def test_a_wrong_issuer_is_untrusted(instance: PrivateSigstore) -> None:
    other_issuer = legacy_keyless(instance, DIGEST, "https://accounts.example", SUBJECT)
    with pytest.raises(SignatureUntrusted, match="accounts.example.*does not trust"):
        check(instance, other_issuer)


def test_a_certificate_from_another_root_is_untrusted(instance: PrivateSigstore) -> None:
    stranger = PrivateSigstore(name="Stranger Fulcio", log_key=instance.log_key)  # same log, another CA
    with pytest.raises(SignatureUntrusted, match="does not chain to the trusted root"):
        check(instance, legacy_keyless(stranger, DIGEST, ISSUER, SUBJECT))
    assert check(stranger, legacy_keyless(stranger, DIGEST, ISSUER, SUBJECT)) is not None  # its own root: fine


def test_a_chain_annotation_naming_another_root_does_not_make_it_trusted(instance: PrivateSigstore) -> None:
    stranger = PrivateSigstore(name="Stranger Fulcio", log_key=instance.log_key)
    from cryptography.hazmat.primitives import serialization

    own_chain = stranger.ca.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(SignatureUntrusted, match="does not chain"):
        check(instance, legacy_keyless(stranger, DIGEST, ISSUER, SUBJECT, Hostile(chain=own_chain)))


def test_a_leaf_not_for_code_signing_is_untrusted(instance: PrivateSigstore) -> None:
    with pytest.raises(SignatureUntrusted, match="not for code signing"):
        check(instance, honest(instance, server_auth=True))


def test_a_leaf_whose_sct_is_from_another_ct_log_is_untrusted(instance: PrivateSigstore) -> None:
    # the same CA key and name (the chain holds), but the SCT signed by a CT log the trusted root does not list
    same_ca = PrivateSigstore(name=instance.name, ca_key=instance.ca_key, log_key=instance.log_key)
    with pytest.raises(SignatureUntrusted, match="SCT"):
        check(instance, legacy_keyless(same_ca, DIGEST, ISSUER, SUBJECT))


def test_a_set_signed_by_another_log_key_is_untrusted(instance: PrivateSigstore) -> None:
    with pytest.raises(SignatureUntrusted, match="not one of the trusted root"):
        check(instance, honest(instance, set_key=ec.generate_private_key(ec.SECP256R1())))


def test_a_set_signed_by_another_key_claiming_the_trusted_log_is_invalid(instance: PrivateSigstore) -> None:
    with pytest.raises(SignatureInvalid, match="signed entry timestamp does not verify"):
        check(instance, honest(instance, set_key=ec.generate_private_key(ec.SECP256R1()), claimed_log=True))


def test_a_set_over_another_integrated_time_is_invalid(instance: PrivateSigstore) -> None:
    with pytest.raises(SignatureInvalid, match="signed entry timestamp does not verify"):
        check(instance, honest(instance, shift_integrated=-30))


def test_a_log_entry_of_another_payload_is_invalid(instance: PrivateSigstore) -> None:
    with pytest.raises(SignatureInvalid, match="logs another payload"):
        check(instance, honest(instance, logged_payload=simple_signing(OTHER)))


def test_a_log_entry_of_another_signature_is_invalid(instance: PrivateSigstore) -> None:
    first, second = honest(instance), honest(instance)
    assert second.rekor_bundle is not None
    # the second signature's own (valid) Rekor bundle stapled onto the first: signed, but not about this signature
    with pytest.raises(SignatureInvalid, match="logs another"):
        check(instance, dataclasses.replace(first, rekor_bundle=second.rekor_bundle))


def test_a_signature_over_another_digests_payload_is_invalid(instance: PrivateSigstore) -> None:
    # the layer says DIGEST, the signature (and its log entry) are over OTHER's payload
    forged = honest(instance, signed_payload=simple_signing(OTHER), logged_payload=simple_signing(OTHER))
    with pytest.raises(SignatureInvalid, match="does not verify with its certificate's key"):
        check(instance, forged)


def test_a_valid_signature_of_another_digest_replayed_here_is_invalid(instance: PrivateSigstore) -> None:
    replayed = legacy_keyless(instance, OTHER, ISSUER, SUBJECT)
    with pytest.raises(SignatureInvalid, match=f"about '{OTHER}', not this digest"):
        check(instance, replayed)


def test_a_leaf_expired_at_the_integrated_time_is_invalid(instance: PrivateSigstore) -> None:
    # the log vouches (honestly signed) that the entry came an hour later: the 10-minute certificate had expired
    with pytest.raises(SignatureInvalid, match="was not valid when logged"):
        check(instance, honest(instance, integrated_offset=3600))
    with pytest.raises(SignatureInvalid, match="was not valid when logged"):
        check(instance, honest(instance, integrated_offset=-3600))  # before it was issued


@pytest.mark.parametrize(
    ("field", "limit"),
    [("certificate", MAX_CERTIFICATE_PEM), ("rekor_bundle", MAX_REKOR_BUNDLE), ("signature", MAX_SIGNATURE)],
)
def test_an_oversize_annotation_is_invalid_before_parsing(instance: PrivateSigstore, field: str, limit: int) -> None:
    artifact = honest(instance)
    padded = dataclasses.replace(artifact, **{field: getattr(artifact, field) + " " * limit})
    with pytest.raises(SignatureInvalid, match="larger than"):
        check(instance, padded)


def test_a_chain_of_more_than_four_certificates_is_invalid(instance: PrivateSigstore) -> None:
    artifact = honest(instance)
    assert artifact.chain is not None
    long_chain = artifact.chain * (MAX_CHAIN_CERTIFICATES + 1)
    with pytest.raises(SignatureInvalid, match=f"more than {MAX_CHAIN_CERTIFICATES} certificates"):
        check(instance, dataclasses.replace(artifact, chain=long_chain))
    assert check(instance, dataclasses.replace(artifact, chain=artifact.chain * MAX_CHAIN_CERTIFICATES)) is not None


@pytest.mark.parametrize("bundle", ["{", "[]", '{"SignedEntryTimestamp": "", "Payload": {}}', "[" * 5000])
def test_a_malformed_rekor_bundle_is_invalid(instance: PrivateSigstore, bundle: str) -> None:
    with pytest.raises(SignatureInvalid, match="not cosign's bundle"):
        check(instance, dataclasses.replace(honest(instance), rekor_bundle=bundle))


def test_no_rekor_bundle_is_untrusted_offline(instance: PrivateSigstore) -> None:
    with pytest.raises(SignatureUntrusted, match="without its Rekor bundle"):
        check(instance, dataclasses.replace(honest(instance), rekor_bundle=None))


def test_legacy_keyless_needs_a_listed_identity(instance: PrivateSigstore) -> None:
    keyed_only = TrustPolicy(mode=Mode.REQUIRED, trusted_root=instance.trusted_root())
    with pytest.raises(SignatureUntrusted, match="lists no keyless identity"):
        verify(DIGEST, [honest(instance)], keyed_only, legacy_keyless=verify_legacy_keyless)


def test_the_public_good_root_is_the_default_and_refuses_a_private_chain(instance: PrivateSigstore) -> None:
    default_root = TrustPolicy(mode=Mode.REQUIRED, identities=(Identity(ISSUER, subject=SUBJECT),))
    with pytest.raises(SignatureUntrusted, match="not one of the trusted root"):
        verify(DIGEST, [honest(instance)], default_root, legacy_keyless=verify_legacy_keyless)


def test_the_public_good_root_gives_rekors_log_key_and_fulcios_certificates() -> None:
    from apprelease.trust.keyless import trusted_root_text
    from apprelease.trust.rootmaterial import root_material

    material = root_material(trusted_root_text(None))
    # rekor.sigstore.dev's log id (SHA-256 of its DER key), as cosign v2 writes it in every legacy bundle's logID
    assert "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d" in material.logs
    assert any("sigstore" in c.subject.rfc4514_string() for c in material.authorities)
    assert material.ct_keyring is not None


def _with_integrated_time(artifact: LegacyArtifact, integrated: int) -> LegacyArtifact:
    assert artifact.rekor_bundle is not None
    document = json.loads(artifact.rekor_bundle)
    document["Payload"]["integratedTime"] = integrated  # not re-signed: anyone who can push a .sig tag can do this
    return dataclasses.replace(artifact, rekor_bundle=json.dumps(document))


@pytest.mark.parametrize("integrated", [2**53 - 1, 10**12, 253402300800])
def test_an_unsigned_integration_time_beyond_any_date_is_invalid_and_hides_no_honest_signature(
    instance: PrivateSigstore, integrated: int
) -> None:
    # Found by review: a time past year 9999 overflowed datetime before the SET was checked, and the ValueError
    # escaped verify(), so the honest signature next to it was never looked at.
    forged = _with_integrated_time(honest(instance), integrated)
    with pytest.raises(SignatureInvalid):
        check(instance, forged)
    both = verify(DIGEST, [forged, honest(instance)], policy(instance), legacy_keyless=verify_legacy_keyless)
    assert both.evidence == f"keyless:{ISSUER}|{SUBJECT}"


def test_a_keyless_verifier_that_cannot_read_an_artifact_makes_it_invalid(instance: PrivateSigstore) -> None:
    def unreadable(artifact: LegacyArtifact, policy: TrustPolicy) -> str:
        if artifact.rekor_bundle == "unreadable":
            raise OverflowError("a parser's limit")
        return verify_legacy_keyless(artifact, policy)

    bad = dataclasses.replace(honest(instance), rekor_bundle="unreadable")
    with pytest.raises(SignatureInvalid, match="cannot be read: OverflowError"):
        verify(DIGEST, [bad], policy(instance), legacy_keyless=unreadable)
    assert verify(DIGEST, [bad, honest(instance)], policy(instance), legacy_keyless=unreadable).evidence is not None
