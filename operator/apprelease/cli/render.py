"""Human-readable tables for `status` and `history`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from apprelease.cli.text import plain, safe

_OUTCOME_STYLE = {"Succeeded": "green", "InProgress": "yellow", "Failed": "red", "Superseded": "dim"}


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def status(console: Console, release: dict[str, Any]) -> None:
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
