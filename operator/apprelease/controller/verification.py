"""Verify before pinning: the controller side of the trust wing (reads keys and roots, finds signatures).

For a new version the reconciler asks :meth:`Gate.check_new` after resolving the tag and before recording the
revision; for a rollback, :meth:`Gate.check_recorded` re-checks the evidence recorded in history against the
current ``spec.verify`` with no registry request. Failures are ``TrustError`` (reason + message) for the
reconciler to report; registry failures stay ``RegistryError``.

Where the keys or the trusted root cannot be read (Secret or ConfigMap missing, a bad PEM), the reason is
``SignatureMissing``: retried, since fixing the Secret needs no new spec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from apprelease.core.api import HistoryEntry, RecordedProvenance
from apprelease.core.conditions import Problem, Reason
from apprelease.core.limits import quoted
from apprelease.core.spec import ReleaseSpec
from apprelease.core.verifyspec import VerifySettings
from apprelease.reference import Reference
from apprelease.registry import Credential, RegistryClient
from apprelease.registry.referrers import ReferrerFinder
from apprelease.trust import (
    Mode,
    PublicKey,
    SignatureMissing,
    TrustError,
    TrustPolicy,
    Verified,
    effective_mode,
    load_public_keys,
    recheck,
    recheck_provenance,
    verify,
)
from apprelease.trust.bundle import BundleArtifact, LegacyArtifact
from apprelease.trust.statement import SLSA_PROVENANCE_PREDICATES
from apprelease.trust.verify import KeylessVerifier, LegacyKeylessVerifier

log = logging.getLogger(__name__)

__all__ = ["Gate", "TrustSources", "recorded_provenance"]

TRUSTED_ROOT_KEY = "trusted_root.json"


class TrustSources(Protocol):
    """Where keys and roots are read from (the Kubernetes adapter; a fake in unit tests)."""

    def get_secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None: ...
    def get_config_map_data(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


def recorded_provenance(verified: Verified) -> RecordedProvenance | None:
    """What a history entry records of the verified provenance attestation (None without one)."""
    if verified.provenance_by is None:
        return None
    return RecordedProvenance(signedBy=verified.provenance_by, tag=verified.tag, commit=verified.commit)


def _keyless_verifier() -> KeylessVerifier:
    from apprelease.trust.keyless import verify_keyless  # sigstore itself is imported on first use only

    return verify_keyless


def _legacy_keyless_verifier() -> LegacyKeylessVerifier:
    from apprelease.trust.legacykeyless import verify_legacy_keyless  # sigstore's models imported on first use

    return verify_legacy_keyless


class Gate:
    """One per operator: ``floor`` is the operator-wide minimum mode (``APPRELEASE_VERIFY_FLOOR``)."""

    def __init__(
        self,
        sources: TrustSources,
        registry: RegistryClient,
        floor: Mode = Mode.NONE,
        *,
        finder: ReferrerFinder | None = None,
        keyless: Callable[[], KeylessVerifier] = _keyless_verifier,
        legacy_keyless: Callable[[], LegacyKeylessVerifier] = _legacy_keyless_verifier,
    ) -> None:
        self._sources = sources
        self._registry = registry
        self._floor = floor
        self._finder = finder or ReferrerFinder(registry)
        self._keyless = keyless
        self._legacy_keyless = legacy_keyless

    @property
    def floor(self) -> Mode:
        return self._floor

    def policy(self, namespace: str, settings: VerifySettings | None) -> TrustPolicy:
        """The effective policy: the spec's, raised to the floor; keys and root read from the namespace."""
        settings = settings or VerifySettings()
        mode = effective_mode(settings.mode, self._floor)
        if mode is Mode.NONE and not settings.provenance_required:
            return TrustPolicy()
        keys: tuple[PublicKey, ...] = ()
        if settings.keys_secret is not None:
            data = self._sources.get_secret_data(namespace, settings.keys_secret)
            if data is None:
                raise SignatureMissing(f"the keys Secret {namespace}/{settings.keys_secret} does not exist (yet)")
            try:
                keys = load_public_keys(dict(data))
            except ValueError as exc:
                raise SignatureMissing(f"the keys Secret {namespace}/{settings.keys_secret}: {exc}") from None
            if not keys:
                raise SignatureMissing(f"the keys Secret {namespace}/{settings.keys_secret} has no *.pub entry")
        root: str | None = None
        if settings.trusted_root_config_map is not None:
            config = self._sources.get_config_map_data(namespace, settings.trusted_root_config_map)
            root = (config or {}).get(TRUSTED_ROOT_KEY)
            if root is None:
                raise SignatureMissing(
                    f"the ConfigMap {namespace}/{settings.trusted_root_config_map} has no {TRUSTED_ROOT_KEY}"
                )
        return TrustPolicy(
            mode=mode,
            keys=keys,
            identities=settings.identities,
            trusted_root=root,
            provenance_required=settings.provenance_required,
        )

    def check_new(
        self, policy: TrustPolicy, repository: Reference, digest: str, version: str, credential: Credential | None
    ) -> Verified:
        """Find the digest's signatures and verify them (RegistryError, TrustError). Bundles first; the legacy
        ``.sig`` tag only when the bundles did not verify (one request saved per signed version)."""
        if not policy.active:
            return Verified(digest, None)
        wanted = SLSA_PROVENANCE_PREDICATES if policy.provenance_required else None
        keyless = self._keyless() if policy.identities else None
        legacy_keyless = self._legacy_keyless() if policy.identities else None
        with self._registry.resolution():  # one deadline for every request of this verification
            bundles: list[BundleArtifact | LegacyArtifact] = list(
                self._finder.bundles(repository, digest, credential, wanted=wanted)
            )
        try:
            return verify(digest, bundles, policy, version=version, keyless=keyless)
        except TrustError as first:
            if policy.provenance_required or not (policy.keys or policy.identities):
                raise  # legacy signatures carry no provenance, and are read with keys or identities only
            with self._registry.resolution():
                legacy = self._finder.legacy(repository, digest, credential)
            if not legacy:
                raise first from None
            log.debug("%s: bundles did not verify (%s); trying %d legacy signatures", digest, first, len(legacy))
            return verify(
                digest, [*bundles, *legacy], policy, version=version, keyless=keyless, legacy_keyless=legacy_keyless
            )

    @staticmethod
    def check_recorded(policy: TrustPolicy, entry: HistoryEntry) -> None:
        """A rollback's re-check: SignatureUntrusted when the recorded evidence (the signature's ``verifiedBy``
        and, when provenance is required, the provenance attestation's signer and tag) is no longer trusted."""
        what = f"revision {entry.revision} ({quoted(entry.digest, 80)})"
        recheck(entry.verified_by, policy, what)
        attested = entry.provenance
        signed_by, tag = (attested.signed_by, attested.tag) if attested is not None else (None, None)
        recheck_provenance(signed_by, tag, entry.version, policy, what)

    # -- for the reconciler: TrustError as a Problem (its reason's class says retried or Stalled) -------------

    def verify_new(
        self, namespace: str, spec: ReleaseSpec, digest: str, credential: Credential | None
    ) -> Verified | Problem:
        """Verify the digest ``spec.version`` resolved to, before it is recorded; RegistryError passes through."""
        try:
            policy = self.policy(namespace, spec.verify)
            return self.check_new(policy, spec.repository, digest, spec.version, credential)
        except TrustError as refused:
            return Problem(Reason(refused.reason), str(refused))

    def recheck(self, namespace: str, spec: ReleaseSpec, entry: HistoryEntry) -> Problem | None:
        """A rollback to ``entry``: its recorded evidence against the current policy, with no registry request."""
        try:
            self.check_recorded(self.policy(namespace, spec.verify), entry)
        except TrustError as refused:
            return Problem(Reason(refused.reason), str(refused))
        return None
