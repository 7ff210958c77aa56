"""Thin kopf handlers: they only feed keys into the work queue; `Reconciler` does the work in threads.

Watching AppReleases and the workloads they manage (Deployments, StatefulSets, DaemonSets, CronJobs) makes the
operator level-based and quick to react (a hand edit or a finished rollout wakes its AppRelease at once); a
periodic resync catches anything else.
Only workloads that carry the opt-in label are watched, filtered by the API server (a label selector), so an
operator in a large cluster neither holds nor receives the others. A workload whose label is added or removed
enters or leaves the watch, and that event wakes its AppRelease too.

State lives in the `Runtime`, in the operator's `memo` (set at startup, shallow-copied into every object's memo
by kopf), with "which AppReleases list this workload" and "which promote from this one" as its reverse maps
(controller/lookup.py, not kopf indexes: see there why). Each AppRelease event replaces that AppRelease's
entries and a deletion drops them, so the work per event is O(workloads of one AppRelease), never a scan.
The label `apprelease.dev/release` on a workload is not enough for that lookup: it names the AppRelease its owner
consents to, not those that list it, and an AppRelease that lists a workload labelled for another must be woken
to report WorkloadNotOptedIn. When the label is removed, the API server's label-selected watch reports DELETED
(with the object as it was before), which wakes the AppReleases that list it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import kopf

from apprelease.controller.runtime import Key, Runtime, WorkloadRef
from apprelease.controller.settings import OperatorSettings
from apprelease.core.api import ANNOTATION_RETRY, GROUP, LABEL_RELEASE, PLURAL, VERSION
from apprelease.core.fields import Fields
from apprelease.core.workloads import KINDS, Kind, Workload
from apprelease.election import shards
from apprelease.election.serverside import ShardingUnsupported

log = logging.getLogger(__name__)


def release_key(body: Mapping[str, object]) -> Key:
    """(namespace, name) of an object; "" for a missing part."""
    meta = Fields(body).sub("metadata")
    return (meta.text("namespace"), meta.text("name"))


def listed_workloads(body: Mapping[str, object]) -> dict[WorkloadRef, Key]:
    """The workloads an AppRelease's spec.workloads lists, each mapped to the AppRelease: one lookup entry per
    workload. A `kind` left out means Deployment (the CRD's default); non-object items are skipped (the
    reconciler reports them). Empty when nothing is listed (the old entries then go)."""
    key = release_key(body)
    items = Fields(body).sub("spec").value("workloads")
    listed = [Fields(item) for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []
    return {(key[0], w.text("kind") or Kind.DEPLOYMENT.value, w.text("name")): key for w in listed}


def promotion_source(body: Mapping[str, object]) -> dict[Key, Key]:
    """spec.promotion.from of an AppRelease, mapped to the AppRelease (one lookup entry; none without it)."""
    source = Fields(body).sub("spec").sub("promotion").sub("from")
    upstream = (source.text("namespace"), source.text("name"))
    return {upstream: release_key(body)} if all(upstream) else {}


def _runtime(memo: Mapping[str, object]) -> Runtime:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator runtime is not started")
    return runtime


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: object) -> None:
    settings.posting.enabled = False  # we post our own Events, with our own reasons
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # kopf keeps a worker task per object for `idle_timeout` after its last event, holding that event's body:
    # at 5 s (kopf's default) a replica's first list of 10,000 AppReleases and 10,000 Deployments kept
    # thousands of bodies resident at once. Our handlers only queue keys, so a worker is cheap to start again.
    settings.queueing.idle_timeout = 0.5
    for info in KINDS.values():
        group, version = info.api_version.split("/")
        settings.watching.label_selectors[group, version, info.plural] = LABEL_RELEASE
    # Reading kubeconfig and settings is file I/O: off the event loop too.
    runtime = await start_runtime()
    watch_shard(settings, runtime.settings)
    memo.runtime = runtime
    await runtime.start()


async def start_runtime() -> Runtime:
    """The runtime from the environment, read off the event loop (kubeconfig and settings are file I/O). An API
    server that ignores our shard selector is kopf.PermanentError: the operator stops instead of retrying."""
    try:
        return await asyncio.to_thread(Runtime.from_environment)
    except ShardingUnsupported as err:
        raise kopf.PermanentError(f"APPRELEASE_SHARD_RANGE: {err}") from err


def watch_shard(kopf_settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf's side of chunked lists and sharding (see `election.shards`): the first list of a replica comes in
    pages; a shard label narrows the AppRelease watch; a shard range narrows every watch to its namespaces."""
    kopf_settings.watching.chunk_size = ours.list_chunk_size or None
    if ours.shard:
        kopf_settings.watching.label_selectors[GROUP, VERSION, PLURAL] = shards.label_selector(ours.shard)
    if ours.shard_range:
        selector = shards.range_selector(ours.shard_range)
        kopf_settings.watching.shard_selectors[GROUP, VERSION, PLURAL] = selector
        for info in KINDS.values():
            group, version = info.api_version.split("/")
            kopf_settings.watching.shard_selectors[group, version, info.plural] = selector


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: object) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        await runtime.stop()


# The handlers are coroutines on purpose: kopf runs plain functions in a thread pool, and the work queue is
# asyncio's, which must only be touched from the event loop. They do no I/O, so they never block it.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_apprelease_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: object) -> None:
    runtime, key = _runtime(memo), release_key(body)
    # Its status may have made a version promotable (or revoked it): its downstreams look again.
    runtime.wake(runtime.releases_by_upstream.get(key))
    if type == "DELETED":
        runtime.forget(key)  # its lookup entries go too
        return
    runtime.releases_by_workload.replace(key, listed_workloads(body))
    runtime.releases_by_upstream.replace(key, promotion_source(body))
    runtime.metrics.observe_status(*key, body.get("status"))
    meta = Fields(body).sub("metadata")
    generation = meta.num("generation")
    runtime.observe(
        key,
        generation,
        meta.strings("annotations").get(ANNOTATION_RETRY),
        unapplied=Fields(body).sub("status").num("observedGeneration") != generation,
        uid=meta.text("uid"),
    )


async def _on_workload_event(kind: Kind, type_: str | None, body: kopf.Body, memo: kopf.Memo) -> None:
    namespace, name = release_key(body)
    runtime, ref = _runtime(memo), (namespace, str(kind), name)
    listed = runtime.releases_by_workload.get(ref)
    if type_ == "DELETED" or not listed:
        runtime.workload_news.forget(ref)  # gone, or nobody's: its next event is news again
    else:
        workload = Workload(kind, dict(body), [])
        if not workload.observed():
            # A spec its controller has not acted on yet (our own patch, or a hand edit) tells a pass nothing
            # new: the controller's status update follows and wakes the AppRelease (a drift is corrected then).
            # One pass fewer per patch: 10,000 with 10,000 AppReleases.
            return
        if not runtime.workload_news.changed(ref, workload):
            return  # nothing a pass reads has changed since the last event (see workloadnews)
    runtime.wake(listed)


# One watch per workload kind, each filtered by the API server to labelled objects (see startup).
@kopf.on.event("apps", "v1", "deployments", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_deployment_event(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    type: str | None = None,
    **_: object,
) -> None:
    await _on_workload_event(Kind.DEPLOYMENT, type, body, memo)


@kopf.on.event("apps", "v1", "statefulsets", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_statefulset_event(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    type: str | None = None,
    **_: object,
) -> None:
    await _on_workload_event(Kind.STATEFUL_SET, type, body, memo)


@kopf.on.event("apps", "v1", "daemonsets", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_daemonset_event(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    type: str | None = None,
    **_: object,
) -> None:
    await _on_workload_event(Kind.DAEMON_SET, type, body, memo)


@kopf.on.event("batch", "v1", "cronjobs", labels={LABEL_RELEASE: kopf.PRESENT})
async def on_cronjob_event(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    type: str | None = None,
    **_: object,
) -> None:
    await _on_workload_event(Kind.CRON_JOB, type, body, memo)


@kopf.on.probe(id="queue")
async def queue_depth(memo: kopf.Memo, **_: object) -> int:
    runtime = memo.get("runtime")
    return len(runtime.queue) if isinstance(runtime, Runtime) else 0


__all__ = [
    "cleanup",
    "listed_workloads",
    "on_apprelease_event",
    "on_cronjob_event",
    "on_daemonset_event",
    "on_deployment_event",
    "on_statefulset_event",
    "promotion_source",
    "release_key",
    "start_runtime",
    "startup",
    "watch_shard",
]
