"""The Flux example: health checks name AppReleases as the API serves them, and drift correction leaves the
operator's pinned image alone on the Deployments that opted in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from apprelease.core.api import (
    ANNOTATION_RELEASE,
    API_VERSION,
    KIND,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_ROLLOUT_TIMEOUT_SECONDS = 600  # the README: rollout.timeoutSeconds default


def flux() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / "flux-kustomization.yaml").read_text()) if d]


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_flux_kustomizations_wait_for_appreleases_longer_than_a_rollout_may_take() -> None:
    docs = flux()
    kustomizations = [d for d in docs if d["kind"] == "Kustomization"]
    assert {d["apiVersion"] for d in kustomizations} == {"kustomize.toolkit.fluxcd.io/v1"}
    sources = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] == "GitRepository"}
    for k in kustomizations:
        spec = k["spec"]
        assert (spec["sourceRef"]["kind"], spec["sourceRef"]["name"]) in sources
        assert seconds(spec["timeout"]) > DEFAULT_ROLLOUT_TIMEOUT_SECONDS
        assert spec.get("wait") or spec.get("healthChecks"), k["metadata"]["name"]
    checks = [c for k in kustomizations for c in k["spec"].get("healthChecks", [])]
    assert checks == [{"apiVersion": API_VERSION, "kind": KIND, "name": "web", "namespace": "shop"}]
    example = yaml.safe_load((EXAMPLES / "apprelease.yaml").read_text())
    assert (example["metadata"]["name"], example["metadata"]["namespace"]) == ("web", "shop")
    names = {k["metadata"]["name"] for k in kustomizations}
    assert all(d["name"] in names for k in kustomizations for d in k["spec"].get("dependsOn", []))


def test_flux_ignores_drift_of_the_pinned_image_on_opted_in_deployments() -> None:
    [web] = [d for d in flux() if d["kind"] == "Kustomization" and d["spec"].get("driftIgnoreRules")]
    [rule] = web["spec"]["driftIgnoreRules"]
    assert rule["target"] == {"group": "apps", "kind": "Deployment", "labelSelector": ANNOTATION_RELEASE}
    assert rule["paths"] == ["/spec/template/spec/containers/0/image"]
