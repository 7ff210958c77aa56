"""One module per `apprelease` command, each a plain function that `apprelease.cli.main` registers.

A new command: a module here holding one function (its typer options as defaults, shared ones from
`apprelease.cli.app`), a line in `apprelease.cli.main`, and its printing in `apprelease.cli.render` when it
prints a table. Judgements (rollout state, what to roll back to, who owns a field) come from `apprelease.core`.
"""
