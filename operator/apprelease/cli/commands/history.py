"""`apprelease history`: every recorded revision."""

from __future__ import annotations

import typer

from apprelease.cli import app as shared
from apprelease.cli import render
from apprelease.cli.app import ContextOption, KubeconfigOption, NamespaceOption, Output, dump, fail, out
from apprelease.cli.kube import KubeError


def history(
    name: str = typer.Argument(..., help="AppRelease name."),
    namespace: str | None = NamespaceOption,
    output: Output = typer.Option(Output.TABLE, "--output", "-o"),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Every recorded revision, newest first."""
    try:
        raw = shared.releases(kubeconfig, context, namespace).get_raw(name)
    except KubeError as problem:
        fail(str(problem))
    if output != Output.TABLE:
        dump((raw.get("status") or {}).get("history") or [], output)
        return
    render.history(out, raw)
