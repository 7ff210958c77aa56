"""What `apprelease build --push [--sign]` asks of the registry besides the engine's push: build once, and sign.

Build once (``cli.buildonce``): before anything is built, the version tag is looked up; another commit's image
there is refused, this commit's image is reused (nothing built, nothing pushed). Signing (``cli.signing``):
the pushed digest gets a signature and an SLSA provenance attestation as OCI referrers; when the image was
already released, only if no signature by this key verifies yet (a re-run after a failed signing step).
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from apprelease.cli.app import err, fail
from apprelease.cli.bake import BakePlan
from apprelease.cli.buildonce import VersionTaken, existing_release
from apprelease.cli.registryaccess import docker_credential, insecure_hosts, registry_settings
from apprelease.cli.signing import load_key, sign_release
from apprelease.cli.text import safe
from apprelease.core import reference
from apprelease.reference import Reference
from apprelease.registry import Credential, RegistryClient, RegistryError, RegistryUnavailable
from apprelease.registry.push import Pusher
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import Mode, TrustError, TrustPolicy, load_public_key, verify
from apprelease.trust.sign import PrivateKey

__all__ = ["RegistryAccess", "load_signer"]

PASSWORD_ENV = "APPRELEASE_KEY_PASSWORD"
COSIGN_PASSWORD_ENV = "COSIGN_PASSWORD"  # for cosign's own key file, as cosign reads it


def cosign_password() -> str:
    """cosign's convention: ``COSIGN_PASSWORD`` (set, even empty, it is the password), else asked on a terminal."""
    password = os.environ.get(COSIGN_PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise ValueError(f"cosign's key file is encrypted: set {COSIGN_PASSWORD_ENV} (no terminal to ask on)")
    return getpass.getpass("Enter password for private key: ")


def load_signer(path: Path) -> PrivateKey:
    try:
        return load_key(path, os.environ.get(PASSWORD_ENV), cosign_password)
    except ValueError as problem:
        fail(f"--key {path}: {problem}")


@dataclass
class RegistryAccess:
    """The registry of one image, as the CLI reaches it: the user's credential; plain http for listed hosts,
    and for a loopback registry when https fails there (the Docker engine's default for 127.0.0.0/8)."""

    repository: Reference
    credential: Credential | None
    insecure: list[str]

    @classmethod
    def for_image(cls, image: str, insecure_options: list[str]) -> RegistryAccess:
        repository = reference.parse_repository(image)
        return cls(repository, docker_credential(repository), insecure_hosts(insecure_options))

    def _client(self) -> RegistryClient:
        return RegistryClient(registry_settings(self.insecure, None))

    def _existing(self, plan: BakePlan) -> str | None:
        with self._client() as registry:
            return existing_release(registry, self.repository, plan.version, plan.git.commit, self.credential)

    def _existing_any_scheme(self, plan: BakePlan) -> str | None:
        try:
            return self._existing(plan)
        except RegistryUnavailable:
            domain = self.repository.domain
            if domain in self.insecure or not insecure_hosts([], domain):
                raise
            self.insecure.append(domain)
            return self._existing(plan)

    def released(self, plan: BakePlan) -> str | None:
        """The digest when this commit's image already holds the version tag (then reported); None when free."""
        try:
            digest = self._existing_any_scheme(plan)
        except VersionTaken as problem:
            fail(str(problem))
        except RegistryError as problem:
            fail(f"not pushing {plan.image}:{plan.version}: cannot check that the tag holds no other build ({problem})")
        if digest is not None:
            err.print(
                f"[yellow]already released[/] {safe(plan.image)}:{safe(plan.version)} = {safe(digest)} "
                f"(commit {safe(plan.git.short_commit)}): nothing built or pushed"
            )
        return digest

    def _signed_by(self, digest: str, signer: PrivateKey) -> bool:
        from cryptography.hazmat.primitives import serialization

        pem = signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        policy = TrustPolicy(mode=Mode.REQUIRED, keys=(load_public_key("key", pem),))
        with self._client() as registry:
            try:
                verify(digest, ReferrerFinder(registry).bundles(self.repository, digest, self.credential), policy)
            except TrustError:
                return False
        return True

    def sign(self, plan: BakePlan, digest: str, signer: PrivateKey, *, only_if_unsigned: bool, quiet: bool) -> None:
        try:
            if only_if_unsigned and self._signed_by(digest, signer):
                if not quiet:
                    err.print("[yellow]already signed[/] with this key: nothing attached")
                return
            with Pusher(self.repository, self.credential, insecure=self.insecure) as pusher:
                signed = sign_release(
                    pusher,
                    signer,
                    repository=self.repository.repository,
                    digest=digest,
                    source=plan.git.source or "",
                    tag=plan.version,
                    commit=plan.git.commit,
                )
        except RegistryError as problem:
            fail(f"signing {plan.image}@{digest} failed: {problem}")
        if not quiet:
            err.print(
                f"[green]signed[/] {safe(digest)} with {safe(signed.fingerprint)}; "
                f"SLSA provenance attested ({safe(plan.version)}, {safe(plan.git.short_commit)})"
            )
