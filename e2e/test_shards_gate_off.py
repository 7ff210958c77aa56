"""A kube-apiserver WITHOUT the ShardedListAndWatch feature gate ignores shardSelector, on custom resources too,
and an operator in shardRange mode refuses to start against it (issue 19). The test bed's own API server has the
gate on (e2e/testbed/up.sh), so this test starts a second kube-apiserver of the same build on a free loopback
port, on the test bed's etcd under a key prefix of its own (deleted afterwards), with the test bed's certificates.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from apprelease.election import shards
from e2e.releases import release_manifest
from e2e.support import ROOT, Testbed, wait_until

ETCD = f"http://127.0.0.1:{os.environ.get('TESTBED_ETCD_PORT', '2379')}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _etcd_delete_prefix(prefix: str) -> None:
    """etcd's v3 JSON gateway: delete every key under `prefix` (range end: the prefix with its last byte + 1)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = {"key": base64.b64encode(prefix.encode()).decode(), "range_end": base64.b64encode(end.encode()).decode()}
    request = urllib.request.Request(f"{ETCD}/v3/kv/deleterange", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def gate_off_kubeconfig(testbed: Testbed, tmp_path: Path) -> Iterator[str]:
    """A kubeconfig for a private kube-apiserver without the gate; the server stopped and its keys deleted after."""
    pki = Path(testbed.kubeconfig).resolve().parent / "pki"
    port, prefix = _free_port(), f"/e2e-gate-off-{uuid.uuid4().hex[:8]}"
    binary = Path(testbed.bin_dir) / "kube-apiserver" if testbed.bin_dir else Path("kube-apiserver")
    log = (tmp_path / "kube-apiserver.log").open("wb")
    # fmt: off
    server = subprocess.Popen([
        str(binary), "--etcd-servers", ETCD, "--etcd-prefix", prefix, "--bind-address", "127.0.0.1",
        "--advertise-address", "127.0.0.1", "--secure-port", str(port),
        "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
        "--client-ca-file", str(pki / "ca.crt"), "--authorization-mode", "RBAC", "--anonymous-auth=false",
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(pki / "sa.pub"), "--service-account-signing-key-file", str(pki / "sa.key"),
        "--service-cluster-ip-range", "10.96.0.0/16", "--profiling=false", "--endpoint-reconciler-type", "none",
    ], stdout=log, stderr=subprocess.STDOUT)
    # fmt: on
    config = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    try:
        wait_until(lambda: _ready(str(kubeconfig), server), timeout=90, what="the private kube-apiserver ready")
        yield str(kubeconfig)
    finally:
        server.terminate()
        server.wait(timeout=30)
        _etcd_delete_prefix(prefix)


def _ready(kubeconfig: str, server: subprocess.Popen[bytes]) -> bool:
    assert server.poll() is None, "the private kube-apiserver exited"
    return _kubectl(kubeconfig, "get", "--raw", "/readyz", check=False).returncode == 0


def _kubectl(
    kubeconfig: str, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=check, input=stdin
    )


def test_a_server_without_the_gate_ignores_shard_selectors_and_a_range_shard_refuses_to_start(
    testbed: Testbed, gate_off_kubeconfig: str, tmp_path: Path
) -> None:
    kubeconfig = gate_off_kubeconfig
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "crds"))
    wait_until(
        lambda: _kubectl(kubeconfig, "get", "appreleases", check=False).returncode == 0, timeout=30, what="the CRD"
    )
    namespaces = ["gate-off-a", "gate-off-b"]
    for namespace in namespaces:
        _kubectl(kubeconfig, "create", "namespace", namespace)
        manifest = release_manifest(namespace, "web", f"{testbed.registry}/e2e/web", "v1.0.0", [{"name": "web"}])
        _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))
    # A range that holds the first namespace only: the server hands out both, and says nothing about shards.
    digest = shards.fnv1a64(namespaces[0])
    assert shards.fnv1a64(namespaces[1]) != digest
    selector = shards.range_selector(f"0x{digest:x}-0x{digest + 1:x}")
    query = urllib.parse.urlencode({"shardSelector": selector})
    listed = json.loads(
        _kubectl(kubeconfig, "get", "--raw", f"/apis/apprelease.dev/v1alpha1/appreleases?{query}").stdout
    )
    assert sorted(item["metadata"]["namespace"] for item in listed["items"]) == namespaces
    assert "shardInfo" not in listed["metadata"]

    env = {
        **testbed.operator_env(),
        "KUBECONFIG": kubeconfig,
        "APPRELEASE_SHARD_RANGE": shards.split(2)[0],
        "APPRELEASE_HEALTH_PORT": str(_free_port()),
        "APPRELEASE_METRICS_PORT": "0",
    }
    run = subprocess.run(
        [sys.executable, "-m", "apprelease", "run"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    output = run.stdout + run.stderr
    assert "APPRELEASE_SHARD_RANGE: the API server ignores shardSelector" in output
    assert "ShardedListAndWatch feature gate" in output
    # Nothing was reconciled: each status is still the schema's default (Reconciling, reason Pending), no revision.
    after = json.loads(_kubectl(kubeconfig, "get", "appreleases", "-A", "-o", "json").stdout)
    statuses = [item.get("status") or {} for item in after["items"]]
    assert len(statuses) == 2, statuses
    for status in statuses:
        assert not status.get("revision") and not status.get("history"), status
        assert {c.get("reason") for c in status.get("conditions") or []} <= {"Pending"}, status
