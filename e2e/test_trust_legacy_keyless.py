"""cosign's legacy keyless format on the test bed's registry, with cosign v3 as the oracle: a legacy keyless
signature issued by the tests' private Sigstore chain (tests/legacy_chain.py, shaped as cosign v2 writes it) is
accepted by `cosign verify --new-bundle-format=false` against that chain's trusted root AND by apprelease's finder
and trust wing; one by an identity that is not listed is refused by both.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from tests.legacy_chain import legacy_keyless
from tests.sigstore_chain import PrivateSigstore

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import Identity, LegacyArtifact, Mode, SignatureUntrusted, TrustPolicy, verify
from apprelease.trust.legacykeyless import verify_legacy_keyless
from e2e.signing import Cosign, attach_legacy, push_image
from e2e.support import Testbed

pytestmark = pytest.mark.e2e
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2"
EVIL = "https://github.com/evil/web/.github/workflows/x.yml@refs/heads/main"


@pytest.fixture
def cosign(testbed: Testbed, tmp_path: Path) -> Cosign:
    return Cosign.ready(testbed, tmp_path)


def signed(testbed: Testbed, instance: PrivateSigstore, subject: str) -> tuple[str, str, str]:
    """A fresh repository whose image carries a legacy keyless signature by ``subject``: (path, ref, digest)."""
    path = f"e2e/legacy-keyless-{uuid.uuid4().hex[:8]}"
    digest = push_image(testbed.registry, path, "v1.4.2", {"org.opencontainers.image.version": "v1.4.2"})
    artifact: LegacyArtifact = legacy_keyless(instance, digest, ISSUER, subject)
    assert artifact.certificate and artifact.chain and artifact.rekor_bundle
    annotations = {
        "dev.cosignproject.cosign/signature": artifact.signature,
        "dev.sigstore.cosign/certificate": artifact.certificate,
        "dev.sigstore.cosign/chain": artifact.chain,
        "dev.sigstore.cosign/bundle": artifact.rekor_bundle,
    }
    # cosign signs the payload naming the repository as pushed; the payload's docker-reference is not checked
    attach_legacy(testbed.registry, path, digest, artifact.payload, annotations)
    return path, f"{testbed.registry}/{path}@{digest}", digest


def cosign_verify(cosign: Cosign, root: Path, ref: str) -> tuple[int, str, str]:
    """`cosign verify` of a legacy keyless signature, offline against ``root``: (exit code, stdout, stderr)."""
    result = cosign.run(
        "verify",
        "--trusted-root",
        str(root),
        "--allow-http-registry",
        "--new-bundle-format=false",
        "--certificate-identity",
        SUBJECT,
        "--certificate-oidc-issuer",
        ISSUER,
        ref,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def apprelease_verify(testbed: Testbed, instance: PrivateSigstore, path: str, digest: str) -> str | None:
    policy = TrustPolicy(
        mode=Mode.REQUIRED, identities=(Identity(ISSUER, subject=SUBJECT),), trusted_root=instance.trusted_root()
    )
    with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as client:
        found = ReferrerFinder(client).legacy(parse(f"{testbed.registry}/{path}"), digest)
    assert len(found) == 1
    return verify(digest, found, policy, legacy_keyless=verify_legacy_keyless).evidence


def test_cosign_and_apprelease_accept_a_legacy_keyless_signature(testbed: Testbed, cosign: Cosign) -> None:
    instance = PrivateSigstore()
    root = cosign.home / "private-root.json"
    root.write_text(instance.trusted_root())
    path, ref, digest = signed(testbed, instance, SUBJECT)
    code, output, errors = cosign_verify(cosign, root, ref)
    assert code == 0, errors
    assert "verified offline" in errors  # cosign checked the Rekor bundle (SET), not skipped the log
    (claims,) = json.loads(output)
    assert claims["critical"]["image"]["docker-manifest-digest"] == digest
    assert apprelease_verify(testbed, instance, path, digest) == f"keyless:{ISSUER}|{SUBJECT}"


def test_cosign_and_apprelease_refuse_an_identity_not_listed(testbed: Testbed, cosign: Cosign) -> None:
    instance = PrivateSigstore()
    root = cosign.home / "private-root.json"
    root.write_text(instance.trusted_root())
    path, ref, digest = signed(testbed, instance, EVIL)
    code, _, errors = cosign_verify(cosign, root, ref)
    assert code != 0 and "none of the expected identities matched" in errors, errors
    with pytest.raises(SignatureUntrusted, match="evil"):
        apprelease_verify(testbed, instance, path, digest)
