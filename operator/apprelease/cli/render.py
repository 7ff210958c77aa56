"""Human-readable tables for `status` and `history`.

Everything printed comes from the cluster and is hostile text: it reaches the terminal through `plain`/`safe`.
What a rollout's state is, is the core's judgement (`apprelease.core.workloads.judge`), the operator's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from apprelease.cli.kube import event_time
from apprelease.cli.text import plain, safe
from apprelease.core.fields import Fields
from apprelease.core.workloads import Rollout, judge, template_images

_OUTCOME_STYLE = {"Succeeded": "green", "InProgress": "yellow", "Failed": "red", "Superseded": "dim"}

Json = Mapping[str, object]  # an object as the API server returned it
WorkloadRow = tuple[str, str, Json | None]  # kind, name, the workload (None: not found)


def _short(digest: object) -> str:
    return (digest if isinstance(digest, str) else "").split(":", 1)[-1][:12]


_STATE_STYLE = {Rollout.COMPLETE: "green", Rollout.FAILED: "red", Rollout.PAUSED: "yellow"}
EVENTS_SHOWN = 10


def status(
    console: Console,
    release: Json,
    workloads: Sequence[WorkloadRow] | None = None,
    events: Sequence[Json] | None = None,
    now: dt.datetime | None = None,
) -> None:
    view = Fields(release)
    meta, spec, st = view.sub("metadata"), view.sub("spec"), view.sub("status")
    console.print(f"[bold]{safe(meta.value('namespace'))}/{safe(meta.value('name'))}[/]  {safe(spec.value('image'))}")
    console.print(f"  wanted   {safe(spec.value('version'))}" + ("  (suspended)" if spec.value("suspend") else ""))
    console.print(
        f"  running  {safe(st.value('version', '-'))}  revision {safe(st.value('revision', 0))}  "
        f"{safe(st.value('image', ''))}",
        highlight=False,
    )
    if st.value("gitCommit"):
        console.print(f"  commit   {safe(st.value('gitCommit'))}", highlight=False)
    console.print(_conditions(st.items("conditions")))
    if workloads is not None:
        _workloads(console, workloads)
    if events is not None:
        _events(console, events, now or dt.datetime.now(dt.UTC))


def _conditions(conditions: list[Fields]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("CONDITION", "STATUS", "REASON", "MESSAGE"):
        table.add_column(column)
    for c in conditions:
        ready, true = c.value("type") == "Ready", c.value("status") == "True"
        style = "green" if ready == true else "red"
        if not ready and c.value("status") == "False":
            style = "dim"
        table.add_row(
            Text(plain(c.value("type"))),
            Text(plain(c.value("status")), style=style),
            Text(plain(c.value("reason", ""))),
            Text(plain(c.value("message", ""))),
        )
    return table


def _workloads(console: Console, workloads: Sequence[WorkloadRow]) -> None:
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


def _events(console: Console, events: Sequence[Json], now: dt.datetime) -> None:
    shown = events[-EVENTS_SHOWN:]
    console.print(f"\n[bold]Events[/] (last {len(shown)} of {len(events)})" if events else "\n[bold]Events[/]: none")
    if not shown:
        return
    table = Table(box=None, pad_edge=False)
    for column in ("LAST SEEN", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column)
    for event in map(Fields, shown):
        count = event.value("count") or event.sub("series").value("count") or 1
        kind = plain(event.value("type", ""))
        table.add_row(
            _age(event_time(event), now) + (f" (x{count})" if isinstance(count, int) and count > 1 else ""),
            Text(kind, style="yellow" if kind == "Warning" else ""),
            Text(plain(event.value("reason", ""))),
            Text(plain(event.value("message") or event.value("note") or "")),
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


def history(console: Console, release: Json) -> None:
    st = Fields(release).sub("status")
    table = Table(box=None, pad_edge=False)
    for column in ("REVISION", "VERSION", "DIGEST", "COMMIT", "SOURCE", "CAUSE", "OUTCOME", "DEPLOYED"):
        table.add_column(column)
    failures: list[str] = []
    for entry in st.items("history"):
        table.add_row(*_history_row(entry, current=entry.value("revision") == st.value("revision")))
        if entry.value("failure"):
            failures.append(f"revision {entry.value('revision')} failed: {entry.value('failure')}")
    console.print(table)
    for failure in failures:
        console.print(Text(plain(failure), style="red"))


def _history_row(entry: Fields, current: bool) -> list[Text]:
    source = str(entry.value("source", ""))
    if entry.value("restoredFrom"):
        source += f" (from {entry.value('restoredFrom')})"
    if entry.value("promotedFrom"):
        source = f"Promotion (from {entry.value('promotedFrom')})"
    outcome = entry.value("outcome", "")
    return [
        Text(plain(f"{'*' if current else ' '}{entry.value('revision')}")),
        Text(plain(entry.value("version", ""))),
        Text(plain(_short(entry.value("digest")))),
        Text(plain(str(entry.value("gitCommit") or "")[:12])),
        Text(plain(source)),
        Text(plain(entry.value("cause", "Spec"))),
        Text(plain(outcome), style=_OUTCOME_STYLE.get(str(outcome), "")),
        Text(plain(entry.value("deployedAt", ""))),
    ]
