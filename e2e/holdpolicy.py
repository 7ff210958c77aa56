"""The chart's hold-unpinned admission policy (charts/apprelease-operator/templates/hold-unpinned.yaml) on the
test bed, for tests and benches that run the operator as a process: rendered by the test bed's helm from the
chart itself (never a copy), bound to the given namespaces, applied, and removed on exit."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2e.support import ROOT, Testbed, wait_until

CHART = ROOT / "charts" / "apprelease-operator"
MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"  # what the chart checks the cluster serves


def render(testbed: Testbed, release: str, namespaces: list[str]) -> str:
    """The policy and its binding as `helm template` renders them, turned on (the chart's default is off), with
    watchNamespaces = namespaces."""
    helm = Path(testbed.bin_dir) / "helm" if testbed.bin_dir else Path("helm")
    result = subprocess.run(
        [str(helm), "template", release, str(CHART), "--show-only", "templates/hold-unpinned.yaml"]
        + ["--set", "holdUnpinned.enabled=true", "--set", f"watchNamespaces={{{','.join(namespaces)}}}"]
        + ["--api-versions", MAP_API],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


def probe(testbed: Testbed, namespace: str, pod_spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    """What the API server's admission makes of a labelled Deployment (a server-side dry run): by default one
    container by tag; `meta`: more metadata fields (e.g. annotations)."""
    name = f"hold-probe-{uuid.uuid4().hex[:8]}"
    pod_spec = pod_spec or {"containers": [{"name": "a", "image": "r/a:1"}]}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"apprelease.dev/release": name}} | meta,
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }
    created = testbed.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(manifest))
    answer: dict[str, Any] = json.loads(created.stdout)
    return answer


@contextmanager
def hold_unpinned(testbed: Testbed, namespaces: list[str], release: str = "e2e") -> Iterator[None]:
    """The policy in force for `namespaces` (waited for: the API server loads policies asynchronously)."""
    rendered = render(testbed, release, namespaces)
    testbed.kubectl("apply", "-f", "-", input=rendered)
    try:
        wait_until(
            lambda: probe(testbed, namespaces[0])["spec"].get("paused") is True or None,
            timeout=60,
            what="the hold-unpinned policy in force",
        )
        yield
    finally:
        testbed.kubectl("delete", "--ignore-not-found", "-f", "-", input=rendered)
