"""The `apprelease` command line (also `kubectl apprelease`): thin commands over the library modules."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from apprelease import __version__
from apprelease.cli import render
from apprelease.cli.bake import BakeError, BakePlan, build, push
from apprelease.cli.gitinfo import GitError, commit_file, prepare_commit, read_git_state, release_version
from apprelease.cli.kube import KubeError, Releases
from apprelease.cli.manifest import parse_workload, release_manifest, render_manifest
from apprelease.cli.manifest_edit import ManifestEditError, set_version, unified_diff
from apprelease.cli.text import plain, safe
from apprelease.core import reference
from apprelease.core.api import ANNOTATION_RETRY, AppRelease, HistoryEntry
from apprelease.core.fieldowners import spec_version_owners
from apprelease.core.rollback import RollbackRefused, choose_rollback
from apprelease.registry import RegistryClient, RegistryError, RegistrySettings, lookup, parse_docker_config

app = typer.Typer(
    name="apprelease",
    help="Bake images from git tags, pin them by digest, show history, roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Tables are read by scripts and CI logs too: do not squeeze them to 80 columns when stdout is not a terminal.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"apprelease {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """apprelease: versioned, immutable deployments on Kubernetes."""


# --- build ---------------------------------------------------------------------------------------------
@app.command("build")
def build_command(
    image: str = typer.Option(..., "--image", "-i", help="Repository to tag and push, without tag (REGISTRY/PATH)."),
    context: Path = typer.Argument(Path("."), help="The git checkout to bake (the Docker build context)."),
    file: str = typer.Option("Dockerfile", "--file", "-f", help="Dockerfile, relative to the context."),
    version: str | None = typer.Option(
        None, "--version", help="Escape hatch: bake a HEAD that is not at a tag under this version."
    ),
    build_arg: list[str] = typer.Option([], "--build-arg", help="KEY=VALUE passed to docker build (repeatable)."),
    target: str | None = typer.Option(None, "--target", help="Build stage to stop at (multi-stage builds)."),
    do_push: bool = typer.Option(False, "--push", help="Push the tags and print IMAGE@sha256:..."),
    manifest: Path | None = typer.Option(
        None,
        "--manifest",
        help="Write an AppRelease pinned with spec.digest. Each workload must carry the label "
        "apprelease.dev/release=NAME (set by its owner) to be managed.",
    ),
    name: str | None = typer.Option(None, "--name", help="AppRelease name for --manifest (default: last path part)."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Namespace for --manifest."),
    workload: list[str] = typer.Option(
        [], "--workload", "-w", help="Deployment NAME or NAME:CONTAINER,... for --manifest (default: --name)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the result."),
) -> None:
    """Bake the image of the git tag at HEAD: tags VERSION and the short commit, OCI provenance labels."""
    try:
        repo = reference.parse_repository(image)
        state = read_git_state(context)
        release = release_version(state, version)
    except (ValueError, GitError) as problem:
        fail(str(problem))
    if release.lower() == "latest" or not reference.is_valid_tag(release):
        fail(f"version {release!r} cannot be an image tag for a release (never 'latest'; letters, digits, ._-)")
    if manifest and not do_push:
        fail("--manifest pins the pushed digest: add --push")
    args = {}
    for item in build_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--build-arg {item!r}: expected KEY=VALUE")
        args[key] = value
    plan = BakePlan(
        context=context.resolve(),
        dockerfile=file,
        image=repo.repository,
        version=release,
        git=state,
        build_args=args,
        target=target,
    )
    if not quiet:
        err.print(
            f"[bold]baking[/] {safe(plan.image)}:{safe(release)} from {safe(state.short_commit)} "
            f"({safe(state.tag or 'no tag')})"
        )
    try:
        build(plan, on_line=(lambda _line: None) if quiet else (lambda line: err.print(f"  [dim]{safe(line)}[/]")))
        tags = ", ".join(f"{plan.image}:{t}" for t in plan.tags)
        if not quiet:
            err.print(f"[green]built[/] {safe(tags)}")
        if not do_push:
            out.print(plain(f"{plan.image}:{release}"), markup=False, highlight=False)
            return
        digest = _push_with_progress(plan, quiet)
    except BakeError as problem:
        fail(str(problem))
    pinned = f"{plan.image}@{digest}"
    out.print(plain(pinned), markup=False, highlight=False)
    if manifest:
        release_name = name or repo.path.rsplit("/", 1)[-1]
        try:
            workloads = [parse_workload(w) for w in workload] or [(release_name, [])]
        except ValueError as problem:
            fail(str(problem))
        document = release_manifest(
            name=release_name,
            image=plan.image,
            version=release,
            digest=digest,
            workloads=workloads,
            namespace=namespace,
        )
        manifest.write_text(render_manifest(document))
        if not quiet:
            err.print(f"[green]wrote[/] {safe(manifest)}")
            err.print(f"  its workloads are managed once labelled apprelease.dev/release={safe(release_name)}")


def _push_with_progress(plan: BakePlan, quiet: bool) -> str:
    if quiet:
        return push(plan, on_progress=lambda *_: None)
    with Progress(TextColumn("  {task.description}"), BarColumn(), DownloadColumn(), console=err) as bar:
        tasks: dict[str, TaskID] = {}

        def update(layer: str, status: str, current: int, total: int) -> None:
            if layer not in tasks:
                tasks[layer] = bar.add_task(safe(layer), total=total or None)
            bar.update(
                tasks[layer], description=safe(f"{layer} {status}"), completed=current or None, total=total or None
            )
            if status in ("Pushed", "Layer already exists"):
                bar.update(
                    tasks[layer], completed=bar.tasks[tasks[layer]].total or 1, total=bar.tasks[tasks[layer]].total or 1
                )

        return push(plan, on_progress=update)


# --- resolve -------------------------------------------------------------------------------------------
@app.command()
def resolve(
    image: str = typer.Argument(..., help="IMAGE:TAG to resolve."),
    insecure_registry: list[str] = typer.Option(
        [], "--insecure-registry", help="Registry host reached over plain http (repeatable)."
    ),
    ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM file of extra CAs."),
    output: Output = typer.Option(Output.TABLE, "--output", "-o", help="table (just the reference), json, yaml."),
) -> None:
    """Print IMAGE@sha256:... for a tag, with the operator's registry client and your docker credentials."""
    try:
        ref = reference.parse(image)
    except ValueError as problem:
        fail(str(problem))
    if ref.tag is None:
        fail(f"{image}: give a tag to resolve (IMAGE:TAG)")
    env_insecure = [h for h in os.environ.get("APPRELEASE_INSECURE_REGISTRIES", "").split(",") if h]
    settings = RegistrySettings(
        insecure_registries=[*insecure_registry, *env_insecure],
        ca_bundle=ca_bundle or os.environ.get("APPRELEASE_CA_BUNDLE") or None,
    )
    credential = lookup(_docker_credentials(), ref.domain)
    try:
        with RegistryClient(settings) as registry:
            resolved = registry.resolve(ref, credential, use_cache=False)
    except RegistryError as problem:
        fail(str(problem))
    data = {
        "reference": str(ref),
        "pinned": resolved.pinned,
        "digest": resolved.digest,
        "mediaType": resolved.media_type,
    }
    if output == Output.TABLE:
        out.print(plain(resolved.pinned), markup=False, highlight=False)
    else:
        _dump(data, output)


def _docker_credentials() -> dict[str, Any]:
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        return dict(parse_docker_config(path.read_bytes()))
    except ValueError as problem:
        err.print(f"[yellow]warning:[/] {safe(path)}: {safe(problem)}")
        return {}


# --- status / history / rollback -----------------------------------------------------------------------
KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig.")
ContextOption = typer.Option(None, "--context", help="kubeconfig context.")
NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace (default: the context's).")


def _releases(kubeconfig: str | None, context: str | None, namespace: str | None) -> Releases:
    try:
        return Releases(kubeconfig.split(os.pathsep)[0] if kubeconfig else None, context, namespace)
    except KubeError as problem:
        fail(str(problem))


def _fetch(name: str, kubeconfig: str | None, context: str | None, namespace: str | None) -> dict[str, Any]:
    try:
        return _releases(kubeconfig, context, namespace).get_raw(name)
    except KubeError as problem:
        fail(str(problem))


@app.command()
def status(
    name: str = typer.Argument(..., help="AppRelease name."),
    namespace: str | None = NamespaceOption,
    output: Output = typer.Option(Output.TABLE, "--output", "-o"),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """What runs now: version, digest, revision, conditions, the workloads' rollouts and the last Events.

    -o json/yaml prints the status exactly as stored (a stable contract for scripts).
    """
    releases = _releases(kubeconfig, context, namespace)
    try:
        raw = releases.get_raw(name)
    except KubeError as problem:
        fail(str(problem))
    if output != Output.TABLE:
        _dump(raw.get("status") or {}, output)
        return
    workloads: list[tuple[str, str, dict[str, Any] | None]] = []
    events: list[dict[str, Any]] | None = None
    try:
        for w in (raw.get("spec") or {}).get("workloads") or []:
            kind, workload = str(w.get("kind") or "Deployment"), str(w.get("name") or "")
            workloads.append((kind, workload, releases.workload(kind, workload)))
        events = releases.events(name, (raw.get("metadata") or {}).get("uid"))
    except KubeError as problem:
        # What runs is still worth showing when RBAC hides workloads or Events from this user.
        err.print(f"[yellow]warning:[/] {problem}", highlight=False)
    render.status(out, raw, workloads, events)


@app.command()
def history(
    name: str = typer.Argument(..., help="AppRelease name."),
    namespace: str | None = NamespaceOption,
    output: Output = typer.Option(Output.TABLE, "--output", "-o"),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Every recorded revision, newest first."""
    raw = _fetch(name, kubeconfig, context, namespace)
    entries = (raw.get("status") or {}).get("history") or []
    if output != Output.TABLE:
        _dump(entries, output)
        return
    render.history(out, raw)


@app.command()
def rollback(
    name: str = typer.Argument(..., help="AppRelease name."),
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
    releases = _releases(kubeconfig, context, namespace)
    try:
        raw = releases.get_raw(name)
        current = AppRelease.from_k8s(raw)
        entry = choose_rollback(
            current.status.history, current.spec.version, to_revision=to_revision, to_version=to_version
        )
    except (KubeError, RollbackRefused) as problem:
        fail(str(problem))
    if file is not None:
        _rollback_in_file(file, commit, releases.namespace, current, entry)
        return
    owners = spec_version_owners((raw.get("metadata") or {}).get("managedFields"))
    if owners:
        err.print(
            "[bold yellow]warning:[/] "
            + safe(
                f"spec.version of {releases.namespace}/{name} is applied by {', '.join(owners)}: the next sync "
                f"puts {current.spec.version} back. Under GitOps, roll back in git instead: "
                f"apprelease rollback {name} --to {entry.version} --file PATH/TO/MANIFEST --commit"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if entry.version == current.spec.version:
        fail(f"{name} is already at {entry.version}")
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


@app.command()
def retry(
    name: str = typer.Argument(..., help="AppRelease name."),
    namespace: str | None = NamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Try a failed version once more (after RolledBack or RolloutFailed): sets apprelease.dev/retry to now."""
    releases = _releases(kubeconfig, context, namespace)
    token = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        current = releases.get(name)
        releases.annotate(name, {ANNOTATION_RETRY: token})
    except KubeError as problem:
        fail(str(problem))
    out.print(
        f"{safe(releases.namespace)}/{safe(name)}: retrying {safe(current.spec.version)} ({ANNOTATION_RETRY}={token})"
    )


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _rollback_in_file(path: Path, commit: bool, namespace: str, current: AppRelease, entry: HistoryEntry) -> None:
    """The GitOps rollback: the manifest gets the recorded version and digest; the sync deploys it."""
    # The history comes from the cluster: only a real tag and digest may go into a file and a commit message.
    if not reference.is_valid_tag(entry.version) or not _DIGEST.fullmatch(entry.digest):
        fail(f"revision {entry.revision} records {entry.version!r} / {entry.digest!r}: not a tag and a digest")
    try:
        text = path.read_bytes().decode("utf-8")
        if commit:
            prepare_commit(path)
        edit = set_version(text, name=current.name, namespace=namespace, version=entry.version, digest=entry.digest)
    except (OSError, UnicodeDecodeError, GitError, ManifestEditError) as problem:
        fail(f"{path}: {problem}")
    if not edit.changed(text):
        out.print(
            plain(f"{path}: {current.name} is already at {entry.version} ({entry.digest}); nothing to change"),
            markup=False,
            highlight=False,
        )
        return
    path.write_bytes(edit.text.encode("utf-8"))
    sys.stdout.write(plain(unified_diff(text, edit.text, str(path))))
    sys.stdout.flush()
    if not commit:
        err.print(f"[green]edited[/] {safe(path)}: commit it; the GitOps sync then deploys {entry.version}")
        return
    subject = f"Roll back AppRelease {namespace}/{current.name} to {entry.version} (revision {entry.revision})"
    body = (
        f"spec.version {edit.previous_version} -> {entry.version}\n"
        f"spec.digest {entry.digest}, recorded in revision {entry.revision}"
        + (f" (deployed {entry.deployed_at})" if entry.deployed_at else "")
        + ".\nThe operator redeploys this digest from its history, without asking the registry.\n\n"
        "Written by apprelease rollback --file --commit."
    )
    try:
        sha = commit_file(path, plain(f"{subject}\n\n{body}"))
    except GitError as problem:
        fail(f"{path} is edited but not committed: {problem}")
    out.print(plain(f"committed {sha[:12]}: {subject}"), markup=False, highlight=False)


# --- run -----------------------------------------------------------------------------------------------
@app.command()
def run() -> None:
    """Run the operator against the current KUBECONFIG (or in-cluster credentials)."""
    from apprelease.controller.runner import run_operator

    run_operator()


def _dump(data: Any, output: Output) -> None:
    if output == Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def main() -> None:
    app()
