"""Thin kopf handlers: they only feed keys into the work queue; `Reconciler` does the work in threads.

Watching AppReleases and the workloads they manage (Deployments, StatefulSets, DaemonSets, CronJobs) makes the
operator level-based and quick to react (a hand edit or a finished rollout wakes its AppRelease at once); a
periodic resync catches anything else.
Only workloads that carry the opt-in label are watched, filtered by the API server (a label selector), so an
operator in a large cluster neither holds nor receives the others. A workload whose label is added or removed
enters or leaves the watch, and that event wakes its AppRelease too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from apprelease.controller.runtime import Runtime
from apprelease.core.api import ANNOTATION_RETRY, GROUP, LABEL_RELEASE, PLURAL, VERSION
from apprelease.core.workloads import KINDS, Kind

log = logging.getLogger(__name__)
RUNTIME: Runtime | None = None


def _runtime() -> Runtime:
    if RUNTIME is None:
        raise RuntimeError("the operator runtime is not started")
    return RUNTIME


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global RUNTIME
    settings.posting.enabled = False  # we post our own Events, with our own reasons
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    for info in KINDS.values():
        group, version = info.api_version.split("/")
        settings.watching.label_selectors[group, version, info.plural] = LABEL_RELEASE
    # Reading kubeconfig and settings is file I/O: off the event loop too.
    RUNTIME = await asyncio.to_thread(Runtime.from_environment)
    await RUNTIME.start()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if RUNTIME is not None:
        await RUNTIME.stop()


# The handlers are coroutines on purpose: kopf runs plain functions in a thread pool, and the work queue is
# asyncio's, which must only be touched from the event loop. They do no I/O, so they never block it.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_apprelease_event(type: str, body: kopf.Body, **_: Any) -> None:
    meta = body.get("metadata", {})
    key = (meta.get("namespace", ""), meta.get("name", ""))
    if type == "DELETED":
        _runtime().forget(key)
        return
    _runtime().metrics.observe_status(*key, body.get("status"))
    workloads = [
        (str(w.get("kind") or Kind.DEPLOYMENT), str(w.get("name", "")))
        for w in (body.get("spec", {}).get("workloads") or [])
        if isinstance(w, dict)
    ]
    retry = (meta.get("annotations") or {}).get(ANNOTATION_RETRY)
    _runtime().observe(key, int(meta.get("generation") or 0), workloads, retry)


async def _on_workload_event(kind: Kind, body: kopf.Body) -> None:
    meta = body.get("metadata", {})
    _runtime().wake_for_workload(meta.get("namespace", ""), kind, meta.get("name", ""))


# One watch per workload kind, each filtered by the API server to labelled objects (see startup).
@kopf.on.event("apps", "v1", "deployments", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_deployment_event(body: kopf.Body, **_: Any) -> None:
    await _on_workload_event(Kind.DEPLOYMENT, body)


@kopf.on.event("apps", "v1", "statefulsets", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_statefulset_event(body: kopf.Body, **_: Any) -> None:
    await _on_workload_event(Kind.STATEFUL_SET, body)


@kopf.on.event("apps", "v1", "daemonsets", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_daemonset_event(body: kopf.Body, **_: Any) -> None:
    await _on_workload_event(Kind.DAEMON_SET, body)


@kopf.on.event("batch", "v1", "cronjobs", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_cronjob_event(body: kopf.Body, **_: Any) -> None:
    await _on_workload_event(Kind.CRON_JOB, body)


@kopf.on.probe(id="queue")
async def queue_depth(**_: Any) -> int:
    return len(_runtime().queue) if RUNTIME else 0


__all__ = [
    "cleanup",
    "on_apprelease_event",
    "on_cronjob_event",
    "on_daemonset_event",
    "on_deployment_event",
    "on_statefulset_event",
    "startup",
]
