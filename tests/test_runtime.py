"""The operator's wiring: events feed the work queue on the event loop, workers call the reconciler."""

from __future__ import annotations

import asyncio
import inspect
import threading

from apprelease.controller import handlers
from apprelease.controller.reconciler import Result
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings


class RecordingReconciler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.threads: set[int] = set()
        self.registry = self

    def reconcile(self, namespace: str, name: str) -> Result:
        self.calls.append((namespace, name))
        self.threads.add(threading.get_ident())
        return Result()

    def close(self) -> None:
        pass


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_kopf_handlers_run_on_the_event_loop() -> None:
    # kopf runs plain functions in threads; the asyncio work queue must only be touched from the loop.
    for handler in (
        handlers.on_apprelease_event,
        handlers.on_deployment_event,
        handlers.on_statefulset_event,
        handlers.on_daemonset_event,
        handlers.on_cronjob_event,
        handlers.startup,
        handlers.cleanup,
    ):
        assert inspect.iscoroutinefunction(handler), handler


async def test_events_reach_the_reconciler_once_per_generation_and_via_deployments() -> None:
    reconciler = RecordingReconciler()
    runtime = Runtime(OperatorSettings(workers=2, metrics_port=0), reconciler)  # type: ignore[arg-type]
    await runtime.start()
    try:
        runtime.observe(("shop", "web"), 1, [("Deployment", "web"), ("StatefulSet", "worker")])
        await settle()
        assert reconciler.calls == [("shop", "web")]
        assert threading.get_ident() not in reconciler.threads  # reconciles run in worker threads

        runtime.observe(
            ("shop", "web"), 1, [("Deployment", "web"), ("StatefulSet", "worker")]
        )  # our own status write coming back
        await settle()
        assert len(reconciler.calls) == 1

        runtime.wake_for_workload("shop", "StatefulSet", "worker")
        runtime.wake_for_workload("shop", "Deployment", "worker")  # another kind of the same name
        runtime.wake_for_workload("shop", "StatefulSet", "unrelated")
        runtime.wake_for_workload("other", "Deployment", "web")
        await settle()
        assert reconciler.calls == [("shop", "web")] * 2

        runtime.observe(("shop", "web"), 2, [("Deployment", "web")])  # worker no longer managed
        await settle()
        runtime.wake_for_workload("shop", "StatefulSet", "worker")
        await settle()
        assert len(reconciler.calls) == 3

        runtime.observe(("shop", "web"), 2, [("Deployment", "web")], retry="2026-11-27T12:00:00Z")  # a retry
        await settle()
        assert len(reconciler.calls) == 4

        runtime.forget(("shop", "web"))
        runtime.wake_for_workload("shop", "Deployment", "web")
        await settle()
        assert len(reconciler.calls) == 4
    finally:
        await runtime.stop()
