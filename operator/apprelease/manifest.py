"""The AppRelease manifest `apprelease build --manifest` writes: pinned with spec.digest."""

from __future__ import annotations

from typing import Any

from apprelease.api import API_VERSION, KIND


def release_manifest(
    *,
    name: str,
    image: str,
    version: str,
    digest: str | None,
    workloads: list[tuple[str, list[str]]],
    namespace: str | None = None,
    provenance: str = "Required",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {"image": image, "version": version}
    if digest:
        spec["digest"] = digest
    spec["workloads"] = [
        {"kind": "Deployment", "name": workload, **({"containers": containers} if containers else {})}
        for workload, containers in workloads
    ]
    spec["provenance"] = provenance
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def parse_workload(text: str) -> tuple[str, list[str]]:
    """`web` or `web:app,sidecar` -> ("web", ["app", "sidecar"])."""
    name, _, containers = text.partition(":")
    if not name:
        raise ValueError(f"--workload {text!r}: expected NAME or NAME:CONTAINER[,CONTAINER]")
    return name, [c for c in containers.split(",") if c]
