"""`apprelease optin`: the workload's owner lets an AppRelease pin it, by name and (once it exists) by uid."""

from __future__ import annotations

import typer

from apprelease.cli import app as shared
from apprelease.cli.app import ContextOption, KubeconfigOption, NamespaceOption, err, fail, out
from apprelease.cli.kube import KubeError
from apprelease.cli.text import plain, safe
from apprelease.core.api import LABEL_RELEASE
from apprelease.core.consent import ANNOTATION_RELEASE_UID
from apprelease.core.workloads import Kind

# The names kubectl accepts for each kind (`kubectl get deploy/web`), singular, plural and short.
_KINDS: dict[str, Kind] = {
    alias: kind
    for kind, aliases in {
        Kind.DEPLOYMENT: ("deployment", "deployments", "deploy", "deployment.apps"),
        Kind.STATEFUL_SET: ("statefulset", "statefulsets", "sts", "statefulset.apps"),
        Kind.DAEMON_SET: ("daemonset", "daemonsets", "ds", "daemonset.apps"),
        Kind.CRON_JOB: ("cronjob", "cronjobs", "cj", "cronjob.batch"),
    }.items()
    for alias in aliases
}


def optin(
    workload: str = typer.Argument(..., help="The workload as kubectl names it: deployment/web, sts/db, ds/agent."),
    release: str = typer.Option(..., "--release", "-r", help="The AppRelease that may pin the workload."),
    name_only: bool = typer.Option(
        False, "--name-only", help="Bind by name only, and drop a uid binding (any AppRelease of that name)."
    ),
    namespace: str | None = NamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Opt a workload in to an AppRelease: the label apprelease.dev/release and, once the AppRelease exists, the
    annotation apprelease.dev/release-uid binding it to that very object (a namesake created later is refused).
    """
    kind, name = _parse(workload)
    releases = shared.releases(kubeconfig, context, namespace)
    where = f"{releases.namespace}/{kind.lower()}/{name}"
    try:
        if releases.workload(kind, name) is None:
            fail(f"{kind} {releases.namespace}/{name} not found")
        uid = None if name_only else releases.uid(release)
        # No uid: a binding to an earlier AppRelease of the name is dropped, the owner opts in by name now.
        releases.patch_workload_metadata(kind, name, {LABEL_RELEASE: release}, {ANNOTATION_RELEASE_UID: uid})
    except KubeError as problem:
        fail(str(problem))
    if uid is not None:
        out.print(
            plain(f"{where}: opted in to AppRelease {release}, bound to its uid {uid}"), markup=False, highlight=False
        )
        return
    out.print(plain(f"{where}: opted in to AppRelease {release} by name only"), markup=False, highlight=False)
    if not name_only:
        err.print(
            f"[yellow]warning:[/] AppRelease {safe(releases.namespace)}/{safe(release)} does not exist yet: any "
            "AppRelease created with that name may pin this workload, and an operator that requires the uid "
            "binding refuses it. Run this again once the AppRelease exists to bind its uid.",
            highlight=False,
            soft_wrap=True,
        )


def _parse(workload: str) -> tuple[Kind, str]:
    kind, _, name = workload.partition("/")
    if not name or kind.lower() not in _KINDS:
        fail(f"{workload!r}: name the workload as KIND/NAME, KIND one of deployment, statefulset, daemonset, cronjob")
    return _KINDS[kind.lower()], name
