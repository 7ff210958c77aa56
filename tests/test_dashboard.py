"""The Grafana dashboard queries only series the operator exports, with labels those series carry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from apprelease.controller.metrics import Metrics
from apprelease.controller.metrics_releases import CONDITION, INFO, REVISIONS, ROLLOUT_DURATION

DASHBOARD = Path(__file__).resolve().parents[1] / "charts" / "apprelease-operator" / "dashboards" / "apprelease.json"

# PromQL functions, aggregations and keywords the dashboard may use; anything else that is a bare identifier
# must be an exported series.
PROMQL_WORDS = {
    "sum", "count", "max", "min", "avg", "by", "without", "or", "and", "unless", "on", "ignoring",
    "rate", "increase", "irate", "histogram_quantile", "vector", "label_values", "bool", "topk", "clamp_min",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(\w+)\s*\)")  # Grafana's
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def label_names() -> dict[str, set[str]]:
    m = Metrics()
    return {
        "apprelease_info": set(INFO.labels),
        "apprelease_condition": set(CONDITION.labels),
        "apprelease_revisions_total": set(REVISIONS.labels),
        "apprelease_rollout_duration_seconds_bucket": {*ROLLOUT_DURATION.labels, "le"},
        "apprelease_rollout_duration_seconds_sum": set(ROLLOUT_DURATION.labels),
        "apprelease_rollout_duration_seconds_count": set(ROLLOUT_DURATION.labels),
        "apprelease_reconcile_duration_seconds_bucket": {*m.reconcile_duration._labelnames, "le"},
        "apprelease_reconcile_duration_seconds_sum": set(m.reconcile_duration._labelnames),
        "apprelease_reconcile_duration_seconds_count": set(m.reconcile_duration._labelnames),
        "apprelease_registry_requests_total": set(m.registry_requests._labelnames),
        "apprelease_workqueue_depth": set(m.workqueue_depth._labelnames),
        "apprelease_leader": set(m.leader._labelnames),
        "apprelease_series_dropped_total": set(m.series_dropped._labelnames),
        "apprelease_events_dropped_total": set(m.events_dropped._labelnames),
    }


def expressions(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, str) and "(" in value:
                found.append(value)
            else:
                found.extend(expressions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(expressions(item))
    return found


def series_in(expr: str) -> list[tuple[str, set[str]]]:
    """(series name, label names matched on it) for every series an expression reads."""
    used: list[tuple[str, set[str]]] = [(name, {label}) for name, label in _LABEL_VALUES.findall(expr)]
    text = _RANGE.sub("", _LABEL_VALUES.sub("", expr))
    for name, matchers in _SELECTOR.findall(_STRINGS.sub('""', text)):
        used.append((name, {m.split("=")[0].strip(" !~") for m in matchers.split(",") if m.strip()}))
    bare = _GROUPING.sub("", _SELECTOR.sub("", _STRINGS.sub('""', text)))
    for name in _IDENTIFIER.findall(bare):
        if name not in PROMQL_WORDS:
            used.append((name, set()))
    return used


def test_the_dashboard_is_json_with_panels_that_all_query_something() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_expression_reads_only_exported_series_and_their_labels() -> None:
    known = label_names()
    page = Metrics().render().decode()  # HELP and TYPE of every family, even with no series yet
    collected = {family.name for family in text_string_to_metric_families(page)}
    assert {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in known} == collected  # nothing left out above
    exprs = expressions(json.loads(DASHBOARD.read_text()))
    read: set[str] = set()
    for expr in exprs:
        for name, labels in series_in(expr):
            assert name in known, f"{name!r} in {expr!r} is not an exported series"
            assert labels <= known[name], f"{sorted(labels - known[name])} are not labels of {name} in {expr!r}"
            read.add(name)
    # Every family the operator exports is on the dashboard somewhere.
    families = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in read}
    assert families == {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in known}


def test_the_checker_catches_unknown_series_and_labels() -> None:
    used = series_in('sum by (le) (rate(apprelease_rollout_duration_seconds_bucket{outcome="Failed",team=~"a"}[5m]))')
    assert used == [("apprelease_rollout_duration_seconds_bucket", {"outcome", "team"})]
    assert series_in("label_values(apprelease_info, team)") == [("apprelease_info", {"team"})]
    assert series_in("apprelease_workqueue_depth > 3 or kube_pod_info") == [
        ("apprelease_workqueue_depth", set()),
        ("kube_pod_info", set()),
    ]
