"""The AppRelease manifest `apprelease build --manifest` writes: pinned with spec.digest."""

from __future__ import annotations

from typing import NotRequired, TypedDict

import yaml

from apprelease.core.api import API_VERSION, KIND, LABEL_RELEASE
from apprelease.core.workloads import Kind


class ListedWorkload(TypedDict):
    """An item of spec.workloads (the CRD's schema): kind, name, and the containers to pin (default: all)."""

    kind: str
    name: str
    containers: NotRequired[list[str]]


class ManifestMetadata(TypedDict):
    name: str
    namespace: NotRequired[str]


class ManifestSpec(TypedDict):
    """The part of spec that `build --manifest` writes, in the order it is written."""

    image: str
    version: str
    digest: NotRequired[str]
    workloads: list[ListedWorkload]
    provenance: str


class ReleaseManifest(TypedDict):
    """An AppRelease manifest as `build --manifest` writes it (keys as the API spells them)."""

    apiVersion: str
    kind: str
    metadata: ManifestMetadata
    spec: ManifestSpec


def release_manifest(
    *,
    name: str,
    image: str,
    version: str,
    digest: str | None,
    workloads: list[tuple[str, list[str]]],
    namespace: str | None = None,
    provenance: str = "Required",
) -> ReleaseManifest:
    metadata = ManifestMetadata(name=name)
    if namespace:
        metadata["namespace"] = namespace
    listed: list[ListedWorkload] = []
    for workload, containers in workloads:
        entry = ListedWorkload(kind=str(Kind.DEPLOYMENT), name=workload)
        if containers:
            entry["containers"] = containers
        listed.append(entry)
    # Keys in the order the YAML shows them: digest, when given, right after version.
    spec: ManifestSpec = (
        {"image": image, "version": version, "digest": digest, "workloads": listed, "provenance": provenance}
        if digest
        else {"image": image, "version": version, "workloads": listed, "provenance": provenance}
    )
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def render_manifest(document: ReleaseManifest) -> str:
    """The manifest as YAML, headed by how each workload's owner opts it in (nothing is managed without it)."""
    name = document["metadata"]["name"]
    namespace = document["metadata"].get("namespace")
    flag = f" -n {namespace}" if namespace else ""
    lines = [
        f"# Each workload below is managed only once its owner labels it {LABEL_RELEASE}: {name}, e.g.",
        *(
            f"#   kubectl label {w['kind'].lower()} {w['name']}{flag} {LABEL_RELEASE}={name}"
            for w in document["spec"]["workloads"]
        ),
    ]
    return "\n".join(lines) + "\n" + yaml.safe_dump(document, sort_keys=False)


def parse_workload(text: str) -> tuple[str, list[str]]:
    """`web` or `web:app,sidecar` -> ("web", ["app", "sidecar"])."""
    name, _, containers = text.partition(":")
    if not name:
        raise ValueError(f"--workload {text!r}: expected NAME or NAME:CONTAINER[,CONTAINER]")
    return name, [c for c in containers.split(",") if c]
