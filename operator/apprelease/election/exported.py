"""Per-AppRelease series are exported by the leader only (the README's "High availability", issue 19): every
replica keeps them up to date from its watch (so a new leader has them at once), but a follower's /metrics
leaves them out, so a dashboard summing over pods counts each AppRelease once."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Family names as prometheus_client reports them (a counter's without `_total`).
PER_RELEASE = frozenset(
    {"apprelease_info", "apprelease_condition", "apprelease_revisions", "apprelease_rollout_duration_seconds"}
)


class LeaderOnly(Collector):
    """A view of `registry` for /metrics: everything while `leads()`, else all but the per-AppRelease families."""

    def __init__(self, registry: Collector, leads: Callable[[], bool]) -> None:
        self._registry = registry
        self._leads = leads

    def collect(self) -> Iterable[Metric]:
        leading = self._leads()
        return [family for family in self._registry.collect() if leading or family.name not in PER_RELEASE]
