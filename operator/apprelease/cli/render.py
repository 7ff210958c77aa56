"""Human-readable tables for `status` and `history`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from apprelease.cli.kube import event_time
from apprelease.cli.text import plain, safe
from apprelease.core.workloads import Rollout, judge, template_images

_OUTCOME_STYLE = {"Succeeded": "green", "InProgress": "yellow", "Failed": "red", "Superseded": "dim"}


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


_STATE_STYLE = {Rollout.COMPLETE: "green", Rollout.FAILED: "red"}
EVENTS_SHOWN = 10


def status(
    console: Console,
    release: dict[str, Any],
    workloads: list[tuple[str, str, dict[str, Any] | None]] | None = None,
    events: list[dict[str, Any]] | None = None,
    now: dt.datetime | None = None,
) -> None:
    meta, spec, st = release.get("metadata", {}), release.get("spec", {}), release.get("status") or {}
    console.print(f"[bold]{safe(meta.get('namespace'))}/{safe(meta.get('name'))}[/]  {safe(spec.get('image'))}")
    console.print(f"  wanted   {safe(spec.get('version'))}" + ("  (suspended)" if spec.get("suspend") else ""))
    console.print(
        f"  running  {safe(st.get('version', '-'))}  revision {safe(st.get('revision', 0))}  "
        f"{safe(st.get('image', ''))}",
        highlight=False,
    )
    if st.get("gitCommit"):
        console.print(f"  commit   {safe(st['gitCommit'])}", highlight=False)
    table = Table(box=None, pad_edge=False)
    for column in ("CONDITION", "STATUS", "REASON", "MESSAGE"):
        table.add_column(column)
    for c in st.get("conditions") or []:
        style = "green" if (c.get("type") == "Ready") == (c.get("status") == "True") else "red"
        if c.get("type") != "Ready" and c.get("status") == "False":
            style = "dim"
        table.add_row(
            Text(plain(c.get("type"))),
            Text(plain(c.get("status")), style=style),
            Text(plain(c.get("reason", ""))),
            Text(plain(c.get("message", ""))),
        )
    console.print(table)
    if workloads is not None:
        _workloads(console, workloads)
    if events is not None:
        _events(console, events, now or dt.datetime.now(dt.UTC))


def _workloads(console: Console, workloads: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    console.print("\n[bold]Workloads[/]")
    table = Table(box=None, pad_edge=False)
    for column in ("WORKLOAD", "ROLLOUT", "DETAIL", "IMAGES"):
        table.add_column(column)
    for kind, name, obj in workloads:
        state = judge(kind, obj)  # the operator's own judgement, not a second one
        style = _STATE_STYLE.get(state.state, "yellow")
        images = ", ".join(f"{container}={image}" for container, image in template_images(kind, obj).items())
        row = [Text(plain(f"{kind}/{name}")), Text(state.state, style=style), Text(plain(state.detail))]
        table.add_row(*row, Text(plain(images)))
    console.print(table)


def _events(console: Console, events: list[dict[str, Any]], now: dt.datetime) -> None:
    shown = events[-EVENTS_SHOWN:]
    console.print(f"\n[bold]Events[/] (last {len(shown)} of {len(events)})" if events else "\n[bold]Events[/]: none")
    if not shown:
        return
    table = Table(box=None, pad_edge=False)
    for column in ("LAST SEEN", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column)
    for event in shown:
        count = event.get("count") or (event.get("series") or {}).get("count") or 1
        kind = plain(event.get("type", ""))
        table.add_row(
            _age(event_time(event), now) + (f" (x{count})" if isinstance(count, int) and count > 1 else ""),
            Text(kind, style="yellow" if kind == "Warning" else ""),
            Text(plain(event.get("reason", ""))),
            Text(plain(event.get("message") or event.get("note") or "")),
        )
    console.print(table)


def _age(timestamp: str, now: dt.datetime) -> str:
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def history(console: Console, release: dict[str, Any]) -> None:
    st = release.get("status") or {}
    table = Table(box=None, pad_edge=False)
    for column in ("REVISION", "VERSION", "DIGEST", "COMMIT", "SOURCE", "CAUSE", "OUTCOME", "DEPLOYED"):
        table.add_column(column)
    failures: list[str] = []
    for entry in st.get("history") or []:
        source = entry.get("source", "")
        if entry.get("restoredFrom"):
            source += f" (from {entry['restoredFrom']})"
        outcome = entry.get("outcome", "")
        marker = "*" if entry.get("revision") == st.get("revision") else " "
        table.add_row(
            Text(plain(f"{marker}{entry.get('revision')}")),
            Text(plain(entry.get("version", ""))),
            Text(plain(_short(entry.get("digest")))),
            Text(plain((entry.get("gitCommit") or "")[:12])),
            Text(plain(source)),
            Text(plain(entry.get("cause", "Spec"))),
            Text(plain(outcome), style=_OUTCOME_STYLE.get(str(outcome), "")),
            Text(plain(entry.get("deployedAt", ""))),
        )
        if entry.get("failure"):
            failures.append(f"revision {entry.get('revision')} failed: {entry['failure']}")
    console.print(table)
    for failure in failures:
        console.print(Text(plain(failure), style="red"))
