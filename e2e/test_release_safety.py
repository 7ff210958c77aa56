"""Release safety against the real API server and controllers: pods of a bad release fail (kwok chaos stages,
e2e/testbed/kwok-chaos.yaml) and the operator rolls every workload back by itself, from history, once."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from e2e.images import Pushed
from e2e.releases import (
    apply,
    condition,
    events,
    get_release,
    patch_release,
    posted_events,
    release_manifest,
    wait_condition,
)
from e2e.support import Operator, Testbed, wait_until
from e2e.workloads import Chaos, template_images, workload_manifest

GOOD, BAD = "v1.0.0", "v1.1.0"


def _stalled(testbed: Testbed, namespace: str, name: str, reason: str, timeout: float = 90) -> dict[str, Any]:
    return wait_condition(testbed, namespace, name, "Stalled", "True", reason, timeout=timeout)


def _settled_rollback(testbed: Testbed, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    """RolledBack, and the restored revision finished rolling out."""

    def check() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, name)
        history = release.get("status", {}).get("history") or []
        stalled = condition(release, "Stalled")
        if stalled.get("reason") == "RolledBack" and history and history[0]["outcome"] == "Succeeded":
            return release
        return None

    result: dict[str, Any] = wait_until(check, timeout=timeout, what=f"{name} rolled back and settled")
    return result


def _start_good_then_upgrade(
    testbed: Testbed,
    namespace: str,
    web: dict[str, Pushed],
    workloads: dict[str, str],
    chaos_reason: str,
    *,
    exit_code: int = 1,
    release_spec: dict[str, Any] | None = None,
    **manifest: Any,
) -> None:
    """Workloads (kind -> name) on GOOD, Ready; then spec.version BAD, whose pods fail with chaos_reason."""
    repository = web[GOOD].repository
    chaos = Chaos(web[BAD].pinned, chaos_reason, exit_code)
    for kind, name in workloads.items():
        apply(
            testbed,
            workload_manifest(
                kind, namespace, name, {"app": f"{repository}:v0"}, release="shop", chaos=chaos, **manifest
            ),
        )
    apply(
        testbed,
        release_manifest(
            namespace,
            "shop",
            repository,
            GOOD,
            [{"kind": k, "name": n} for k, n in workloads.items()],
            **(release_spec or {}),
        ),
    )
    wait_condition(testbed, namespace, "shop", "Ready", "True", "Succeeded", timeout=120)
    patch_release(testbed, namespace, "shop", {"version": BAD})


def _assert_back_on_good(testbed: Testbed, namespace: str, web: dict[str, Pushed], workloads: dict[str, str]) -> None:
    for kind, name in workloads.items():
        assert template_images(testbed, kind, namespace, name) == {"app": web[GOOD].pinned}, f"{kind} {name}"


def test_a_crashing_release_rolls_back_by_itself(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    workloads = {"Deployment": "web"}
    _start_good_then_upgrade(testbed, namespace, web, workloads, "CrashLoopBackOff", exit_code=3)

    release = _settled_rollback(testbed, namespace, "shop")
    _assert_back_on_good(testbed, namespace, web, workloads)
    status = release["status"]
    assert (status["version"], status["digest"], status["revision"]) == (GOOD, web[GOOD].digest, 3)
    restored, failed, first = status["history"]
    assert (restored["cause"], restored["source"], restored["restoredFrom"]) == ("AutoRollback", "History", 1)
    assert (failed["version"], failed["outcome"], failed["cause"]) == (BAD, "Failed", "Spec")
    for fact in ("Deployment web", "pod web-", "CrashLoopBackOff", "last exit code 3"):
        assert fact in failed["failure"], failed["failure"]
    assert first["outcome"] == "Succeeded"
    ready, stalled = condition(release, "Ready"), condition(release, "Stalled")
    assert (ready["status"], ready["reason"]) == ("False", "RolledBack")
    assert BAD in stalled["message"] and GOOD in stalled["message"] and "CrashLoopBackOff" in stalled["message"]
    for reason in ("RolloutFailed", "RolledBack"):
        [event] = posted_events(testbed, namespace, reason)
        assert event["type"] == "Warning" and BAD in event["message"]
    printed = testbed.kubectl("get", "ar", "shop", "-n", namespace).stdout
    assert GOOD in printed and web[GOOD].digest.split(":")[1][:12] in printed

    table = _cli("history", "shop", "--kubeconfig", testbed.kubeconfig, "-n", namespace)
    assert table.returncode == 0, table.stderr
    assert "AutoRollback" in table.stdout and "last exit code 3" in table.stdout

    time.sleep(5)  # no loop: nothing moves by itself any more
    assert get_release(testbed, namespace, "shop")["status"]["revision"] == 3


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("ErrImagePull", "StatefulSet"),
        ("ImagePullBackOff", "DaemonSet"),
        ("CreateContainerConfigError", "Deployment"),
        ("CreateContainerError", "StatefulSet"),
        ("InvalidImageName", "DaemonSet"),
    ],
)
def test_each_failing_pod_state_rolls_back_each_kind(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], reason: str, kind: str
) -> None:
    workloads = {kind: "app"}
    _start_good_then_upgrade(testbed, namespace, web, workloads, reason)
    release = _settled_rollback(testbed, namespace, "shop", timeout=120)
    failure = release["status"]["history"][1]["failure"]
    assert f"{kind} app" in failure and reason in failure
    _assert_back_on_good(testbed, namespace, web, workloads)


def test_a_progress_deadline_fails_the_release(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    workloads = {"Deployment": "web"}
    _start_good_then_upgrade(testbed, namespace, web, workloads, "NeverReady", progress_deadline_seconds=5)
    release = _settled_rollback(testbed, namespace, "shop")
    assert "ProgressDeadlineExceeded" in release["status"]["history"][1]["failure"]
    _assert_back_on_good(testbed, namespace, web, workloads)


def test_not_ready_within_the_rollout_timeout_fails_the_release(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    workloads = {"Deployment": "web"}
    _start_good_then_upgrade(
        testbed, namespace, web, workloads, "NeverReady", release_spec={"rollout": {"timeoutSeconds": 30}}
    )
    started = time.monotonic()
    release = _settled_rollback(testbed, namespace, "shop", timeout=120)
    assert time.monotonic() - started >= 25  # the pods ran, not Ready, until the timeout
    assert "timeoutSeconds (30s)" in release["status"]["history"][1]["failure"]
    _assert_back_on_good(testbed, namespace, web, workloads)


def test_halt_leaves_the_failed_release_in_place(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    workloads = {"Deployment": "web"}
    _start_good_then_upgrade(
        testbed, namespace, web, workloads, "CrashLoopBackOff", release_spec={"rollout": {"onFailure": "Halt"}}
    )
    release = _stalled(testbed, namespace, "shop", "RolloutFailed")
    assert [(h["revision"], h["outcome"]) for h in release["status"]["history"]] == [(2, "Failed"), (1, "Succeeded")]
    assert template_images(testbed, "Deployment", namespace, "web") == {"app": web[BAD].pinned}
    assert "Halt" in condition(release, "Stalled")["message"]
    assert posted_events(testbed, namespace, "RolloutFailed") and not events(testbed, namespace, "RolledBack")


def test_a_failing_first_release_stalls_and_changes_nothing_else(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web[GOOD].repository
    chaos = Chaos(web[GOOD].pinned, "CrashLoopBackOff")
    apply(
        testbed,
        workload_manifest("Deployment", namespace, "web", {"app": f"{repository}:v0"}, release="shop", chaos=chaos),
    )
    apply(testbed, release_manifest(namespace, "shop", repository, GOOD, [{"kind": "Deployment", "name": "web"}]))
    release = _stalled(testbed, namespace, "shop", "RolloutFailed")
    [entry] = release["status"]["history"]
    assert (entry["revision"], entry["outcome"]) == (1, "Failed") and "CrashLoopBackOff" in entry["failure"]
    assert (
        "nothing" in condition(release, "Stalled")["message"]
        or "no earlier" in condition(release, "Stalled")["message"]
    )
    before = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)["metadata"]["resourceVersion"]
    time.sleep(5)
    after = get_release(testbed, namespace, "shop")
    assert after["status"]["history"] == release["status"]["history"]
    assert testbed.kubectl_json("get", "deployment", "web", "-n", namespace)["metadata"]["resourceVersion"] == before


def test_only_the_stateful_set_fails_and_all_four_kinds_go_back_together(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web[GOOD].repository
    bad = Chaos(web[BAD].pinned, "CrashLoopBackOff")
    names = {"Deployment": "front", "StatefulSet": "db", "DaemonSet": "agent", "CronJob": "report"}
    for kind, name in names.items():
        apply(
            testbed,
            workload_manifest(
                kind,
                namespace,
                name,
                {"app": f"{repository}:v0"},
                release="shop",
                chaos=bad if kind == "StatefulSet" else None,
            ),
        )
    apply(
        testbed,
        release_manifest(namespace, "shop", repository, GOOD, [{"kind": k, "name": n} for k, n in names.items()]),
    )
    wait_condition(testbed, namespace, "shop", "Ready", "True", "Succeeded", timeout=120)
    patch_release(testbed, namespace, "shop", {"version": BAD})

    release = _settled_rollback(testbed, namespace, "shop", timeout=150)
    assert "StatefulSet db" in release["status"]["history"][1]["failure"]
    _assert_back_on_good(testbed, namespace, web, names)
    # The StatefulSet really runs the good revision again: its broken pod was replaced.
    sts = testbed.kubectl_json("get", "statefulset", "db", "-n", namespace)["status"]
    assert sts.get("readyReplicas") == 2 and sts.get("currentRevision") == sts.get("updateRevision")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apprelease", *args], capture_output=True, text=True)


def test_retry_tries_the_failed_version_once(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    workloads = {"Deployment": "web"}
    _start_good_then_upgrade(testbed, namespace, web, workloads, "CrashLoopBackOff")
    _settled_rollback(testbed, namespace, "shop")

    retried = _cli("retry", "shop", "--kubeconfig", testbed.kubeconfig, "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    token = get_release(testbed, namespace, "shop")["metadata"]["annotations"]["apprelease.dev/retry"]

    def rolled_back_again() -> dict[str, Any] | None:
        release = get_release(testbed, namespace, "shop")
        history = release["status"]["history"]
        if len(history) >= 5 and history[0]["outcome"] == "Succeeded":
            return release
        return None

    release = wait_until(rolled_back_again, timeout=90, what="the retry failing and rolled back again")
    history = release["status"]["history"]
    assert [(h["revision"], h["version"], h["cause"]) for h in history] == [
        (5, GOOD, "AutoRollback"),
        (4, BAD, "Spec"),
        (3, GOOD, "AutoRollback"),
        (2, BAD, "Spec"),
        (1, GOOD, "Spec"),
    ]
    assert history[1]["outcome"] == "Failed" and history[1]["restoredFrom"] == 2
    assert release["status"]["lastHandledRetry"] == token
    assert posted_events(testbed, namespace, "Retrying")
    time.sleep(5)  # the same annotation value is not acted on twice
    assert get_release(testbed, namespace, "shop")["status"]["revision"] == 5


def test_retry_values_are_compared_in_full(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    _start_good_then_upgrade(testbed, namespace, web, {"Deployment": "web"}, "CrashLoopBackOff")
    _settled_rollback(testbed, namespace, "shop")
    shared = "retry asked by the release pipeline of the shop team, run 2026-11-27, " * 2  # 142 characters

    def retried_and_rolled_back(entries: int) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            release = get_release(testbed, namespace, "shop")
            history = release["status"]["history"]
            return release if len(history) >= entries and history[0]["outcome"] == "Succeeded" else None

        result: dict[str, Any] = wait_until(check, timeout=90, what=f"revision {entries} rolled back and settled")
        return result

    for attempt, entries in (("1", 5), ("2", 7)):  # the second value shares its first 142 characters
        value = f"apprelease.dev/retry={shared}{attempt}"
        testbed.kubectl("annotate", "appreleases.apprelease.dev", "shop", "-n", namespace, value, "--overwrite")
        release = retried_and_rolled_back(entries)
        assert [h["version"] for h in release["status"]["history"][:2]] == [GOOD, BAD]
        token = release["status"]["lastHandledRetry"]
        assert token.startswith("sha256:") and len(token) == 64
    # Events go out just after the status write that records them: wait for them, then count.
    wait_until(lambda: sum(e.get("count") or 1 for e in events(testbed, namespace, "Retrying")) >= 2, timeout=30)
    assert sum(e.get("count") or 1 for e in events(testbed, namespace, "Retrying")) == 2


def test_sigkill_during_an_automatic_rollback_converges_without_lost_or_duplicated_revisions(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    workloads = {"Deployment": "web"}
    # minReadySeconds keeps the rollback's own rollout going long enough to kill the operator in the middle.
    _start_good_then_upgrade(testbed, namespace, web, workloads, "CrashLoopBackOff", min_ready_seconds=8)

    def rolling_back() -> bool:
        history = get_release(testbed, namespace, "shop")["status"].get("history") or []
        return bool(history) and history[0].get("cause") == "AutoRollback" and history[0]["outcome"] == "InProgress"

    wait_until(rolling_back, timeout=90, interval=0.2, what="an automatic rollback in progress")
    operator.kill()
    operator.start()
    release = _settled_rollback(testbed, namespace, "shop", timeout=120)
    history = release["status"]["history"]
    assert [(h["revision"], h["version"], h["outcome"]) for h in history] == [
        (3, GOOD, "Succeeded"),
        (2, BAD, "Failed"),
        (1, GOOD, "Succeeded"),
    ]
    assert len(posted_events(testbed, namespace, "RolledBack")) == 1
    _assert_back_on_good(testbed, namespace, web, workloads)
    deployment = testbed.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert deployment["status"].get("availableReplicas") == 2
