"""The `apprelease` command line (also `kubectl apprelease`)."""

from __future__ import annotations

import typer

from apprelease import __version__

app = typer.Typer(
    name="apprelease",
    help="Bake images from git tags, pin them by digest, show history, roll back.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"apprelease {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """apprelease: versioned, immutable deployments on Kubernetes."""


@app.command()
def run() -> None:
    """Run the operator against the current KUBECONFIG (or in-cluster credentials)."""
    from apprelease.runner import run_operator

    run_operator()


def main() -> None:
    app()
