"""The operator's moving parts wired together: settings, clients, reconciler, work queue and workers."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from apprelease.controller.cluster import KubernetesCluster
from apprelease.controller.eventqueue import EventQueue
from apprelease.controller.fencing import Conflict
from apprelease.controller.kubeclient import Connection, connect
from apprelease.controller.lookup import ReverseIndex
from apprelease.controller.metrics import Metrics
from apprelease.controller.reconciler import Reconciler
from apprelease.controller.settings import OperatorSettings
from apprelease.controller.workloadnews import WorkloadNews
from apprelease.controller.workqueue import WorkQueue
from apprelease.election import (
    AlwaysLeader,
    Elector,
    KubernetesLeaseStore,
    Leadership,
    candidate_identity,
    serverside,
    shards,
)
from apprelease.notify.endpoint import Endpoint
from apprelease.notify.notifier import Notifier
from apprelease.registry import RegistryClient

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name) of an AppRelease
WorkloadRef = tuple[str, str, str]  # (namespace, kind, name) of a workload an AppRelease lists


class Runtime:
    def __init__(
        self,
        settings: OperatorSettings,
        reconciler: Reconciler,
        metrics: Metrics | None = None,
        leadership: Leadership | None = None,
        events: EventQueue | None = None,
    ) -> None:
        self.settings = settings
        self.events = events  # the queue the cluster posts Events through, if any (drained at stop)
        self.reconciler = reconciler
        self.metrics = metrics or Metrics()
        # Every replica watches and queues; only the leader's workers take keys (see _work).
        self.leadership: Leadership = leadership or AlwaysLeader()
        self.queue: WorkQueue[Key] = WorkQueue(
            base_delay=settings.retry_base_seconds,
            max_delay=settings.retry_max_seconds,
            # A re-check (a rollout's judgement, an automatic rollback) always has a worker, however long
            # urgent passes take (see workqueue).
            urgent_workers=max(1, settings.workers - 1),
        )
        # (uid, generation, retry) per live AppRelease, dropped by forget. The uid: one deleted and made again
        # under its name while the watch was away (a new list reports no DELETED) is new work.
        self._seen: dict[Key, tuple[str, int, str | None]] = {}
        # Which workload events are news to a pass (see workloadnews): the others wake nothing. A workload no
        # AppRelease lists any more is forgotten there too.
        self.workload_news: WorkloadNews[WorkloadRef] = WorkloadNews()
        # Which AppReleases an event of a workload, or of an upstream AppRelease, wakes (see lookup).
        self.releases_by_workload: ReverseIndex[WorkloadRef, Key] = ReverseIndex(self.workload_news.forget)
        self.releases_by_upstream: ReverseIndex[Key, Key] = ReverseIndex()
        self._workers: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()  # reconcile passes under way
        # One thread per worker: a pass mostly waits on the API server, and asyncio's default executor
        # (min(32, CPUs + 4) threads, shared with kopf) would cap `workers` at 6 on a 2-CPU node.
        self._threads = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="reconcile")
        self._stopping = False

    @classmethod
    def from_environment(cls) -> Runtime:
        settings = OperatorSettings()
        metrics = Metrics(
            allowed_registries=settings.allowed_registries,
            max_registries=settings.metrics_max_registries,
            max_releases=settings.metrics_max_releases,
        )
        registry = RegistryClient(settings.registry(), on_request=metrics.registry_request)
        # Every worker and Event thread may call at once; the elector, the sharding probe and kopf's own
        # client (aiohttp, a pool of its own) aside, a few spare.
        connection = connect(prefer_in_cluster=True, pool_size=settings.workers + settings.event_threads + 4)
        if settings.shard_range:
            _check_sharding(connection, settings)
        events = EventQueue(threads=settings.event_threads, on_drop=metrics.event_dropped)
        cluster = KubernetesCluster(
            connection.api_client,
            timeout_seconds=settings.kube_timeout_seconds,
            instance=candidate_identity(),
            events=events,
        )
        reconciler = Reconciler(
            cluster,
            registry,
            resync_seconds=settings.resync_seconds,
            rollout_poll_seconds=settings.rollout_poll_seconds,
            allowed_registries=settings.allowed_registries,
            require_uid_binding=settings.require_uid_binding,
            promotion_sources=settings.promotion_sources,
            notifier=Notifier(cluster, Endpoint(settings.notify_rules(), _ssl_context(settings.ca_bundle))),
            verify_floor=settings.verify_floor,
        )
        leadership: Leadership | None = None
        if settings.leader_election:
            leadership = _elector(settings, connection, metrics)
        return cls(settings, reconciler, metrics, leadership, events)

    async def start(self) -> None:
        log.info(
            "apprelease operator: %d workers, resync %ss, allowed registries %s, insecure registries %s, namespaces %s",
            self.settings.workers,
            self.settings.resync_seconds,
            self.settings.allowed_registries or "any",
            self.settings.insecure_registries or "none",
            self.settings.watch_namespaces or "all",
        )
        if isinstance(self.leadership, Elector):
            self.metrics.set_leader(False)  # until the elector says we lead
            self.leadership.start()
        else:
            self.metrics.set_leader(True)
        self._workers = [asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self.settings.workers)]
        self.metrics.queue_depth_from(lambda: len(self.queue))
        # Its own thread and event loop: scrapes never take this loop's time.
        self.metrics.serve(self.settings.metrics_port, token_file=self.settings.metrics_token_file)

    async def stop(self) -> None:
        """Stop the workers, let a reconcile that is under way finish (bounded), then release the Lease: a
        successor must not start while our last writes are in flight."""
        self._stopping = True
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=self.settings.kube_timeout_seconds)
        if isinstance(self.leadership, Elector):
            await self.leadership.stop(release=True)
        self._threads.shutdown(wait=False)
        if self.events is not None:  # the Events still queued go out, bounded
            await asyncio.to_thread(self.events.close, self.settings.kube_timeout_seconds)
        self.reconciler.registry.close()
        self.metrics.stop()

    # --- event intake (called from kopf handlers, on the event loop; must stay cheap) -------------------
    def observe(
        self, key: Key, generation: int, retry: str | None = None, *, unapplied: bool = False, uid: str = ""
    ) -> None:
        """An AppRelease was seen: queue it when its generation or its apprelease.dev/retry value changed.
        `unapplied`: its status has not recorded this generation yet (new, or edited): queued as urgent, ahead
        of re-checks; so is a new retry value. A first sight of one already applied (a replica's first list) is
        a re-check."""
        # Our own status writes come back as events too; only a new generation, a new apprelease.dev/retry
        # value (an annotation: no new generation) or a first sight needs work.
        seen = (uid, generation, retry)
        before = self._seen.get(key)
        if before != seen:
            self._seen[key] = seen
            asked = before is not None and before[0] == uid and before[2] != retry  # a person asked to retry
            self.queue.add(key, urgent=unapplied or asked)

    def forget(self, key: Key) -> None:
        self._seen.pop(key, None)
        self.queue.drop(key)
        self.metrics.forget(*key)
        self.releases_by_workload.discard(key)
        self.releases_by_upstream.discard(key)

    def wake(self, keys: Iterable[Key]) -> None:
        """A workload these AppReleases list changed: queue each (the queue folds repeats)."""
        for key in keys:
            self.queue.add(key)

    # --- workers ---------------------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._stopping:
            await self.leadership.wait_leading()
            key = await self.queue.get()
            if self._stopping or not self.leadership.leads():
                # Leadership lapsed while we waited (the elector exits the process soon, or renews): keep the key.
                self.queue.give_back(key)  # with its priority: a person's edit stays ahead of re-checks
                await asyncio.sleep(self.settings.retry_period_seconds / 4)
                continue
            # Shielded: stopping cancels the worker, but a pass under way finishes (stop waits for it).
            job = asyncio.create_task(self._reconcile(key))
            self._busy.add(job)
            job.add_done_callback(self._busy.discard)
            await asyncio.shield(job)

    async def _reconcile(self, key: Key) -> None:
        started, outcome = time.monotonic(), "error"
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._threads, self.reconciler.reconcile, *key)
            outcome = "retry" if result.retry else "stalled" if result.stalled else "ok"
        except Conflict as err:  # fenced: another writer got in first; the next pass reads it afresh
            outcome = "retry"
            delay = self.queue.add_rate_limited(key)
            log.info("%s/%s: %s; requeued in %.0fs", *key, err, delay)
        except Exception:
            delay = self.queue.add_rate_limited(key)
            log.exception("reconcile of %s/%s failed; retrying in %.0fs", *key, delay)
        else:
            if result.retry:
                delay = self.queue.add_rate_limited(key)
                log.info("%s/%s waits for the world; retrying in %.0fs", *key, delay)
            else:
                self.queue.forget(key)
                if result.requeue_after is not None:
                    self.queue.add_after(key, result.requeue_after)
        finally:
            self.queue.done(key)
            if key not in self._seen:  # deleted while the pass ran: no timer or backoff is left for it
                self.queue.drop(key)
            self.metrics.reconcile(outcome, time.monotonic() - started)


def _elector(settings: OperatorSettings, connection: Connection, metrics: Metrics) -> Elector:
    """The Lease elector of this replica: the Lease in APPRELEASE_LEADER_ELECTION_NAMESPACE, else the pod's
    namespace (POD_NAMESPACE from the downward API), else the kubeconfig context's."""
    namespace = settings.leader_election_namespace or os.environ.get("POD_NAMESPACE") or connection.namespace
    timing = settings.election_timing()
    store = KubernetesLeaseStore(
        connection.api_client,
        namespace,
        settings.lease_name(),
        timeout_seconds=max(1.0, timing.renew_deadline / 3),  # two tries fit in one renew deadline
    )
    return Elector(store, candidate_identity(), timing, on_change=metrics.set_leader)


def _check_sharding(connection: Connection, settings: OperatorSettings) -> None:
    """Refuse to start in shardRange mode on an API server that ignores shard selectors (every shard would
    reconcile everything); raises `serverside.ShardingUnsupported` (see there)."""
    selector = shards.range_selector(settings.shard_range or "")
    namespace = settings.watch_namespaces[0] if settings.watch_namespaces else None
    serverside.probe(connection.api_client, selector, namespace, timeout_seconds=settings.kube_timeout_seconds).check(
        selector
    )
    log.info("sharding: the API server honours %s", selector)


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The system CAs, plus the operator's extra ones (the same file registries use)."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context
