"""Promotion with the operator as a real process, three namespaces as dev, staging and prod.

prod waits (no patch) until staging Succeeded and soaked, then pins exactly the digest staging ran, though the
tag was moved in the registry in between; a version that failed upstream (rolled back there automatically)
is revoked downstream. Nothing here compares durations: the soak is checked from recorded times.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.images import Pushed, bake
from e2e.releases import (
    apply,
    container_images,
    deployment_manifest,
    get_release,
    patch_release,
    posted_events,
    release_manifest,
    wait_condition,
    wait_ready,
)
from e2e.support import ROOT, Operator, Testbed, wait_until
from e2e.workloads import Chaos, workload_manifest

SOAK = 6


@pytest.fixture
def envs(testbed: Testbed, namespace: str) -> Iterator[dict[str, str]]:
    names = {"dev": namespace, "staging": f"{namespace}-staging", "prod": f"{namespace}-prod"}
    for name in list(names.values())[1:]:
        testbed.kubectl("create", "namespace", name)
    yield names
    for name in list(names.values())[1:]:
        testbed.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def promoting(testbed: Testbed, operator: Operator, envs: dict[str, str]) -> Iterator[Operator]:
    operator.stop()
    env = {"APPRELEASE_WATCH_NAMESPACES": ",".join(envs.values()), "APPRELEASE_PROMOTION_SOURCES": envs["staging"]}
    env["APPRELEASE_PROMOTION_SOURCES"] += f",{envs['dev']}"
    own = Operator(testbed, ROOT / ".testbed" / "logs" / "operator-promotion.log", extra_env=env)
    own.start()
    yield own
    own.stop()
    operator.start()


def _time(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "300"}  # a table wide enough that no cell wraps
    return subprocess.run([sys.executable, "-m", "apprelease", *args], capture_output=True, text=True, env=env)


def test_prod_waits_for_staging_success_and_soak_then_pins_the_digest_staging_ran(
    testbed: Testbed,
    promoting: Operator,
    envs: dict[str, str],
    app_repo: tuple[Path, dict[str, str]],
) -> None:
    dev, staging, prod = envs["dev"], envs["staging"], envs["prod"]
    repository = f"{testbed.registry}/e2e/promo-{dev}"
    original = bake(app_repo, repository, "v1.0.0")
    placeholder = {"web": f"{repository}:v0"}
    for ns in envs.values():
        apply(testbed, deployment_manifest(ns, "web", placeholder, release="web"))
    workloads = [{"kind": "Deployment", "name": "web"}]

    # Before staging has anything: refused by the CLI, waiting in the operator, nothing patched.
    refused = _cli("promote", "web", "--from", f"{staging}/web", "--version", "v1.0.0", "-n", prod,
                   "--kubeconfig", testbed.kubeconfig)  # fmt: skip
    assert refused.returncode == 1
    promotion = {"from": {"namespace": staging, "name": "web"}, "soakSeconds": SOAK}
    apply(testbed, release_manifest(prod, "web", repository, "v1.0.0", workloads, promotion=promotion))
    wait_condition(testbed, prod, "web", "Ready", "False", "AwaitingPromotion", timeout=30)
    assert container_images(testbed, prod, "web") == placeholder

    apply(testbed, release_manifest(dev, "web", repository, "v1.0.0", workloads))
    wait_ready(testbed, dev, "web", "v1.0.0")
    staged = {"from": {"namespace": dev, "name": "web"}}
    apply(testbed, release_manifest(staging, "web", repository, "v1.0.0", workloads, promotion=staged))
    staging_release = wait_ready(testbed, staging, "web", "v1.0.0")
    assert staging_release["status"]["history"][0]["promotedFrom"] == f"{dev}/web#1"

    # The tag moves in the registry between staging and prod: prod still gets what staging ran.
    moved = bake(app_repo, repository, "v2.0.0", tag="v1.0.0", label_version="v1.0.0")
    assert moved.digest != original.digest
    prod_release = wait_ready(testbed, prod, "web", "v1.0.0", timeout=60)
    head = prod_release["status"]["history"][0]
    assert head["digest"] == original.digest and head["promotedFrom"] == f"{staging}/web#1"
    assert container_images(testbed, prod, "web") == {"web": original.pinned}
    upstream = get_release(testbed, staging, "web")["status"]["history"][0]
    soaked_since = _time(upstream["succeededAt"])  # the bake's end
    assert _time(head["deployedAt"]) >= soaked_since + dt.timedelta(seconds=SOAK)
    # The tag re-check is shared per (repository, tag) and period (resync 30 s here): dev's earlier check may
    # stand for prod's first one, so the Warning can take up to a period.
    [moved_event] = posted_events(testbed, prod, "TagMoved", timeout=120)
    assert moved.digest in moved_event["message"]

    table = _cli("history", "web", "-n", prod, "--kubeconfig", testbed.kubeconfig)
    assert table.returncode == 0 and f"{staging}/web#1" in " ".join(table.stdout.split())


def test_a_version_rolled_back_upstream_is_revoked_downstream(
    testbed: Testbed,
    promoting: Operator,
    envs: dict[str, str],
    web: dict[str, Pushed],
) -> None:
    staging, prod = envs["staging"], envs["prod"]
    good, bad = web["v1.0.0"], web["v1.1.0"]
    chaos = Chaos(bad.pinned, "CrashLoopBackOff", 3)
    placeholder = {"app": f"{good.repository}:v0"}
    for ns in (staging, prod):
        apply(testbed, workload_manifest("Deployment", ns, "web", placeholder, release="web", chaos=chaos))
    workloads = [{"kind": "Deployment", "name": "web"}]
    apply(testbed, release_manifest(staging, "web", good.repository, "v1.0.0", workloads))
    wait_ready(testbed, staging, "web", "v1.0.0")
    patch_release(testbed, staging, "web", {"version": "v1.1.0"})
    wait_condition(testbed, staging, "web", "Stalled", "True", "RolledBack", timeout=120)

    promotion: dict[str, Any] = {"from": {"namespace": staging, "name": "web"}}
    apply(testbed, release_manifest(prod, "web", good.repository, "v1.1.0", workloads, promotion=promotion))
    release = wait_condition(testbed, prod, "web", "Stalled", "True", "PromotionRevoked", timeout=30)
    assert "failed upstream" in next(c["message"] for c in release["status"]["conditions"] if c["type"] == "Stalled")
    assert container_images(testbed, prod, "web") == placeholder
    wait_until(lambda: posted_events(testbed, prod, "PromotionRevoked"), timeout=30, what="a PromotionRevoked Event")


def test_a_promoted_digest_whose_upstream_revision_fails_later_is_revoked_and_keeps_running(
    testbed: Testbed,
    promoting: Operator,
    envs: dict[str, str],
    web: dict[str, Pushed],
) -> None:
    staging, prod = envs["staging"], envs["prod"]
    good, other = web["v1.0.0"], web["v1.1.0"]
    placeholder = {"app": f"{good.repository}:v0"}
    for ns in (staging, prod):
        apply(testbed, workload_manifest("Deployment", ns, "web", placeholder, release="web"))
    workloads = [{"kind": "Deployment", "name": "web"}]
    apply(testbed, release_manifest(staging, "web", good.repository, "v1.0.0", workloads))
    wait_ready(testbed, staging, "web", "v1.0.0")
    promotion: dict[str, Any] = {"from": {"namespace": staging, "name": "web"}}
    apply(testbed, release_manifest(prod, "web", good.repository, "v1.0.0", workloads, promotion=promotion))
    wait_ready(testbed, prod, "web", "v1.0.0")

    # Staging moves on, then deploys v1.0.0 again (revision 3, from its history), whose pods now crash there:
    # it fails and is rolled back automatically.
    patch_release(testbed, staging, "web", {"version": "v1.1.0"})
    wait_ready(testbed, staging, "web", "v1.1.0")
    chaos = Chaos(good.pinned, "CrashLoopBackOff", 3).annotations()
    patch = {"spec": {"template": {"metadata": {"annotations": chaos}}}}
    testbed.kubectl("patch", "deployment", "web", "-n", staging, "--type=merge", "-p", json.dumps(patch))
    patch_release(testbed, staging, "web", {"version": "v1.0.0"})
    wait_condition(testbed, staging, "web", "Stalled", "True", "RolledBack", timeout=120)
    failed = get_release(testbed, staging, "web")["status"]["history"][1]
    assert (failed["revision"], failed["version"], failed["outcome"]) == (3, "v1.0.0", "Failed")

    release = wait_condition(testbed, prod, "web", "Stalled", "True", "PromotionRevoked", timeout=60)
    stalled = next(c["message"] for c in release["status"]["conditions"] if c["type"] == "Stalled")
    assert f"{staging}/web#3" in stalled
    [warning] = posted_events(testbed, prod, "PromotionRevoked")
    assert warning["type"] == "Warning" and f"{staging}/web#3" in warning["message"]
    # Not rolled back: prod keeps running the digest it was promoted with, at its first revision.
    assert container_images(testbed, prod, "web") == {"app": good.pinned}
    assert release["status"]["revision"] == 1 and other.digest not in json.dumps(release["status"])
