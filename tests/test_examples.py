"""The examples users copy must work: manifests parse and validate, the Argo CD health check answers right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from apprelease.cli.manifest import release_manifest, render_manifest
from apprelease.core.api import AppRelease
from apprelease.core.validation import validate_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_every_example_manifest_parses() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), path


def test_example_apprelease_is_valid() -> None:
    release = AppRelease.from_k8s(yaml.safe_load((EXAMPLES / "apprelease.yaml").read_text()))
    assert validate_spec(release.spec) is None


def _health(obj: dict[str, Any]) -> tuple[str, str]:
    config = yaml.safe_load((EXAMPLES / "argocd-health.yaml").read_text())
    script = config["data"]["resource.customizations.health.apprelease.dev_AppRelease"]
    lua = LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(script)
    return str(result["status"]), str(result["message"])


def _release(generation: int, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": {"conditions": list(conditions)}}


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        ({"metadata": {"generation": 1}}, "Progressing"),
        (_release(2, {"type": "Ready", "status": "True", "observedGeneration": 2, "message": "v1 runs"}), "Healthy"),
        (_release(3, {"type": "Ready", "status": "True", "observedGeneration": 2}), "Progressing"),
        (
            _release(2, {"type": "Ready", "status": "False", "observedGeneration": 2, "reason": "TagNotFound"}),
            "Progressing",
        ),
        (
            _release(
                2,
                {"type": "Ready", "status": "False", "observedGeneration": 2, "reason": "DigestMismatch"},
                {"type": "Stalled", "status": "True", "reason": "DigestMismatch", "message": "moved"},
            ),
            "Degraded",
        ),
        (
            _release(
                2,
                {"type": "Ready", "status": "False", "observedGeneration": 2, "reason": "RolledBack"},
                {"type": "Stalled", "status": "True", "reason": "RolledBack", "message": "v2 failed; v1 runs"},
            ),
            "Degraded",
        ),
    ],
)
def test_argocd_health_check_reads_the_conditions(obj: dict[str, Any], status: str) -> None:
    assert _health(obj)[0] == status


def test_example_deployment_opts_in_to_the_example_apprelease() -> None:
    release = yaml.safe_load((EXAMPLES / "apprelease.yaml").read_text())
    deployment = yaml.safe_load((EXAMPLES / "deployment.yaml").read_text())
    assert deployment["metadata"]["labels"]["apprelease.dev/release"] == release["metadata"]["name"]
    assert {"kind": "Deployment", "name": deployment["metadata"]["name"]} in release["spec"]["workloads"]


def test_the_build_manifest_says_how_to_opt_each_workload_in() -> None:
    document = release_manifest(
        name="web", image="r.example/web", version="v1", digest=None, workloads=[("web", []), ("worker", ["app"])]
    )
    text = render_manifest(document)
    assert yaml.safe_load(text) == document
    assert "kubectl label deployment web apprelease.dev/release=web" in text
    assert "kubectl label deployment worker apprelease.dev/release=web" in text
