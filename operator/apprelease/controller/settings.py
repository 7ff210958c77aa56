"""Operator settings, read once from environment variables (prefix APPRELEASE_)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from apprelease.election import shards
from apprelease.election.rules import Timing, check_timing
from apprelease.notify.endpoint import EndpointRules
from apprelease.registry.client import RegistrySettings
from apprelease.trust.policy import Mode


class OperatorSettings(BaseSettings):
    """Everything an operator deployment can tune; the Helm chart sets these as env vars."""

    model_config = SettingsConfigDict(env_prefix="APPRELEASE_", extra="ignore")

    # NoDecode: lists come as comma-separated text, not JSON, so they read well in a Helm values file.
    insecure_registries: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Registry hosts (host:port) reached over plain http. Comma-separated.",
    )
    allowed_registries: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Registries AppReleases may name: host, host:port or *.suffix, comma-separated; empty: any.",
    )
    require_uid_binding: bool = Field(
        default=False,
        description="Pin only workloads bound to the AppRelease's uid (annotation apprelease.dev/release-uid), "
        "not by its name alone: a namesake created after a deletion is refused (apprelease.core.consent).",
    )
    ca_bundle: str | None = Field(default=None, description="PEM file of extra CAs for registries over https.")
    allowed_private_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Private, shared, ULA or NAT64 networks (CIDR, comma-separated) that token realms and "
        "redirects of any registry may lead to; a registry's own network is always allowed for its own hops.",
    )
    verify_floor: Mode = Field(
        default=Mode.NONE,
        description="The least signature verification every AppRelease gets (None, IfPresent, Required); a "
        "tenant's spec.verify can ask for more, never less.",
    )
    watch_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch, comma-separated; empty means the whole cluster."
    )
    resync_seconds: float = Field(default=300.0, gt=0, description="Re-check of every AppRelease when idle.")
    rollout_poll_seconds: float = Field(default=5.0, gt=0, description="Re-check while a rollout is in progress.")
    retry_base_seconds: float = Field(default=2.0, gt=0, description="First retry delay after a transient error.")
    retry_max_seconds: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    registry_resolution_timeout_seconds: float = Field(
        default=30.0, gt=0, description="One deadline for every registry request of one resolution."
    )
    kube_timeout_seconds: float = Field(default=30.0, gt=0, description="Deadline of each Kubernetes API call.")
    registry_cache_seconds: float = Field(
        default=300.0, ge=0, description="How long a resolved (repository, tag) is reused: one resync period."
    )
    # Whatever the workers: the memory untrusted registry answers may take at once (registry/slots.py).
    registry_concurrent_fetches: int = Field(
        default=4, ge=1, le=64, description="Manifests and image configs fetched and parsed at once (memory)."
    )
    # A pass mostly waits on the API server (4 workers left it idle between answers: a wave of 1,000 pinned in
    # 28.7 s from the apply's start, 19.0 s with 32; make bench). Argo CD's application controller runs 20 status
    # and 10 operation processors; kopf has no limit at all. APF on the API server bounds what these ask at once.
    workers: int = Field(default=32, ge=1, le=64, description="AppReleases reconciled in parallel.")
    event_threads: int = Field(default=4, ge=1, le=8, description="Threads posting Events off the workers.")
    health_port: int = Field(default=8080, ge=1, le=65535, description="kopf liveness endpoint port.")
    metrics_port: int = Field(default=8081, ge=0, le=65535, description="Prometheus /metrics port (0: any free one).")
    metrics_token_file: str | None = Field(
        default=None, description="File holding the bearer token /metrics requires (a mounted Secret); unset: none."
    )
    metrics_max_releases: int = Field(
        default=5000, ge=0, description="AppReleases with per-AppRelease series; updates for more are dropped."
    )
    metrics_max_registries: int = Field(
        default=32, ge=0, description="Distinct `registry` label values without allowed_registries; then `other`."
    )
    log_level: str = Field(default="INFO")
    # Leader election (the README's "High availability"). Off for `apprelease run` (one process on a laptop), as
    # controller-runtime binaries default --leader-elect to false; the Helm chart turns it on.
    leader_election: bool = Field(default=False, description="Elect a leader on a Lease; only it reconciles.")
    leader_election_name: str = Field(default="apprelease-operator", min_length=1, max_length=253)
    leader_election_namespace: str | None = Field(
        default=None, description="The Lease's namespace; default: POD_NAMESPACE, else the kubeconfig's."
    )
    lease_duration_seconds: float = Field(default=8.0, gt=0, le=300)
    renew_deadline_seconds: float = Field(default=6.0, gt=0, le=300)
    retry_period_seconds: float = Field(default=2.0, gt=0, le=60)
    # Large fleets (README "High availability"): one operator Deployment per shard, each with its own Lease.
    shard: str | None = Field(default=None, description="Only AppReleases labelled apprelease.dev/shard=<this>.")
    shard_range: str | None = Field(
        default=None, description="0xSTART-0xEND: namespaces whose FNV-1a hash is in range (ShardedListAndWatch)."
    )
    list_chunk_size: int = Field(default=500, ge=0, le=10000, description="Initial list page size; 0: one list.")
    notify_insecure_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Notification receivers (host or host:port) reached over plain http. Comma-separated.",
    )
    notify_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Private or loopback networks (CIDR) receivers may be in; link-local never. Comma-separated.",
    )
    promotion_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces whose AppReleases others may promote from (besides their own); * for any.",
    )
    notify_timeout_seconds: float = Field(default=10.0, gt=0, description="Deadline of one notification.")

    @field_validator(
        "insecure_registries",
        "allowed_registries",
        "watch_namespaces",
        "allowed_private_networks",
        "notify_insecure_hosts",
        "notify_allowed_networks",
        "promotion_sources",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the value: refused at start
        return value

    @model_validator(mode="after")
    def _election_timing(self) -> OperatorSettings:
        problems = check_timing(self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_period_seconds)
        if problems:
            raise ValueError("leader election: " + "; ".join(problems))
        if self.shard is not None:
            shards.check_shard(self.shard)
        if self.shard_range is not None:
            shards.parse_range(self.shard_range)
        return self

    def lease_name(self) -> str:
        """This Deployment's Lease: one per shard."""
        return shards.lease_name(self.leader_election_name, self.shard, self.shard_range)

    def election_timing(self) -> Timing:
        return Timing(self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_period_seconds)

    def registry(self) -> RegistrySettings:
        return RegistrySettings(
            insecure_registries=self.insecure_registries,
            ca_bundle=self.ca_bundle,
            timeout_seconds=self.registry_timeout_seconds,
            resolution_timeout_seconds=self.registry_resolution_timeout_seconds,
            allowed_private_networks=self.allowed_private_networks,
            cache_ttl_seconds=self.registry_cache_seconds,
            max_concurrent_fetches=self.registry_concurrent_fetches,
        )

    def notify_rules(self) -> EndpointRules:
        """Raises ValueError for an entry of notify_allowed_networks that is not CIDR notation."""
        return EndpointRules.parse(
            self.notify_insecure_hosts, self.notify_allowed_networks, self.notify_timeout_seconds
        )
