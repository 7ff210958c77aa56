"""`apprelease build` on the test bed: a version is built once, and `--sign --key` signs what it pushes (cosign
verifies it, and the operator's trust wing does)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import Mode, TrustPolicy, load_public_key, verify
from e2e.images import git, make_app_repo, skopeo_digest
from e2e.signing import Cosign
from e2e.support import Testbed

pytestmark = pytest.mark.e2e
APPRELEASE = str(Path(sys.executable).with_name("apprelease"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([APPRELEASE, *args], capture_output=True, text=True)


def test_a_version_is_built_once(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "once"
    commits = make_app_repo(repo, testbed.base_image, ["v1.0.0"])
    image = f"{testbed.registry}/e2e/once-{uuid.uuid4().hex[:8]}"
    first = cli("build", "--image", image, "--push", "--quiet", str(repo))
    assert first.returncode == 0, first.stderr
    digest = first.stdout.strip().split("@")[1]

    again = cli("build", "--image", image, "--push", str(repo))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == first.stdout.strip()
    assert "already released" in again.stderr and "nothing built or pushed" in again.stderr
    assert "baking" not in again.stderr

    (repo / "VERSION").write_text("v1.0.0 again, other content\n")
    git(repo, "commit", "-qam", "other content")
    git(repo, "tag", "-f", "v1.0.0")
    other = cli("build", "--image", image, "--push", str(repo))
    assert other.returncode != 0
    assert f"already holds {digest}, built from commit {commits['v1.0.0']}" in other.stderr
    assert skopeo_digest(f"{image}:v1.0.0", tls_verify=False) == digest  # the tag did not move


def test_build_sign_signs_what_it_pushes(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "signed"
    commits = make_app_repo(repo, testbed.base_image, ["v2.0.0"])
    image = f"{testbed.registry}/e2e/signed-{uuid.uuid4().hex[:8]}"
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "release.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = tmp_path / "release.pub"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    refused = cli("build", "--image", image, "--sign", str(repo))
    assert refused.returncode != 0 and "--push and --key" in refused.stderr

    built = cli("build", "--image", image, "--push", "--sign", "--key", str(key_file), str(repo))
    assert built.returncode == 0, built.stderr
    pinned = built.stdout.strip()
    digest = pinned.split("@")[1]
    assert "signed" in built.stderr

    (tmp_path / "cosign").mkdir()
    cosign = Cosign.ready(testbed, tmp_path / "cosign")
    assert digest in cosign.verify(pinned, public).stdout
    cosign.verify_attestation(pinned, public)

    trusted = load_public_key("release.pub", public.read_bytes())
    with RegistryClient(RegistrySettings(insecure_registries=[testbed.registry])) as registry:
        found = ReferrerFinder(registry).bundles(parse(image), digest)
    result = verify(
        digest, found, TrustPolicy(mode=Mode.REQUIRED, keys=(trusted,), provenance_required=True), version="v2.0.0"
    )
    assert (result.evidence, result.tag, result.commit) == (trusted.fingerprint, "v2.0.0", commits["v2.0.0"])

    again = cli("build", "--image", image, "--push", "--sign", "--key", str(key_file), str(repo))
    assert again.returncode == 0, again.stderr
    assert "already signed" in again.stderr
    assert (
        len(found) == 2
        and len(
            ReferrerFinder(RegistryClient(RegistrySettings(insecure_registries=[testbed.registry]))).bundles(
                parse(image), digest
            )
        )
        == 2
    )
