"""`apprelease promote`: spec.version (and spec.promotion.from) set to what an upstream AppRelease ran.

Refused, changing nothing, unless the upstream history's newest final entry for the version Succeeded (the
operator still waits for the soak). Live: a patch of the spec; under GitOps (`--file`): the manifest gets the
version and the upstream digest, like `rollback --file` (same editing code), and `--commit` commits it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from apprelease.cli import app as shared
from apprelease.cli.app import ContextOption, KubeconfigOption, NameArgument, NamespaceOption, fail, out
from apprelease.cli.commands.rollback_file import rollback_in_file
from apprelease.cli.kube import KubeError
from apprelease.cli.text import plain
from apprelease.core.api import AppRelease, HistoryEntry, Outcome
from apprelease.promotion.eligibility import newest_final


def promote(
    name: str = NameArgument,
    source: str = typer.Option(..., "--from", help="The upstream AppRelease, NAMESPACE/NAME."),
    version: str | None = typer.Option(None, "--version", help="Version to promote (default: upstream's current)."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Under GitOps: edit the AppRelease in this manifest instead of the live object."
    ),
    commit: bool = typer.Option(False, "--commit", help="With --file: commit the edited file (git)."),
    namespace: str | None = NamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Promote the version an upstream AppRelease ran successfully (exactly its digest)."""
    if commit and file is None:
        fail("--commit commits the edited manifest: give --file PATH")
    up_namespace, _, up_name = source.partition("/")
    if not up_namespace or not up_name:
        fail(f"--from {source!r}: give NAMESPACE/NAME")
    try:
        upstream = shared.releases(kubeconfig, context, up_namespace).get(up_name)
        releases = shared.releases(kubeconfig, context, namespace)
        current = AppRelease.from_k8s(releases.get_raw(name))
    except KubeError as problem:
        fail(str(problem))
    entry = _succeeded(upstream, version or upstream.status.version or "", source)
    if file is not None:
        rollback_in_file(file, commit, releases.namespace, current, entry, promoted_from=source)
        return
    patch: dict[str, object] = {
        "version": entry.version,
        "promotion": {"from": {"namespace": up_namespace, "name": up_name}},
        **({"digest": entry.digest} if current.spec.digest else {}),
    }
    try:
        releases.patch_spec(name, patch)
    except KubeError as problem:
        fail(str(problem))
    out.print(
        plain(
            f"{releases.namespace}/{name}: spec.version {current.spec.version} -> {entry.version}, promoted from "
            f"{source}#{entry.revision} ({entry.digest}); the operator deploys it once its soak is over"
        ),
        markup=False,
        highlight=False,
    )


def _succeeded(upstream: AppRelease, version: str, source: str) -> HistoryEntry:
    if not version:
        fail(f"{source} has deployed nothing yet: give --version")
    entry = newest_final(upstream.status.history, version)
    if entry is None:
        fail(f"{source} has not Succeeded with {version} (yet): nothing changed")
    if entry.outcome != Outcome.SUCCEEDED:
        fail(f"{version} failed in {source}#{entry.revision} ({entry.failure or 'no detail'}): nothing changed")
    return entry
