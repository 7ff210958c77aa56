"""The event intake with the real kopf: a workload's watch event wakes the AppRelease that lists it.

The operator here resyncs once an hour, so within the waits below nothing but the workload's own watch event,
looked up in kopf's index `releases_by_workload` (controller/handlers.py), can bring its AppRelease back.
"""

from __future__ import annotations

from e2e.images import Pushed
from e2e.releases import apply, container_images, deployment_manifest, release_manifest, wait_condition, wait_ready
from e2e.support import ROOT, Operator, Testbed, wait_until


def test_workload_events_wake_their_apprelease_through_kopfs_index(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    operator.stop()  # the session operator resyncs every 30 s, which would hide a missing wake
    hourly = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "operator-intake.log",
        extra_env={"APPRELEASE_RESYNC_SECONDS": "3600", "APPRELEASE_WATCH_NAMESPACES": namespace},
    )
    hourly.start()
    try:
        repository = web["v1.0.0"].repository
        apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, release="web"))
        apply(
            testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}])
        )
        wait_ready(testbed, namespace, "web", "v1.0.0", timeout=30)

        # A hand edit of the pinned image: the Deployment's event wakes the AppRelease, which puts it back.
        testbed.kubectl("set", "image", "deployment/web", f"web={repository}:hotfix", "-n", namespace)
        wait_until(
            lambda: container_images(testbed, namespace, "web")["web"] == web["v1.0.0"].pinned,
            timeout=30,
            what="the pinned digest put back after a workload event",
        )
        wait_ready(testbed, namespace, "web", "v1.0.0", timeout=30)

        # The owner withdraws the label: the watch reports the Deployment without it (it leaves the selector),
        # so only the index, not the label, can name the AppRelease to wake.
        testbed.kubectl("label", "deployment", "web", "-n", namespace, "apprelease.dev/release-")
        wait_condition(testbed, namespace, "web", "Ready", "False", "WorkloadNotOptedIn", timeout=30)
    finally:
        hourly.stop()
        operator.start()
