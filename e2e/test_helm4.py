"""Helm 4's kstatus-based `--wait` on a chart that ships a Deployment and its AppRelease: it returns once the
release is Ready (not before the operator acted), and fails its wait on a Stalled AppRelease. Helm 4 applies
server-side: an upgrade that changes the Deployment's image meets the operator's pin as a conflict."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from e2e.conftest import helm_env
from e2e.images import Pushed
from e2e.kstatus import build_tool
from e2e.releases import condition, container_images, get_release
from e2e.support import ROOT, Operator, Testbed

Helm4 = Callable[..., subprocess.CompletedProcess[str]]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {apprelease.dev/release: {{ .Release.Name }}}
spec:
  replicas: 2
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
        - name: app
          {{- if and .Values.digest .Values.pinDeployment }}
          image: "{{ .Values.image }}@{{ .Values.digest }}"
          {{- else }}
          image: "{{ .Values.image }}:{{ .Values.version }}"
          {{- end }}
"""

APPRELEASE = """\
apiVersion: apprelease.dev/v1alpha1
kind: AppRelease
metadata:
  name: {{ .Release.Name }}
spec:
  image: {{ .Values.image | quote }}
  version: {{ .Values.version | quote }}
  {{- with .Values.digest }}
  digest: {{ . | quote }}
  {{- end }}
  workloads:
    - {kind: Deployment, name: {{ .Release.Name }}}
"""


@pytest.fixture(scope="module")
def helm4(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Helm4:
    binary = build_tool(ROOT / "e2e" / "helm4" / "build.sh")
    env = helm_env(testbed, tmp_path_factory.mktemp("helm4"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env)

    assert run("version", "--short").stdout.startswith("v4.")
    return run


@pytest.fixture
def chart(tmp_path: Path, web: dict[str, Pushed]) -> Path:
    path = tmp_path / "shop"
    (path / "templates").mkdir(parents=True)
    (path / "Chart.yaml").write_text("apiVersion: v2\nname: shop\nversion: 0.1.0\n")
    values = {"image": web["v1.0.0"].repository, "version": "v1.0.0", "digest": "", "pinDeployment": False}
    (path / "values.yaml").write_text(yaml.safe_dump(values))
    (path / "templates" / "deployment.yaml").write_text(DEPLOYMENT)
    (path / "templates" / "apprelease.yaml").write_text(APPRELEASE)
    return path


def test_helm4_wait_returns_when_the_apprelease_is_ready(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], helm4: Helm4, chart: Path
) -> None:
    result = helm4("install", "web", str(chart), "-n", namespace, "--wait", "--timeout", "120s")
    assert result.returncode == 0, result.stdout + result.stderr
    # Right when Helm says the release is done, the AppRelease is Ready at its generation and the pods run v1.
    release = get_release(testbed, namespace, "web")
    ready = condition(release, "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == release["metadata"]["generation"], release
    assert release["status"]["digest"] == web["v1.0.0"].digest
    assert container_images(testbed, namespace, "web") == {"app": web["v1.0.0"].pinned}
    deployment = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert deployment["status"].get("updatedReplicas") == deployment["status"].get("availableReplicas") == 2

    # An upgrade that moves the Deployment's image: Helm 4 applies server-side, and the image field now belongs
    # to the operator (it pinned the digest), so a plain upgrade stops at the conflict ...
    upgrade = ["upgrade", "web", str(chart), "-n", namespace, "--set", "version=v1.1.0", "--wait", "--timeout", "120s"]
    result = helm4(*upgrade)
    assert result.returncode != 0
    assert 'conflict with "apprelease"' in result.stderr, result.stderr
    assert '.spec.template.spec.containers[name="app"].image' in result.stderr, result.stderr
    # ... and a forced one takes the field, the operator pins the new digest again, and the wait covers all that.
    result = helm4(*upgrade, "--force-conflicts")
    assert result.returncode == 0, result.stdout + result.stderr
    release = get_release(testbed, namespace, "web")
    assert condition(release, "Ready")["status"] == "True" and release["status"]["version"] == "v1.1.0"
    assert container_images(testbed, namespace, "web") == {"app": web["v1.1.0"].pinned}


def test_helm4_upgrades_without_conflict_when_the_chart_pins_the_same_digest(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], helm4: Helm4, chart: Path
) -> None:
    """The chart templates the Deployment's image from the AppRelease's own version and digest values (as
    `apprelease build --manifest` writes them): Helm and the operator agree, so nothing conflicts."""
    for version in ("v1.0.0", "v1.1.0"):
        pinned = [
            "--set",
            f"version={version}",
            "--set",
            f"digest={web[version].digest}",
            "--set",
            "pinDeployment=true",
        ]
        result = helm4(
            "upgrade", "--install", "web", str(chart), "-n", namespace, *pinned, "--wait", "--timeout", "120s"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        release = get_release(testbed, namespace, "web")
        assert condition(release, "Ready")["status"] == "True" and release["status"]["version"] == version
        assert container_images(testbed, namespace, "web") == {"app": web[version].pinned}


def test_helm4_wait_fails_on_a_stalled_apprelease(
    testbed: Testbed, operator: Operator, namespace: str, helm4: Helm4, chart: Path
) -> None:
    started = time.monotonic()
    result = helm4(
        "install",
        "bad",
        str(chart),
        "-n",
        namespace,
        "--set",
        "digest=sha256:" + "0" * 64,
        "--wait",
        "--timeout",
        "30s",
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.stdout
    assert "AppRelease" in result.stderr or "bad" in result.stderr, result.stderr
    release = get_release(testbed, namespace, "bad")
    stalled = condition(release, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "DigestMismatch"
    print(f"helm 4 --wait gave up on the Stalled AppRelease after {elapsed:.1f}s (timeout 30s): {result.stderr[-300:]}")
