"""`make bench`, intake: AppRelease events with changing spec.workloads through the real kopf handlers, no cluster.

Pure Python, run first by e2e/bench.py (or alone: `python -m e2e.bench_intake`). Measures, for EVENTS watch
events of RELEASES AppReleases that each rename all of their WORKLOADS workloads on every edit:
- the time per event in the first and in the last WINDOW events (flat means the intake does not grow with
  history), and the time of a workload event's lookup of the AppReleases to wake;
- the size of the workload -> AppRelease lookup after the run: entries and bytes (a getsizeof walk).

The handlers run as kopf runs them (tests/kopf_intake.py: kopf's own Index and Memo). The baseline is the
hand-kept map the handlers had before the floor plan (issue 13), copied below and labelled OLD: it was scanned
whole on every AppRelease event and never dropped a name. Numbers are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, cast

from tests.kopf_intake import KopfIntake, apprelease, workload

from apprelease.controller.runtime import Key, Runtime
from apprelease.controller.settings import OperatorSettings
from apprelease.core.api import ANNOTATION_RETRY
from apprelease.core.workloads import Kind

EVENTS = 10_000
RELEASES = 100
WORKLOADS = 20
WINDOW = 1_000
NAMESPACE = "bench"


class OldWorkloadMap:
    """OLD, the baseline: `Runtime._by_workload` and its upkeep as they were before issue 13, unchanged."""

    def __init__(self) -> None:
        self.by_workload: dict[tuple[str, str, str], set[Key]] = {}  # (namespace, kind, name) -> AppReleases

    def observe(self, key: Key, workloads: list[tuple[str, str]]) -> None:
        for keys in self.by_workload.values():  # every name ever listed, on every event
            keys.discard(key)
        for kind, name in workloads:
            self.by_workload.setdefault((key[0], kind, name), set()).add(key)

    def wake_for_workload(self, namespace: str, kind: str, name: str) -> list[Key]:
        return list(self.by_workload.get((namespace, kind, name), ()))


async def old_on_apprelease_event(runtime: Runtime, old: OldWorkloadMap, type: str, body: dict[str, Any]) -> None:
    """OLD: the AppRelease handler before issue 13 (RUNTIME global replaced by arguments), for the baseline."""
    meta = body.get("metadata", {})
    key = (meta.get("namespace", ""), meta.get("name", ""))
    runtime.metrics.observe_status(*key, body.get("status"))
    workloads = [
        (str(w.get("kind") or Kind.DEPLOYMENT), str(w.get("name", "")))
        for w in (body.get("spec", {}).get("workloads") or [])
        if isinstance(w, dict)
    ]
    retry = (meta.get("annotations") or {}).get(ANNOTATION_RETRY)
    old.observe(key, workloads)
    runtime.observe(key, int(meta.get("generation") or 0), retry)


def events() -> Iterable[tuple[str, int, dict[str, Any]]]:
    """(AppRelease name, edit, body): round robin over the AppReleases; each edit renames every workload."""
    for event in range(EVENTS):
        name, edit = f"app-{event % RELEASES:03d}", event // RELEASES
        names = [("Deployment", f"{name}-w{j:02d}-e{edit}") for j in range(WORKLOADS)]
        yield name, edit, apprelease(NAMESPACE, name, edit + 1, names)


def deep_size(root: object) -> int:
    """Bytes of ``root`` and everything it holds (containers, instance dicts), each object counted once."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    return total


def _runtime() -> Runtime:
    # Not started: no workers, no metrics server. The queue folds repeats, so it holds at most RELEASES keys.
    return Runtime(OperatorSettings(metrics_port=0), cast(Any, None))


async def _timed(
    step: Callable[[str, int, dict[str, Any]], Coroutine[Any, Any, None]],
    wake: Callable[[str, int], Coroutine[Any, Any, None]],
) -> tuple[list[float], list[float]]:
    per_event, per_wake = [], []
    for name, edit, body in events():
        started = time.perf_counter_ns()
        await step(name, edit, body)
        per_event.append((time.perf_counter_ns() - started) / 1000)
        started = time.perf_counter_ns()
        await wake(name, edit)
        per_wake.append((time.perf_counter_ns() - started) / 1000)
    return per_event, per_wake


async def _new() -> tuple[list[float], list[float], int, int]:
    intake = KopfIntake(_runtime())

    async def step(_name: str, _edit: int, body: dict[str, Any]) -> None:
        await intake.apprelease("MODIFIED", body)

    async def wake(name: str, edit: int) -> None:
        await intake.workload("Deployment", workload(NAMESPACE, f"{name}-w00-e{edit}"))

    per_event, per_wake = await _timed(step, wake)
    return per_event, per_wake, len(intake.index), deep_size(intake.index)


async def _old() -> tuple[list[float], list[float], int, int]:
    runtime, old = _runtime(), OldWorkloadMap()

    async def step(_name: str, _edit: int, body: dict[str, Any]) -> None:
        await old_on_apprelease_event(runtime, old, "MODIFIED", body)

    async def wake(name: str, edit: int) -> None:
        runtime.wake(old.wake_for_workload(NAMESPACE, "Deployment", f"{name}-w00-e{edit}"))

    per_event, per_wake = await _timed(step, wake)
    return per_event, per_wake, len(old.by_workload), deep_size(old.by_workload)


def _window(values: list[float]) -> tuple[float, float]:
    """(mean of the first WINDOW, mean of the last WINDOW), microseconds."""
    return statistics.fmean(values[:WINDOW]), statistics.fmean(values[-WINDOW:])


def measure() -> list[dict[str, object]]:
    new_event, new_wake, new_entries, new_bytes = asyncio.run(_new())
    old_event, old_wake, old_entries, old_bytes = asyncio.run(_old())
    print(
        f"intake: {EVENTS} AppRelease events, {RELEASES} AppReleases x {WORKLOADS} workloads renamed per edit "
        f"(kopf handlers, no cluster); OLD = the hand-kept map before issue 13"
    )
    results: list[dict[str, object]] = []
    for what, new, old in (("AppRelease event", new_event, old_event), ("workload event lookup", new_wake, old_wake)):
        (new_first, new_last), (old_first, old_last) = _window(new), _window(old)
        print(
            f"  {what:<22} first {WINDOW}: {new_first:8.1f} us (OLD {old_first:8.1f})   "
            f"last {WINDOW}: {new_last:8.1f} us (OLD {old_last:8.1f})   "
            f"last/first {new_last / new_first:5.2f}x (OLD {old_last / old_first:6.2f}x)   "
            f"OLD/new at the end {old_last / new_last:7.1f}x"
        )
        results.append(
            {
                "metric": f"intake, {what}",
                "unit": "us",
                "first": round(new_first, 1),
                "last": round(new_last, 1),
                "old_first": round(old_first, 1),
                "old_last": round(old_last, 1),
                "old_over_new_at_end": round(old_last / new_last, 1),
            }
        )
    live = RELEASES * WORKLOADS
    print(
        f"  lookup after the run: {new_entries} entries, {new_bytes / 2**20:.2f} MiB "
        f"(OLD {old_entries} entries, {old_bytes / 2**20:.2f} MiB: {old_bytes / new_bytes:.0f}x); "
        f"{live} workloads are listed now"
    )
    results.append(
        {
            "metric": "intake, workload lookup size",
            "entries": new_entries,
            "bytes": new_bytes,
            "old_entries": old_entries,
            "old_bytes": old_bytes,
            "old_over_new": round(old_bytes / new_bytes, 1),
        }
    )
    return results


if __name__ == "__main__":
    measure()
