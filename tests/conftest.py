"""Shared unit-test fakes: an in-memory cluster, a registry on httpx.MockTransport, clocks, and the `world`
fixture that wires them to a real Reconciler and RegistryClient."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from apprelease.controller.fencing import Conflict
from apprelease.controller.reconciler import Reconciler, Result
from apprelease.core.api import (
    LABEL_RELEASE,
    AppReleaseStatus,
)
from apprelease.core.conditions import READY, RECONCILING, STALLED, Reason
from apprelease.core.workloads import Kind
from apprelease.registry import RegistryClient, RegistrySettings

NS = "prod"
NAME = "shop"
HOST = "registry.example.com"
IMAGE = f"{HOST}/shop/web"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
USER = "alice"
PASSWORD = "s3cret-Pa55word-do-not-log"
WRONG_PASSWORD = "wr0ng-Pa55word-do-not-log"
RESYNC = 300.0
POLL = 5.0


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def commit_of(tag: str) -> str:
    """The git commit `apprelease build` would label a release with (a 40-hex SHA-1)."""
    return hashlib.sha1(tag.encode()).hexdigest()


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# --- merge patches as the API server applies them ------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null removes, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Enough of a strategic-merge patch for Deployments: like a merge patch, but containers merge by name."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return merge_patch(target, patch)
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif key in ("containers", "initContainers"):
            merged = [copy.deepcopy(c) for c in result.get(key) or []]
            by_name = {c["name"]: c for c in merged}
            for item in value:
                if item["name"] in by_name:
                    by_name[item["name"]].update(strategic_merge_patch(by_name[item["name"]], item))
                else:
                    merged.append(copy.deepcopy(item))
            result[key] = merged
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


# --- the cluster ---------------------------------------------------------------------------------------
@dataclass
class Event:
    kind: str
    name: str
    type: str
    reason: str
    message: str


class Crash(Exception):
    """The operator process dies in the middle of a reconcile."""


@dataclass
class FakeCluster:
    appreleases: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)
    secret_data: dict[str, dict[str, bytes]] = field(default_factory=dict)  # Secrets read whole (spec.verify keys)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    service_accounts: dict[str, list[str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    others: dict[Kind, dict[str, dict[str, Any]]] = field(default_factory=dict)  # StatefulSets, DaemonSets, …
    pods: list[dict[str, Any]] = field(default_factory=list)
    replica_sets: list[dict[str, Any]] = field(default_factory=list)
    deleted_pods: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # "status", "deployment/<name>", "pods?<selector>", in order
    # What others see, in order: "status", "event <reason>", "deployment/<name>" (a workload patch).
    effects: list[str] = field(default_factory=list)
    crash_on_deployment_patch: bool = False
    last_version: int = 0  # the API server's resourceVersion counter (AppReleases only)
    before_status_write: list[Callable[[], object]] = field(default_factory=list)  # each runs once, first in line

    def get_apprelease(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == NS
        if name not in self.appreleases:
            return None
        self._version(name)
        return copy.deepcopy(self.appreleases[name])

    def patch_apprelease_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str = ""
    ) -> str:
        if self.before_status_write:
            self.before_status_write.pop(0)()  # another writer (a second replica) gets in first
        # As the API server: a write carrying a resourceVersion that is no longer current is a 409.
        if resource_version and resource_version != self._version(name):
            self.calls.append("conflict")
            raise Conflict(f"{name} is at {self._version(name)}, not {resource_version}")
        obj = self.appreleases[name]
        self.appreleases[name] = merge_patch(obj, {"status": status})  # the status subresource: no new generation
        self.calls.append("status")
        self.effects.append("status")
        return self.touch(name)

    def touch(self, name: str) -> str:
        """Someone wrote the AppRelease: a new resourceVersion."""
        self.last_version += 1
        self.appreleases[name].setdefault("metadata", {})["resourceVersion"] = str(self.last_version)
        return str(self.last_version)

    def _version(self, name: str) -> str:
        meta = self.appreleases[name].setdefault("metadata", {})
        return str(meta["resourceVersion"]) if "resourceVersion" in meta else self.touch(name)

    def _store(self, kind: Kind) -> dict[str, dict[str, Any]]:
        return self.deployments if kind == Kind.DEPLOYMENT else self.others.setdefault(kind, {})

    def get_workload(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._store(kind).get(name)
        return copy.deepcopy(obj) if obj is not None else None

    def patch_workload(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.crash_on_deployment_patch:
            self.crash_on_deployment_patch = False
            raise Crash(name)
        store = self._store(kind)
        old = store[name]
        new = strategic_merge_patch(old, body)
        if new["spec"] != old["spec"]:
            new["metadata"]["generation"] += 1
        store[name] = new
        prefix = "deployment" if kind == Kind.DEPLOYMENT else kind.lower()
        self.calls.append(f"{prefix}/{name}")
        self.effects.append(f"{prefix}/{name}")
        return copy.deepcopy(new)

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls.append(f"pods?{selector}")
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [copy.deepcopy(p) for p in self.pods if wanted.items() <= p["metadata"]["labels"].items()]

    def list_replica_sets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls.append(f"replicasets?{selector}")
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [copy.deepcopy(r) for r in self.replica_sets if wanted.items() <= r["metadata"]["labels"].items()]

    def delete_pod(self, namespace: str, name: str) -> None:
        self.deleted_pods.append(name)
        self.pods = [p for p in self.pods if p["metadata"]["name"] != name]

    def get_docker_config(self, namespace: str, secret: str) -> bytes | None:
        return self.secrets.get(secret)

    def get_service_account_pull_secrets(self, namespace: str, name: str) -> list[str]:
        return list(self.service_accounts.get(name, []))

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        assert namespace == NS
        self.calls.append(f"secret/{name}")
        return dict(self.secret_data[name]) if name in self.secret_data else None

    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        assert namespace == NS
        return dict(self.config_maps[name]) if name in self.config_maps else None

    def post_event(self, involved: dict[str, str], type_: str, reason: str, message: str) -> None:
        assert involved["namespace"] == NS
        self.events.append(Event(involved["kind"], involved["name"], type_, reason, message))
        self.effects.append(f"event {reason}")

    # --- test helpers ---
    def roll_out(self) -> None:
        """Every Deployment finishes rolling out its current spec."""
        for deployment in self.deployments.values():
            replicas = deployment["spec"].get("replicas", 1)
            deployment["status"] = {
                "observedGeneration": deployment["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
            }

    def images(self, deployment: str = "web") -> dict[str, str]:
        containers = self.deployments[deployment]["spec"]["template"]["spec"]["containers"]
        return {c["name"]: c["image"] for c in containers}

    def template_annotations(self, deployment: str = "web") -> dict[str, str]:
        return dict(self.deployments[deployment]["spec"]["template"]["metadata"].get("annotations") or {})

    def patched(self) -> list[str]:
        return [c for c in self.calls if "/" in c and not c.startswith(("pods?", "replicasets?"))]


def deployment(
    name: str, *, image: str = f"{IMAGE}:v0", pull_secrets: list[str] | None = None, release: str | None = NAME
) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "web", "image": image}, {"name": "proxy", "image": "envoy:1.30"}]}
    if pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    obj = {
        "metadata": {
            "name": name,
            "namespace": NS,
            "generation": 1,
            "uid": f"uid-{name}",
            "labels": {LABEL_RELEASE: release} if release else {},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }
    return obj


# --- the registry --------------------------------------------------------------------------------------
@dataclass
class FakeRegistry:
    """An OCI registry serving manifests (by tag and digest) and config blobs; optionally down or locked."""

    tags: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # digest -> (content, media type)
    requests: list[httpx.Request] = field(default_factory=list)
    down: bool = False
    password: str | None = None  # when set, Basic auth as USER is required

    def push(self, tag: str, labels: dict[str, str] | None = None) -> str:
        """Push an image whose config carries labels; return the manifest digest the tag now points to."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels or {}}}).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                "layers": [],
            },
            indent=2,
        ).encode()
        self.blobs[sha(config)] = (config, "application/octet-stream")
        self.blobs[sha(manifest)] = (manifest, OCI_MANIFEST)
        self.tags[tag] = sha(manifest)
        return sha(manifest)

    def release(self, tag: str, **labels: str) -> str:
        """Push as `apprelease build` bakes it: version and revision labels."""
        return self.push(
            tag,
            {"org.opencontainers.image.version": tag, "org.opencontainers.image.revision": commit_of(tag), **labels},
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            return httpx.Response(503)
        if self.password is not None and request.headers.get("Authorization") != f"Basic {basic(USER, self.password)}":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Basic realm="{HOST}"'})
        prefix = "/v2/shop/web/"
        assert request.url.path.startswith(prefix), request.url
        kind, _, ident = request.url.path.removeprefix(prefix).partition("/")
        if kind == "referrers":  # distribution 2.8, like the test bed's: no referrers API (the sha256-<hex> tag)
            return httpx.Response(404)
        digest = self.tags.get(ident, ident) if kind == "manifests" else ident
        if digest not in self.blobs:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})
        content, media_type = self.blobs[digest]
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else content)


# --- the world: cluster, registry and reconciler -------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class WallClock:
    """The reconciler's idea of the time of day (RFC 3339), movable by tests."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def __call__(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    cluster: FakeCluster
    registry: FakeRegistry
    reconciler: Reconciler
    clock: Clock
    wall: WallClock = field(default_factory=WallClock)  # what the reconciler's `now` reads, when wired to it

    def create(self, version: str = "v1", **spec: Any) -> None:
        """An AppRelease; without a bake (rollout.bakeSeconds 0) unless the test sets one."""
        spec["rollout"] = {"bakeSeconds": 0, **spec.get("rollout", {})}
        self.cluster.appreleases[NAME] = {
            "apiVersion": "apprelease.dev/v1alpha1",
            "kind": "AppRelease",
            "metadata": {"name": NAME, "namespace": NS, "generation": 1, "uid": "uid-shop"},
            "spec": {"image": IMAGE, "version": version, "workloads": [{"name": "web"}], **spec},
        }

    def update(self, **spec: Any) -> None:
        if "rollout" in spec:
            spec["rollout"] = {"bakeSeconds": 0, **spec["rollout"]}
        obj = self.cluster.appreleases[NAME]
        obj["spec"].update(spec)
        obj["metadata"]["generation"] += 1
        self.cluster.touch(NAME)

    def reconcile(self) -> Result:
        return self.reconciler.reconcile(NS, NAME)

    def status(self) -> AppReleaseStatus:
        return AppReleaseStatus.model_validate(self.cluster.appreleases[NAME].get("status") or {})

    def raw_status(self) -> dict[str, Any]:
        return copy.deepcopy(self.cluster.appreleases[NAME].get("status") or {})

    def condition(self, type_: str) -> tuple[str, str]:
        for c in self.status().conditions:
            if c.type == type_:
                return c.status, c.reason
        raise AssertionError(f"no {type_} condition in {self.status().conditions}")

    def deploy(self, version: str) -> str:
        """Release a version (creating the AppRelease if needed) and let it roll out: returns its digest."""
        digest = self.registry.tags.get(version) or self.registry.release(version)
        if NAME in self.cluster.appreleases:
            self.update(version=version)
        else:
            self.create(version)
        self.reconcile()
        self.cluster.roll_out()
        assert self.reconcile() == Result(requeue_after=RESYNC)
        assert self.condition(READY) == ("True", Reason.SUCCEEDED)
        return digest

    def events(self, reason: str | None = None) -> list[Event]:
        return [e for e in self.cluster.events if reason is None or e.reason == reason]

    def reset_records(self) -> None:
        self.cluster.events.clear()
        self.cluster.calls.clear()
        self.registry.requests.clear()


@pytest.fixture
def world() -> World:
    cluster = FakeCluster(deployments={"web": deployment("web")})
    registry = FakeRegistry()
    clock = Clock()
    wall = WallClock()
    client = RegistryClient(
        RegistrySettings(max_attempts=2), transport=httpx.MockTransport(registry), sleep=lambda _: None, clock=clock
    )
    reconciler = Reconciler(
        cluster,
        client,
        resync_seconds=RESYNC,
        rollout_poll_seconds=POLL,
        now=wall,
        monotonic=clock,
    )
    return World(cluster, registry, reconciler, clock, wall)


def pinned(digest: str) -> str:
    return f"{IMAGE}@{digest}"


def assert_stalled(world: World, reason: str) -> None:
    assert world.condition(STALLED) == ("True", reason)
    assert world.condition(READY) == ("False", reason)
    assert world.condition(RECONCILING) == ("False", reason)
    assert world.status().observed_generation == world.cluster.appreleases[NAME]["metadata"]["generation"]


def assert_waiting(world: World, reason: str) -> None:
    assert world.condition(READY) == ("False", reason)
    assert world.condition(RECONCILING) == ("True", reason)
    assert world.condition(STALLED)[0] == "False"
