"""Per-AppRelease series kept as compact records and written as text at scrape time (issue 19: 10,000
AppReleases).

Why not prometheus_client's labelled children: each child holds a lock and a value object per sample, about
13 KiB per AppRelease (9 condition series, 2 histograms of 15 samples, counters, info): 61 MiB at the 5,000
default cap, and a scrape built a `Sample` tuple and a label dict per series on top (another 67 MiB while it
ran). Here an AppRelease is one slotted record of immutable tuples (about 1 KiB) and a scrape writes lines
into one buffer. The lines are byte for byte what `prometheus_client.generate_latest` writes for the same
series (text format 0.0.4: HELP, TYPE, samples with labels sorted by name; a counter's family named
`*_total`; a histogram's cumulative `_bucket` series with `le`, then `_count` and `_sum`), which
`tests/test_metrics_releases.py` checks against prometheus_client's own metrics.

Records are never changed in place: an update replaces the record's tuples, so a scrape reads a consistent
record without holding the lock that the watch's updates take.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

Key = tuple[str, str]

CONDITION_STATUSES = ("True", "False", "Unknown")
# Rollouts take seconds to an hour (rollout.timeoutSeconds up to a day).
ROLLOUT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)


def _number(value: float) -> str:
    """A sample value or bucket bound as prometheus_client writes it ("1.0", "+Inf", "1e+06")."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]  # prometheus_client.utils is untyped


_LE = (*(_number(b) for b in ROLLOUT_BUCKETS), "+Inf")


@dataclass(frozen=True)
class Family:
    """One metric family of the README's "Metrics": exposition name, type, help text, label names."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...]


INFO = Family(
    "apprelease_info",
    "gauge",
    "What an AppRelease runs (always 1): version, digest and revision.",
    ("namespace", "name", "version", "digest", "revision"),
)
CONDITION = Family(
    "apprelease_condition",
    "gauge",
    "1 for the current status of each condition type (True, False, Unknown), else 0.",
    ("namespace", "name", "type", "status"),
)
REVISIONS = Family(
    "apprelease_revisions_total",
    "counter",
    "Revisions deployed: resolved from the registry, or restored from history (rollbacks).",
    ("namespace", "name", "source", "cause"),
)
ROLLOUT_DURATION = Family(
    "apprelease_rollout_duration_seconds",
    "histogram",
    "From a revision's deploy to its outcome.",
    ("namespace", "name", "outcome"),
)


@dataclass(slots=True)
class Release:
    """What the metrics know about one AppRelease; every field is immutable and replaced on change."""

    info: tuple[str, str, str] | None = None  # version, digest, revision of the apprelease_info series
    conditions: tuple[tuple[str, str], ...] = ()  # (type, status); a status outside CONDITION_STATUSES is ""
    revision: int = 0  # revisions up to this one are counted
    pending: frozenset[int] = frozenset()  # revisions seen InProgress: their end gives a duration
    revisions: tuple[tuple[str, str, int], ...] = ()  # (source, cause, count)
    durations: tuple[tuple[str, tuple[int, ...], float], ...] = ()  # (outcome, count per bucket and +Inf, sum)

    def count_revision(self, source: str, cause: str) -> None:
        counts = {(s, c): n for s, c, n in self.revisions}
        counts[(source, cause)] = counts.get((source, cause), 0) + 1
        self.revisions = tuple((s, c, n) for (s, c), n in counts.items())

    def observe_duration(self, outcome: str, seconds: float) -> None:
        """Add one observation to the outcome's histogram (a value on a bound falls in that bucket: `le`)."""
        histograms = {o: (b, t) for o, b, t in self.durations}  # keeps the order outcomes first appeared in
        buckets, total = histograms.get(outcome, ((0,) * len(_LE), 0.0))
        index = bisect.bisect_left(ROLLOUT_BUCKETS, seconds)
        histograms[outcome] = ((*buckets[:index], buckets[index] + 1, *buckets[index + 1 :]), total + seconds)
        self.durations = tuple((o, b, t) for o, (b, t) in histograms.items())


Sample = tuple[str, tuple[str, ...], float]


def _info(key: Key, release: Release) -> Iterator[Sample]:
    if release.info:
        yield INFO.name, (*key, *release.info), 1.0


def _conditions(key: Key, release: Release) -> Iterator[Sample]:
    for type_, current in release.conditions:
        for status in CONDITION_STATUSES:
            yield CONDITION.name, (*key, type_, status), 1.0 if current == status else 0.0


def _revisions(key: Key, release: Release) -> Iterator[Sample]:
    for source, cause, count in release.revisions:
        yield REVISIONS.name, (*key, source, cause), float(count)


def _durations(key: Key, release: Release) -> Iterator[Sample]:
    name = ROLLOUT_DURATION.name
    for outcome, buckets, total in release.durations:
        cumulative = 0
        for le, count in zip(_LE, buckets, strict=True):
            cumulative += count
            yield f"{name}_bucket", (*key, outcome, le), float(cumulative)
        yield f"{name}_count", (*key, outcome), float(cumulative)
        yield f"{name}_sum", (*key, outcome), total


# (family, its samples of one AppRelease: sample name, label values in `family.labels` order then `le`, value)
_WRITERS: tuple[tuple[Family, Callable[[Key, Release], Iterator[Sample]]], ...] = (
    (INFO, _info),
    (CONDITION, _conditions),
    (REVISIONS, _revisions),
    (ROLLOUT_DURATION, _durations),
)


def render(releases: Iterable[tuple[Key, Release]]) -> bytes:
    """The per-AppRelease families in the text exposition format (0.0.4), as UTF-8 bytes."""
    items = list(releases)
    out = bytearray()
    for family, samples in _WRITERS:
        out += f"# HELP {family.name} {_escape_help(family.help)}\n# TYPE {family.name} {family.type}\n".encode()
        names = (*family.labels, "le")
        for key, release in items:
            for sample, values, value in samples(key, release):
                pairs = sorted(zip(names, values, strict=False))  # by label name, as prometheus_client writes them
                labels = ",".join(f'{n}="{_escape_label(v)}"' for n, v in pairs)
                out += f"{sample}{{{labels}}} {_number(value)}\n".encode()
    return bytes(out)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and line feed escaped."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
