"""Interoperability with cosign v3 on the test bed's registry (no referrers API: the referrers tag schema).

Both ways: what cosign signs (Sigstore bundle, legacy .sig, SLSA attestation) apprelease's finder and trust wing
verify; what `apprelease build --sign` attaches (cli.signing), `cosign verify --key` and `cosign
verify-attestation` accept.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apprelease.cli.signing import sign_release
from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.push import Pusher
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import (
    Mode,
    SignatureInvalid,
    SignatureUntrusted,
    TrustPolicy,
    load_public_key,
    verify,
)
from e2e.images import make_app_repo
from e2e.signing import Cosign, attach_bundle, bundles_of, push_image, rewrite_subject
from e2e.support import Testbed

pytestmark = pytest.mark.e2e
APPRELEASE = str(Path(sys.executable).with_name("apprelease"))
COMMIT = "0f3c2e1" + "b" * 33
SLSA = {
    "buildDefinition": {
        "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
        "externalParameters": {"workflow": {"ref": "refs/tags/v1.4.2", "repository": "https://github.com/shop/web"}},
        "resolvedDependencies": [
            {"uri": "git+https://github.com/shop/web@refs/tags/v1.4.2", "digest": {"gitCommit": COMMIT}}
        ],
    },
    "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
}


@pytest.fixture
def cosign(testbed: Testbed, tmp_path: Path) -> Cosign:
    return Cosign.ready(testbed, tmp_path)


@pytest.fixture
def image(testbed: Testbed) -> tuple[str, str]:
    """A fresh repository with one image at v1.4.2: (repository, digest)."""
    path = f"e2e/trust-{uuid.uuid4().hex[:8]}"
    digest = push_image(testbed.registry, path, "v1.4.2", {"org.opencontainers.image.version": "v1.4.2"})
    return f"{testbed.registry}/{path}", digest


def finder(testbed: Testbed) -> ReferrerFinder:
    return ReferrerFinder(RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])))


def policy(public_key: Path, *, provenance: bool = False) -> TrustPolicy:
    key = load_public_key("cosign.pub", public_key.read_bytes())
    return TrustPolicy(mode=Mode.REQUIRED, keys=(key,), provenance_required=provenance)


def test_a_cosign_bundle_signature_verifies(testbed: Testbed, cosign: Cosign, image: tuple[str, str]) -> None:
    repository, digest = image
    cosign.sign(f"{repository}@{digest}")
    found = finder(testbed).bundles(parse(repository), digest)
    assert len(found) == 1
    result = verify(digest, found, policy(cosign.public_key))
    assert result.evidence == load_public_key("k", cosign.public_key.read_bytes()).fingerprint


def test_a_cosign_legacy_signature_verifies(testbed: Testbed, cosign: Cosign, image: tuple[str, str]) -> None:
    repository, digest = image
    cosign.sign(f"{repository}@{digest}", legacy=True)
    find = finder(testbed)
    assert find.bundles(parse(repository), digest) == []
    legacy = find.legacy(parse(repository), digest)
    assert len(legacy) == 1
    assert verify(digest, legacy, policy(cosign.public_key)).evidence is not None


def test_a_cosign_slsa_attestation_gives_tag_and_commit(
    testbed: Testbed, cosign: Cosign, image: tuple[str, str]
) -> None:
    repository, digest = image
    cosign.attest(f"{repository}@{digest}", SLSA)
    found = finder(testbed).bundles(parse(repository), digest)
    result = verify(digest, found, policy(cosign.public_key, provenance=True), version="v1.4.2")
    assert (result.tag, result.commit) == ("v1.4.2", COMMIT)


def test_a_cosign_signature_by_another_key_is_untrusted(
    testbed: Testbed, cosign: Cosign, image: tuple[str, str], tmp_path: Path
) -> None:
    repository, digest = image
    cosign.sign(f"{repository}@{digest}")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "other.pub").write_bytes(pem)
    with pytest.raises(SignatureUntrusted):
        verify(digest, finder(testbed).bundles(parse(repository), digest), policy(tmp_path / "other.pub"))


def test_a_cosign_signature_replayed_onto_another_image_is_invalid(
    testbed: Testbed, cosign: Cosign, image: tuple[str, str]
) -> None:
    """cosign signs image A; its bundle is attached, as it is, to image B."""
    repository, digest_a = image
    path = repository.split("/", 1)[1]
    digest_b = push_image(testbed.registry, path, "v1.4.3", {"org.opencontainers.image.version": "v1.4.3"})
    cosign.sign(f"{repository}@{digest_a}")
    (signature,) = bundles_of(testbed.registry, path, digest_a)
    attach_bundle(testbed.registry, path, digest_b, signature)
    with pytest.raises(SignatureInvalid, match="not this digest"):
        verify(digest_b, finder(testbed).bundles(parse(repository), digest_b), policy(cosign.public_key))


def test_a_cosign_signature_with_its_subject_rewritten_is_invalid(
    testbed: Testbed, cosign: Cosign, image: tuple[str, str]
) -> None:
    repository, digest_a = image
    path = repository.split("/", 1)[1]
    digest_b = push_image(testbed.registry, path, "v1.4.4", {"org.opencontainers.image.version": "v1.4.4"})
    cosign.sign(f"{repository}@{digest_a}")
    (signature,) = bundles_of(testbed.registry, path, digest_a)
    attach_bundle(testbed.registry, path, digest_b, rewrite_subject(signature, digest_b))
    with pytest.raises(SignatureInvalid, match="content altered"):
        verify(digest_b, finder(testbed).bundles(parse(repository), digest_b), policy(cosign.public_key))


def test_what_build_sign_attaches_cosign_verifies(
    testbed: Testbed, cosign: Cosign, image: tuple[str, str], tmp_path: Path
) -> None:
    repository, digest = image
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "apprelease.pub"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with Pusher(parse(repository), None, insecure=[testbed.registry]) as pusher:
        sign_release(
            pusher,
            key,
            repository=repository,
            digest=digest,
            source="https://git.example.com/shop/web",
            tag="v1.4.2",
            commit=COMMIT,
        )
    pinned = f"{repository}@{digest}"
    verified = cosign.verify(pinned, public)
    assert digest in verified.stdout
    attested = cosign.verify_attestation(pinned, public)
    payload = json.loads(attested.stdout.splitlines()[0])["payload"]
    assert COMMIT in base64.b64decode(payload).decode()


def test_build_sign_with_cosigns_own_encrypted_key_file_cosign_verifies(testbed: Testbed, tmp_path: Path) -> None:
    """`cosign generate-key-pair` (a password) -> `apprelease build --push --sign --key cosign.key` (the password
    in COSIGN_PASSWORD, cosign's convention) -> `cosign verify --key cosign.pub` and `verify-attestation`."""
    (tmp_path / "cosign").mkdir()
    cosign = Cosign.ready(testbed, tmp_path / "cosign", password="correct horse battery staple")
    assert cosign.key.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    repo = tmp_path / "app"
    commits = make_app_repo(repo, testbed.base_image, ["v3.0.0"])
    image = f"{testbed.registry}/e2e/cosign-key-{uuid.uuid4().hex[:8]}"

    def build(password: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COSIGN_PASSWORD": password}
        args = ["build", "--image", image, "--push", "--sign", "--key", str(cosign.key), str(repo)]
        return subprocess.run([APPRELEASE, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)

    wrong = build("not the password")
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        f"error: --key {cosign.key}: wrong password for cosign's key file (COSIGN_PASSWORD)"
    ]
    assert wrong.stdout == ""  # refused before anything was built or pushed

    built = build(cosign.password)
    assert built.returncode == 0, built.stderr
    pinned = built.stdout.strip()
    digest = pinned.split("@")[1]
    assert digest in cosign.verify(pinned, cosign.public_key).stdout
    attested = cosign.verify_attestation(pinned, cosign.public_key)
    assert commits["v3.0.0"] in base64.b64decode(json.loads(attested.stdout.splitlines()[0])["payload"]).decode()
    found = finder(testbed).bundles(parse(image), digest)
    result = verify(digest, found, policy(cosign.public_key, provenance=True), version="v3.0.0")
    assert result.provenance_by == load_public_key("k", cosign.public_key.read_bytes()).fingerprint
