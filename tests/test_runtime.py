"""The operator's wiring: events feed the work queue on the event loop, workers call the reconciler."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

from apprelease.controller import handlers
from apprelease.controller.reconciler import Result
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from tests.kopf_intake import KopfIntake, apprelease, workload


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
        handlers.queue_depth,
        handlers.startup,
        handlers.cleanup,
    ):
        assert inspect.iscoroutinefunction(handler), handler


async def test_events_reach_the_reconciler_once_per_generation_and_via_deployments() -> None:
    reconciler = RecordingReconciler()
    runtime = Runtime(OperatorSettings(workers=2, metrics_port=0), reconciler)  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    await runtime.start()
    try:
        await kopf_side.apprelease(
            "ADDED", apprelease("shop", "web", 1, [("Deployment", "web"), ("StatefulSet", "worker")])
        )
        await settle()
        assert reconciler.calls == [("shop", "web")]
        assert threading.get_ident() not in reconciler.threads  # reconciles run in worker threads

        await kopf_side.apprelease(  # our own status write coming back
            "MODIFIED", apprelease("shop", "web", 1, [("Deployment", "web"), ("StatefulSet", "worker")])
        )
        await settle()
        assert len(reconciler.calls) == 1

        await kopf_side.workload("StatefulSet", workload("shop", "worker"))
        await kopf_side.workload("Deployment", workload("shop", "worker"))  # another kind of the same name
        await kopf_side.workload("StatefulSet", workload("shop", "unrelated"))
        await kopf_side.workload("Deployment", workload("other", "web"))
        await settle()
        assert reconciler.calls == [("shop", "web")] * 2

        await kopf_side.apprelease("MODIFIED", apprelease("shop", "web", 2, [("Deployment", "web")]))  # worker unlisted
        await settle()
        await kopf_side.workload("StatefulSet", workload("shop", "worker"))
        await settle()
        assert len(reconciler.calls) == 3

        retry = {"annotations": {"apprelease.dev/retry": "2026-11-27T12:00:00Z"}}
        await kopf_side.apprelease("MODIFIED", apprelease("shop", "web", 2, [("Deployment", "web")], **retry))
        await settle()
        assert len(reconciler.calls) == 4

        await kopf_side.apprelease("DELETED", apprelease("shop", "web", 2, [("Deployment", "web")], **retry))
        await kopf_side.workload("Deployment", workload("shop", "web"))
        await settle()
        assert len(reconciler.calls) == 4
    finally:
        await runtime.stop()


async def test_the_workload_lookup_shrinks_when_spec_workloads_changes_and_on_delete() -> None:
    runtime = Runtime(OperatorSettings(metrics_port=0), RecordingReconciler())  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    await kopf_side.apprelease("ADDED", apprelease("shop", "web", 1, [("Deployment", "a"), ("Deployment", "b")]))
    await kopf_side.apprelease("ADDED", apprelease("shop", "api", 1, [("Deployment", "b")]))
    assert set(kopf_side.index) == {("shop", "Deployment", "a"), ("shop", "Deployment", "b")}
    assert sorted(kopf_side.index.get(("shop", "Deployment", "b"))) == [("shop", "api"), ("shop", "web")]

    await kopf_side.apprelease("MODIFIED", apprelease("shop", "web", 2, [("StatefulSet", "c")]))
    assert set(kopf_side.index) == {("shop", "Deployment", "b"), ("shop", "StatefulSet", "c")}
    assert list(kopf_side.index.get(("shop", "Deployment", "b"))) == [("shop", "api")]

    await kopf_side.apprelease("MODIFIED", apprelease("shop", "web", 3, []))  # lists nothing: no entries left
    assert set(kopf_side.index) == {("shop", "Deployment", "b")}

    await kopf_side.apprelease("DELETED", apprelease("shop", "api", 1, [("Deployment", "b")]))
    assert len(kopf_side.index) == 0
    assert runtime._seen == {
        ("shop", "web"): ("uid-shop-web", 3, None)
    }  # the deleted AppRelease is forgotten by the runtime too


def test_listed_workloads_defaults_the_kind_and_skips_non_objects() -> None:
    body = {"metadata": {"namespace": "shop", "name": "web"}, "spec": {"workloads": [{"name": "a"}, "junk", 3]}}
    assert handlers.listed_workloads(body) == {("shop", "Deployment", "a"): ("shop", "web")}
    assert handlers.listed_workloads({"metadata": {"namespace": "shop", "name": "web"}, "spec": {}}) == {}
    assert (
        handlers.listed_workloads({"metadata": {"namespace": "shop", "name": "web"}, "spec": {"workloads": "web"}})
        == {}
    )


async def test_an_upstream_event_wakes_the_appreleases_promoting_from_it() -> None:
    reconciler = RecordingReconciler()
    runtime = Runtime(OperatorSettings(workers=1, metrics_port=0), reconciler)  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    await runtime.start()
    try:
        prod = apprelease("prod", "web", 1, [("Deployment", "web")])
        prod["spec"]["promotion"] = {"from": {"namespace": "staging", "name": "web"}}
        await kopf_side.apprelease("ADDED", prod)
        await kopf_side.apprelease("ADDED", apprelease("staging", "web", 1, [("Deployment", "web")]))
        await kopf_side.apprelease("ADDED", apprelease("staging", "api", 1, [("Deployment", "api")]))
        await settle()
        reconciler.calls.clear()

        # staging's status changed (same generation): prod looks again, staging itself does not need to.
        await kopf_side.apprelease("MODIFIED", apprelease("staging", "web", 1, [("Deployment", "web")]))
        await kopf_side.apprelease("MODIFIED", apprelease("staging", "api", 1, [("Deployment", "api")]))
        await settle()
        assert reconciler.calls == [("prod", "web")]

        del prod["spec"]["promotion"]
        prod["metadata"]["generation"] = 2
        await kopf_side.apprelease("MODIFIED", prod)
        await settle()
        reconciler.calls.clear()
        await kopf_side.apprelease("MODIFIED", apprelease("staging", "web", 1, [("Deployment", "web")]))
        await settle()
        assert reconciler.calls == []
    finally:
        await runtime.stop()


def test_promotion_source_is_one_entry_or_none() -> None:
    body: dict[str, Any] = {
        "metadata": {"namespace": "prod", "name": "web"},
        "spec": {"promotion": {"from": {"namespace": "s"}}},
    }
    assert handlers.promotion_source(body) == {}
    body["spec"]["promotion"]["from"]["name"] = "web"
    assert handlers.promotion_source(body) == {("s", "web"): ("prod", "web")}


class BarrierReconciler(RecordingReconciler):
    """Every pass waits until `parties` passes run at once (a deadlock guard of 10 s, not a timing)."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.met = 0

    def reconcile(self, namespace: str, name: str) -> Result:
        super().reconcile(namespace, name)
        self.barrier.wait()
        self.met += 1
        return Result()


async def test_every_worker_has_a_thread_of_its_own() -> None:
    # More than asyncio's default executor ever has (min(32, CPUs + 4)): each pass waits on the API server,
    # so `workers` passes must be able to wait at once.
    workers = 40
    reconciler = BarrierReconciler(workers)
    runtime = Runtime(OperatorSettings(workers=workers, metrics_port=0), reconciler)  # type: ignore[arg-type]
    await runtime.start()
    try:
        for i in range(workers):
            runtime.observe(("ns", f"r{i}"), 1)
        for _ in range(1500):
            if len(reconciler.calls) == workers and (reconciler.met == workers or reconciler.barrier.broken):
                break
            await asyncio.sleep(0.01)
        assert reconciler.met == workers and not reconciler.barrier.broken
    finally:
        await runtime.stop()


async def test_a_workload_spec_its_controller_has_not_observed_wakes_nothing() -> None:
    # Our own patch comes back as such an event; the controller's status update that follows is the one that
    # tells a pass something (issue 19: one pass fewer per patch).
    runtime = Runtime(OperatorSettings(metrics_port=0), RecordingReconciler())  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    await kopf_side.apprelease("ADDED", apprelease("shop", "web", 1, [("Deployment", "web"), ("CronJob", "nightly")]))
    await runtime.queue.get()
    runtime.queue.done(("shop", "web"))
    patched = workload("shop", "web") | {"status": {"observedGeneration": 1}}
    patched["metadata"]["generation"] = 2
    await kopf_side.workload("Deployment", patched)
    assert len(runtime.queue) == 0
    await kopf_side.workload("Deployment", patched, type="DELETED")  # gone: always news
    assert len(runtime.queue) == 1
    await runtime.queue.get()
    runtime.queue.done(("shop", "web"))
    observed = patched | {"status": {"observedGeneration": 2}}
    await kopf_side.workload("Deployment", observed)
    assert len(runtime.queue) == 1
    await runtime.queue.get()
    runtime.queue.done(("shop", "web"))
    nightly = workload("shop", "nightly")
    nightly["metadata"]["generation"] = 5  # a CronJob has no observedGeneration: every event counts
    await kopf_side.workload("CronJob", nightly)
    assert len(runtime.queue) == 1


async def test_an_apprelease_made_again_under_its_name_is_new_work_even_without_a_deleted_event() -> None:
    # A watch that was away lists again and reports no DELETED: the uid tells the new object from the old.
    runtime = Runtime(OperatorSettings(metrics_port=0), RecordingReconciler())  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    old = apprelease("shop", "web", 1, [("Deployment", "web")])
    await kopf_side.apprelease("ADDED", old)
    runtime.queue.done(await runtime.queue.get())
    await kopf_side.apprelease("MODIFIED", old)  # its own status write: nothing to do
    assert len(runtime.queue) == 0
    again = apprelease("shop", "web", 1, [("Deployment", "web")], uid="uid-made-again")
    await kopf_side.apprelease("ADDED", again)
    assert len(runtime.queue) == 1


class GatedReconciler(RecordingReconciler):
    """A pass that waits for the test, then asks to be looked at again in 300 s (a resync)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def reconcile(self, namespace: str, name: str) -> Result:
        super().reconcile(namespace, name)
        self.entered.set()
        self.gate.wait(10)  # a deadlock guard
        return Result(requeue_after=300)


async def test_an_apprelease_deleted_while_its_pass_runs_leaves_no_timer_behind() -> None:
    reconciler = GatedReconciler()
    runtime = Runtime(OperatorSettings(workers=1, metrics_port=0), reconciler)  # type: ignore[arg-type]
    kopf_side = KopfIntake(runtime)
    await runtime.start()
    try:
        body = apprelease("shop", "gone", 1, [("Deployment", "gone")])
        await kopf_side.apprelease("ADDED", body)
        await asyncio.to_thread(reconciler.entered.wait, 10)
        await kopf_side.apprelease("DELETED", body)
        reconciler.gate.set()
        await settle()
        assert ("shop", "gone") not in runtime.queue._timers and len(runtime.queue) == 0
    finally:
        await runtime.stop()
