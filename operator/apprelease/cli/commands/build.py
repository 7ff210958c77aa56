"""`apprelease build`: bake the image of the git tag at HEAD, push it, and optionally write a pinned manifest.

The baking itself (docker build and push, tags, provenance labels) is `apprelease.cli.bake`; this module reads
the options, checks them, and reports.
"""

from __future__ import annotations

from pathlib import Path

import docker
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from apprelease.cli.app import err, fail, out
from apprelease.cli.bake import BakeError, BakePlan, build, push
from apprelease.cli.engine import EngineError, connect, find_endpoint
from apprelease.cli.gitinfo import GitError, read_git_state, release_version
from apprelease.cli.manifest import parse_workload, release_manifest, render_manifest
from apprelease.cli.release import RegistryAccess, load_signer
from apprelease.cli.text import plain, safe
from apprelease.core import reference
from apprelease.core.api import LABEL_RELEASE
from apprelease.core.versions import image_tag_problem


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
        f"{LABEL_RELEASE}=NAME (set by its owner) to be managed.",
    ),
    name: str | None = typer.Option(None, "--name", help="AppRelease name for --manifest (default: last path part)."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Namespace for --manifest."),
    workload: list[str] = typer.Option(
        [], "--workload", "-w", help="Deployment NAME or NAME:CONTAINER,... for --manifest (default: --name)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the result."),
    sign: bool = typer.Option(
        False,
        "--sign",
        help="Sign the pushed digest and attest its SLSA provenance (cosign's bundle format, OCI referrers); "
        "needs --push and --key.",
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        help="PEM private key for --sign (ECDSA P-256/P-384 or Ed25519); a password from APPRELEASE_KEY_PASSWORD.",
    ),
    insecure_registry: list[str] = typer.Option(
        [], "--insecure-registry", help="Registry host reached over plain http (repeatable; loopback always is)."
    ),
) -> None:
    """Bake the image of the git tag at HEAD: tags VERSION and the short commit, OCI provenance labels.

    With --push a version is built once: a version tag that already holds an image of another commit is
    refused; one holding this commit's image is left as it is (nothing is pushed)."""
    plan, repo_path = _plan(image, context, file, version, build_arg, target)
    if manifest and not do_push:
        fail("--manifest pins the pushed digest: add --push")
    if sign and not (do_push and key):
        fail("--sign signs the pushed digest: add --push and --key FILE")
    signer = load_signer(key) if sign and key else None
    access = RegistryAccess.for_image(plan.image, insecure_registry)
    existing = access.released(plan) if do_push else None
    digest = existing or _bake(plan, do_push, quiet)
    if digest is None:
        return
    if signer is not None:
        access.sign(plan, digest, signer, only_if_unsigned=existing is not None, quiet=quiet)
    out.print(plain(f"{plan.image}@{digest}"), markup=False, highlight=False)
    if manifest:
        release_name = name or repo_path.rsplit("/", 1)[-1]
        _write_manifest(manifest, plan, digest, release_name, namespace, workload, quiet)


def _plan(
    image: str, context: Path, file: str, version: str | None, build_arg: list[str], target: str | None
) -> tuple[BakePlan, str]:
    """The bake plan of the options, and the repository's path; fails on a bad image, git state or version."""
    try:
        repo = reference.parse_repository(image)
        state = read_git_state(context)
        release = release_version(state, version)
    except (ValueError, GitError) as problem:
        fail(str(problem))
    tag_problem = image_tag_problem(release)
    if tag_problem:
        fail(tag_problem)
    plan = BakePlan(
        context=context.resolve(),
        dockerfile=file,
        image=repo.repository,
        version=release,
        git=state,
        build_args=_build_args(build_arg),
        target=target,
    )
    return plan, repo.path


def _build_args(items: list[str]) -> dict[str, str]:
    args = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--build-arg {item!r}: expected KEY=VALUE")
        args[key] = value
    return args


def _bake(plan: BakePlan, do_push: bool, quiet: bool) -> str | None:
    """Build (and with --push, push) the plan; the pushed digest, or None when only built (then printed)."""
    engine = _engine(plan, quiet)
    try:
        build(plan, (lambda _line: None) if quiet else (lambda line: err.print(f"  [dim]{safe(line)}[/]")), engine)
        tags = ", ".join(f"{plan.image}:{t}" for t in plan.tags)
        if not quiet:
            err.print(f"[green]built[/] {safe(tags)}")
        if not do_push:
            out.print(plain(f"{plan.image}:{plan.version}"), markup=False, highlight=False)
            return None
        return _push_with_progress(plan, quiet, engine)
    except BakeError as problem:
        fail(str(problem))


def _engine(plan: BakePlan, quiet: bool) -> docker.APIClient:
    """The Docker engine the Docker CLI would use, reached before anything is printed (one line if not)."""
    try:
        endpoint = find_endpoint()
        engine = connect(endpoint)
    except EngineError as unreachable:
        fail(str(unreachable))
    if not quiet:
        git = plan.git
        err.print(
            f"[bold]baking[/] {safe(plan.image)}:{safe(plan.version)} from {safe(git.short_commit)} "
            f"(tags: {safe(', '.join(git.tags) or 'none')}) with the Docker engine at {safe(endpoint.describe())}",
            soft_wrap=True,
        )
    return engine


def _write_manifest(
    path: Path, plan: BakePlan, digest: str, name: str, namespace: str | None, workload: list[str], quiet: bool
) -> None:
    try:
        workloads = [parse_workload(w) for w in workload] or [(name, [])]
    except ValueError as problem:
        fail(str(problem))
    document = release_manifest(
        name=name, image=plan.image, version=plan.version, digest=digest, workloads=workloads, namespace=namespace
    )
    path.write_text(render_manifest(document))
    if not quiet:
        err.print(f"[green]wrote[/] {safe(path)}")
        err.print(f"  its workloads are managed once labelled {LABEL_RELEASE}={safe(name)}")


def _push_with_progress(plan: BakePlan, quiet: bool, engine: docker.APIClient) -> str:
    if quiet:
        return push(plan, lambda *_: None, engine)
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

        return push(plan, update, engine)
