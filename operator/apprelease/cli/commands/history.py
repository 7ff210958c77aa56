"""`apprelease history`: every recorded revision."""

from __future__ import annotations

from apprelease.cli import app as shared
from apprelease.cli import render
from apprelease.cli.app import (
    ContextOption,
    KubeconfigOption,
    NameArgument,
    NamespaceOption,
    Output,
    OutputOption,
    dump,
    out,
)
from apprelease.core.fields import Fields


def history(
    name: str = NameArgument,
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Every recorded revision, newest first."""
    _, raw = shared.read_release(name, kubeconfig, context, namespace)
    if output != Output.TABLE:
        dump(Fields(raw).sub("status").value("history") or [], output)
        return
    render.history(out, raw)
