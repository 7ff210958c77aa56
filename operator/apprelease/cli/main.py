"""The `apprelease` command line (also `kubectl apprelease`): the console script's entry point.

It wires the commands, one module each under `apprelease.cli.commands`, onto the typer app of
`apprelease.cli.app`, in the order `--help` lists them.
"""

from __future__ import annotations

from apprelease.cli.app import app
from apprelease.cli.commands import build, history, optin, promote, resolve, retry, rollback, run, status

app.command("build")(build.build_command)
app.command("resolve")(resolve.resolve)
app.command("status")(status.status)
app.command("history")(history.history)
app.command("rollback")(rollback.rollback)
app.command("promote")(promote.promote)
app.command("retry")(retry.retry)
app.command("optin")(optin.optin)
app.command("run")(run.run)

__all__ = ["app", "main"]


def main() -> None:
    app()
