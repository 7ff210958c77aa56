"""The runtime feeds the metrics: reconcile durations by result, queue depth, series of deleted AppReleases."""

from __future__ import annotations

import asyncio
import urllib.request

from apprelease.controller.metrics import Metrics
from apprelease.controller.reconciler import Result
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from tests.conftest import World
from tests.kopf_intake import KopfIntake
from tests.scrape import value


class ScriptedReconciler:
    """Answers each key with a fixed result, or raises."""

    def __init__(self) -> None:
        self.registry = self
        self.results = {"ok": Result(requeue_after=300), "retry": Result(retry=True), "stalled": Result(stalled=True)}

    def reconcile(self, namespace: str, name: str) -> Result:
        if name == "boom":
            raise RuntimeError("the API server went away")
        return self.results[name]

    def close(self) -> None:
        pass


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_reconcile_results_queue_depth_and_the_served_page() -> None:
    metrics = Metrics()
    runtime = Runtime(OperatorSettings(workers=1, metrics_port=0), ScriptedReconciler(), metrics)  # type: ignore[arg-type]
    await runtime.start()
    try:
        for name in ("ok", "retry", "stalled", "boom"):
            runtime.observe(("shop", name), 1)
        await settle()
        count = "apprelease_reconcile_duration_seconds_count"
        for result in ("ok", "retry", "stalled", "error"):
            assert metrics.registry.get_sample_value(count, {"result": result}) == 1, result
        runtime.queue.add(("shop", "ok"))
        runtime.queue.add(("shop", "retry"))
        assert metrics.registry.get_sample_value("apprelease_workqueue_depth") == len(runtime.queue) > 0
        assert metrics.server is not None
        port = metrics.server.port
        page = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        )
        assert 'apprelease_reconcile_duration_seconds_count{result="error"} 1.0' in page
    finally:
        await runtime.stop()


async def test_status_events_feed_the_series_and_deletion_drops_them() -> None:
    metrics = Metrics()
    runtime = Runtime(OperatorSettings(workers=1, metrics_port=0), ScriptedReconciler(), metrics)  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    body = {
        "metadata": {"namespace": "shop", "name": "ok", "generation": 1},
        "spec": {"workloads": [{"kind": "Deployment", "name": "web"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    await kopf_side.apprelease("MODIFIED", body)
    labels = {"namespace": "shop", "name": "ok", "type": "Ready", "status": "True"}
    assert value(metrics, "apprelease_condition", **labels) == 1
    await kopf_side.apprelease("DELETED", body)
    assert value(metrics, "apprelease_condition", **labels) is None


def test_a_stall_is_reported_as_stalled_and_a_good_release_is_not(world: World) -> None:  # noqa: F811
    world.deploy("v1")
    assert not world.reconcile().stalled
    world.update(version="latest")  # refused by the operator (as if the CRD's validation were missing)
    assert world.reconcile().stalled
    assert world.reconcile().stalled  # and every later pass of the same generation
