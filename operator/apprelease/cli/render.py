"""Human-readable tables for `status` and `history`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_OUTCOME_STYLE = {"Succeeded": "green", "InProgress": "yellow", "Failed": "red", "Superseded": "dim"}


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def status(console: Console, release: dict[str, Any]) -> None:
    meta, spec, st = release.get("metadata", {}), release.get("spec", {}), release.get("status") or {}
    console.print(f"[bold]{meta.get('namespace')}/{meta.get('name')}[/]  {spec.get('image')}")
    console.print(f"  wanted   {spec.get('version')}" + ("  (suspended)" if spec.get("suspend") else ""))
    console.print(
        f"  running  {st.get('version', '-')}  revision {st.get('revision', 0)}  {st.get('image', '')}", highlight=False
    )
    if st.get("gitCommit"):
        console.print(f"  commit   {st['gitCommit']}", highlight=False)
    table = Table(box=None, pad_edge=False)
    for column in ("CONDITION", "STATUS", "REASON", "MESSAGE"):
        table.add_column(column)
    for c in st.get("conditions") or []:
        style = "green" if (c["type"] == "Ready") == (c["status"] == "True") else "red"
        if c["type"] != "Ready" and c["status"] == "False":
            style = "dim"
        table.add_row(c["type"], f"[{style}]{c['status']}[/]", c.get("reason", ""), c.get("message", ""))
    console.print(table)


def history(console: Console, release: dict[str, Any]) -> None:
    st = release.get("status") or {}
    table = Table(box=None, pad_edge=False)
    for column in ("REVISION", "VERSION", "DIGEST", "COMMIT", "SOURCE", "OUTCOME", "DEPLOYED"):
        table.add_column(column)
    for entry in st.get("history") or []:
        source = entry.get("source", "")
        if entry.get("restoredFrom"):
            source += f" (from {entry['restoredFrom']})"
        outcome = entry.get("outcome", "")
        marker = "*" if entry.get("revision") == st.get("revision") else " "
        table.add_row(
            f"{marker}{entry.get('revision')}",
            entry.get("version", ""),
            _short(entry.get("digest")),
            (entry.get("gitCommit") or "")[:12],
            source,
            f"[{_OUTCOME_STYLE.get(outcome, '')}]{outcome}[/]",
            entry.get("deployedAt", ""),
        )
    console.print(table)
