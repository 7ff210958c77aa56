"""A fleet of AppReleases spread over many namespaces, made fast for the sharding tests (e2e/test_shards.py):
one workload each (a suspended CronJob, or in the first AppRelease of a namespace a Deployment of 0 replicas,
so that both watch kinds are sharded and nothing needs a pod), created in parallel through the API."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from kubernetes import client

from e2e.releases import deployment_manifest, release_manifest
from e2e.support import wait_until
from e2e.workloads import workload_manifest

GROUP, VERSION, PLURAL = "apprelease.dev", "v1alpha1", "appreleases"
FLEET_LABEL = "e2e.apprelease.dev/fleet"
SHARD_LABEL = "apprelease.dev/shard"
Key = tuple[str, str]


@dataclass
class Fleet:
    """`size` AppReleases named app-0000... over `namespaces` namespaces `<base>-00`...; all labelled with the
    fleet's name, so that one cluster-wide list finds them and nothing else."""

    api: client.ApiClient
    base: str
    size: int = 1000
    namespace_count: int = 50
    namespaces: list[str] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    _namespaces_made: bool = False

    def __post_init__(self) -> None:
        self.namespaces = [f"{self.base}-{i:02d}" for i in range(self.namespace_count)]
        self.keys = [(self.namespaces[i % self.namespace_count], f"app-{i:04d}") for i in range(self.size)]

    def create_namespaces(self) -> None:
        core = client.CoreV1Api(self.api)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda ns: core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))),
                    self.namespaces,
                )
            )
        self._namespaces_made = True

    def create(self, image: str, version: str, shard_of: Callable[[str], str | None]) -> float:
        """Namespaces, then every workload and AppRelease (16 at a time); `shard_of(namespace)` is the shard
        label of that namespace's AppReleases (None: no label). Returns the seconds it took."""
        started = time.monotonic()
        apps, batch = client.AppsV1Api(self.api), client.BatchV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        if not self._namespaces_made:
            self.create_namespaces()
        first = {ns: name for ns, name in reversed(self.keys)}  # the first AppRelease of each namespace

        def make(key: Key) -> None:
            namespace, name = key
            if first[namespace] == name:
                body = deployment_manifest(namespace, name, {"app": f"{image}:{version}"}, replicas=0, release=name)
                apps.create_namespaced_deployment(namespace, cast(Any, body))
                kind = "Deployment"
            else:
                body = workload_manifest("CronJob", namespace, name, {"app": f"{image}:{version}"}, release=name)
                batch.create_namespaced_cron_job(namespace, cast(Any, body))
                kind = "CronJob"
            release = release_manifest(
                namespace, name, image, version, [{"kind": kind, "name": name}], rollout={"bakeSeconds": 0}
            )
            labels = {FLEET_LABEL: self.base}
            shard = shard_of(namespace)
            if shard is not None:
                labels[SHARD_LABEL] = shard
            release["metadata"]["labels"] = labels
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, release)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(make, self.keys))
        return time.monotonic() - started

    def releases(self) -> list[dict[str, Any]]:
        custom = client.CustomObjectsApi(self.api)
        listed = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=f"{FLEET_LABEL}={self.base}")
        items: list[dict[str, Any]] = cast(dict[str, Any], listed)["items"]
        return items

    def wait_ready(self, version: str, timeout: float = 600) -> list[dict[str, Any]]:
        def all_ready() -> list[dict[str, Any]] | None:
            items = self.releases()
            ready = [item for item in items if _ready_at(item, version)]
            return items if len(ready) == self.size else None

        found: list[dict[str, Any]] = wait_until(
            all_ready, timeout=timeout, interval=3, what=f"{self.size} AppReleases Ready at {version}"
        )
        return found

    def reporters(self) -> dict[Key, set[str]]:
        """Who posted the Events about each AppRelease of the fleet: (namespace, name) -> reportingInstance."""
        core = client.CoreV1Api(self.api)
        wanted = set(self.keys)
        found: dict[Key, set[str]] = defaultdict(set)
        for namespace in self.namespaces:
            listed = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=AppRelease")
            for event in listed.items:
                key = (namespace, event.involved_object.name or "")
                if key in wanted:
                    found[key].add(event.reporting_instance or "")
        return dict(found)

    def delete(self) -> None:
        core = client.CoreV1Api(self.api)
        for namespace in self.namespaces:
            try:
                core.delete_namespace(namespace)
            except client.ApiException:
                pass  # never created, or already going


def _ready_at(item: dict[str, Any], version: str) -> bool:
    status = item.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    fresh = ready.get("observedGeneration") == item["metadata"].get("generation")
    return bool(fresh and ready.get("status") == "True" and status.get("version") == version)
