"""`apprelease status`: what runs now, the workloads' rollouts (judged by the core, as the operator does)."""

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
    err,
    out,
)
from apprelease.cli.kube import KubeError, Releases
from apprelease.cli.render import Json, WorkloadRow
from apprelease.cli.text import safe
from apprelease.core.fields import Fields
from apprelease.core.workloads import Kind


def status(
    name: str = NameArgument,
    namespace: str | None = NamespaceOption,
    output: Output = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """What runs now: version, digest, revision, conditions, the workloads' rollouts and the last Events.

    -o json/yaml prints the status exactly as stored (a stable contract for scripts).
    """
    releases, raw = shared.read_release(name, kubeconfig, context, namespace)
    if output != Output.TABLE:
        dump(raw.get("status") or {}, output)
        return
    workloads, events = _around(releases, name, raw)
    render.status(out, raw, workloads, events)


def _around(releases: Releases, name: str, raw: Json) -> tuple[list[WorkloadRow], list[Json] | None]:
    """The AppRelease's workloads as read now (None: not found), and its Events (None: not readable)."""
    workloads: list[WorkloadRow] = []
    events: list[Json] | None = None
    release = Fields(raw)
    try:
        for w in release.sub("spec").items("workloads"):
            kind, workload = str(w.value("kind") or Kind.DEPLOYMENT), str(w.value("name") or "")
            workloads.append((kind, workload, releases.workload(kind, workload)))
        uid = release.sub("metadata").value("uid")
        events = releases.events(name, uid if isinstance(uid, str) else None)
    except KubeError as problem:
        # What runs is still worth showing when RBAC hides workloads or Events from this user.
        err.print(f"[yellow]warning:[/] {safe(problem)}", highlight=False, soft_wrap=True)
    return workloads, events
