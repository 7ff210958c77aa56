"""`apprelease rollback`: spec.version back to a recorded version, in the live object or (GitOps) in a file."""

from __future__ import annotations

from pathlib import Path

import typer

from apprelease.cli import app as shared
from apprelease.cli.app import (
    ContextOption,
    KubeconfigOption,
    NameArgument,
    NamespaceOption,
    err,
    fail,
    out,
)
from apprelease.cli.commands.rollback_file import rollback_in_file
from apprelease.cli.kube import KubeError, Releases
from apprelease.cli.text import plain, safe
from apprelease.core.api import AppRelease, HistoryEntry
from apprelease.core.fieldowners import spec_version_owners
from apprelease.core.fields import Fields
from apprelease.core.rollback import RollbackRefused, choose_rollback


def rollback(
    name: str = NameArgument,
    to_revision: int | None = typer.Option(None, "--to-revision", help="Recorded revision to go back to."),
    to_version: str | None = typer.Option(None, "--to", "--to-version", help="Recorded version to go back to."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Under GitOps: edit the AppRelease in this manifest instead of the live object."
    ),
    commit: bool = typer.Option(False, "--commit", help="With --file: commit the edited file (git)."),
    namespace: str | None = NamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Set spec.version back to a recorded version (default: the previous succeeded one), with its digest."""
    if commit and file is None:
        fail("--commit commits the edited manifest: give --file PATH")
    releases = shared.releases(kubeconfig, context, namespace)
    try:
        raw = releases.get_raw(name)
        current = AppRelease.from_k8s(raw)
        entry = choose_rollback(
            current.status.history, current.spec.version, to_revision=to_revision, to_version=to_version
        )
    except (KubeError, RollbackRefused) as problem:
        fail(str(problem))
    if file is not None:
        rollback_in_file(file, commit, releases.namespace, current, entry)
        return
    owners = spec_version_owners(Fields(raw).sub("metadata").value("managedFields"))
    _warn_about_appliers(f"{releases.namespace}/{name}", current.spec.version, entry, owners)
    if entry.version == current.spec.version:
        fail(f"{name} is already at {entry.version}")
    _patch(releases, name, current, entry)


def _warn_about_appliers(where: str, version: str, entry: HistoryEntry, owners: list[str]) -> None:
    """A GitOps tool that applies spec.version puts it back at its next sync: say so before patching."""
    if not owners:
        return
    name = where.split("/", 1)[1]
    err.print(
        "[bold yellow]warning:[/] "
        + safe(
            f"spec.version of {where} is applied by {', '.join(owners)}: the next sync "
            f"puts {version} back. Under GitOps, roll back in git instead: "
            f"apprelease rollback {name} --to {entry.version} --file PATH/TO/MANIFEST --commit"
        ),
        highlight=False,
        soft_wrap=True,
    )


def _patch(releases: Releases, name: str, current: AppRelease, entry: HistoryEntry) -> None:
    try:
        # A spec that pins a digest gets the recorded one, so that it says exactly what will run. One that does
        # not is left without: the operator restores the recorded digest anyway, and a GitOps sync that puts
        # the version back must not find it paired with the digest of another version.
        patch = {"version": entry.version, **({"digest": entry.digest} if current.spec.digest else {})}
        releases.patch_spec(name, patch)
    except KubeError as problem:
        fail(str(problem))
    out.print(
        plain(
            f"{releases.namespace}/{name}: spec.version {current.spec.version} -> {entry.version} "
            f"(revision {entry.revision}, {entry.digest})"
        ),
        markup=False,
        highlight=False,
    )
