"""Read a `Metrics` as a scraper does: its /metrics page, parsed by prometheus_client's own parser (the
per-AppRelease series live outside `Metrics.registry`, see `metrics_releases`)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from apprelease.controller.metrics import Metrics


def samples(metrics: Metrics, family: str | None = None) -> list[Sample]:
    """Every sample of the page, or of one family (its name as the parser gives it: a counter's without
    `_total`)."""
    families = text_string_to_metric_families(metrics.render().decode())
    return [s for f in families if family is None or f.name == family for s in f.samples]


def value(metrics: Metrics, sample: str, /, **labels: str) -> float | None:
    """The value of the sample named `sample` with exactly `labels`, or None when the page has no such sample."""
    found = [s.value for s in samples(metrics) if s.name == sample and s.labels == labels]
    return float(found[0]) if found else None
