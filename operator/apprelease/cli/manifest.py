"""The AppRelease manifest `apprelease build --manifest` writes: pinned with spec.digest."""

from __future__ import annotations

from typing import Any

import yaml

from apprelease.core.api import API_VERSION, KIND, LABEL_RELEASE
from apprelease.core.workloads import Kind


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
        {"kind": str(Kind.DEPLOYMENT), "name": workload, **({"containers": containers} if containers else {})}
        for workload, containers in workloads
    ]
    spec["provenance"] = provenance
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def render_manifest(document: dict[str, Any]) -> str:
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
