"""Prometheus metrics (the README's "Metrics"): names, types and labels are a contract with users' dashboards.

Per-AppRelease series are derived from the status as the API server holds it (`observe_status`, fed by the
watch), so they say what users see with kubectl, survive operator restarts, and need no hook in the reconciler:
a revision appearing in status.history counts once, and a revision whose outcome turns final gives its rollout
duration (deployedAt to now). The server (`metrics_server`) runs in its own thread and event loop.

Bounded: label values from tenants and registries are folded (`metric_labels`), and at most `max_releases`
AppReleases have series (each at most 3 condition types x 3 statuses, 3 x 3 revision counters: source and
cause each `other` when unknown, 2 outcome histograms and one info series); updates for others are counted in
`apprelease_series_dropped_total`. Those series are compact records written as text at scrape time
(`metrics_releases`); the operator-wide ones are prometheus_client's.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from apprelease.controller import metric_labels
from apprelease.controller.metric_labels import NO_RESPONSE, RegistryLabels
from apprelease.controller.metrics_auth import TokenFile
from apprelease.controller.metrics_releases import CONDITION_STATUSES, Key, Release
from apprelease.controller.metrics_releases import render as render_releases
from apprelease.controller.metrics_server import MetricsServer, ServerLimits
from apprelease.core.conditions import READY, RECONCILING, STALLED

# Only the series of the contract: no `*_created` timestamps next to counters and histograms.
disable_created_metrics()  # type: ignore[no-untyped-call]

RESULTS = ("ok", "retry", "stalled", "error")
FINAL_OUTCOMES = ("Succeeded", "Failed")
CONDITION_TYPES = frozenset({READY, RECONCILING, STALLED})  # the operator's; others in status are not series
# One string object per known value, whatever JSON document it was read from (10,000 records share them).
_CANONICAL = {value: value for value in (*CONDITION_TYPES, *CONDITION_STATUSES)}
SOURCES = frozenset({"Registry", "History"})
CAUSES = frozenset({"Spec", "AutoRollback"})
DEFAULT_MAX_RELEASES = 5000

# Reconciles take milliseconds to a registry timeout.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The operator's series. `allowed_registries`/`max_registries` bound the `registry` label (see
    `RegistryLabels`); `max_releases` bounds how many AppReleases have series."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        allowed_registries: list[str] | tuple[str, ...] = (),
        max_registries: int = metric_labels.DEFAULT_MAX_REGISTRIES,
        max_releases: int = DEFAULT_MAX_RELEASES,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()  # registry hooks call in from worker threads
        self._releases: dict[Key, Release] = {}
        self._leading = True  # one replica, or until leader election says otherwise (set_leader)
        self._max_releases = max_releases
        self._registry_label = RegistryLabels(allowed_registries, max_registries)
        self._server: MetricsServer | None = None
        self.reconcile_duration = Histogram(
            "apprelease_reconcile_duration_seconds",
            "One reconcile of one AppRelease, by result.",
            ["result"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.registry_requests = Counter(
            "apprelease_registry_requests_total",
            "HTTP requests to image registries: registry (allowed pattern, or 'other'), method, code (200, 401, "
            f"403, 404, 429 exactly, else its class such as '5xx'; {NO_RESPONSE!r}: no response).",
            ["registry", "method", "code"],
            registry=self.registry,
        )
        self.workqueue_depth = Gauge(
            "apprelease_workqueue_depth", "AppReleases waiting for a worker.", registry=self.registry
        )
        self.leader = Gauge(
            "apprelease_leader", "1 while this replica leads (reconciles), else 0.", registry=self.registry
        )
        self.events_dropped = Counter(
            "apprelease_events_dropped_total",
            "Events not posted: the Event queue, or its namespace's share of it, was full.",
            registry=self.registry,
        )
        self.series_dropped = Counter(
            "apprelease_series_dropped_total",
            "Per-AppRelease series updates not recorded: that many AppReleases already have series "
            "(APPRELEASE_METRICS_MAX_RELEASES).",
            registry=self.registry,
        )

    # --- the operator's calls ----------------------------------------------------------------------------
    def reconcile(self, result: str, seconds: float) -> None:
        if result not in RESULTS:
            raise ValueError(f"unknown reconcile result {result!r}")
        self.reconcile_duration.labels(result).observe(seconds)

    def registry_request(self, registry: str, method: str, code: int | None) -> None:
        self.registry_requests.labels(
            self._registry_label(registry), metric_labels.method(method), metric_labels.status_code(code)
        ).inc()

    def event_dropped(self) -> None:
        self.events_dropped.inc()

    def queue_depth(self, depth: int) -> None:
        self.workqueue_depth.set(depth)

    def queue_depth_from(self, depth: Callable[[], int]) -> None:
        """Read the depth at scrape time (cheap: a length), instead of setting it on every change."""
        self.workqueue_depth.set_function(lambda: float(depth()))

    def set_leader(self, leading: bool) -> None:
        """This replica leads (or not): `apprelease_leader`, and whether /metrics shows per-AppRelease series."""
        self._leading = leading
        self.leader.set(1 if leading else 0)
        if self._server is not None:
            self._server.exposition.invalidate()  # a cached page must not show the old leadership

    def revision(self, namespace: str, name: str, source: str, cause: str) -> None:
        source = source if source in SOURCES else metric_labels.OTHER
        cause = cause if cause in CAUSES else metric_labels.OTHER
        with self._lock:
            release = self._track((namespace, name))
            if release is not None:
                release.count_revision(source, cause)

    def rollout_finished(self, namespace: str, name: str, outcome: str, seconds: float) -> None:
        if outcome not in FINAL_OUTCOMES:
            raise ValueError(f"unknown rollout outcome {outcome!r}")
        with self._lock:
            release = self._track((namespace, name))
            if release is not None:
                release.observe_duration(outcome, max(0.0, seconds))

    def observe_status(self, namespace: str, name: str, status: Mapping[str, object] | None) -> None:
        """Bring the per-AppRelease series in line with this status (as stored; camelCase keys)."""
        status = status or {}
        key = (namespace, name)
        with self._lock:
            first_sight = key not in self._releases
            release = self._track(key)
            if release is None:
                return
            release.info = _info(status)
            release.conditions = _conditions(_mappings(status.get("conditions")))
            history = _mappings(status.get("history"))
            new, finished = _changes(release, history, _int(status.get("revision")), first_sight)
        for entry in new:
            self.revision(namespace, name, str(entry.get("source") or "Registry"), str(entry.get("cause") or "Spec"))
        now = self._clock()
        for entry in finished:
            started = _timestamp(entry.get("deployedAt"))
            if started is not None:
                self.rollout_finished(namespace, name, str(entry["outcome"]), now - started)

    def forget(self, namespace: str, name: str) -> None:
        """The AppRelease is gone: drop its series, so dashboards do not show it forever."""
        with self._lock:
            self._releases.pop((namespace, name), None)

    # --- serving ---------------------------------------------------------------------------------------------
    def render(self) -> bytes:
        """The text exposition format (version 0.0.4) of what this replica exports; CPU-bound, run off the event
        loop.

        Per-AppRelease series only while this replica leads (the README's "High availability", issue 19): every
        replica keeps them up to date from its watch, so a new leader has them at once, but a follower leaves
        them out, so a dashboard summing over pods counts each AppRelease once."""
        page = generate_latest(self.registry)
        if not self._leading:
            return page
        with self._lock:
            releases = list(self._releases.items())  # a record's fields are replaced, never changed: read unlocked
        return page + render_releases(releases)

    def serve(
        self,
        port: int,
        address: str = "0.0.0.0",
        *,
        token_file: str | None = None,
        limits: ServerLimits | None = None,
    ) -> int:
        """Serve /metrics from the server's own thread; returns the port (useful with 0).

        With `token_file`, only requests bearing that token are answered (TokenError if it holds none)."""
        token = TokenFile(token_file) if token_file else None
        self._server = MetricsServer(self.render, token=token, limits=limits)
        return self._server.start(port, address)

    @property
    def server(self) -> MetricsServer | None:
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # --- helpers (under the lock) ------------------------------------------------------------------------
    def _track(self, key: Key) -> Release | None:
        """The record of an AppRelease that has series, or None (counted) when `max_releases` have them."""
        release = self._releases.get(key)
        if release is None:
            if len(self._releases) >= self._max_releases:
                self.series_dropped.inc()
                return None
            release = self._releases[key] = Release()
        return release


def _info(status: Mapping[str, object]) -> tuple[str, str, str] | None:
    version, digest, revision = status.get("version"), status.get("digest"), _int(status.get("revision"))
    return (str(version), str(digest), str(revision)) if version and digest and revision else None


def _conditions(conditions: list[Mapping[str, object]]) -> tuple[tuple[str, str], ...]:
    """(type, status) of the operator's condition types, the last of each type winning; an unknown status is ""
    (all three of its series read 0)."""
    current: dict[str, str] = {}
    for c in conditions:
        type_ = c.get("type")
        if isinstance(type_, str) and type_ in CONDITION_TYPES:
            current[_CANONICAL[type_]] = _CANONICAL.get(str(c.get("status") or "Unknown"), "")
    return tuple(current.items())


def _changes(
    seen: Release, history: list[Mapping[str, object]], revision: int, first_sight: bool
) -> tuple[list[Mapping[str, object]], list[Mapping[str, object]]]:
    """New revisions to count, and revisions whose rollout just ended; updates `seen`.

    On first sight (operator start), what is already in history was counted by an earlier process: it only
    sets the baseline, and in-progress revisions are remembered so that their end is still measured.
    """
    pending = set(seen.pending)
    new = [] if first_sight else [e for e in history if _int(e.get("revision")) > seen.revision]
    new_revisions = {_int(e.get("revision")) for e in new}
    finished: list[Mapping[str, object]] = []
    for entry in history:
        number, outcome = _int(entry.get("revision")), entry.get("outcome")
        if outcome == "InProgress":
            pending.add(number)
        elif number in pending or number in new_revisions:
            pending.discard(number)
            if outcome in FINAL_OUTCOMES:
                finished.append(entry)
    recorded = {_int(e.get("revision")) for e in history}
    seen.pending = frozenset(pending & recorded)  # entries beyond historyLimit are gone for good
    seen.revision = max(seen.revision, revision, *recorded) if recorded else max(seen.revision, revision)
    return sorted(new, key=lambda e: _int(e.get("revision"))), finished


def _mappings(value: object) -> list[Mapping[str, object]]:
    """The objects of a JSON list (status.conditions, status.history); anything else reads as empty."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
