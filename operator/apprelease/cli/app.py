"""The `apprelease` typer application and what its commands share: the consoles, the output formats, the
kubeconfig options, the one way to fail, and the connection to the cluster (a seam the unit tests replace).

Each command lives in its own module under `apprelease.cli.commands` and registers itself on `app`.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import NoReturn

import typer
import yaml
from rich.console import Console

from apprelease import __version__
from apprelease.cli.kube import KubeError, Releases
from apprelease.cli.text import safe
from apprelease.controller.cluster import JsonObject

app = typer.Typer(
    name="apprelease",
    help="Bake images from git tags, pin them by digest, show history, roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Tables are read by scripts and CI logs too: do not squeeze them to 80 columns when stdout is not a terminal.
# emoji=False: a foreign ":warning:" is text, not a picture (markup of foreign text is escaped, emoji codes are not).
out = Console(width=None if sys.stdout.isatty() else 200, emoji=False)
err = Console(stderr=True, emoji=False)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


NameArgument = typer.Argument(..., help="AppRelease name.")
OutputOption = typer.Option(Output.TABLE, "--output", "-o")
KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig.")
ContextOption = typer.Option(None, "--context", help="kubeconfig context.")
NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace (default: the context's).")


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def releases(kubeconfig: str | None, context: str | None, namespace: str | None) -> Releases:
    """The AppReleases of the namespace, reached with the user's kubeconfig (the first file of a path list)."""
    try:
        return Releases(kubeconfig.split(os.pathsep)[0] if kubeconfig else None, context, namespace)
    except KubeError as problem:
        fail(str(problem))


def read_release(
    name: str, kubeconfig: str | None, context: str | None, namespace: str | None
) -> tuple[Releases, JsonObject]:
    """The namespace's AppReleases and the named one as stored (camelCase JSON); fails when it cannot be read."""
    found = releases(kubeconfig, context, namespace)
    try:
        return found, found.get_raw(name)
    except KubeError as problem:
        fail(str(problem))


def dump(data: object, output: Output) -> None:
    """`data` (JSON-shaped) on stdout as JSON or YAML, for scripts."""
    if output == Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"apprelease {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """apprelease: versioned, immutable deployments on Kubernetes."""
