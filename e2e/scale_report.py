"""The numbers of one N of e2e/bench_scale.py, and their table next to the baselines (`make bench`)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from e2e.fleet import RAW


@dataclass
class Run:
    """One N's numbers, in seconds, MiB, counts and milliseconds."""

    size: int
    direct_apply: float = 0.0
    direct_ready: float = 0.0
    bare_apply: float = 0.0
    bare_pinned: float = 0.0  # the bare patcher: apply end -> all pinned
    floor_apply: float = 0.0  # the recording patcher (e2e/recordingpatcher.py): its apply (2N objects)
    floor_pinned: float = 0.0  # ... and apply end -> all pinned
    floor_conflicts: int = 0  # ... and its status writes refused (409)
    apply: float = 0.0
    pinned: float = 0.0
    ready: float = 0.0
    rss_idle: float = 0.0
    rss_peak: float = 0.0  # the process that took the fleet through create, upgrade, roll back and edits
    rss_restart_peak: float = 0.0  # the new process's, over its first pass over all
    cpu: float = 0.0  # operator CPU seconds, start to the end of the edits
    restart: float = 0.0  # a new process with N resident: start -> N passes done
    restart_cpu: float = 0.0
    registry: dict[str, Counter[str]] = field(default_factory=dict)
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)  # upgrade/roll back: pinned, Ready
    edits: dict[str, list[float]] = field(default_factory=dict)
    events_dropped: int = 0  # by the operator in the create phase, its Event queue full
    api: dict[str, Counter[str]] = field(default_factory=dict)  # "VERB resource": requests the API server served
    control_plane_cpu: dict[str, float] = field(default_factory=dict)  # API server + etcd + controller-manager


def report(
    run: Run, replicas: int, summary: Callable[[str, list[float], str], dict[str, object]]
) -> list[dict[str, object]]:
    n = run.size
    # From the start of the apply: the direct Deployments roll out while they are being applied.
    ready, direct_ready = run.apply + run.ready, run.direct_apply + run.direct_ready
    ratio = ready / direct_ready
    raw = statistics.median(run.edits[RAW])
    rows: list[tuple[str, str, str, str]] = [
        ("apply (API, 16 threads)", f"{run.apply:.1f} s (2N objects)", f"{run.direct_apply:.1f} s (N)", ""),
        (
            "apply end -> all Deployments pinned",
            f"{run.pinned:.1f} s",
            f"bare patcher {run.bare_pinned:.1f} s",
            f"{run.pinned / run.bare_pinned:.2f}x" if run.bare_pinned else "",
        ),
        (
            "apply end -> all Deployments pinned",
            f"{run.pinned:.1f} s",
            f"recording patcher {run.floor_pinned:.1f} s",
            f"{run.pinned / run.floor_pinned:.2f}x" if run.floor_pinned else "",
        ),
        ("apply end -> all Ready", f"{run.ready:.1f} s", f"{run.direct_ready:.1f} s", ""),
        ("apply start -> all Ready", f"{ready:.1f} s", f"{direct_ready:.1f} s", f"{ratio:.2f}x"),
    ]
    for phase, (done, ready) in run.phases.items():
        rows.append((f"{phase}: edits end -> all pinned / Ready", f"{done:.1f} s / {ready:.1f} s", "", ""))
    for kind in (k for k in run.edits if k != RAW):
        p50 = statistics.median(run.edits[kind])
        rows.append((f"{kind}, p50", f"{p50:.0f} ms", f"raw kubectl patch {raw:.0f} ms", f"{p50 / raw:.2f}x"))
    for phase, counts in run.registry.items():
        detail = ", ".join(f"{k} {c}" for k, c in sorted(counts.items())) or "none"
        rows.append((f"registry requests to {phase}", f"{sum(counts.values())} ({detail})", "", ""))
    rows += control_plane_rows(run)
    # Two Events per AppRelease in the create phase (Deploying, Deployed); a drop is a full queue or share.
    rows.append(("Events dropped in the create phase", f"{run.events_dropped} of {2 * n}", "", ""))
    rows.append(("operator RSS idle / peak", f"{run.rss_idle:.0f} / {run.rss_peak:.0f} MiB", "", ""))
    rows.append(("new process: RSS peak over its first pass", f"{run.rss_restart_peak:.0f} MiB", "", ""))
    rows.append(("operator CPU, start -> edits done", f"{run.cpu:.0f} s", "", ""))
    rows.append(("new process: start -> all passed once", f"{run.restart:.1f} s ({run.restart_cpu:.0f} s CPU)", "", ""))
    print(f"{n} AppReleases (Deployments with {replicas} replicas):")
    print(f"  {'measured':<48} {'operator':<34} {'direct baseline':<30} ratio")
    for row in rows:
        print(f"  {row[0]:<48} {row[1]:<34} {row[2]:<30} {row[3]}")
    results: list[dict[str, object]] = [
        summary(f"N={n} {k}, Deployment patched", v, "ms") for k, v in run.edits.items()
    ]
    results.append({"metric": f"N={n} apply end -> all pinned", "value": round(run.pinned, 1), "unit": "s"})
    results.append(
        {"metric": f"N={n} bare patcher: apply end -> all pinned", "value": round(run.bare_pinned, 1), "unit": "s"}
    )
    floor = round(run.floor_pinned, 1)
    results.append({"metric": f"N={n} recording patcher: apply end -> all pinned", "value": floor, "unit": "s"})
    results.append({"metric": f"N={n} apply end -> all Ready", "value": round(run.ready, 1), "unit": "s"})
    results.append(
        {"metric": f"N={n} direct: apply end -> rolled out", "value": round(run.direct_ready, 1), "unit": "s"}
    )
    results.append({"metric": f"N={n} apply start -> all Ready / direct", "value": round(ratio, 2), "unit": "x"})
    results.append({"metric": f"N={n} operator CPU to the end of the edits", "value": round(run.cpu), "unit": "s"})
    results.append({"metric": f"N={n} new process: start -> all passed", "value": round(run.restart, 1), "unit": "s"})
    for kind in (k for k in run.edits if k != RAW):
        value = round(statistics.median(run.edits[kind]) / raw, 2)
        results.append({"metric": f"N={n} {kind} / raw kubectl patch (p50)", "value": value, "unit": "x"})
    for phase, counts in run.registry.items():
        results.append(
            {"metric": f"N={n} registry requests to {phase}", "value": sum(counts.values()), "detail": dict(counts)}
        )
    for name, cpu in run.control_plane_cpu.items():
        results.append({"metric": f"N={n} {name}: control-plane CPU", "value": round(cpu, 1), "unit": "s"})
    for name, counts in run.api.items():
        results.append({"metric": f"N={n} {name}: API requests", "value": _requests(counts), "detail": dict(counts)})
    results.append({"metric": f"N={n} Events dropped in the create phase", "value": run.events_dropped})
    results.append({"metric": f"N={n} operator RSS idle", "value": round(run.rss_idle, 1), "unit": "MiB"})
    results.append({"metric": f"N={n} operator RSS peak", "value": round(run.rss_peak, 1), "unit": "MiB"})
    results.append({"metric": f"N={n} new process RSS peak", "value": round(run.rss_restart_peak, 1), "unit": "MiB"})
    return results


def control_plane_rows(run: Run) -> list[tuple[str, str, str, str]]:
    """What the operator's create phase (apply start -> all Ready) cost the control plane, next to each
    patcher's (apply start -> all pinned): requests per object pinned and CPU seconds."""
    op, op_cpu = run.api.get("operator"), run.control_plane_cpu.get("operator")
    if op is None or op_cpu is None:
        return []
    rows = []
    for name in ("bare patcher", "recording patcher"):
        base, base_cpu = run.api.get(name), run.control_plane_cpu.get(name)
        if base is None or base_cpu is None:
            continue
        per_op, per_base = _requests(op) / run.size, _requests(base) / run.size
        rows += [
            ("control plane: API requests per Deployment", f"{per_op:.1f}", f"{name} {per_base:.1f}",
             f"{per_op / per_base:.2f}x"),
            ("control plane: CPU (API server, etcd, c-m)", f"{op_cpu:.1f} s", f"{name} {base_cpu:.1f} s",
             f"{op_cpu / base_cpu:.2f}x" if base_cpu else ""),
        ]  # fmt: skip
    return rows


def _requests(counts: Counter[str]) -> int:
    """Requests other than watches (a watch is one long request, whatever it carries)."""
    return sum(c for k, c in counts.items() if not k.startswith("WATCH"))
