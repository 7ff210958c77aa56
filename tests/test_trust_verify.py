"""Keyed verification of cosign's formats: what is trusted, what is refused, and why (trust.verify)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apprelease.trust import (
    BundleArtifact,
    Identity,
    LegacyArtifact,
    Mode,
    ProvenanceMismatch,
    SignatureInvalid,
    SignatureMissing,
    SignatureUntrusted,
    TrustPolicy,
    load_public_key,
    load_public_keys,
    verify,
)
from apprelease.trust.bundle import MAX_BUNDLE_BYTES
from apprelease.trust.provenance import build_predicate
from apprelease.trust.sign import bundle, statement
from apprelease.trust.statement import pae

from .trustkit import DIGEST, OTHER, REPO, legacy, new_key, public_pem, signed_bundle, tamper, trusted

REQUIRED = Mode.REQUIRED
SLSA = "https://slsa.dev/provenance/v1"


def policy(*keys: object, mode: Mode = REQUIRED, provenance: bool = False) -> TrustPolicy:
    return TrustPolicy(mode=mode, keys=tuple(trusted(k) for k in keys), provenance_required=provenance)  # type: ignore[arg-type]


def test_pae_is_the_dsse_v1_encoding() -> None:
    # protocol.md's example: PAE("http://example.com/HelloWorld", "hello world")
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519"])
def test_a_bundle_signed_by_a_trusted_key_verifies_with_its_fingerprint(kind: str) -> None:
    key = new_key(kind)
    result = verify(DIGEST, [signed_bundle(key)], policy(key))
    assert result.evidence == trusted(key).fingerprint
    assert result.evidence.startswith("SHA256:") and "=" not in result.evidence
    assert result.commit is None


def test_fingerprint_is_sha256_of_der_spki() -> None:
    import hashlib

    key = new_key()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert trusted(key).fingerprint == expected


def test_a_tampered_payload_is_invalid() -> None:
    key = new_key()
    forged = tamper(signed_bundle(key, OTHER), {"subject": [{"name": REPO, "digest": {"sha256": "a" * 64}}]})
    with pytest.raises(SignatureInvalid, match="content altered") as caught:
        verify(DIGEST, [forged], policy(key))
    assert DIGEST in str(caught.value)


def test_a_signature_of_another_digest_replayed_here_is_invalid() -> None:
    key = new_key()
    with pytest.raises(SignatureInvalid, match=f"about '{OTHER}', not this digest"):
        verify(DIGEST, [signed_bundle(key, OTHER)], policy(key))


def test_a_signature_by_another_key_is_untrusted() -> None:
    with pytest.raises(SignatureUntrusted, match="does not trust"):
        verify(DIGEST, [signed_bundle(new_key())], policy(new_key()))


def test_no_signature_is_missing_when_required_and_passes_if_present() -> None:
    key = new_key()
    with pytest.raises(SignatureMissing, match=DIGEST):
        verify(DIGEST, [], policy(key))
    assert verify(DIGEST, [], policy(key, mode=Mode.IF_PRESENT)).evidence is None


def test_if_present_still_refuses_what_is_present_and_wrong() -> None:
    key = new_key()
    with pytest.raises(SignatureInvalid):
        verify(DIGEST, [signed_bundle(key, OTHER)], policy(key, mode=Mode.IF_PRESENT))


def test_a_valid_signature_wins_over_junk_a_stranger_pushed() -> None:
    key = new_key()
    junk = BundleArtifact(b"{not json", "referrer sha256:2")
    result = verify(DIGEST, [junk, signed_bundle(new_key()), signed_bundle(key)], policy(key))
    assert result.evidence == trusted(key).fingerprint


def test_an_oversize_bundle_is_invalid_before_parsing() -> None:
    key = new_key()
    huge = BundleArtifact(b" " * (MAX_BUNDLE_BYTES + 1), "referrer sha256:3")
    with pytest.raises(SignatureInvalid, match="larger than"):
        verify(DIGEST, [huge], policy(key))


def test_a_deeply_nested_bundle_is_invalid() -> None:
    key = new_key()
    with pytest.raises(SignatureInvalid, match="not a Sigstore bundle"):
        verify(DIGEST, [BundleArtifact(b"[" * 5000 + b"]" * 5000, "r")], policy(key))


def test_another_payload_type_is_invalid() -> None:
    key = new_key()
    wrong = BundleArtifact(bundle(key, statement(DIGEST, REPO), payload_type="text/plain"), "r")
    with pytest.raises(SignatureInvalid, match="payload type"):
        verify(DIGEST, [wrong], policy(key))


def test_an_unknown_predicate_type_is_no_signature() -> None:
    key = new_key()
    sbom = signed_bundle(key, predicate_type="https://spdx.dev/Document")
    with pytest.raises(SignatureMissing):
        verify(DIGEST, [sbom], policy(key))


def test_legacy_simple_signing_verifies_and_checks_the_manifest_digest() -> None:
    key = new_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert verify(DIGEST, [legacy(key)], policy(key)).evidence == trusted(key).fingerprint
    with pytest.raises(SignatureInvalid, match="not this digest"):
        verify(DIGEST, [legacy(key, OTHER)], policy(key))
    with pytest.raises(SignatureUntrusted):
        verify(DIGEST, [legacy(key)], policy(new_key()))


def test_a_legacy_keyless_signature_is_untrusted_without_keyless_identities_or_verifier() -> None:
    key = new_key()
    keyless = LegacyArtifact(b"{}", "c2ln", "-----BEGIN CERTIFICATE-----", origin="tag sha256-aaaa.sig")
    with pytest.raises(SignatureUntrusted, match=r"legacy format\), and spec.verify lists no keyless identity"):
        verify(DIGEST, [keyless], policy(key))
    identities = TrustPolicy(mode=REQUIRED, identities=(Identity("https://issuer.example", subject="me"),))
    with pytest.raises(SignatureUntrusted, match="keyless verification is not available"):
        verify(DIGEST, [keyless], identities)


def test_provenance_names_the_tag_and_gives_the_commit() -> None:
    key = new_key()
    predicate = build_predicate("https://git.example.com/shop/web", "v1.4.2", "0f3c2e1" + "0" * 33, "apprelease")
    attestation = signed_bundle(key, predicate_type=SLSA, predicate=predicate)
    result = verify(DIGEST, [attestation], policy(key, provenance=True), version="v1.4.2")
    assert (result.tag, result.commit) == ("v1.4.2", "0f3c2e1" + "0" * 33)
    with pytest.raises(ProvenanceMismatch, match="'v1.4.2', not 'v1.5.0'"):
        verify(DIGEST, [attestation], policy(key, provenance=True), version="v1.5.0")
    with pytest.raises(SignatureMissing, match="provenance"):
        verify(DIGEST, [signed_bundle(key)], policy(key, provenance=True), version="v1.4.2")


def test_verified_by_is_the_signatures_signer_and_the_attestations_signer_is_recorded_apart() -> None:
    signer, attester = new_key(), new_key()
    predicate = build_predicate("https://git.example.com/shop/web", "v1.4.2", "0f3c2e1" + "0" * 33, "apprelease")
    attestation = signed_bundle(attester, predicate_type=SLSA, predicate=predicate)
    both = TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(signer), trusted(attester)))
    for listed in ([attestation, signed_bundle(signer)], [signed_bundle(signer), attestation]):
        result = verify(DIGEST, listed, both, version="v1.4.2")  # whatever order the registry lists them in
        assert (result.evidence, result.provenance_by) == (trusted(signer).fingerprint, trusted(attester).fingerprint)
    required = verify(DIGEST, [attestation], policy(attester, provenance=True), version="v1.4.2")
    assert required.evidence == required.provenance_by == trusted(attester).fingerprint
    assert verify(DIGEST, [signed_bundle(signer)], both).provenance_by is None


def test_provenance_of_slsa_github_generator_shape() -> None:
    key = new_key()
    predicate = {
        "buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/tags/v2.0.0", "repository": "https://github.com/o/r"}},
            "resolvedDependencies": [
                {"uri": "git+https://github.com/o/r@refs/tags/v2.0.0", "digest": {"gitCommit": "ab" * 20}}
            ],
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
    }
    result = verify(
        DIGEST,
        [signed_bundle(key, predicate_type=SLSA, predicate=predicate)],
        policy(key, provenance=True),
        version="v2.0.0",
    )
    assert (result.tag, result.commit) == ("v2.0.0", "ab" * 20)


def test_keys_accepts_ec_and_ed25519_pem_and_refuses_rsa_and_private_keys() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="not accepted"):
        load_public_key("rsa.pub", rsa_pem)
    private = new_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not a PEM public key"):
        load_public_key("k.pub", private)
    keys = load_public_keys(
        {"b.pub": public_pem(new_key("ed25519")), "a.pub": public_pem(new_key("p384")), "README": b"x"}
    )
    assert [k.name for k in keys] == ["a.pub", "b.pub"]


def test_bundle_shape_matches_cosign() -> None:
    key = new_key()
    document = json.loads(signed_bundle(key).content)
    assert document["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert document["verificationMaterial"]["publicKey"]["hint"] == trusted(key).hint
    assert document["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
