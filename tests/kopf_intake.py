"""kopf's side of our handlers, without a cluster: the memo and the index, as kopf feeds them.

kopf's own `Index` is used, filled through its indexer exactly as kopf's `index_resource` does before it calls
the handlers of an event (replace the object's entries with what our index function returned; discard them on
DELETED). The indexer is kopf-internal (`kopf._core.engines.indexing`): only tests and the bench touch it.
Shared by the unit tests and `make bench` (e2e/bench_intake.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from kopf._core.engines.indexing import OperatorIndexer

from apprelease.controller import handlers
from apprelease.controller.runtime import Runtime


class KopfIntake:
    def __init__(self, runtime: Runtime) -> None:
        self.memo = kopf.Memo(runtime=runtime)
        self.indexer = OperatorIndexer()
        self.upstreams = OperatorIndexer()  # releases_by_upstream

    @property
    def index(self) -> handlers.ReleasesByWorkload:
        return self.indexer.index

    async def apprelease(self, type: str, body: Mapping[str, Any]) -> None:
        """One watch event of an AppRelease: kopf's indexing first, then our event handler."""
        meta = body.get("metadata", {})
        object_key = (meta.get("namespace"), meta.get("name"), meta.get("uid"))  # kopf's make_key
        if type == "DELETED":
            self.indexer.discard(object_key)
            self.upstreams.discard(object_key)
        else:
            index_fn: Any = handlers.releases_by_workload  # kopf's decorators type handlers as generic callbacks
            self.indexer.replace(object_key, await index_fn(body=body))
            upstream_fn: Any = handlers.releases_by_upstream
            self.upstreams.replace(object_key, await upstream_fn(body=body))
        on_event: Any = handlers.on_apprelease_event
        await on_event(type=type, body=body, memo=self.memo, releases_by_upstream=self.upstreams.index)

    async def workload(self, kind: str, body: Mapping[str, Any], type: str | None = "MODIFIED") -> None:
        """One watch event of a labelled workload of this kind."""
        handler: Any = {
            "Deployment": handlers.on_deployment_event,
            "StatefulSet": handlers.on_statefulset_event,
            "DaemonSet": handlers.on_daemonset_event,
            "CronJob": handlers.on_cronjob_event,
        }[kind]
        await handler(type=type, body=body, memo=self.memo, releases_by_workload=self.index)


def apprelease(namespace: str, name: str, generation: int, workloads: list[tuple[str, str]], **meta: Any) -> Any:
    """An AppRelease body listing these (kind, name) workloads."""
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}", "generation": generation}
        | meta,
        "spec": {"workloads": [{"kind": kind, "name": workload} for kind, workload in workloads]},
    }


def workload(namespace: str, name: str) -> Any:
    return {"metadata": {"namespace": namespace, "name": name}}
