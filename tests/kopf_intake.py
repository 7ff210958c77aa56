"""kopf's side of our handlers, without a cluster: the memo and the events, as kopf feeds them.

The handlers are called exactly as kopf calls them for one watch event; the workload lookup is the runtime's
own (controller/lookup.py), filled by the AppRelease handler. Shared by the unit tests and `make bench`
(e2e/bench_intake.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from apprelease.controller import handlers
from apprelease.controller.lookup import ReverseIndex
from apprelease.controller.runtime import Key, Runtime, WorkloadRef


class KopfIntake:
    def __init__(self, runtime: Runtime) -> None:
        self.memo = kopf.Memo(runtime=runtime)
        self.runtime = runtime

    @property
    def index(self) -> ReverseIndex[WorkloadRef, Key]:
        return self.runtime.releases_by_workload

    async def apprelease(self, type: str, body: Mapping[str, Any]) -> None:
        """One watch event of an AppRelease."""
        on_event: Any = handlers.on_apprelease_event  # kopf's decorators type handlers as generic callbacks
        await on_event(type=type, body=body, memo=self.memo)

    async def workload(self, kind: str, body: Mapping[str, Any], type: str | None = "MODIFIED") -> None:
        """One watch event of a labelled workload of this kind."""
        handler: Any = {
            "Deployment": handlers.on_deployment_event,
            "StatefulSet": handlers.on_statefulset_event,
            "DaemonSet": handlers.on_daemonset_event,
            "CronJob": handlers.on_cronjob_event,
        }[kind]
        await handler(type=type, body=body, memo=self.memo)


def apprelease(namespace: str, name: str, generation: int, workloads: list[tuple[str, str]], **meta: Any) -> Any:
    """An AppRelease body listing these (kind, name) workloads."""
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}", "generation": generation}
        | meta,
        "spec": {"workloads": [{"kind": kind, "name": workload} for kind, workload in workloads]},
    }


def workload(namespace: str, name: str) -> Any:
    return {"metadata": {"namespace": namespace, "name": name}}
